"""helpers.predict.decoding: greedy decoding and batched beam search against exhaustive search, the
per-image reference algorithm and a decoder with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from helpers import model
from helpers.config import Config
from helpers.predict import beam, decoding
from helpers.text.vocab import END_ID, PAD_ID, START_ID, UNK_ID

VOCABULARY_SIZE, GRID_CELLS, FEATURE_DIM = 40, 9, 12


def make_decoder(kind: str, seed: int = 0, end_bias: float = 0.0, vocabulary_size: int = VOCABULARY_SIZE):
    """A real decoder of `kind` with random weights, sharpened so that captions differ clearly.

    The output kernel is scaled up (a random decoder is otherwise close to uniform, where float
    noise decides between near-equal words) and `end_bias` is added to the <end> logit.
    """
    import keras

    keras.utils.set_random_seed(seed)
    config = Config(decoder=kind, embedding_dim=16, hidden_dim=24, attention_dim=8, dropout=0.0)
    heads = model.build_heads(config, vocabulary_size, 5, GRID_CELLS, FEATURE_DIM)
    decoder = heads.decoder
    decoder.output_layer.kernel.assign(decoder.output_layer.kernel * 6.0)
    bias = decoder.output_layer.bias.numpy()
    bias[END_ID] += end_bias
    decoder.output_layer.bias.assign(bias)
    return decoder


def make_features(batch: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    grid = rng.normal(size=(batch, GRID_CELLS, FEATURE_DIM)).astype(np.float32)
    return grid.mean(axis=1), grid


# <end> logit offsets with which these random decoders finish captions at varied lengths
# (some never finish within the tests' maximum lengths): both cases get exercised.
END_BIAS = {"lstm": 0.5, "attention": 2.0}


@pytest.fixture(scope="module", params=["lstm", "attention"])
def decoder(request):
    """Both decoder kinds, random weights (seed 0)."""
    return make_decoder(request.param, end_bias=END_BIAS[request.param])


def test_beam_width_one_equals_greedy_decoding(decoder):
    pooled, grid = make_features(6)
    greedy = decoding.greedy_decode(decoder, pooled, grid, max_length=10)
    beams = decoding.beam_search(decoder, pooled, grid, beam_width=1, max_length=10)
    assert any(h.finished and len(h.tokens) > 0 for h in greedy)  # a real case, not all-empty
    assert not all(h.finished for h in greedy) or len({h.length for h in greedy}) > 1
    for expected, (found,) in zip(greedy, beams):
        assert found.tokens.tolist() == expected.tokens.tolist()
        assert found.finished == expected.finished
        assert found.log_probability == pytest.approx(expected.log_probability, abs=1e-4)
        if expected.attention is None:
            assert found.attention is None
        else:
            assert found.attention.shape == (expected.length, GRID_CELLS)
            np.testing.assert_allclose(found.attention, expected.attention, atol=1e-5)
            np.testing.assert_allclose(found.attention.sum(axis=1), 1.0, atol=1e-5)


def test_beam_results_are_sorted_by_score_and_self_consistent(decoder):
    pooled, grid = make_features(5)
    for alpha in (0.0, 0.7):
        results = decoding.beam_search(decoder, pooled, grid, beam_width=4, max_length=12,
                                        length_normalization=alpha)
        assert len(results) == 5
        for hypotheses in results:
            assert len(hypotheses) == 4
            scores = [h.score for h in hypotheses]
            assert scores == sorted(scores, reverse=True)
            for h in hypotheses:
                assert h.log_probability <= 0.0
                assert h.probability == pytest.approx(np.exp(h.log_probability))
                assert h.score == pytest.approx(h.log_probability / ((5 + h.length) / 6) ** alpha)
                assert not set(h.tokens.tolist()) & {PAD_ID, START_ID, UNK_ID, END_ID}
                assert len(h.tokens) <= (11 if h.finished else 12)
            assert len({tuple(h.tokens.tolist()) for h in hypotheses}) == 4  # distinct captions
    # A wider beam never finds a worse best caption than greedy (alpha = 0: it maximises log P).
    greedy = decoding.greedy_decode(decoder, pooled, grid, max_length=12)
    wide = decoding.beam_search(decoder, pooled, grid, beam_width=4, max_length=12)
    for g, w in zip(greedy, wide):
        assert w[0].log_probability >= g.log_probability - 1e-5


def test_beam_that_never_emits_end_stops_at_max_length():
    decoder = make_decoder("attention", end_bias=-1e4)
    pooled, grid = make_features(3)
    results = decoding.beam_search(decoder, pooled, grid, beam_width=3, max_length=7)
    for hypotheses in results:
        assert len(hypotheses) == 3
        for h in hypotheses:
            assert not h.finished and len(h.tokens) == 7 and h.length == 7
            assert END_ID not in h.tokens.tolist()
            assert np.isfinite(h.log_probability) and h.attention.shape == (7, GRID_CELLS)
    greedy = decoding.greedy_decode(decoder, pooled, grid, max_length=7)
    assert all(not h.finished and len(h.tokens) == 7 for h in greedy)


def _caption_log_probability(decoder, pooled, grid, tokens) -> float:
    """log P(tokens, <end>) by the decoder's one-step protocol, one word at a time."""
    context = decoder.prepare(tf.constant(pooled[None]), tf.constant(grid[None]))
    state, previous, total = decoder.initial_state(context), START_ID, 0.0
    for word in [*tokens, END_ID]:
        logits, state, _ = decoder.step(tf.constant([previous], tf.int32), state, context)
        total += float(tf.nn.log_softmax(logits)[0, word])
        previous = int(word)
    return total


