"""Caption and tag photos with a trained bundle: greedy decoding, batched beam search, tags.

    photos (paths or uint8 arrays)
        -> helpers.images (decoded in a thread pool while the model works on the previous batch)
        -> encoder: pooled [B, D], grid [B, L, D]    -> tagger: synset probabilities [B, S]
        -> beam search over the decoder's `step`      -> captions with log-probabilities
    = one `Prediction` per photo (a photo that cannot be read gets `error` and the rest go on).

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

Command line: `python -m helpers caption --run runs/<name> IMAGE...` and
`python -m helpers evaluate --run runs/<name> --split val`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from helpers.keywords import select_keywords
from helpers.prediction import Prediction, format_caption
from helpers.vocab import END_ID, PAD_ID, START_ID

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


def _top_words(logits, count: int):
    """The `count` most probable words of each row, <pad> and <start> excluded (never generated).

    Equivalent to `top_k(log_softmax(logits) with -inf at <pad>, <start>)` but without
    materialising the masked `[R, V]` log-probabilities: top-(count + 2) of the raw logits, drop
    the banned ids, subtract log-sum-exp.

    Args:
        logits: float `[R, V]`.
        count: k, a Python int.

    Returns:
        `(log_probabilities float32 [R, k'], words int32 [R, k'])`, best first, k' = min(k, V);
        -inf where fewer than k' words are allowed.
    """
    logits = tf.cast(logits, tf.float32)
    vocabulary_size = tf.shape(logits)[-1]
    log_normaliser = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)          # (R, 1)
    values, words = tf.math.top_k(logits, k=tf.minimum(count + 2, vocabulary_size))  # (R, k + 2)
    banned = tf.equal(words, PAD_ID) | tf.equal(words, START_ID)
    values = tf.where(banned, tf.constant(-np.inf, tf.float32), values - log_normaliser)
    values, order = tf.math.top_k(values, k=tf.minimum(count, vocabulary_size))    # (R, k')
    return values, tf.gather(words, order, batch_dims=1)


def _decoder_parts(decoder):
    """`(prepare, slot_step)`: how the decoding loops drive `decoder`.

    `prepare(pooled, grid) -> (initial state [B, H] parts, per-image tensors)` runs once per
    batch. `slot_step(tokens, state, slot_state, prepared, rows, width)` runs one step for the R
    live hypotheses: `tokens` int32 `[R]`, `state` their `[R, H]` parts, `slot_state` the state of
    every slot `[B * width, H]`, `rows` int32 `[R]` their slot numbers (image * width + beam);
    it returns `(logits [R, V], new state [R, H] parts, attention [R, L] or [R, 0])`.

    - `helpers.model.AttentionDecoder`: the grid with its position embedding and its projection
      W_a a_i are computed once per image (its public `step` recomputes them: about L * D * A
      multiply-adds per hypothesis and step, more than the LSTM itself for a 7 x 7 x 1280 grid),
      and attention runs over the `[B, width]` slots against each image's cells, which are never
      copied per hypothesis; only the LSTM and the output layer run on the live rows.
    - `helpers.model.ShowAndTellDecoder`: its step needs no image features.
    - any other decoder: its public `step(tokens, state, pooled, grid)` on the rows' images.
    """
    from helpers import model as model_module

    if isinstance(decoder, model_module.AttentionDecoder):
        def prepare(pooled, grid):
            features = decoder._features(grid)                                    # (B, L, D)
            return list(decoder.initial_state(pooled, grid)), (features, decoder.feature_projection(features))

        def slot_step(tokens, state, slot_state, prepared, rows, width):
            features, projected = prepared
            hidden = tf.reshape(slot_state[0], [-1, width, decoder.hidden_dim])   # (B, K, H)
            context, alpha = decoder.attend(features, projected, hidden)          # (B, K, D), (B, K, L)
            context = tf.gather(tf.reshape(context, [-1, tf.shape(context)[-1]]), rows)  # (R, D)
            alpha = tf.gather(tf.reshape(alpha, [-1, tf.shape(alpha)[-1]]), rows)        # (R, L)
            logits, state = decoder.advance(decoder._embed(tokens), state, context)
            return logits, state, alpha
        return prepare, slot_step

    if isinstance(decoder, model_module.ShowAndTellDecoder):
        def prepare_lstm(pooled, grid):
            return list(decoder.initial_state(pooled, grid)), ()

        def slot_step_lstm(tokens, state, slot_state, prepared, rows, width):
            logits, state, _ = decoder.step(tokens, state)
            return logits, state, tf.zeros([tf.shape(tokens)[0], 0], tf.float32)
        return prepare_lstm, slot_step_lstm

    def prepare_plain(pooled, grid):
        return list(decoder.initial_state(pooled, grid)), (pooled, grid)

    def slot_step_plain(tokens, state, slot_state, prepared, rows, width):
        images = rows // width
        logits, state, attention = decoder.step(tokens, state, *[tf.gather(part, images) for part in prepared])
        if attention is None:
            attention = tf.zeros([tf.shape(tokens)[0], 0], tf.float32)
        return logits, state, tf.cast(attention, tf.float32)
    return prepare_plain, slot_step_plain


def _same_shapes(new, old):
    """`new` loop variables with the static shapes of `old` (what tf.while_loop requires; scatters
    and gathers with a dynamic batch size lose them)."""
    for new_tensor, old_tensor in zip(tf.nest.flatten(new), tf.nest.flatten(old)):
        if isinstance(new_tensor, tf.Tensor):
            new_tensor.set_shape(old_tensor.shape)
    return new


def _length_penalty_tf(length, alpha):
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _compiled_search(decoder, width: int):
    """The compiled beam search of `decoder` for beam width `width` (built once, cached).

    `search(pooled [B, D], grid [B, L, D], max_length, top_n, alpha)` runs the whole search in one
    `tf.while_loop` and returns, stacked over the T steps taken, `[T, B, K]` parents (the slot
    each extension continues), words, ends (the extension is <end> and finished a hypothesis),
    values (total log-probabilities), `[T, B, K, L]` attention of each extension's last step, and
    the final `[B, K]` log-probabilities of the hypotheses still alive (-inf for none).
    """
    cached = _COMPILED.setdefault(decoder, {})
    if width in cached:
        return cached[width]
    prepare, slot_step = _decoder_parts(decoder)
    minus_infinity = tf.constant(-np.inf, tf.float32)

    @tf.function(reduce_retracing=True)
    def search(pooled, grid, max_length, top_n, alpha):
        batch = tf.shape(pooled)[0]
        slots = batch * width
        initial_state, prepared = prepare(pooled, grid)
        state = [tf.repeat(part, width, axis=0) for part in initial_state]       # (B * K, H)
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
            logits, row_state, attention = slot_step(
                tf.gather(tf.reshape(tokens, [-1]), rows), row_state, state, prepared, rows, width)
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

    `greedy(pooled [B, D], grid [B, L, D], max_length)` returns, stacked over the T steps taken,
    `[T, B]` words (<pad> for images already finished), their log-probabilities (0 there) and
    `[T, B, L]` attention. Images leave the batch when they emit <end>.
    """
    cached = _COMPILED.setdefault(decoder, {})
    if "greedy" in cached:
        return cached["greedy"]
    prepare, slot_step = _decoder_parts(decoder)

    @tf.function(reduce_retracing=True)
    def greedy(pooled, grid, max_length):
        batch = tf.shape(pooled)[0]
        state, prepared = prepare(pooled, grid)                                   # (B, H)
        arrays = [tf.TensorArray(dtype, size=0, dynamic_size=True) for dtype in (tf.int32, tf.float32, tf.float32)]

        def going(t, decoding, *_):
            return (t < max_length) & tf.reduce_any(decoding)

        def step(t, decoding, tokens, state, arrays):
            state_before = state
            rows = tf.cast(tf.where(decoding)[:, 0], tf.int32)                    # (R,)
            logits, row_state, attention = slot_step(
                tf.gather(tokens, rows), [tf.gather(part, rows) for part in state], state, prepared, rows, 1)
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


