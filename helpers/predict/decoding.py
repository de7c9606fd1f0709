"""Greedy decoding and batched beam search over any caption decoder, and the reference algorithm.

Every decoder of `helpers.model` is driven through its public protocol (`CaptionDecoder`:
`prepare`, `initial_state`, `step`); nothing here touches a decoder's private members, so a new
decoder needs no change in this module.

`reference_beam_search` is the algorithm in its simplest form, one image and one step at a time
in plain Python: read it first. `beam_search` computes exactly the same thing for a batch in one
compiled loop (a test checks both agree).

Beam search (`beam_search`) follows the classic formulation (e.g. sgrvinod's "Show, Attend and
Tell" tutorial, OpenNMT): every image keeps `beam_width` partial captions; at each step the
`beam_width` best extensions over all (partial caption, next word) pairs are kept; an extension
ending with the <end> token id is *finished* and takes its slot out of the beam, so the beam
narrows until every slot has finished or the maximum length is reached (the partial captions then
alive are returned as unfinished, so the result is never empty). Its batched form decodes every
image and every beam together, and the whole search is one compiled `tf.while_loop`: at each
step the live (image, beam) hypotheses are gathered into rows, the decoder steps once over all of
them, each row proposes its `beam_width` best words, and a top-k over beam x word per image picks
the new beam; no Python runs between steps. Finished and pruned hypotheses free their rows, so the
batch shrinks as captions end. Words are traced back through the parent pointers once at the end
(as `tf.contrib.seq2seq.gather_tree` did). For the attention decoder the projection of the grid
is computed once per image, and attention runs over `[B, beam_width]` against each image's cells
without copying them per hypothesis. With `beam_width=1` it is exactly greedy decoding.

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

import numpy as np
import tensorflow as tf

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
# Compiled decoding loops (one per decoder object and beam width, cached)
# --------------------------------------------------------------------------------------------

_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


_TOP_WORDS_CHUNK = 128   # words per chunk of `_top_words`' two-stage top-k


def _top_words(logits, count: int):
    """The `count` most probable words of each row, <pad> and <start> excluded (never generated).

    Equivalent to `top_k(log_softmax(logits) with -inf at <pad>, <start>)` but without
    materialising the masked `[R, V]` log-probabilities: top-(count + 2) of the raw logits, drop
    the banned ids, subtract log-sum-exp.

    A full `top_k` over `[R, V]` costs about as much as eight passes over the logits; for large
    vocabularies it is done in two stages instead, exactly: the words are cut into contiguous
    chunks of `_TOP_WORDS_CHUNK`, and the m best words of a row all lie in the m chunks with the
    largest maxima (a word outside them is beaten by those m maxima), so one `reduce_max` pass
    picks the chunks and `top_k` runs over m chunks only. The chunks are taken in word order, so
    ties go to the lowest word id as with a plain `top_k`. The chunk maxima also give the row
    maximum that log-sum-exp needs.

    Args:
        logits: float `[R, V]`.
        count: k, a Python int.

    Returns:
        `(log_probabilities float32 [R, k'], words int32 [R, k'])`, best first, k' = min(k, V);
        -inf where fewer than k' words are allowed.
    """
    logits = tf.cast(logits, tf.float32)
    static_size = logits.shape[-1]
    chunk = _TOP_WORDS_CHUNK
    wanted = count + 2
    if static_size is None or static_size < 4 * chunk * wanted:   # small vocabulary: one top_k
        vocabulary_size = tf.shape(logits)[-1]
        log_normaliser = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)          # (R, 1)
        values, words = tf.math.top_k(logits, k=tf.minimum(wanted, vocabulary_size))  # (R, k + 2)
    else:
        chunks = -(-static_size // chunk)
        padded = tf.pad(logits, [[0, 0], [0, chunks * chunk - static_size]], constant_values=-np.inf)
        padded = tf.reshape(padded, [-1, chunks, chunk])                               # (R, N, C)
        chunk_max = tf.reduce_max(padded, axis=-1)                                     # (R, N)
        # log-sum-exp as tf.reduce_logsumexp computes it, from the chunk maxima's maximum.
        row_max = tf.reduce_max(chunk_max, axis=-1, keepdims=True)                     # (R, 1)
        row_max = tf.where(tf.math.is_finite(row_max), row_max, tf.zeros_like(row_max))
        log_normaliser = tf.math.log(tf.reduce_sum(tf.exp(logits - row_max), axis=-1, keepdims=True)) + row_max
        best_chunks = tf.sort(tf.math.top_k(chunk_max, k=wanted).indices, axis=-1)     # (R, m) word order
        candidates = tf.reshape(tf.gather(padded, best_chunks, batch_dims=1), [-1, wanted * chunk])  # (R, m * C)
        values, positions = tf.math.top_k(candidates, k=wanted)                        # (R, m)
        words = tf.gather(best_chunks, positions // chunk, batch_dims=1) * chunk + positions % chunk
    banned = tf.equal(words, PAD_ID) | tf.equal(words, START_ID)
    values = tf.where(banned, tf.constant(-np.inf, tf.float32), values - log_normaliser)
    values, order = tf.math.top_k(values, k=tf.minimum(count, tf.shape(words)[-1]))  # (R, k')
    return values, tf.gather(words, order, batch_dims=1)


def _same_shapes(new, old):
    """`new` loop variables with the static shapes of `old` (what tf.while_loop requires; scatters
    and gathers with a dynamic batch size lose them)."""
    for new_tensor, old_tensor in zip(tf.nest.flatten(new), tf.nest.flatten(old)):
        if isinstance(new_tensor, tf.Tensor):
            new_tensor.set_shape(old_tensor.shape)
    return new


def _attention_or_empty(attention, rows):
    """A step's attention float32 `[R, L]`, or `[R, 0]` for a decoder without attention (None)."""
    if attention is None:
        return tf.zeros([tf.shape(rows)[0], 0], tf.float32)
    return tf.cast(attention, tf.float32)