@pytest.mark.parametrize("kind, end_bias", [("lstm", 0.1), ("attention", 1.0)])
def test_unfinished_captions_end_where_the_mean_word_log_probability_is_highest(kind, end_bias):
    decoder = make_decoder(kind, end_bias=end_bias)       # some captions finish within 6 tokens, some not
    pooled, grid = make_features(6, seed=5)
    beams = decoding.beam_search(decoder, pooled, grid, beam_width=3, max_length=6)
    unfinished = [(b, i) for b, hypotheses in enumerate(beams) for i, h in enumerate(hypotheses) if not h.finished]
    assert unfinished and len(unfinished) < sum(map(len, beams))      # both kinds occur
    ended = decoding.end_unfinished(decoder, pooled, grid, beams)
    assert [len(h) for h in ended] == [len(h) for h in beams]
    for b, hypotheses in enumerate(ended):
        assert all(h.finished for h in hypotheses)
        assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)
        # the finished ones are untouched
        kept = sorted((h.tokens.tolist(), h.log_probability) for h in beams[b] if h.finished)
        assert all(pair in [(h.tokens.tolist(), h.log_probability) for h in hypotheses] for pair in kept)
    for b, i in unfinished:
        words = beams[b][i].tokens.tolist()
        means = [_caption_log_probability(decoder, pooled[b], grid[b], words[:k]) / (k + 1)
                 for k in range(1, len(words) + 1)]
        best = int(np.argmax(means)) + 1
        match = [h for h in ended[b] if h.tokens.tolist() == words[:best]]
        assert match, (words, best)
        assert match[0].log_probability == pytest.approx(means[best - 1] * (best + 1), abs=1e-4)
        assert match[0].length == best + 1
        if match[0].attention is not None:
            assert match[0].attention.shape == (best + 1, GRID_CELLS)
    assert decoding.end_unfinished(decoder, pooled, grid, ended) == ended     # nothing left to end