def _check_lengths(max_length: int, beam_width: int = 1) -> None:
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
        decoder: a `helpers.model` decoder (`initial_state(pooled, grid)`, `step(tokens, state,
            pooled, grid) -> (logits [B, V], state, attention [B, L] | None)`).
        pooled: float32 `[B, D]` pooled encoder features; grid: float32 `[B, L, D]` grid features.
        max_length: maximum generated tokens per caption, <end> included.
        length_normalization: alpha of the GNMT length penalty, only used for `score`.

    Returns:
        One `Hypothesis` per image (unfinished when <end> never came within `max_length`).

    Raises:
        ValueError: bad shapes or `max_length` < 1.
    """
    _check_lengths(max_length)
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
        decoder: a `helpers.model` decoder (see `greedy_decode`).
        pooled: float32 `[B, D]`; grid: float32 `[B, L, D]` encoder features of B images.
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
    _check_lengths(max_length, beam_width)
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


# --------------------------------------------------------------------------------------------
# Predictions for photos
# --------------------------------------------------------------------------------------------


def select_tags(synset_probabilities, nb_keywords: int | None = 5, min_proba: float = 0.0,
                lang: str = "eng") -> list[tuple[str, str, float]]:
    """Most probable synsets with a keyword in `lang`: `[(synset, keyword, probability)]`.

    Same rule as the album tagger (`helpers.keywords.select_keywords`): synsets by decreasing
    probability while >= `min_proba`, a synset without a lemma in `lang` passed over, duplicate
    keywords counted once, at most `nb_keywords` (None: no limit; 0: none).
    """
    if nb_keywords == 0:
        return []
    limit = len(synset_probabilities) if nb_keywords is None else int(nb_keywords)
    return select_keywords(synset_probabilities, limit, min_proba, lang)


def _pixels_of_array(array, size: int) -> np.ndarray:
    """An in-memory image as uint8 `[size, size, 3]` (same resize policy as helpers.images)."""
    from PIL import Image

    from helpers.images import RESAMPLE

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"in-memory images must be uint8 arrays, got {array.dtype}")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4)):
        image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), RESAMPLE)
        return np.asarray(image, dtype=np.uint8)
    raise ValueError(f"in-memory images must be [height, width] or [height, width, 1|3|4], got {array.shape}")


def resolve_bundle_dir(path) -> Path:
    """A run folder (with `bundle/`) or a bundle folder -> the bundle folder."""
    path = Path(path)
    if (path / "bundle").is_dir():
        return path / "bundle"
    if (path / "bundle.json").is_file():
        return path
    raise FileNotFoundError(f"{path} is neither a run folder with bundle/ nor a bundle folder "
                            f"(bundle.json); train one with `python -m helpers train`")


class Captioner:
    """A trained bundle ready to caption and tag photos.

    Vocabularies and settings come from the bundle only (`helpers.model.load_bundle`).

    Args:
        bundle: a `helpers.model.Bundle`.
        max_length: maximum generated tokens per caption, <end> included
            (default: the run's `max_caption_length - 1`, i.e. without <start>).
        length_normalization: alpha of the GNMT length penalty used to rank captions.
        workers: photo-decoding threads (default `helpers.images.default_workers()`).
    """

    def __init__(self, bundle, max_length: int | None = None, length_normalization: float = 0.0,
                 workers: int | None = None):
        self.bundle = bundle
        self.vocabulary = bundle.vocabulary
        self.synset_names = list(bundle.synset_vocabulary.names)
        self.max_length = int(max_length or max(1, bundle.config.max_caption_length - 1))
        self.length_normalization = float(length_normalization)
        self.workers = workers
        self.image_size = int(bundle.image_size)
        grid_cells = int(bundle.encoder.output["grid"].shape[1])
        side = int(round(grid_cells ** 0.5))
        self.grid_shape = (side, side) if side * side == grid_cells else (1, grid_cells)
        encoder, tagger = bundle.encoder, bundle.tagger

        @tf.function(reduce_retracing=True)
        def features(pixels):
            """uint8 [B, S, S, 3] -> pooled [B, D], grid [B, L, D], tag probabilities [B, S]."""
            outputs = encoder(tf.cast(pixels, tf.float32), training=False)
            return outputs["pooled"], outputs["grid"], tagger(outputs["pooled"], training=False)

        self._features = features

    @classmethod
    def from_bundle(cls, path, **kwargs) -> "Captioner":
        """Load `path` (a run folder with `bundle/`, or the bundle folder itself)."""
        from helpers.model import load_bundle

        return cls(load_bundle(resolve_bundle_dir(path)), **kwargs)

    @property
    def config(self):
        return self.bundle.config

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the bundle's files: two captioners with the same fingerprint give the
        same predictions (the prediction cache keys on it); "" for a bundle never saved."""
        if self.bundle.path is None:
            return ""
        digest = hashlib.sha256()
        for name in sorted(p.name for p in Path(self.bundle.path).iterdir() if p.is_file()):
            digest.update(name.encode() + b"\0" + (Path(self.bundle.path) / name).read_bytes())
        digest.update(f"max_length={self.max_length};alpha={self.length_normalization}".encode())
        return digest.hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int = 5, min_proba: float = 0.0,
                        lang: str = "eng") -> list[tuple[str, str, float]]:
        """This model's keyword rule: `helpers.keywords.select_keywords` (top-k over its synsets)."""
        return select_keywords(synset_probabilities, nb_keywords, min_proba, lang)

    # -- loading ------------------------------------------------------------------------------
    def _load_all(self, images: Sequence, batch_size: int) -> Iterator[tuple[int, np.ndarray | str]]:
        """`(index, uint8 [S, S, 3] pixels or error reason)` in input order; files are decoded by
        `helpers.images.load_images` threads up to two batches ahead of the model."""
        from helpers import images as image_io

        paths = [item for item in images if not isinstance(item, np.ndarray)]
        decoded = image_io.load_images(paths, size=self.image_size, workers=self.workers,
                                       prefetch=max(2 * batch_size, 1))
        try:
            for index, item in enumerate(images):
                if isinstance(item, np.ndarray):
                    try:
                        yield index, _pixels_of_array(item, self.image_size)
                    except ValueError as error:
                        yield index, str(error)
                    continue
                _, pixels = next(decoded)
                yield index, (pixels.reason if isinstance(pixels, image_io.ImageLoadError) else pixels)
        finally:
            decoded.close()

    # -- prediction ---------------------------------------------------------------------------
    def predict_batch(self, pixels: np.ndarray, beam_width: int = 3, top_n: int = 3,
                      captions: bool = True) -> tuple[np.ndarray, list[list[Hypothesis]]]:
        """Tag probabilities float32 `[B, S]` and beam-search hypotheses of uint8 `[B, S, S, 3]`
        pixels (empty hypothesis lists without `captions`: the encoder and tagger only)."""
        pooled, grid, probabilities = self._features(tf.convert_to_tensor(pixels))
        if not captions:
            return probabilities.numpy(), [[] for _ in range(len(pixels))]
        return probabilities.numpy(), self._captions(pooled, grid, beam_width, top_n)

    def _captions(self, pooled, grid, beam_width: int, top_n: int) -> list[list[Hypothesis]]:
        """Beam search with this captioner's decoder, maximum length and length normalisation."""
        return beam_search(self.bundle.decoder, pooled, grid, beam_width=beam_width, max_length=self.max_length,
                           length_normalization=self.length_normalization, top_n=top_n)

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 3, nb_keywords: int | None = 5,
                min_proba: float = 0.0, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = True) -> list["Prediction"]:
        """Caption and tag photos.

        Args:
            images: photo paths (str / Path) and/or uint8 arrays `[H, W, 3]`, in any mix.
            beam_width: beam search width (1: greedy).
            top_n: captions per photo (<= beam_width).
            nb_keywords: tags per photo (None: every synset passing `min_proba`; 0: no tags, the
                probabilities are still in `synset_probabilities`).
            min_proba: minimum probability of a tag, in [0, 1].
            lang: keyword language, an Open Multilingual Wordnet code ("eng", "fra", "spa", ...).
            batch_size: photos per model batch.
            progress: show a progress bar.
            captions: run the caption decoder; False skips beam search (tags only, most of the
                model's time saved) and leaves `captions` empty.

        Returns:
            One `Prediction` per input, in order; a photo that cannot be read comes back with
            `error` set (the others are not affected).

        Raises:
            ValueError: bad `beam_width`, `top_n`, `batch_size` or `min_proba`.
        """
        images = list(images)
        _check_lengths(self.max_length, beam_width)
        if not 1 <= top_n <= beam_width:
            raise ValueError(f"top_n must be between 1 and beam_width={beam_width}, got {top_n}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= min_proba <= 1.0:
            raise ValueError(f"min_proba is a probability in [0, 1], got {min_proba}")
        names = [str(item) if not isinstance(item, np.ndarray) else f"<array {i}>" for i, item in enumerate(images)]
        predictions: list[Prediction | None] = [None] * len(images)
        pending_index: list[int] = []
        pending_pixels: list[np.ndarray] = []
        # Beam search of a batch runs in a background thread while the next batch is encoded:
        # TensorFlow releases the GIL, and the encoder alone does not keep every core busy.
        captioning = ThreadPoolExecutor(1, "beam-search") if captions else None
        previous: list = []                 # the batch whose captions are being computed

        def finish(indices, probabilities, hypotheses):
            for index, row, beams in zip(indices, probabilities, hypotheses):
                synset_probabilities = dict(zip(self.synset_names, map(float, row)))
                predictions[index] = Prediction(
                    path=names[index],
                    captions=[(self.vocabulary.decode(h.tokens), h.log_probability) for h in beams],
                    synset_probabilities=synset_probabilities,
                    tags=select_tags(synset_probabilities, nb_keywords, min_proba, lang),
                    attention=beams[0].attention if beams else None,
                    hypotheses=beams, grid_shape=self.grid_shape)

        def finish_previous(bar):
            if previous:
                indices, probabilities, future = previous.pop()
                finish(indices, probabilities, future.result())
                bar.update(len(indices))

        def flush(bar):
            pooled, grid, probabilities = self._features(tf.convert_to_tensor(np.stack(pending_pixels)))
            indices, probabilities = list(pending_index), probabilities.numpy()
            pending_index.clear()
            pending_pixels.clear()
            if captioning is None:
                finish(indices, probabilities, [[] for _ in indices])
                bar.update(len(indices))
                return
            future = captioning.submit(self._captions, pooled, grid, beam_width, top_n)
            finish_previous(bar)
            previous.append((indices, probabilities, future))

        description = "captioning" if captions else "tagging"
        try:
            with tqdm(total=len(images), desc=description, unit="photo", disable=not progress) as bar:
                for index, pixels in self._load_all(images, batch_size):
                    if isinstance(pixels, str):
                        predictions[index] = Prediction(path=names[index], error=pixels)
                        bar.update(1)
                        continue
                    pending_index.append(index)
                    pending_pixels.append(pixels)
                    if len(pending_pixels) == batch_size:
                        flush(bar)
                if pending_pixels:
                    flush(bar)
                finish_previous(bar)
        finally:
            if captioning is not None:
                captioning.shutdown(wait=True, cancel_futures=True)
        return predictions  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Evaluation of a run on one of its splits
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Evaluation:
    """A run scored on one split (see `evaluate_run`).

    Attributes:
        metrics: `{"captions": {metric: score}, "captions_unavailable": {metric: reason},
            "tags": {metric: value}, "num_images", "failed", "split", "beam_width", "seconds", ...}`.
        records: the split's `helpers.coco.ImageRecord`s that were captioned (in order).
        predictions: one `Prediction` per record.
        y_true: {0, 1} `[N, S]` ground-truth synsets (as training builds them) of the readable photos.
        y_score: float32 `[N, S]` predicted synset probabilities of the same photos.
        results_path: the COCO results JSON written; metrics_path: the metrics JSON written.
    """

    metrics: dict
    records: list
    predictions: list
    y_true: np.ndarray
    y_score: np.ndarray
    results_path: Path
    metrics_path: Path

    def table(self) -> str:
        """Caption and tag metrics as one aligned text table."""
        from helpers.metrics import format_table

        rows = {**self.metrics["captions"], **{f"tags {k}": v for k, v in self.metrics["tags"].items()}}
        return format_table(rows, self.metrics.get("captions_unavailable"))

    def least_confident(self, count: int = 8) -> list[tuple[object, Prediction]]:
        """`(record, prediction)` of the `count` readable photos whose best caption is least probable
        per word (geometric mean of its token probabilities), least confident first."""
        scored = [(record, prediction) for record, prediction in zip(self.records, self.predictions)
                  if prediction.ok and prediction.hypotheses]
        scored.sort(key=lambda pair: pair[1].hypotheses[0].log_probability / max(1, pair[1].hypotheses[0].length))
        return scored[:count]


def _split_name(config, split: str) -> str:
    return {"val": config.val_split, "train": config.train_split}.get(split, split)


def evaluate_run(run_dir, split: str = "val", beam_width: int = 3, batch_size: int = 32,
                 max_images: int | None = None, threshold: float = 0.5, ks: Sequence[int] = (1, 3, 5),
                 out=None, nb_keywords: int | None = 5, lang: str = "eng", captioner: Captioner | None = None,
                 progress: bool = True) -> Evaluation:
    """Caption and tag a split of a run's dataset and score both.

    Captions: a COCO results file `run_dir/captions_<split>_results.json` scored by
    `helpers.metrics.evaluate_captions` against `<data_dir>/annotations/captions_<split>.json`.
    Tags: predicted synset probabilities against each image's synsets built exactly as training
    built its targets (`helpers.train.build_image_synsets`): mAP, micro/macro F1 at `threshold`, P@k.

    Args:
        run_dir: run folder (with `config.json` and `bundle/`) or a run name under `runs/`.
        split: "val", "train" (the run's splits) or a split name ("val2017").
        beam_width: beam search width.
        batch_size: photos per model batch.
        max_images: only the first N images of the split (default: the run's `max_val_images` for
            the val split, else all).
        threshold, ks: tag decision threshold and the k of precision@k.
        out: metrics JSON path (default `run_dir/metrics.json` for the run's validation split,
            `run_dir/metrics_<split>.json` for another split).
        nb_keywords, lang: tags kept in each `Prediction.tags` (for display; the metrics use every
            synset probability).
        captioner: reuse an already loaded `Captioner` of this run.
        progress: progress bar.

    Returns:
        An `Evaluation`.

    Raises:
        FileNotFoundError: no bundle / config in `run_dir`.
        ValueError: no photo of the split could be read.
    """
    from helpers import metrics as metrics_module
    from helpers import train
    from helpers.coco import load_coco

    started = time.perf_counter()
    run_dir = train.resolve_run_dir(run_dir)
    captioner = captioner or Captioner.from_bundle(run_dir)
    config = captioner.config
    split_name = _split_name(config, split)
    if max_images is None and split_name == config.val_split:
        max_images = config.max_val_images
    records = load_coco(config.data_dir, split_name)[:max_images]
    predictions = captioner.predict([record.path for record in records], beam_width=beam_width,
                                    top_n=1, nb_keywords=nb_keywords, lang=lang, batch_size=batch_size,
                                    progress=progress)
    readable = [(record, prediction) for record, prediction in zip(records, predictions) if prediction.ok]
    if not readable:
        raise ValueError(f"none of the {len(records)} photos of {split_name} in {config.data_dir} could be "
                         f"read (first error: {predictions[0].error if predictions else 'no images'})")

    results = [{"image_id": record.image_id, "caption": prediction.caption} for record, prediction in readable]
    results_path = run_dir / f"captions_{split_name}_results.json"
    results_path.write_text(json.dumps(results) + "\n", encoding="utf-8")
    annotations = Path(config.data_dir) / "annotations" / f"captions_{split_name}.json"
    caption_scores = metrics_module.evaluate_captions(annotations, results)

    synset_vocabulary = captioner.bundle.synset_vocabulary
    image_synsets = train.build_image_synsets(config, [record for record, _ in readable])
    y_true = np.stack([synset_vocabulary.encode(image_synsets[record.image_id]) for record, _ in readable])
    y_score = np.array([[p.synset_probabilities[name] for name in captioner.synset_names]
                        for _, p in readable], dtype=np.float32)
    y_true = (y_true > 0).astype(np.int8)
    if y_true.any():
        tag_scores = metrics_module.tagging_metrics(y_true, y_score, threshold=threshold, ks=ks)
    else:
        tag_scores = {}
    metrics = {
        "run": str(run_dir), "split": split_name, "beam_width": beam_width,
        "num_images": len(readable), "failed": {p.path: p.error for p in predictions if not p.ok},
        "captions": caption_scores.scores, "captions_unavailable": caption_scores.unavailable,
        "tags": tag_scores, "tag_threshold": threshold,
        "tag_synsets_scored": int(y_true.any(axis=0).sum()),  # synsets with a positive image (mAP's classes)
        "results_file": str(results_path),
        "seconds": round(time.perf_counter() - started, 1),
    }
    default_name = "metrics.json" if split_name == config.val_split else f"metrics_{split_name}.json"
    metrics_path = Path(out) if out else run_dir / default_name
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    print(f"evaluated {len(readable)} {split_name} photos ({len(records) - len(readable)} unreadable) in "
          f"{metrics['seconds']:.0f} s; results {results_path}, metrics {metrics_path}")
    return Evaluation(metrics, [r for r, _ in readable], [p for _, p in readable], y_true, y_score,
                      results_path, metrics_path)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _run_caption(args) -> int:
    from helpers import train

    captioner = Captioner.from_bundle(train.resolve_run_dir(args.run))
    predictions = captioner.predict(args.images, beam_width=args.beam_width, top_n=min(args.top_n, args.beam_width),
                                    nb_keywords=args.nb_keywords, min_proba=args.min_proba, lang=args.lang,
                                    batch_size=args.batch_size, progress=len(args.images) > 1)
    for prediction in predictions:
        print(prediction.format())
    failed = sum(not p.ok for p in predictions)
    return 1 if failed == len(predictions) else 0


def _run_evaluate(args) -> int:
    evaluation = evaluate_run(args.run, split=args.split, beam_width=args.beam_width,
                              batch_size=args.batch_size, max_images=args.max_images, out=args.out)
    print(evaluation.table())
    return 0


def add_cli(subparsers) -> None:
    """Register `caption` (caption and tag photos) and `evaluate` (score a run on a split)."""
    parser = subparsers.add_parser("caption", help="caption and tag photos with a trained run")
    parser.add_argument("--run", required=True, help="run name (under runs/), run folder or bundle folder")
    parser.add_argument("images", nargs="+", help="photo files")
    parser.add_argument("--beam-width", type=int, default=3, help="beam search width (3; 1 = greedy)")
    parser.add_argument("--top-n", type=int, default=3, help="captions per photo (3)")
    parser.add_argument("--nb-keywords", type=int, default=5, help="tags per photo (5)")
    parser.add_argument("--min-proba", type=float, default=0.0, help="minimum tag probability (0)")
    parser.add_argument("--lang", default="eng", help="tag language, Open Multilingual Wordnet code (eng)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per model batch (32)")
    parser.set_defaults(func=_run_caption)

    parser = subparsers.add_parser("evaluate", help="caption metrics and tag metrics of a run on a split")
    parser.add_argument("--run", required=True, help="run name (under runs/) or run folder")
    parser.add_argument("--split", default="val", help="'val', 'train' or a split name such as val2017")
    parser.add_argument("--beam-width", type=int, default=3, help="beam search width (3)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per model batch (32)")
    parser.add_argument("--max-images", type=int, default=None, help="only the first N images")
    parser.add_argument("--out", help="metrics JSON (default: <run>/metrics.json for the val split, "
                                      "else <run>/metrics_<split>.json)")
    parser.set_defaults(func=_run_evaluate)