def _length_penalty_tf(length, alpha):
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _compiled_search(decoder, width: int):
    """The compiled beam search of `decoder` for beam width `width` (built once, cached).

    `search(pooled [B, P], grid [B, L, D], max_length, top_n, alpha)` runs the whole search in one
    `tf.while_loop` and returns, stacked over the T steps taken, `[T, B, K]` parents (the slot
    each extension continues), words, ends (the extension is <end> and finished a hypothesis),
    values (total log-probabilities), `[T, B, K, L]` attention of each extension's last step, and
    the final `[B, K]` log-probabilities of the hypotheses still alive (-inf for none).
    """
    cached = _COMPILED.setdefault(decoder, {})
    if width in cached:
        return cached[width]
    minus_infinity = tf.constant(-np.inf, tf.float32)

    @tf.function(reduce_retracing=True)
    def search(pooled, grid, max_length, top_n, alpha):
        batch = tf.shape(pooled)[0]
        slots = batch * width
        context = decoder.prepare(pooled, grid)                                   # per image
        state = [tf.repeat(part, width, axis=0) for part in decoder.initial_state(context)]  # (B * K, H)
        # One live slot per image at the start (the empty caption), K - 1 empty ones.
        log_probs = tf.concat([tf.zeros([batch, 1]), tf.fill([batch, width - 1], minus_infinity)], axis=1)
        tokens = tf.fill([batch, width], START_ID)                                # (B, K)
        open_slots = tf.fill([batch], width)      # per image: K minus its finished hypotheses
        finished_scores = tf.fill([batch, width], minus_infinity)   # best first, per image
        # Largest length penalty a hypothesis can still get: bounds the score of its extensions.
        max_penalty = tf.maximum(_length_penalty_tf(max_length, alpha), _length_penalty_tf(1, alpha))
        first_slots = tf.range(batch)[:, None] * width                            # (B, 1)
        arrays = [tf.TensorArray(dtype, size=0, dynamic_size=True)
                  for dtype in (tf.int32, tf.int32, tf.bool, tf.float32, tf.float32)]

        def running(t, log_probs, *_):
            return (t < max_length) & tf.reduce_any(tf.math.is_finite(log_probs))

        def step(t, log_probs, tokens, state, open_slots, finished_scores, arrays):
            state_before, open_before, finished_before = state, open_slots, finished_scores
            slot_log_probs = tf.reshape(log_probs, [-1])                          # (B * K,)
            rows = tf.cast(tf.where(tf.math.is_finite(slot_log_probs))[:, 0], tf.int32)  # (R,)
            row_state = [tf.gather(part, rows) for part in state]
            logits, row_state, attention = decoder.step(
                tf.gather(tf.reshape(tokens, [-1]), rows), row_state, context, rows, width)
            attention = _attention_or_empty(attention, rows)
            # The K best extensions of an image are among the K best words of each of its rows.
            word_log_probs, words = _top_words(logits, width)                     # (R, C)
            candidates = tf.shape(words)[1]
            total = tf.gather(slot_log_probs, rows)[:, None] + word_log_probs      # (R, C)
            scattered = tf.tensor_scatter_nd_update(
                tf.fill([slots, candidates], minus_infinity), rows[:, None], total)
            scattered_words = tf.scatter_nd(rows[:, None], words, [slots, candidates])
            values, chosen = tf.math.top_k(tf.reshape(scattered, [batch, -1]), k=width)  # (B, K)
            parents = chosen // candidates
            words = tf.gather(tf.reshape(scattered_words, [batch, -1]), chosen, batch_dims=1)
            # The first `open_slots` extensions of an image are its new beam; <end> finishes one.
            valid = (tf.range(width)[None, :] < open_slots[:, None]) & tf.math.is_finite(values)
            ends = valid & tf.equal(words, END_ID)
            open_slots -= tf.reduce_sum(tf.cast(ends, tf.int32), axis=1)
            scores = tf.where(ends, values / _length_penalty_tf(t + 1, alpha), minus_infinity)
            finished_scores = tf.math.top_k(tf.concat([finished_scores, scores], axis=1), k=width).values
            # Exact pruning: once `top_n` hypotheses finished, one whose best reachable score is
            # below the top_n-th finished score can no longer be returned (log P only decreases).
            threshold = tf.gather(finished_scores, top_n - 1, axis=1)[:, None]    # (B, 1)
            keep = valid & ~ends & (values / max_penalty >= threshold)
            parent_slots = tf.reshape(first_slots + parents, [-1])                # (B * K,)
            state = [tf.gather(tf.tensor_scatter_nd_update(part, rows[:, None], new), parent_slots)
                     for part, new in zip(state, row_state)]
            if attention.shape[1] == 0:          # a decoder without attention (scatter refuses empty)
                attention = tf.zeros([batch, width, 0])
            else:
                attention = tf.scatter_nd(rows[:, None], attention, [slots, tf.shape(attention)[1]])
                attention = tf.reshape(tf.gather(attention, parent_slots), [batch, width, -1])
            arrays = [array.write(t, value) for array, value in
                      zip(arrays, (parents, words, ends, values, attention))]
            return (t + 1, *_same_shapes((tf.where(keep, values, minus_infinity), words, state, open_slots,
                                          finished_scores), (log_probs, tokens, state_before, open_before,
                                                             finished_before)), arrays)

        loop = tf.while_loop(running, step, (tf.constant(0), log_probs, tokens, state, open_slots,
                                           finished_scores, arrays))
        return [array.stack() for array in loop[-1]] + [loop[1]]

    cached[width] = search
    return search


