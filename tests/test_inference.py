"""Tests of helpers.inference: greedy decoding and batched beam search on real (randomly
initialised) decoders from helpers.model, and the Captioner / CLI on a trained sample run."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import inference, model
from helpers.config import Config
from helpers.vocab import END_ID, PAD_ID, START_ID

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
    greedy = inference.greedy_decode(decoder, pooled, grid, max_length=10)
    beams = inference.beam_search(decoder, pooled, grid, beam_width=1, max_length=10)
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
        results = inference.beam_search(decoder, pooled, grid, beam_width=4, max_length=12,
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
                assert not set(h.tokens.tolist()) & {PAD_ID, START_ID, END_ID}
                assert len(h.tokens) <= (11 if h.finished else 12)
            assert len({tuple(h.tokens.tolist()) for h in hypotheses}) == 4  # distinct captions
    # A wider beam never finds a worse best caption than greedy (alpha = 0: it maximises log P).
    greedy = inference.greedy_decode(decoder, pooled, grid, max_length=12)
    wide = inference.beam_search(decoder, pooled, grid, beam_width=4, max_length=12)
    for g, w in zip(greedy, wide):
        assert w[0].log_probability >= g.log_probability - 1e-5


def test_beam_that_never_emits_end_stops_at_max_length():
    decoder = make_decoder("attention", end_bias=-1e4)
    pooled, grid = make_features(3)
    results = inference.beam_search(decoder, pooled, grid, beam_width=3, max_length=7)
    for hypotheses in results:
        assert len(hypotheses) == 3
        for h in hypotheses:
            assert not h.finished and len(h.tokens) == 7 and h.length == 7
            assert END_ID not in h.tokens.tolist()
            assert np.isfinite(h.log_probability) and h.attention.shape == (7, GRID_CELLS)
    greedy = inference.greedy_decode(decoder, pooled, grid, max_length=7)
    assert all(not h.finished and len(h.tokens) == 7 for h in greedy)


def test_batched_beam_search_agrees_with_one_image_at_a_time(decoder):
    pooled, grid = make_features(5, seed=3)
    batched = inference.beam_search(decoder, pooled, grid, beam_width=3, max_length=10)
    for index in range(5):
        (alone,) = inference.beam_search(decoder, pooled[index:index + 1], grid[index:index + 1],
                                         beam_width=3, max_length=10)
        assert [h.tokens.tolist() for h in alone] == [h.tokens.tolist() for h in batched[index]]
        assert [h.log_probability for h in alone] == pytest.approx(
            [h.log_probability for h in batched[index]], abs=1e-4)


@pytest.mark.parametrize("kind", ["lstm", "attention"])
def test_wide_beam_equals_exhaustive_search(kind):
    """With 4 word ids (<unk> included) and 3 steps there are 85 possible outputs: an 85-wide beam
    must return all of them, with the log-probabilities of the decoder's public `step`, sorted
    (for the attention decoder this also checks beam search's once-per-image feature projection)."""
    decoder = make_decoder(kind, seed=4, end_bias=1.0, vocabulary_size=7)  # words: ids 3, 4, 5, 6
    pooled, grid = make_features(1, seed=5)
    max_length = 3

    def log_softmax(logits):
        logits = np.asarray(logits, np.float64)[0]
        values = logits - logits.max()
        values = values - np.log(np.exp(values).sum())
        values[[PAD_ID, START_ID]] = -np.inf
        return values

    expected = {}

    def expand(prefix, state, log_probability):
        tokens = np.array([prefix[-1] if prefix else START_ID], np.int32)
        logits, new_state, _ = decoder.step(tokens, state, pooled, grid)
        log_probs = log_softmax(logits)
        for word in range(7):
            if not np.isfinite(log_probs[word]):
                continue
            total = log_probability + log_probs[word]
            if word == END_ID:
                expected[tuple(prefix)] = (total, True)
            elif len(prefix) + 1 == max_length:
                expected[tuple(prefix) + (word,)] = (total, False)
            else:
                expand(prefix + [word], new_state, total)

    expand([], decoder.initial_state(pooled, grid), 0.0)
    assert len(expected) == 1 + 4 + 16 + 64  # <end> at step 1, 2 or 3, or 3 words; words: ids 3..6
    (found,) = inference.beam_search(decoder, pooled, grid, beam_width=len(expected), max_length=max_length)
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
        inference.beam_search(decoder, pooled, grid, beam_width=2, top_n=3)
    with pytest.raises(ValueError, match="beam_width"):
        inference.beam_search(decoder, pooled, grid, beam_width=0)
    with pytest.raises(ValueError, match="max_length"):
        inference.greedy_decode(decoder, pooled, grid, max_length=0)
    with pytest.raises(ValueError, match="pooled"):
        inference.beam_search(decoder, pooled[:1], grid)


def test_format_caption_is_im2txt_style():
    assert inference.format_caption(0, "a man sitting on a bench", 0.000005) == \
        "0) a man sitting on a bench (p=0.000005)"


# --- Captioner and command line on a trained bundle ---------------------------------------------


@pytest.fixture(scope="module")
def captioner(trained_run):
    return inference.Captioner.from_bundle(trained_run)


@pytest.fixture(scope="module")
def val_photos(trained_run):
    config = json.loads((Path(trained_run) / "config.json").read_text())
    photos = sorted((Path(config["data_dir"]) / config["val_split"]).glob("*.jpg"))
    assert len(photos) >= 4
    return photos[:4]


def test_captioner_captions_and_tags_in_french_and_survives_a_corrupt_photo(captioner, val_photos, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    photos = [val_photos[0], corrupt, *val_photos[1:]]
    predictions = captioner.predict(photos, beam_width=3, top_n=3, nb_keywords=3, lang="fra",
                                    batch_size=2, progress=False)
    assert [p.path for p in predictions] == [str(p) for p in photos]
    assert predictions[1].error and not predictions[1].captions and not predictions[1].ok
    good = [p for i, p in enumerate(predictions) if i != 1]
    vocabulary = captioner.vocabulary
    for prediction in good:
        assert prediction.error is None and len(prediction.captions) == 3
        log_probs = [lp for _, lp in prediction.captions]
        assert log_probs == sorted(log_probs, reverse=True)  # alpha = 0: score = log-probability
        assert all(text.strip() and all(w in vocabulary for w in text.split()) for text, _ in prediction.captions)
        assert set(prediction.synset_probabilities) == set(captioner.synset_names)
        assert 1 <= len(prediction.tags) <= 3
        from helpers import keywords

        for synset, keyword, probability in prediction.tags:
            assert keyword == keywords.keyword(synset, "fra")
            assert probability == prediction.synset_probabilities[synset]
    # The same photos one at a time give the same captions (batching does not change results).
    (alone,) = captioner.predict([val_photos[1]], beam_width=3, top_n=3, nb_keywords=3, lang="fra", progress=False)
    assert alone.captions[0][0] == predictions[2].captions[0][0]
    assert alone.captions[0][1] == pytest.approx(predictions[2].captions[0][1], abs=1e-3)


def test_early_stopping_for_fewer_captions_returns_the_same_best_ones(captioner, trained_run):
    """With top_n < beam_width the search drops hypotheses that can no longer be among the top_n
    and stops early; it must return exactly the first top_n of the complete search. Checked on the
    trained decoder (whose captions end at varied lengths) and 24 val photos."""
    from helpers.images import load_images

    config = json.loads((Path(trained_run) / "config.json").read_text())
    photos = sorted((Path(config["data_dir"]) / config["val_split"]).glob("*.jpg"))[:24]
    pixels = np.stack([p for _, p in load_images(photos, size=captioner.image_size)])
    pooled, grid, _ = captioner._features(pixels)
    decoder = captioner.bundle.decoder
    for alpha in (0.0, 0.7, 2.0):
        complete = inference.beam_search(decoder, pooled, grid, beam_width=4, max_length=16,
                                         length_normalization=alpha)
        lengths = {h.length for hypotheses in complete for h in hypotheses if h.finished}
        assert len(lengths) >= 3                                       # captions end at varied lengths
        for top_n in (1, 2):
            pruned = inference.beam_search(decoder, pooled, grid, beam_width=4, max_length=16,
                                           length_normalization=alpha, top_n=top_n)
            for found, expected in zip(pruned, complete):
                assert [h.tokens.tolist() for h in found] == [h.tokens.tolist() for h in expected[:top_n]]
                assert [h.score for h in found] == pytest.approx([h.score for h in expected[:top_n]], abs=1e-5)
                if expected[0].attention is not None:
                    np.testing.assert_allclose(found[0].attention, expected[0].attention, atol=1e-5)


def test_captioner_accepts_uint8_arrays(captioner, val_photos):
    from helpers.images import load_image

    size = captioner.image_size
    pixels = load_image(val_photos[0], size=size)
    from_array, from_file = captioner.predict([pixels, val_photos[0]], beam_width=2, top_n=1, progress=False)
    assert from_array.path == "<array 0>"
    assert from_array.captions[0][0] == from_file.captions[0][0]
    bad = captioner.predict([np.zeros((4, 4, 3), np.float32)], progress=False)[0]
    assert "uint8" in bad.error


def test_caption_cli_prints_captions_with_probabilities_and_tags(trained_run, val_photos):
    from helpers.__main__ import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["caption", "--run", str(trained_run), str(val_photos[0]), "--beam-width", "3",
                       "--lang", "spa"])
    assert status == 0
    lines = buffer.getvalue().splitlines()
    assert lines[0] == str(val_photos[0])
    assert [line.strip()[:2] for line in lines[1:4]] == ["0)", "1)", "2)"]
    assert all("(p=" in line for line in lines[1:4])
    assert lines[4].strip().startswith("tags: ")


def test_evaluate_cli_writes_results_and_metrics(trained_run, tmp_path):
    from helpers.__main__ import main

    out = tmp_path / "metrics.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["evaluate", "--run", str(trained_run), "--split", "val", "--max-images", "40",
                       "--beam-width", "2", "--out", str(out)])
    assert status == 0
    written = json.loads(out.read_text())
    assert written["num_images"] == 40 and written["failed"] == {}
    assert set(written["captions"]) >= {"BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"}
    assert all(0.0 <= value <= 10.0 for value in written["captions"].values())
    tags = written["tags"]
    assert 0.0 < tags["mAP"] <= 1.0 and 0.0 <= tags["micro_f1"] <= 1.0 and 0.0 <= tags["P@1"] <= 1.0
    results = json.loads(Path(written["results_file"]).read_text())
    assert len(results) == 40 and all(r["caption"] for r in results)
    assert "CIDEr" in buffer.getvalue() and "tags mAP" in buffer.getvalue()
