"""Greedy decoding and batched beam search over any caption decoder, and the reference algorithm.

Every decoder of `helpers.model` is driven through its public protocol (`CaptionDecoder`:
`prepare`, `initial_state`, `step`); nothing here touches a decoder's private members, so a new
decoder needs no change in this module.

`reference_beam_search` is the algorithm in its simplest form, one image and one step at a time
in plain Python: read it first. `beam_search` computes exactly the same thing for a batch in one
compiled loop (a test checks both agree).

Beam search (`beam_search`) is that of Show and Tell (Vinyals et al. 2015, section 3.1) in its
classic formulation (e.g. sgrvinod's "Show, Attend and Tell" tutorial, OpenNMT): every image keeps
`beam_width` partial captions; at each step the `beam_width` best extensions over all (partial
caption, next word) pairs are kept; an extension ending with the <end> token id is *finished* and
takes its slot out of the beam, so the beam narrows until every slot has finished or the maximum
length is reached (the partial captions then alive are returned as unfinished, so the result is
never empty). Its batched form (`helpers.predict.beam`: a named loop state and one function per
sub-step) decodes every image and every beam together in one compiled `tf.while_loop`; the words
are traced back here through the parent pointers once at the end. With `beam_width=1` it is
exactly greedy decoding.

When fewer captions than the beam width are asked for (`top_n`), the search also stops early,
exactly: once an image has `top_n` finished captions, a live hypothesis whose best reachable
score (its log-probability, which can only decrease, over the largest length penalty it can
still get) is below the `top_n`-th of them is dropped; the result equals the first `top_n` of the
complete search.

Hypotheses are ranked by `score = log P(caption) / lp(length)` with the length penalty of GNMT
(Wu et al. 2016, eq. 14): `lp(n) = ((5 + n) / 6) ** alpha`, n = generated tokens (<end> included).
`alpha = 0` (default, as im2txt) ranks by the plain log-probability, which favours short captions;
`alpha` about 0.7 favours longer ones. The penalty only ranks finished hypotheses; the search
itself keeps the most probable partial captions.

<pad> and <start> are never generated (their log-probabilities are set to -inf after the softmax;
the reported probabilities are the model's own).

"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from helpers.predict import beam
from helpers.predict.beam import NEVER_GENERATED
from helpers.text.vocab import END_ID, PAD_ID, START_ID

# --------------------------------------------------------------------------------------------
# Decoding results
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Hypothesis:
    """One generated caption.

    Attributes:
        tokens: int32 `[n]` word ids, without <start> and <end>.
        log_probability: natural-log probability of the generated tokens (<end> included when
            `finished`) under the model: a sum over steps, <= 0.
        score: `log_probability / lp(length)` (see module docstring); equals `log_probability`
            when `alpha = 0`. Hypotheses are sorted by it, best first.
        finished: True when the caption ended with <end>; False when cut at the maximum length.
        attention: float32 `[steps, L]` attention weights over the L grid cells for each generated
            token (row i for `tokens[i]`, the last row for <end> when finished); None for decoders
            without attention.
    """

    tokens: np.ndarray
    log_probability: float
    score: float
    finished: bool
    attention: np.ndarray | None = None

    @property
    def probability(self) -> float:
        """`exp(log_probability)`: probability of this exact caption, in [0, 1]."""
        return float(np.exp(self.log_probability))

    @property
    def word_log_probability(self) -> float:
        """Mean log-probability per generated token (<end> included): the caption's confidence
        independently of its length (its exp is the geometric-mean word probability)."""
        return self.log_probability / max(1, self.length)

    @property
    def length(self) -> int:
        """Generated tokens, <end> included when finished."""
        return len(self.tokens) + int(self.finished)


def length_penalty(length, alpha: float):
    """GNMT length penalty `((5 + length) / 6) ** alpha` (Wu et al. 2016, eq. 14); 1 when alpha = 0."""
    return ((5.0 + np.asarray(length, dtype=np.float64)) / 6.0) ** float(alpha)


def _hypothesis(tokens, log_probability, finished, attention, alpha) -> Hypothesis:
    tokens = np.asarray(tokens, dtype=np.int32)
    length = len(tokens) + int(finished)
    score = float(log_probability / length_penalty(length, alpha))
    return Hypothesis(tokens, float(log_probability), score, bool(finished),
                      None if attention is None else np.asarray(attention, dtype=np.float32))


# --------------------------------------------------------------------------------------------
# Compiled greedy decoding (one per decoder object, cached); the beam search is in `beam`
# --------------------------------------------------------------------------------------------

_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _compiled_greedy(decoder):
    """The compiled greedy decoding of `decoder` (built once, cached).

    `greedy(pooled [B, P], grid [B, L, D], max_length)` returns, stacked over the T steps taken,
    `[T, B]` words (<pad> for images already finished), their log-probabilities (0 there) and
    `[T, B, L]` attention. Images leave the batch when they emit <end>.
    """
    cached = _COMPILED.setdefault(decoder, {})
    key = beam.step_precision(decoder)
    if key in cached:
        return cached[key]

    @tf.function(reduce_retracing=True, autograph=False)
    def greedy(pooled, grid, max_length):
        batch = tf.shape(pooled)[0]
        context = decoder.prepare(pooled, grid)                                   # per image
        state = decoder.initial_state(context)                                    # (B, H)
        arrays = [tf.TensorArray(dtype, size=0, dynamic_size=True) for dtype in (tf.int32, tf.float32, tf.float32)]

        def going(t, decoding, *_):
            return (t < max_length) & tf.reduce_any(decoding)

        def step(t, decoding, tokens, state, arrays):
            state_before = state
            rows = tf.cast(tf.where(decoding)[:, 0], tf.int32)                    # (R,)
            logits, row_state, attention = decoder.step(
                tf.gather(tokens, rows), [tf.gather(part, rows) for part in state], context, rows, 1)
            attention = beam.attention_or_empty(attention, rows)
            word_log_probs, words = beam.top_words(logits, 1)                     # (R, 1)
            words = tf.scatter_nd(rows[:, None], words[:, 0], [batch])            # (B,) <pad> = 0 elsewhere
            state = [tf.tensor_scatter_nd_update(part, rows[:, None], new) for part, new in zip(state, row_state)]
            attention = (tf.zeros([batch, 0]) if attention.shape[1] == 0 else
                         tf.scatter_nd(rows[:, None], attention, [batch, tf.shape(attention)[1]]))
            outputs = (words, tf.scatter_nd(rows[:, None], word_log_probs[:, 0], [batch]), attention)
            arrays = [array.write(t, value) for array, value in zip(arrays, outputs)]
            return (t + 1, *beam.same_shapes((decoding & tf.not_equal(words, END_ID), words, state),
                                             (decoding, tokens, state_before)), arrays)

        loop = tf.while_loop(going, step, (tf.constant(0), tf.ones([batch], tf.bool),
                                           tf.fill([batch], START_ID), state, arrays))
        return [array.stack() for array in loop[-1]]

    cached[key] = greedy
    return greedy


_ENDINGS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _compiled_endings(decoder, with_attention: bool):
    """The compiled teacher-forced pass of `end_unfinished` (built once per decoder, cached).

    `endings(pooled [R, P], grid [R, L, D], tokens int32 [R, T+1] from <start>)` returns the
    log-probability of each given word `[R, T]`, that of <end> after each prefix `[R, T+1]`
    (0 to T words) and the attention `[R, T+1, L]` (L = 0 without attention).
    """
    cached = _ENDINGS.setdefault(decoder, {})
    if with_attention in cached:
        return cached[with_attention]

    @tf.function(reduce_retracing=True, autograph=False)
    def endings(pooled, grid, tokens):
        inputs = (pooled, grid, tokens)
        if with_attention:
            logits, alpha = decoder(inputs, training=False, return_attention=True)
        else:
            logits, alpha = decoder(inputs, training=False), tf.zeros([tf.shape(tokens)[0], tf.shape(tokens)[1], 0])
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))                 # (R, T+1, V)
        words = tf.gather(log_probs[:, :-1], tokens[:, 1:], batch_dims=2)          # (R, T)
        return words, log_probs[:, :, END_ID], tf.cast(alpha, tf.float32)

    cached[with_attention] = endings
    return endings


def _teacher_forced(decoder, pooled, grid, captions, with_attention: bool) -> tuple:
    """`_compiled_endings` of R captions (word-id sequences without <start> and <end>), as NumPy:
    `(log P of each word [R, T], log P of <end> after each prefix [R, T + 1], attention
    [R, T + 1, L])`, T the longest caption."""
    tokens = np.full((len(captions), max(len(c) for c in captions) + 1), PAD_ID, np.int32)
    tokens[:, 0] = START_ID
    for r, caption in enumerate(captions):
        tokens[r, 1:len(caption) + 1] = caption
    outputs = beam.call_for_any_size(_compiled_endings(decoder, with_attention), pooled, grid, tf.constant(tokens))
    return tuple(value.numpy() for value in outputs)


def _check_features(pooled, grid):
    pooled = tf.convert_to_tensor(pooled, tf.float32)
    grid = tf.convert_to_tensor(grid, tf.float32)
    if pooled.shape.rank != 2 or grid.shape.rank != 3 or pooled.shape[0] != grid.shape[0]:
        raise ValueError(f"expected pooled [batch, D] and grid [batch, L, D] with the same batch, "
                         f"got {pooled.shape} and {grid.shape}")
    return pooled, grid


def _check_block(block_ngram: int) -> None:
    if int(block_ngram) < 0 or int(block_ngram) == 1:
        raise ValueError(f"block_ngram must be 0 (no blocking) or an n-gram length >= 2, got {block_ngram}")


def check_lengths(max_length: int, beam_width: int = 1) -> None:
    """Raise `ValueError` unless `max_length` >= 1 generated token and `beam_width` >= 1."""
    if int(max_length) < 1:
        raise ValueError(f"max_length must be >= 1 generated token, got {max_length}")
    if int(beam_width) < 1:
        raise ValueError(f"beam_width must be >= 1, got {beam_width}")


# --------------------------------------------------------------------------------------------
# Greedy decoding and beam search
# --------------------------------------------------------------------------------------------


def greedy_decode(decoder, pooled, grid, max_length: int = 20,
                  length_normalization: float = 0.0) -> list[Hypothesis]:
    """The most probable word at every step, for a batch of images at once.

    The whole loop is one compiled `tf.while_loop`; an image leaves the batch when it emits <end>.

    Args:
        decoder: a `helpers.model.CaptionDecoder` (`prepare`, `initial_state`, `step`).
        pooled: float32 `[B, P]` pooled encoder features; grid: float32 `[B, L, D]` grid features.
        max_length: maximum generated tokens per caption, <end> included.
        length_normalization: alpha of the GNMT length penalty, only used for `score`.

    Returns:
        One `Hypothesis` per image (unfinished when <end> never came within `max_length`).

    Raises:
        ValueError: bad shapes or `max_length` < 1.
    """
    check_lengths(max_length)
    pooled, grid = _check_features(pooled, grid)
    if pooled.shape[0] == 0:
        return []
    words, log_probs, attention = (array.numpy() for array in beam.call_for_any_size(
        _compiled_greedy(decoder), pooled, grid, tf.constant(int(max_length))))    # (T, B), (T, B), (T, B, L)
    has_attention = attention.shape[-1] > 0
    hypotheses = []
    for b in range(words.shape[1]):
        ends = np.flatnonzero(words[:, b] == END_ID)
        finished = len(ends) > 0
        length = int(ends[0]) + 1 if finished else words.shape[0]               # tokens incl. <end>
        hypotheses.append(_hypothesis(
            words[:length - int(finished), b], float(log_probs[:length, b].astype(np.float64).sum()),
            finished, attention[:length, b] if has_attention else None, length_normalization))
    return hypotheses


def beam_search(decoder, pooled, grid, beam_width: int = 3, max_length: int = 20,
                length_normalization: float = 0.0, top_n: int | None = None,
                block_ngram: int = 0, banned_words: Sequence[int] = (),
                prefixes: Sequence[Sequence[int]] | None = None) -> list[list[Hypothesis]]:
    """Beam search of Show and Tell (Vinyals et al. 2015, section 3.1), batched over images and
    beams together in one compiled loop (`helpers.predict.beam`; see the module docstring).

    Args:
        decoder: a `helpers.model.CaptionDecoder`.
        pooled: float32 `[B, P]`; grid: float32 `[B, L, D]` encoder features of B images.
        beam_width: K, partial captions kept per image.
        max_length: maximum generated tokens per caption, <end> included: a finished caption has at
            most `max_length - 1` words, an unfinished one exactly `max_length`.
        length_normalization: alpha of the GNMT length penalty used to rank the hypotheses (0: rank
            by log-probability).
        top_n: hypotheses returned per image (default and maximum: `beam_width`). With fewer than
            `beam_width`, the search stops early where the `top_n` best are already certain.
        block_ngram: n >= 2: a hypothesis never repeats one of its n-grams (n-gram blocking,
            `helpers.predict.beam.blocked_words`); 0: no blocking.
        banned_words: word ids never generated, besides <pad>, <start> and <unk> (the concept
            decoder's words that state a sex: `helpers.text.languages.gendered_words`).
        prefixes: per image, word ids its captions begin with (may be empty), or None: at each
            of the prefix's steps only its word is allowed, and its log-probability under the
            decoder counts in the hypothesis' (`helpers.predict.beam.forced_words`).

    Returns:
        For each image, its hypotheses sorted by `score`, best first (`top_n` of them; fewer only
        if the vocabulary offers fewer than `beam_width` finite continuations).

    Raises:
        ValueError: bad shapes, `beam_width` or `max_length` < 1, `top_n` outside [1, beam_width],
            `block_ngram` 1 or negative.
    """
    check_lengths(max_length, beam_width)
    _check_block(block_ngram)
    top_n = beam_width if top_n is None else int(top_n)
    if not 1 <= top_n <= beam_width:
        raise ValueError(f"top_n must be between 1 and beam_width={beam_width}, got {top_n}")
    pooled, grid = _check_features(pooled, grid)
    if pooled.shape[0] == 0:
        return []
    arguments = [pooled, grid, tf.constant(int(max_length)), tf.constant(top_n),
                 tf.constant(float(length_normalization))]
    if prefixes is not None:
        if len(prefixes) != pooled.shape[0]:
            raise ValueError(f"{len(prefixes)} prefixes for {pooled.shape[0]} images")
        forced = np.full((len(prefixes), max(1, max(map(len, prefixes)))), -1, np.int32)
        for row, words in enumerate(prefixes):
            forced[row, :len(words)] = words
        arguments.append(forced)
    history, alive = beam.call_for_any_size(
        beam.compiled_search(decoder, int(beam_width), int(block_ngram), tuple(banned_words), prefixes is not None),
        *arguments)
    parents, words, ends, values, attention = (array.numpy() for array in history)  # (T, B, K), (T, B, K, L)
    alive = alive.numpy()                                                        # (B, K)
    steps, batch = words.shape[0], words.shape[1]

    # Every returned hypothesis: the finished ones (step, image, slot) in step order, then those
    # still alive after the last step; their words and attention are traced back through `parents`.
    finished_t, finished_b, finished_k = np.nonzero(ends)
    alive_b, alive_k = np.nonzero(np.isfinite(alive))
    entry_t = np.concatenate([finished_t, np.full(len(alive_b), steps - 1)])
    entry_b = np.concatenate([finished_b, alive_b])
    slot = np.concatenate([finished_k, alive_k])
    entry_log_probs = np.concatenate([values[finished_t, finished_b, finished_k], alive[alive_b, alive_k]])
    count = len(entry_t)
    paths = np.zeros((count, steps), np.int32)
    path_attention = np.zeros((count, steps, attention.shape[-1]), np.float32)
    for t in range(steps - 1, -1, -1):
        on = np.flatnonzero(entry_t >= t)
        paths[on, t] = words[t, entry_b[on], slot[on]]
        path_attention[on, t] = attention[t, entry_b[on], slot[on]]
        slot[on] = parents[t, entry_b[on], slot[on]]

    has_attention = attention.shape[-1] > 0
    results: list[list[Hypothesis]] = [[] for _ in range(batch)]
    for e in range(count):
        finished = e < len(finished_t)
        length = int(entry_t[e]) + 1                                              # tokens incl. <end>
        results[entry_b[e]].append(_hypothesis(
            paths[e, :length - int(finished)], entry_log_probs[e], finished,
            path_attention[e, :length] if has_attention else None, length_normalization))
    return [sorted(hypotheses, key=lambda h: -h.score)[:top_n] for hypotheses in results]


def end_unfinished(decoder, pooled, grid, hypotheses: list[list[Hypothesis]],
                   length_normalization: float = 0.0) -> list[list[Hypothesis]]:
    """Each unfinished hypothesis (cut at the maximum length: "Ein Mann in einem blauen Hemd und
    eine Frau in einer schwarzen Jacke und ein") replaced by its most probable ending: its first k
    words then <end>, k >= 1 where the mean log-probability per token of that caption (<end>
    included, `Hypothesis.word_log_probability`) is highest. One teacher-forced pass of the
    decoder (`decoder.call`) over all of them gives every prefix's log-probability and that of
    <end> after it.

    A decoder whose captions run on, as those trained on Multi30K's long descriptions do, can keep
    a beam of continuations until the maximum length with no <end> ever making the beam: on
    Multi30K val, every candidate of 186 of the 1,014 photos in German, 93 in French, none in
    English. The plain log-probability would end nearly all of them after one or two words ("Ein
    Mann"), hence the mean.

    Args:
        decoder, pooled, grid: as `beam_search` (B images).
        hypotheses: per image (B lists), its hypotheses as `beam_search` returns them.
        length_normalization: alpha of the length penalty of the new hypotheses' `score`.

    Returns:
        The same lists with every hypothesis finished, each sorted by `score`, best first.
    """
    rows = [(b, i) for b, image in enumerate(hypotheses) for i, h in enumerate(image) if not h.finished]
    if not rows:
        return hypotheses
    pooled, grid = _check_features(pooled, grid)
    images = np.array([b for b, _ in rows])
    words = [hypotheses[b][i].tokens for b, i in rows]
    has_attention = hypotheses[rows[0][0]][rows[0][1]].attention is not None
    word_log_probs, end_log_probs, alpha = _teacher_forced(decoder, tf.gather(pooled, images), tf.gather(grid, images),
                                                           words, has_attention)
    prefix = np.concatenate([np.zeros((len(rows), 1)), np.cumsum(word_log_probs.astype(np.float64), axis=1)], axis=1)
    ended = prefix + end_log_probs                                  # (R, T+1): k words, then <end>
    alpha = alpha if has_attention else None
    result = [list(image) for image in hypotheses]
    for r, (b, i) in enumerate(rows):
        n = len(words[r])
        best = int(np.argmax(ended[r, 1:n + 1] / np.arange(2, n + 2))) + 1     # k words and <end>
        result[b][i] = _hypothesis(words[r][:best], ended[r, best], True,
                                   None if alpha is None else alpha[r, :best + 1], length_normalization)
    return [sorted(image, key=lambda h: -h.score) for image in result]


def end_stuck(decoder, pooled, grid, hypotheses: list[list[Hypothesis]],
              length_normalization: float = 0.0) -> list[list[Hypothesis]]:
    """Beam search's hypotheses as a caption's reader wants them: an image none of whose
    hypotheses finished (the decoder ran on to the maximum length) gets them ended where their
    ending is most probable (`end_unfinished`); elsewhere a hypothesis cut at the maximum length
    ("a man riding a wave on top of a surfboard in the") moves after the finished ones, each
    group in its order. Arguments and result as `end_unfinished`."""
    stuck = [b for b, image in enumerate(hypotheses) if image and not any(h.finished for h in image)]
    result = [sorted(image, key=lambda h: not h.finished) for image in hypotheses]    # stable
    if stuck:
        pooled, grid = _check_features(pooled, grid)
        ended = end_unfinished(decoder, tf.gather(pooled, stuck), tf.gather(grid, stuck),
                               [hypotheses[b] for b in stuck], length_normalization)
        for b, image in zip(stuck, ended):
            result[b] = image
    return result


def score_captions(decoder, pooled, grid, captions: list, finished: list[bool], with_attention: bool,
                   length_normalization: float = 0.0) -> list[Hypothesis]:
    """Captions the decoder did not search itself (a repaired one) as `Hypothesis`es with their
    log-probability under the decoder (<end> included where `finished`) and attention, from one
    teacher-forced pass (`decoder.call`).

    Args:
        decoder: a caption decoder; pooled: float32 `[R, P]`, grid: float32 `[R, L, D]`, row r
            the input of `captions[r]`.
        captions: R word-id sequences without <start> and <end>, each at least one word.
        finished: per caption, whether it ends with <end>.
        with_attention: the decoder attends (its hypotheses carry attention), as the
            `Hypothesis.attention` of its searched captions says.
        length_normalization: alpha of the hypotheses' `score`.

    Raises:
        ValueError: inputs of different lengths, or an empty caption.
    """
    if not len(captions) == len(finished) == int(np.shape(grid)[0]):
        raise ValueError(f"{len(captions)} captions, {len(finished)} finished flags and {np.shape(grid)[0]} inputs")
    if not captions:
        return []
    if min(len(c) for c in captions) < 1:
        raise ValueError("a caption to score has no word")
    pooled, grid = _check_features(pooled, grid)
    word_log_probs, end_log_probs, alpha = _teacher_forced(decoder, pooled, grid, captions, with_attention)
    hypotheses = []
    for r, (caption, ends) in enumerate(zip(captions, finished)):
        n = len(caption)
        log_probability = float(np.sum(word_log_probs[r, :n], dtype=np.float64))
        if ends:
            log_probability += float(end_log_probs[r, n])
        attention = alpha[r, :n + int(ends)] if with_attention else None
        hypotheses.append(_hypothesis(caption, log_probability, ends, attention, length_normalization))
    return hypotheses


def greedy_token_ids(decoder, pooled, grid, max_length: int = 24) -> np.ndarray:
    """`greedy_decode` as one padded array, for quick looks during training.

    Returns:
        int32 `[B, max_length]` token ids after <start>, <end> included, <pad> after it.
    """
    hypotheses = greedy_decode(decoder, pooled, grid, max_length=max_length)
    output = np.full((len(hypotheses), max_length), PAD_ID, np.int32)
    for row, hypothesis in zip(output, hypotheses):
        tokens = list(hypothesis.tokens) + ([END_ID] if hypothesis.finished else [])
        row[:len(tokens)] = tokens
    return output


def reference_beam_search(decoder, pooled, grid, beam_width: int = 3, max_length: int = 20,
                          length_normalization: float = 0.0, block_ngram: int = 0) -> list[list[Hypothesis]]:
    """Beam search, one image and one step at a time: the algorithm `beam_search` compiles (Show
    and Tell, Vinyals et al. 2015, section 3.1, with finished hypotheses leaving the beam).

    For each image: start from the empty caption with log-probability 0. At every step, extend
    each live partial caption by every word (`NEVER_GENERATED` excluded: <pad>, <start>, <unk>),
    (with `block_ngram` = n, also the words that would repeat one of the caption's n-grams), and
    keep the `beam_width - len(finished)` best extensions over all (caption, word) pairs; an
    extension that is <end> is finished and takes its slot out of the beam. Stop when the beam is empty or
    after `max_length` steps (the live captions are then returned unfinished). Rank by
    `score = log P / lp(length)` (GNMT length penalty, `length_penalty`).

    Slow (eager decoder calls, Python bookkeeping): for reading, tests and benchmarks.

    Args:
        decoder: a `helpers.model.CaptionDecoder`.
        pooled: float32 `[B, P]`; grid: float32 `[B, L, D]`.
        beam_width, max_length, length_normalization, block_ngram: as `beam_search`.

    Returns:
        For each image, all its hypotheses (attention not kept), sorted by `score`, best first.
    """
    check_lengths(max_length, beam_width)
    _check_block(block_ngram)
    pooled, grid = _check_features(pooled, grid)
    results = []
    for index in range(pooled.shape[0]):
        context = decoder.prepare(pooled[index:index + 1], grid[index:index + 1])   # image index
        beams = [([], 0.0, decoder.initial_state(context))]   # (words, log P, state [1, H] parts)
        finished = []
        for _ in range(int(max_length)):
            tokens = tf.constant([words[-1] if words else START_ID for words, _, _ in beams], tf.int32)
            state = [tf.concat([beam[2][j] for beam in beams], axis=0) for j in range(len(beams[0][2]))]
            rows = tf.range(len(beams), dtype=tf.int32)     # hypothesis r of image 0: r // width = 0
            logits, new_state, _ = decoder.step(tokens, state, context, rows, len(beams))
            log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32)).numpy()   # (beams, V)
            log_probs[:, list(NEVER_GENERATED)] = -np.inf
            n = int(block_ngram)
            for row, (words, _, _) in enumerate(beams if n else []):
                # an earlier n-gram whose first n - 1 words are the last n - 1: its last word
                for i in range(len(words) - n + 1):
                    if words[i:i + n - 1] == words[len(words) - n + 1:]:
                        log_probs[row, words[i + n - 1]] = -np.inf
            totals = (np.array([log_p for _, log_p, _ in beams])[:, None] + log_probs).ravel()
            best = np.argsort(-totals, kind="stable")[:beam_width - len(finished)]
            extended = []
            for flat in best:
                if not np.isfinite(totals[flat]):
                    continue
                beam, word = divmod(int(flat), log_probs.shape[1])
                words = beams[beam][0]
                if word == END_ID:
                    finished.append(_hypothesis(words, totals[flat], True, None, length_normalization))
                else:
                    extended.append((words + [word], float(totals[flat]),
                                     [part[beam:beam + 1] for part in new_state]))
            beams = extended
            if not beams:
                break
        finished += [_hypothesis(words, log_p, False, None, length_normalization) for words, log_p, _ in beams]
        results.append(sorted(finished, key=lambda h: -h.score))
    return results