def _compiled_greedy(decoder):
    """The compiled greedy decoding of `decoder` (built once, cached).

    `greedy(pooled [B, P], grid [B, L, D], max_length)` returns, stacked over the T steps taken,
    `[T, B]` words (<pad> for images already finished), their log-probabilities (0 there) and
    `[T, B, L]` attention. Images leave the batch when they emit <end>.
    """
    cached = _COMPILED.setdefault(decoder, {})
    if "greedy" in cached:
        return cached["greedy"]

    @tf.function(reduce_retracing=True)
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
            attention = _attention_or_empty(attention, rows)
            word_log_probs, words = _top_words(logits, 1)                         # (R, 1)
            words = tf.scatter_nd(rows[:, None], words[:, 0], [batch])            # (B,) <pad> = 0 elsewhere
            state = [tf.tensor_scatter_nd_update(part, rows[:, None], new) for part, new in zip(state, row_state)]
            attention = (tf.zeros([batch, 0]) if attention.shape[1] == 0 else
                         tf.scatter_nd(rows[:, None], attention, [batch, tf.shape(attention)[1]]))
            outputs = (words, tf.scatter_nd(rows[:, None], word_log_probs[:, 0], [batch]), attention)
            arrays = [array.write(t, value) for array, value in zip(arrays, outputs)]
            return (t + 1, *_same_shapes((decoding & tf.not_equal(words, END_ID), words, state),
                                         (decoding, tokens, state_before)), arrays)

        loop = tf.while_loop(going, step, (tf.constant(0), tf.ones([batch], tf.bool),
                                           tf.fill([batch], START_ID), state, arrays))
        return [array.stack() for array in loop[-1]]

    cached["greedy"] = greedy
    return greedy