@pytest.mark.parametrize("kind, end_bias", [("lstm", 0.1), ("attention", 1.0)])
def test_scored_captions_have_the_log_probability_and_attention_of_the_search(kind, end_bias):
    decoder = make_decoder(kind, end_bias=end_bias)       # finished and unfinished captions
    pooled, grid = make_features(6, seed=5)
    beams = decoding.beam_search(decoder, pooled, grid, beam_width=3, max_length=6)
    rows = [(b, h) for b, hypotheses in enumerate(beams) for h in hypotheses if len(h.tokens)]
    assert any(h.finished for _, h in rows) and any(not h.finished for _, h in rows)
    images = [b for b, _ in rows]
    scored = decoding.score_captions(decoder, pooled[images], grid[images], [h.tokens for _, h in rows],
                                     [h.finished for _, h in rows], with_attention=kind == "attention")
    for (_, searched), again in zip(rows, scored):
        assert again.tokens.tolist() == searched.tokens.tolist() and again.finished == searched.finished
        assert again.log_probability == pytest.approx(searched.log_probability, abs=1e-4)
        assert again.score == pytest.approx(searched.score, abs=1e-4)
        if kind == "attention":
            np.testing.assert_allclose(again.attention, searched.attention, atol=1e-5)
        else:
            assert again.attention is None
    # a caption the search did not write: the one-step protocol's probability
    b, first = rows[0]
    other = [int(t) for t in first.tokens[::-1]] + [7]
    (scored_other,) = decoding.score_captions(decoder, pooled[b:b + 1], grid[b:b + 1], [other], [True],
                                              kind == "attention")
    assert scored_other.log_probability == pytest.approx(
        _caption_log_probability(decoder, pooled[b], grid[b], other), abs=1e-4)
    with pytest.raises(ValueError, match="no word"):
        decoding.score_captions(decoder, pooled[:1], grid[:1], [[]], [True], True)
    with pytest.raises(ValueError, match="2 captions, 1 finished"):
        decoding.score_captions(decoder, pooled[:2], grid[:2], [[4], [5]], [True], True)


def test_batched_beam_search_agrees_with_one_image_at_a_time(decoder):
    pooled, grid = make_features(5, seed=3)
    batched = decoding.beam_search(decoder, pooled, grid, beam_width=3, max_length=10)
    for index in range(5):
        (alone,) = decoding.beam_search(decoder, pooled[index:index + 1], grid[index:index + 1],
                                         beam_width=3, max_length=10)
        assert [h.tokens.tolist() for h in alone] == [h.tokens.tolist() for h in batched[index]]
        assert [h.log_probability for h in alone] == pytest.approx(
            [h.log_probability for h in batched[index]], abs=1e-4)
    # one graph for every batch size: traced once (`beam.call_for_any_size`)
    decoding.beam_search(decoder, pooled[:2], grid[:2], beam_width=3, max_length=10)
    decoding.greedy_decode(decoder, pooled[:2], grid[:2], max_length=10)
    decoding.greedy_decode(decoder, pooled, grid, max_length=10)
    assert beam.compiled_search(decoder, 3).experimental_get_tracing_count() == 1
    assert decoding._compiled_greedy(decoder).experimental_get_tracing_count() == 1


@pytest.mark.parametrize("kind", ["lstm", "attention"])
def test_wide_beam_equals_exhaustive_search(kind):
    """With 4 word ids (<unk> included) and 3 steps there are 85 possible outputs: an 85-wide beam
    must return all of them, with the log-probabilities of the decoder's public `step`, sorted
    (for the attention decoder this also checks beam search's once-per-image feature projection)."""
    decoder = make_decoder(kind, seed=4, end_bias=1.0, vocabulary_size=8)  # words: ids 4..7 (3 is <unk>)
    pooled, grid = make_features(1, seed=5)
    max_length = 3

    def log_softmax(logits):
        logits = np.asarray(logits, np.float64)[0]
        values = logits - logits.max()
        values = values - np.log(np.exp(values).sum())
        values[list(beam.NEVER_GENERATED)] = -np.inf
        return values

    expected = {}

    def expand(prefix, state, log_probability):
        tokens = np.array([prefix[-1] if prefix else START_ID], np.int32)
        logits, new_state, _ = decoder.step(tokens, state, context)
        log_probs = log_softmax(logits)
        for word in range(8):
            if not np.isfinite(log_probs[word]):
                continue
            total = log_probability + log_probs[word]
            if word == END_ID:
                expected[tuple(prefix)] = (total, True)
            elif len(prefix) + 1 == max_length:
                expected[tuple(prefix) + (word,)] = (total, False)
            else:
                expand(prefix + [word], new_state, total)

    context = decoder.prepare(pooled, grid)
    expand([], decoder.initial_state(context), 0.0)
    assert len(expected) == 1 + 4 + 16 + 64  # <end> at step 1, 2 or 3, or 3 words; words: ids 4..7
    (found,) = decoding.beam_search(decoder, pooled, grid, beam_width=len(expected), max_length=max_length)
    assert len(found) == len(expected)
    assert any(finished for _, finished in expected.values())
    assert {tuple(h.tokens.tolist()): h.finished for h in found} == {k: v[1] for k, v in expected.items()}
    for h in found:
        assert h.log_probability == pytest.approx(expected[tuple(h.tokens.tolist())][0], abs=1e-4)
    best = sorted(expected.values(), key=lambda value: -value[0])
    assert [h.log_probability for h in found] == pytest.approx([value[0] for value in best], abs=1e-4)


