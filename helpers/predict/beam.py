"""The compiled batched beam search: a named loop state and the sub-steps of one search step.

`helpers.predict.decoding.beam_search` runs `compiled_search` and traces the words back;
`helpers.predict.decoding.reference_beam_search` is the same algorithm one image at a time in plain
Python: read it first. The algorithm is the beam search of Show and Tell (Vinyals et al. 2015,
section 3.1, "Inference"): keep the `beam_width` best partial captions up to step t, extend each by
every word, keep the `beam_width` best extensions; here, as in OpenNMT and sgrvinod's tutorial, an
extension ending with <end> is finished and takes its slot out of the beam.

B images of K = `beam_width` slots each are searched together in one `tf.while_loop`, whose loop
variables are a `BeamState`. One step reads as the algorithm:

1. `_expand`: gather the live hypotheses (image, slot) into rows and run the decoder one step over
   all of them (for the attention decoder, attention runs against each image's cells, projected
   once per image, without copying them per hypothesis);
2. `_select_top_k`: the K best words of each row (with n-gram blocking, not those that would
   repeat one of the hypothesis' n-grams: `blocked_words`), then the K best (hypothesis, word)
   extensions of each image: an exact two-stage top-k over K x vocabulary;
3. `_finish`: the extensions that are <end> move to the image's finished set;
4. `_prune`: when fewer captions than K are asked for (`top_n`), drop the live hypotheses that can
   no longer be among the `top_n` best (their log-probability only decreases);
5. `_follow_parents`: every new hypothesis takes the decoder state and attention of the one it
   extends; its words so far (`BeamState.sequences`) follow the same parent slots.

Finished and pruned hypotheses free their rows, so the batch of rows shrinks as captions end. No
Python runs between steps; each step's choices are written to a `BeamHistory`, and the words are
traced back through the parent pointers once at the end (as `tf.contrib.seq2seq.gather_tree` did).
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from helpers.text.vocab import END_ID, PAD_ID, START_ID, UNK_ID

# Words per chunk of `top_words`' two-stage top-k: measured on 2 cores (AMD EPYC), 1,272 rows of 4,050
# words (a beam of 8 over 159 photos), one top_k 11.0 ms, chunks of 128 (two-stage) 7.8 ms, of 32
# 7.2 ms; of 10,000 words, 13.4 ms with chunks of 128 and 12.5 ms with 32.
TOP_WORDS_CHUNK = 32
# Never generated: <pad> and <start> are not words, and a caption with <unk> is no use to anyone
# (a photo's description would read "a <unk> on a table"); the next most probable word comes instead.
NEVER_GENERATED = (PAD_ID, START_ID, UNK_ID)


def top_words(logits, count: int, blocked=None):
    """The `count` most probable words of each row, `NEVER_GENERATED` (<pad>, <start>, <unk>) excluded.

    Equivalent to `top_k(log_softmax(logits) with -inf at NEVER_GENERATED)` but without
    materialising the masked `[R, V]` log-probabilities: top-(count + 3) of the raw logits, drop
    the banned ids, subtract log-sum-exp.

    A full `top_k` over `[R, V]` costs about as much as eight passes over the logits; for large
    vocabularies it is done in two stages instead, exactly: the words are cut into contiguous
    chunks of `TOP_WORDS_CHUNK`, and the m best words of a row all lie in the m chunks with the
    largest maxima (a word outside them is beaten by those m maxima), so one `reduce_max` pass
    picks the chunks and `top_k` runs over m chunks only. The chunks are taken in word order, so
    ties go to the lowest word id as with a plain `top_k`. The chunk maxima also give the row
    maximum that log-sum-exp needs.

    Args:
        logits: float `[R, V]`.
        count: k, a Python int.
        blocked: int32 `[N, 2]` (row, word) pairs also excluded (`blocked_words`), or None. Their
            probability still counts in the normaliser: they are banned, not renormalised away.

    Returns:
        `(log_probabilities float32 [R, k'], words int32 [R, k'])`, best first, k' = min(k, V);
        -inf where fewer than k' words are allowed.
    """
    logits = tf.cast(logits, tf.float32)
    static_size = logits.shape[-1]
    chunk = TOP_WORDS_CHUNK
    wanted = count + len(NEVER_GENERATED)
    if blocked is not None:
        log_normaliser = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)          # (R, 1)
        logits = tf.tensor_scatter_nd_update(logits, blocked, tf.fill(tf.shape(blocked)[:1], _minus_infinity()))
    if static_size is None or static_size < 4 * chunk * wanted:   # small vocabulary: one top_k
        vocabulary_size = tf.shape(logits)[-1]
        if blocked is None:
            log_normaliser = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)      # (R, 1)
        values, words = tf.math.top_k(logits, k=tf.minimum(wanted, vocabulary_size))  # (R, k + 3)
    else:
        chunks = -(-static_size // chunk)
        padded = tf.pad(logits, [[0, 0], [0, chunks * chunk - static_size]], constant_values=-np.inf)
        padded = tf.reshape(padded, [-1, chunks, chunk])                               # (R, N, C)
        chunk_max = tf.reduce_max(padded, axis=-1)                                     # (R, N)
        if blocked is None:
            # log-sum-exp as tf.reduce_logsumexp computes it, from the chunk maxima's maximum.
            row_max = tf.reduce_max(chunk_max, axis=-1, keepdims=True)                 # (R, 1)
            row_max = tf.where(tf.math.is_finite(row_max), row_max, tf.zeros_like(row_max))
            log_normaliser = tf.math.log(tf.reduce_sum(tf.exp(logits - row_max), axis=-1, keepdims=True)) + row_max
        best_chunks = tf.sort(tf.math.top_k(chunk_max, k=wanted).indices, axis=-1)     # (R, m) word order
        candidates = tf.reshape(tf.gather(padded, best_chunks, batch_dims=1), [-1, wanted * chunk])  # (R, m * C)
        values, positions = tf.math.top_k(candidates, k=wanted)                        # (R, m)
        words = tf.gather(best_chunks, positions // chunk, batch_dims=1) * chunk + positions % chunk
    banned = tf.reduce_any(tf.equal(words[..., None], tf.constant(NEVER_GENERATED, tf.int32)), axis=-1)
    values = tf.where(banned, tf.constant(-np.inf, tf.float32), values - log_normaliser)
    values, order = tf.math.top_k(values, k=tf.minimum(count, tf.shape(words)[-1]))  # (R, k')
    return values, tf.gather(words, order, batch_dims=1)


def forced_words(logits, prefix, images, step):
    """The rows of images whose prefix has a word at `step` can only add that word.

    Args:
        logits: float `[R, V]`; prefix: int32 `[B, F]` (-1 after an image's words);
        images: int32 `[R]` each row's image; step: int32 scalar, words generated so far.

    Returns:
        `(logits float32 [R, V], offset float32 [R])`: in a forced row every other word's logit is
        -inf, and `offset` is the forced word's log-probability under the unmasked logits (0 in the
        other rows), which `_select_top_k` adds, since its log-softmax of the masked row gives 0.
    """
    logits = tf.cast(logits, tf.float32)
    columns = tf.shape(prefix)[1]
    word = tf.gather(tf.gather(prefix, images), tf.minimum(step, columns - 1), axis=1)      # (R,)
    word = tf.where(step < columns, word, -1)
    forced = word >= 0
    offset = tf.where(forced, tf.gather(logits, tf.maximum(word, 0), batch_dims=1)
                      - tf.reduce_logsumexp(logits, axis=-1), 0.0)
    keep = ~forced[:, None] | tf.equal(tf.range(tf.shape(logits)[1])[None, :], word[:, None])
    return tf.where(keep, logits, _minus_infinity()), offset


def same_shapes(new, old):
    """`new` loop variables with the static shapes of `old` (what tf.while_loop requires; scatters
    and gathers with a dynamic batch size lose them). Any nest: tuple, list, namedtuple."""
    for new_tensor, old_tensor in zip(tf.nest.flatten(new), tf.nest.flatten(old)):
        if isinstance(new_tensor, tf.Tensor):
            new_tensor.set_shape(old_tensor.shape)
    return new


def blocked_words(sequences, rows, step, n: int):
    """n-gram blocking (Paulus et al. 2017, "A deep reinforced model for abstractive
    summarization": no trigram twice): the words that would repeat an n-gram of their hypothesis.

    Args:
        sequences: int32 `[S, T]` each slot's words so far (positions 0 .. step - 1).
        rows: int32 `[R]` the slots being extended; step: int32 scalar, words so far; n: >= 2.

    Returns:
        int32 `[N, 2]` (row of `rows`, word) pairs: for every earlier position i whose n - 1 words
        equal the hypothesis' last n - 1, the word that followed them.
    """
    words = tf.gather(sequences, rows)                                             # (R, T)
    starts = tf.shape(words)[1] - (n - 1)                                          # candidate i
    match = tf.range(starts)[None, :] <= step - n                                  # i + n - 1 <= step - 1
    for j in range(n - 1):
        last = tf.gather(words, tf.maximum(step - (n - 1) + j, 0), axis=1)         # (R,)
        match &= tf.equal(words[:, j:starts + j], last[:, None])
    pairs = tf.cast(tf.where(match), tf.int32)                                     # (N, 2): row, i
    return tf.stack([pairs[:, 0], tf.gather_nd(words, pairs + [0, n - 1])], axis=1)


def attention_or_empty(attention, rows):
    """A step's attention float32 `[R, L]`, or `[R, 0]` for a decoder without attention (None)."""
    if attention is None:
        return tf.zeros([tf.shape(rows)[0], 0], tf.float32)
    return tf.cast(attention, tf.float32)


def _length_penalty(length, alpha):
    """GNMT length penalty float32 `((5 + length) / 6) ** alpha` (Wu et al. 2016, eq. 14)."""
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _minus_infinity():
    return tf.constant(-np.inf, tf.float32)


# --------------------------------------------------------------------------------------------
# The loop state
# --------------------------------------------------------------------------------------------


class BeamHistory(NamedTuple):
    """What each step chose, one `tf.TensorArray` per field written at index t (stacked at the end:
    `[T, B, K]`, attention `[T, B, K, L]`). Slot k of image b at step t is extension k of that step.

    Attributes:
        parents: int32 `[B, K]` the slot (of the step before) that each extension continues.
        words: int32 `[B, K]` the word each extension adds.
        ends: bool `[B, K]` the extension is <end> and finished a hypothesis.
        log_probs: float32 `[B, K]` log P of each extension, words so far included (-inf: none).
        attention: float32 `[B, K, L]` attention of each extension's last step (`L = 0` without).
    """

    parents: tf.TensorArray
    words: tf.TensorArray
    ends: tf.TensorArray
    log_probs: tf.TensorArray
    attention: tf.TensorArray

    @classmethod
    def empty(cls) -> BeamHistory:
        return cls(*(tf.TensorArray(dtype, size=0, dynamic_size=True)
                     for dtype in (tf.int32, tf.int32, tf.bool, tf.float32, tf.float32)))

    def write(self, step, *values) -> BeamHistory:
        """Record one step: `values` are the fields' tensors in order."""
        return BeamHistory(*(array.write(step, value) for array, value in zip(self, values)))

    def stack(self) -> BeamHistory:
        return BeamHistory(*(array.stack() for array in self))


class BeamState(NamedTuple):
    """The loop variables of the compiled search, B images of K slots: slot k of image b is row
    `b * K + k` of the decoder state. A slot is live when its log-probability is finite.

    Attributes:
        step: int32 scalar t, tokens generated so far by every live hypothesis.
        log_probs: float32 `[B, K]` log P of each live partial caption; -inf for a free slot
            (never used, finished or pruned).
        tokens: int32 `[B, K]` each slot's last word, fed to the decoder next (<start> at t = 0).
        decoder_state: the decoder state parts, each float32 `[B * K, H]`.
        open_slots: int32 `[B]` K minus the image's finished hypotheses: the size of its beam.
        finished_scores: float32 `[B, K]` scores of the image's best finished hypotheses, best
            first, -inf where fewer (their words are in `history`).
        sequences: int32 `[B * K, max_length]` each slot's words so far, kept for n-gram blocking
            only (`[B * K, 0]` without it).
        history: what every step chose, for the trace-back.
    """

    step: tf.Tensor
    log_probs: tf.Tensor
    tokens: tf.Tensor
    decoder_state: list
    open_slots: tf.Tensor
    finished_scores: tf.Tensor
    sequences: tf.Tensor
    history: BeamHistory


def _start(decoder, context, batch, width: int, words_kept) -> BeamState:
    """One live slot per image at the start (the empty caption, log P = 0), K - 1 free ones."""
    return BeamState(
        step=tf.constant(0),
        log_probs=tf.concat([tf.zeros([batch, 1]), tf.fill([batch, width - 1], _minus_infinity())], axis=1),
        tokens=tf.fill([batch, width], START_ID),
        decoder_state=[tf.repeat(part, width, axis=0) for part in decoder.initial_state(context)],
        open_slots=tf.fill([batch], width),
        finished_scores=tf.fill([batch, width], _minus_infinity()),
        sequences=tf.zeros([batch * width, words_kept], tf.int32),
        history=BeamHistory.empty())


# --------------------------------------------------------------------------------------------
# The sub-steps of one step
# --------------------------------------------------------------------------------------------


def _expand(decoder, context, width: int, state: BeamState):
    """Run the decoder one step for every live hypothesis, gathered into R rows.

    Returns:
        `(rows int32 [R], logits [R, V], decoder state parts [R, H] after the step,
        attention float32 [R, L])`; `rows` are the hypotheses' slots `b * K + k`.
    """
    rows = tf.cast(tf.where(tf.math.is_finite(tf.reshape(state.log_probs, [-1])))[:, 0], tf.int32)  # (R,)
    row_state = [tf.gather(part, rows) for part in state.decoder_state]
    logits, row_state, attention = decoder.step(
        tf.gather(tf.reshape(state.tokens, [-1]), rows), row_state, context, rows, width)
    return rows, logits, row_state, attention_or_empty(attention, rows)


def _select_top_k(log_probs, rows, logits, width: int, blocked=None, offset=None):
    """The K best extensions of each image over its K hypotheses x the vocabulary, exactly.

    The K best extensions of an image are among the K best words of each of its rows, so
    `top_words` first keeps K words per row, then one top-k per image runs over K x K.

    Args:
        log_probs: float32 `[B, K]` of the hypotheses; rows, logits: as `_expand` returns.
        blocked: `blocked_words` of the rows, or None.
        offset: float32 `[R]` added to each row's log-probabilities (`forced_words`), or None.

    Returns:
        `(log_probs float32 [B, K], parents int32 [B, K], words int32 [B, K])` of the extensions,
        best first: log P with the word, the slot each continues, the word.
    """
    batch = tf.shape(log_probs)[0]
    word_log_probs, words = top_words(logits, width, blocked)                  # (R, C)
    candidates = tf.shape(words)[1]
    total = tf.gather(tf.reshape(log_probs, [-1]), rows)[:, None] + word_log_probs  # (R, C)
    if offset is not None:
        total += offset[:, None]
    scattered = tf.tensor_scatter_nd_update(
        tf.fill([batch * width, candidates], _minus_infinity()), rows[:, None], total)
    scattered_words = tf.scatter_nd(rows[:, None], words, [batch * width, candidates])
    values, chosen = tf.math.top_k(tf.reshape(scattered, [batch, -1]), k=width)   # (B, K)
    words = tf.gather(tf.reshape(scattered_words, [batch, -1]), chosen, batch_dims=1)
    return values, chosen // candidates, words


def _finish(state: BeamState, log_probs, words, alpha, width: int):
    """Move the extensions that emitted <end> to the finished set.

    The first `open_slots` extensions of an image are its new beam; one that is <end> finishes a
    hypothesis (scored `log P / lp(t + 1)`) and takes its slot out of the beam.

    Returns:
        `(ends bool [B, K], live bool [B, K], open_slots int32 [B], finished_scores float32 [B, K])`.
    """
    valid = (tf.range(width)[None, :] < state.open_slots[:, None]) & tf.math.is_finite(log_probs)
    ends = valid & tf.equal(words, END_ID)
    open_slots = state.open_slots - tf.reduce_sum(tf.cast(ends, tf.int32), axis=1)
    scores = tf.where(ends, log_probs / _length_penalty(state.step + 1, alpha), _minus_infinity())
    finished_scores = tf.math.top_k(tf.concat([state.finished_scores, scores], axis=1), k=width).values
    return ends, valid & ~ends, open_slots, finished_scores


def _prune(log_probs, live, finished_scores, top_n, max_penalty):
    """The log-probabilities of the next step's hypotheses: the live ones that can still win.

    Exact: once `top_n` hypotheses finished, one whose best reachable score (log P, which only
    decreases, over the largest length penalty `max_penalty` it can still get) is below the
    `top_n`-th finished score can no longer be returned.

    Returns:
        float32 `[B, K]`: `log_probs` where kept, -inf for finished, free and dropped slots.
    """
    threshold = tf.gather(finished_scores, top_n - 1, axis=1)[:, None]       # (B, 1)
    keep = live & (log_probs / max_penalty >= threshold)
    return tf.where(keep, log_probs, _minus_infinity())


def _follow_parents(rows, row_state, attention, parents, width: int):
    """Each new hypothesis takes the decoder state and attention of the row it extends.

    Returns:
        `(decoder state parts [B * K, H], attention float32 [B, K, L], parent slots int32 [B * K])`.
    """
    batch = tf.shape(parents)[0]
    parent_slots = tf.reshape(tf.range(batch)[:, None] * width + parents, [-1])    # (B * K,)
    # the row each slot's parent ran in: a hypothesis with a finite log P extends a live row; the
    # other slots (free, finished, pruned) take row 0's state, which nothing reads
    parent_rows = tf.gather(tf.scatter_nd(rows[:, None], tf.range(tf.shape(rows)[0]), [batch * width]), parent_slots)
    decoder_state = [tf.gather(new, parent_rows) for new in row_state]
    if attention.shape[1] == 0:          # a decoder without attention (scatter refuses empty)
        return decoder_state, tf.zeros([batch, width, 0]), parent_slots
    attention = tf.scatter_nd(rows[:, None], attention, [batch * width, tf.shape(attention)[1]])
    return decoder_state, tf.reshape(tf.gather(attention, parent_slots), [batch, width, -1]), parent_slots


# --------------------------------------------------------------------------------------------
# The compiled search (one per decoder object and beam width, cached)
# --------------------------------------------------------------------------------------------

_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


_TRACED_FOR_ANY_SIZE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def call_for_any_size(function, *args):
    """`function(*args)` (a `tf.function` of tensors), traced once for every size.

    The first call of a signature (the arguments' dtypes and ranks, and the depth of feature
    tensors) traces `function` with every other dimension unknown (`tf.TensorSpec` with None):
    the batch, the grid's cells, the captions' length. A later call of another size runs the same
    graph instead of tracing again (0.4 s for the beam search, measured at the second album's
    first caption). Feature tensors, float of rank 2 or more, keep their last dimension, which
    the layers are built for.
    """
    tensors = [tf.convert_to_tensor(arg) for arg in args]
    key = tuple((t.dtype, t.shape.rank, t.shape[-1] if t.dtype.is_floating and t.shape.rank >= 2 else None)
                for t in tensors)
    traced = _TRACED_FOR_ANY_SIZE.setdefault(function, set())
    if key not in traced:
        function.get_concrete_function(*(tf.TensorSpec([None] * (rank - 1) + [depth] if depth is not None
                                                       else [None] * rank, dtype)
                                         for dtype, rank, depth in key))
        traced.add(key)
    return function(*tensors)


def step_precision(decoder) -> str | None:
    """The matmul dtype a decoder's steps are traced with (`AttentionDecoder.resolved_step_dtype`),
    None for a decoder without the choice: part of every compiled function's cache key, so that
    setting `step_dtype` after a first search takes effect."""
    resolve = getattr(decoder, "resolved_step_dtype", None)
    return None if resolve is None else resolve()


def compiled_search(decoder, width: int, block_ngram: int = 0, banned: tuple[int, ...] = (), forced: bool = False):
    """The compiled beam search of `decoder` for beam width `width` (built once, cached), with
    n-gram blocking when `block_ngram` >= 2 (`blocked_words`), never generating the word ids of
    `banned` besides `NEVER_GENERATED` (their logits are -inf: the other words' probabilities are
    renormalised without them).

    `search(pooled float32 [B, P], grid float32 [B, L, D], max_length, top_n, alpha)` (scalar
    tensors: int32, int32, float32) runs the whole search in one `tf.while_loop` over a
    `BeamState` and returns `(history, alive)`: the `BeamHistory` stacked over the T steps taken
    and the final float32 `[B, K]` log-probabilities of the hypotheses still alive (-inf for none).
    With `forced`, `search(..., alpha, prefix)` takes int32 `[B, F]` words each image's captions
    begin with (-1 after an image's own): at step t < F a row can only add `prefix[b, t]`, with
    its log-probability under the decoder (`forced_words`).
    """
    cached = _COMPILED.setdefault(decoder, {})
    banned = tuple(sorted({int(word) for word in banned}))
    key = (width, block_ngram, step_precision(decoder), banned, forced)
    if key in cached:
        return cached[key]
    banned_bias = None
    if banned:
        bias = np.zeros(decoder.output_layer.units, np.float32)
        bias[list(banned)] = -np.inf
        banned_bias = tf.constant(bias)                                           # (V,)

    # autograph=False: the loop is an explicit tf.while_loop and nothing branches on a tensor in
    # Python; without autograph's conversion the first call traces in 0.43 s instead of 1.68 s
    @tf.function(reduce_retracing=True, autograph=False)
    def search(pooled, grid, max_length, top_n, alpha, prefix=None):
        context = decoder.prepare(pooled, grid)                                   # per image
        # Largest length penalty a hypothesis can still get: bounds the score of its extensions.
        max_penalty = tf.maximum(_length_penalty(max_length, alpha), _length_penalty(1, alpha))

        def running(state):
            return (state.step < max_length) & tf.reduce_any(tf.math.is_finite(state.log_probs))

        def step(state):
            rows, logits, row_state, row_attention = _expand(decoder, context, width, state)
            if banned_bias is not None:
                logits = tf.cast(logits, tf.float32) + banned_bias
            offset = None
            if prefix is not None:
                logits, offset = forced_words(logits, prefix, rows // width, state.step)
            blocked = blocked_words(state.sequences, rows, state.step, block_ngram) if block_ngram else None
            log_probs, parents, words = _select_top_k(state.log_probs, rows, logits, width, blocked, offset)
            ends, live, open_slots, finished_scores = _finish(state, log_probs, words, alpha, width)
            decoder_state, attention, parent_slots = _follow_parents(rows, row_state, row_attention, parents, width)
            sequences = state.sequences
            if block_ngram:       # each slot's words so far: its parent's, then its new word
                sequences = tf.where(tf.range(tf.shape(sequences)[1])[None, :] == state.step,
                                     tf.reshape(words, [-1, 1]), tf.gather(sequences, parent_slots))
            following = BeamState(
                step=state.step + 1,
                log_probs=_prune(log_probs, live, finished_scores, top_n, max_penalty),
                tokens=words,
                decoder_state=decoder_state,
                open_slots=open_slots,
                finished_scores=finished_scores,
                sequences=sequences,
                history=state.history.write(state.step, parents, words, ends, log_probs, attention))
            return (same_shapes(following, state),)

        start = _start(decoder, context, tf.shape(pooled)[0], width, max_length if block_ngram else 0)
        (final,) = tf.while_loop(running, step, (start,))
        return final.history.stack(), final.log_probs

    cached[key] = search
    return search