def _check_features(pooled, grid):
    pooled = tf.convert_to_tensor(pooled, tf.float32)
    grid = tf.convert_to_tensor(grid, tf.float32)
    if pooled.shape.rank != 2 or grid.shape.rank != 3 or pooled.shape[0] != grid.shape[0]:
        raise ValueError(f"expected pooled [batch, D] and grid [batch, L, D] with the same batch, "
                         f"got {pooled.shape} and {grid.shape}")
    return pooled, grid


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
    words, log_probs, attention = (array.numpy() for array in _compiled_greedy(decoder)(
        pooled, grid, tf.constant(int(max_length))))                            # (T, B), (T, B), (T, B, L)
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
                length_normalization: float = 0.0, top_n: int | None = None) -> list[list[Hypothesis]]:
    """Batched beam search over images and beams together (see the module docstring).

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

    Returns:
        For each image, its hypotheses sorted by `score`, best first (`top_n` of them; fewer only
        if the vocabulary offers fewer than `beam_width` finite continuations).

    Raises:
        ValueError: bad shapes, `beam_width` or `max_length` < 1, `top_n` outside [1, beam_width].
    """
    check_lengths(max_length, beam_width)
    top_n = beam_width if top_n is None else int(top_n)
    if not 1 <= top_n <= beam_width:
        raise ValueError(f"top_n must be between 1 and beam_width={beam_width}, got {top_n}")
    pooled, grid = _check_features(pooled, grid)
    if pooled.shape[0] == 0:
        return []
    search = _compiled_search(decoder, int(beam_width))
    parents, words, ends, values, attention, alive = (x.numpy() for x in search(
        pooled, grid, tf.constant(int(max_length)), tf.constant(top_n), tf.constant(float(length_normalization))))
    steps, batch = words.shape[0], words.shape[1]                                # parents etc. (T, B, K)

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
                          length_normalization: float = 0.0) -> list[list[Hypothesis]]:
    """Beam search, one image and one step at a time: the algorithm `beam_search` compiles.

    For each image: start from the empty caption with log-probability 0. At every step, extend
    each live partial caption by every word (<pad> and <start> excluded), and keep the
    `beam_width - len(finished)` best extensions over all (caption, word) pairs; an extension
    that is <end> is finished and takes its slot out of the beam. Stop when the beam is empty or
    after `max_length` steps (the live captions are then returned unfinished). Rank by
    `score = log P / lp(length)` (GNMT length penalty, `length_penalty`).

    Slow (eager decoder calls, Python bookkeeping): for reading, tests and benchmarks.

    Args:
        decoder: a `helpers.model.CaptionDecoder`.
        pooled: float32 `[B, P]`; grid: float32 `[B, L, D]`.
        beam_width, max_length, length_normalization: as `beam_search`.

    Returns:
        For each image, all its hypotheses (attention not kept), sorted by `score`, best first.
    """
    check_lengths(max_length, beam_width)
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
            log_probs[:, [PAD_ID, START_ID]] = -np.inf
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