def test_decoding_rejects_bad_arguments():
    decoder = make_decoder("lstm")
    pooled, grid = make_features(2)
    with pytest.raises(ValueError, match="top_n"):
        decoding.beam_search(decoder, pooled, grid, beam_width=2, top_n=3)
    with pytest.raises(ValueError, match="beam_width"):
        decoding.beam_search(decoder, pooled, grid, beam_width=0)
    with pytest.raises(ValueError, match="max_length"):
        decoding.greedy_decode(decoder, pooled, grid, max_length=0)
    with pytest.raises(ValueError, match="pooled"):
        decoding.beam_search(decoder, pooled[:1], grid)


def test_greedy_decode_stops_and_pads():
    pooled, grid = make_features(3)
    ids = decoding.greedy_token_ids(make_decoder("attention"), pooled, grid, max_length=6)
    assert ids.shape[0] == 3 and ids.shape[1] == 6 and ids.dtype == np.int32
    for row in ids:
        ends = np.flatnonzero(row == END_ID)
        if ends.size:
            assert (row[ends[0] + 1:] == 0).all()


@pytest.mark.parametrize("kind", ["lstm", "attention"])
def test_compiled_beam_search_equals_the_reference_algorithm(kind):
    """The per-image Python loop `reference_beam_search` (the algorithm as documented) and the
    batched compiled search return the same captions and scores on random decoders."""
    decoder = make_decoder(kind, seed=7, end_bias=END_BIAS[kind])
    pooled, grid = make_features(6, seed=8)

    def repeating(results, n):     # hypotheses in which an n-gram occurs twice
        grams = [[tuple(t[i:i + n]) for i in range(len(t) - n + 1)] for hs in results for t in
                 (h.tokens.tolist() for h in hs)]
        return sum(len(set(g)) < len(g) for g in grams)

    for alpha, block in ((0.0, 0), (0.7, 0), (0.0, 2), (0.7, 3)):
        compiled = decoding.beam_search(decoder, pooled, grid, beam_width=3, max_length=9,
                                        length_normalization=alpha, block_ngram=block)
        reference = decoding.reference_beam_search(decoder, pooled, grid, beam_width=3, max_length=9,
                                                   length_normalization=alpha, block_ngram=block)
        if block:
            assert repeating(compiled, block) == 0
        for found, expected in zip(compiled, reference):
            assert [h.tokens.tolist() for h in found] == [h.tokens.tolist() for h in expected]
            assert [h.finished for h in found] == [h.finished for h in expected]
            assert [h.score for h in found] == pytest.approx([h.score for h in expected], abs=1e-4)


@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("vocabulary_size", [4_230, 10_003])   # not multiples of the chunk size
def test_two_stage_top_words_equals_a_plain_top_k_over_the_vocabulary(count, vocabulary_size):
    """The chunked top-k of `beam.top_words` (vocabularies of thousands of words) picks exactly what a
    top_k over the masked log-softmax picks, ties going to the lowest word id, <pad>, <start>
    and <unk> never chosen even when they score best."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(7, vocabulary_size)).astype(np.float32)
    logits[0, [PAD_ID, START_ID, UNK_ID]] = 50.0  # banned words with the best logits
    logits[1, [17, 500, 4_199, vocabulary_size - 1]] = 9.0     # a four-way tie for the best word
    logits[2, 4_000:4_200] = 9.0                  # a tie across chunk boundaries
    logits[3] = 0.0                               # all equal
    logits[4, :5] = [-np.inf, 3.0, -np.inf, 20.0, 8.0]
    values, words = beam.top_words(tf.constant(logits), count)
    log_probs = tf.nn.log_softmax(logits).numpy()
    log_probs[:, [PAD_ID, START_ID, UNK_ID]] = -np.inf
    expected_values, expected_words = tf.math.top_k(log_probs, k=count)
    np.testing.assert_array_equal(words.numpy(), expected_words.numpy())
    np.testing.assert_allclose(values.numpy(), expected_values.numpy(), rtol=1e-5, atol=1e-5)


class FixedNextWordDecoder(model.CaptionDecoder):
    """A decoder whose next word does not depend on the image: after <start> or word w, word
    w + 1 (word 4 after the last one) with probability 0.6, <end> with 0.3, and 0.1 shared by the
    other words."""

    def __init__(self, vocabulary_size=8, **kwargs):
        super().__init__(vocabulary_size, embedding_dim=4, hidden_dim=4, dropout=0.0, **kwargs)
        table = np.zeros((vocabulary_size, vocabulary_size), np.float64)
        for previous in range(vocabulary_size):
            following = 4 if previous in (START_ID, vocabulary_size - 1) else previous + 1
            others = [w for w in range(4, vocabulary_size) if w != following]
            table[previous, others] = 0.1 / len(others)
            table[previous, END_ID] = 0.3
            table[previous, following] = 0.6
        self.table = tf.constant(np.log(np.maximum(table, 1e-30)), tf.float32)

    def prepare(self, pooled, grid):
        return (tf.convert_to_tensor(pooled),)

    def initial_state(self, context):
        return [tf.zeros([tf.shape(context[0])[0], 1])]

    def step(self, tokens, state, context, rows=None, width=1):
        return tf.gather(self.table, tokens), state, None


def test_a_decoder_with_a_fixed_next_word_gives_the_known_captions():
    decoder = FixedNextWordDecoder()
    pooled, grid = make_features(2)
    # Width 3, 3 steps: <end> at once finishes (0.3); "4" lives (0.6); then "4 <end>" finishes
    # (0.18) beside "4 5" (0.36); the last open slot keeps "4 5 6" (0.216), cut at the maximum.
    for found in decoding.beam_search(decoder, pooled, grid, beam_width=3, max_length=3):
        assert [(h.tokens.tolist(), h.finished) for h in found] == [([], True), ([4, 5, 6], False),
                                                                     ([4], True)]
        assert [h.log_probability for h in found] == pytest.approx(
            [np.log(0.3), np.log(0.6 ** 3), np.log(0.6 * 0.3)], abs=1e-5)
    for greedy in decoding.greedy_decode(decoder, pooled, grid, max_length=5):
        assert greedy.tokens.tolist() == [4, 5, 6, 7, 4] and not greedy.finished
        assert greedy.log_probability == pytest.approx(5 * np.log(0.6), abs=1e-5)
    # Trigram blocking: after "4 5 6 7 4 5", "6" would repeat "4 5 6"; <end> (0.3) comes next, its
    # probability not renormalised
    for search in (decoding.beam_search, decoding.reference_beam_search):
        for [found, *_] in search(decoder, pooled, grid, beam_width=1, max_length=9, block_ngram=3):
            assert found.tokens.tolist() == [4, 5, 6, 7, 4, 5] and found.finished
            assert found.log_probability == pytest.approx(6 * np.log(0.6) + np.log(0.3), abs=1e-5)
    for block in (2, 3):       # a decoder that cycles: blocking decides, and both searches agree
        compiled = decoding.beam_search(decoder, pooled, grid, beam_width=3, max_length=9, block_ngram=block)
        reference = decoding.reference_beam_search(decoder, pooled, grid, beam_width=3, max_length=9,
                                                   block_ngram=block)
        for found, expected in zip(compiled, reference):
            assert [h.tokens.tolist() for h in found] == [h.tokens.tolist() for h in expected[:3]]
            assert [h.score for h in found] == pytest.approx([h.score for h in expected[:3]], abs=1e-5)
            assert all(len(set(zip(*(h.tokens[i:] for i in range(block))))) == len(h.tokens) - block + 1
                       for h in found if len(h.tokens) >= block)
    with pytest.raises(ValueError, match="block_ngram"):
        decoding.beam_search(decoder, pooled, grid, block_ngram=1)

