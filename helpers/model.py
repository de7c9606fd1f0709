"""The heads: a multi-label synset classifier and two caption decoders over encoder features.

    pooled [B, P] -> `SynsetClassifier` -> tag probabilities [B, S]       (multi-label, sigmoid)
    pooled / grid [B, L, D] + caption tokens -> decoder -> next-word logits [B, T, V]

(the encoder that makes pooled and grid is in `helpers.pretrained.encoders`, bundles in `helpers.bundle`).

Decoders (Keras layers with `get_config()`, weights created in `__init__`/`build`), registered in
`DECODERS` and built by `build_decoder`:

- `ShowAndTellDecoder` ("lstm"): Vinyals et al. 2015, "Show and Tell", sec. 3.1: the image
  embedding is the LSTM's first input, then the word embeddings.
- `AttentionDecoder` ("attention"): Xu et al. 2015, "Show, Attend and Tell", sec. 4.2
  (deterministic soft attention) with the doubly stochastic gate beta (sec. 4.2.1).

Both train with teacher forcing (`call`) and decode through the public protocol of
`CaptionDecoder`, which `helpers.predict.decoding` (greedy and beam search) drives for any decoder:

    context = decoder.prepare(pooled, grid)          # per-image work, done once per batch
    state = decoder.initial_state(context)           # [h [B, H], c [B, H]]
    logits, state, attention = decoder.step(tokens, state, context[, rows, width])

`CaptionTagger` trains both heads together over cached encoder features.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from helpers.config import Config


@keras.saving.register_keras_serializable(package="helpers")
class SynsetClassifier(keras.layers.Layer):
    """Multi-label synset (tag) classifier: pooled `[B, P]` -> probabilities `[B, S]`.

    Dropout -> Dense(hidden, relu) -> Dropout -> Dense(S, sigmoid); trained with binary
    cross-entropy. `hidden_dim=0` gives a linear (logistic regression) classifier.
    """

    def __init__(self, num_synsets: int, hidden_dim: int = 512, dropout: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        if num_synsets < 1:
            raise ValueError(f"num_synsets must be >= 1, got {num_synsets}")
        self.num_synsets, self.hidden_dim, self.dropout = int(num_synsets), int(hidden_dim), float(dropout)
        self.input_dropout = keras.layers.Dropout(dropout)
        self.hidden = keras.layers.Dense(hidden_dim, activation="relu", name="hidden") if hidden_dim else None
        self.hidden_dropout = keras.layers.Dropout(dropout)
        self.output_layer = keras.layers.Dense(num_synsets, activation="sigmoid", name="probabilities")

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.hidden is not None:
            self.hidden.build(shape)
            shape = (*shape[:-1], self.hidden_dim)
        self.output_layer.build(shape)

    def call(self, pooled, training=False):
        x = self.input_dropout(pooled, training=training)        # (B, D)
        if self.hidden is not None:
            x = self.hidden_dropout(self.hidden(x), training=training)  # (B, hidden)
        return self.output_layer(x)                              # (B, S)

    def get_config(self):
        return {**super().get_config(), "num_synsets": self.num_synsets,
                "hidden_dim": self.hidden_dim, "dropout": self.dropout}


class CaptionDecoder(keras.layers.Layer):
    """Base of the caption decoders: sizes, word embedding, output projection and the decoding
    protocol that `helpers.predict.decoding` drives (as keras-hub's samplers drive any model through
    `next(prompt, cache, index)`): a new decoder implements `call` (teacher forcing), `prepare`,
    `initial_state` and `step`, and registers itself in `DECODERS`; nothing else changes.

    Protocol (B images; R rows = live hypotheses; K = `width` hypotheses per image):

    - `prepare(pooled [B, P], grid [B, L, D]) -> context`: a tuple of per-image tensors, the work
      done once per image whatever the number of steps and hypotheses (e.g. the attention
      decoder's projection of the grid).
    - `initial_state(context) -> [h [B, H], c [B, H]]`: the state before the first word.
    - `step(tokens int32 [R], state [R, H] parts, context, rows=None, width=1)
      -> (logits float32 [R, V], new state [R, H] parts, attention float32 [R, L] or None)`:
      one step for R rows. Row r is hypothesis `rows[r] % width` of image `rows[r] // width`
      (`rows=None`: row r is image r). Rows index into the per-image context, which is never
      copied per hypothesis.
    """

    def __init__(self, vocabulary_size: int, embedding_dim: int = 256, hidden_dim: int = 512,
                 dropout: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        if vocabulary_size < 5:
            raise ValueError(f"vocabulary_size must be >= 5 (4 special tokens + words), got {vocabulary_size}")
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim, self.hidden_dim, self.dropout = int(embedding_dim), int(hidden_dim), float(dropout)
        self.embedding = keras.layers.Embedding(vocabulary_size, embedding_dim, mask_zero=True,
                                                name="word_embedding")
        self.output_dropout = keras.layers.Dropout(dropout)
        self.output_layer = keras.layers.Dense(vocabulary_size, name="logits")

    @classmethod
    def from_run_config(cls, config: Config, vocabulary_size: int, **kwargs) -> "CaptionDecoder":
        """The decoder sized by a run's `Config` (embedding_dim, hidden_dim, dropout, ...)."""
        return cls(vocabulary_size, config.embedding_dim, config.hidden_dim, dropout=config.dropout,
                   **kwargs)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout}

    def embed(self, tokens):
        """Word embeddings float32 `[R, E]` of token ids int32 `[R]` (no Keras mask attached)."""
        return keras.ops.take(self.embedding.embeddings, keras.ops.cast(tokens, "int32"), axis=0)

    def prepare(self, pooled, grid) -> tuple:
        raise NotImplementedError

    def initial_state(self, context) -> list:
        raise NotImplementedError

    def step(self, tokens, state, context, rows=None, width: int = 1):
        raise NotImplementedError


@keras.saving.register_keras_serializable(package="helpers")
class ShowAndTellDecoder(CaptionDecoder):
    """LSTM caption decoder of Vinyals et al. 2015 ("Show and Tell", sec. 3.1).

    x_{-1} = W_i pooled (the image, seen once, first), x_t = W_e S_t,
    h_t = LSTM(x_t, h_{t-1}), p_{t+1} = softmax(W_o dropout(h_t)).
    The grid argument is accepted (same API as `AttentionDecoder`) and ignored.
    """

    def __init__(self, vocabulary_size: int, embedding_dim: int = 256, hidden_dim: int = 512,
                 dropout: float = 0.3, **kwargs):
        super().__init__(vocabulary_size, embedding_dim, hidden_dim, dropout, **kwargs)
        self.image_embedding = keras.layers.Dense(embedding_dim, name="image_embedding")
        self.input_dropout = keras.layers.Dropout(dropout)
        self.lstm = keras.layers.LSTM(hidden_dim, return_sequences=True, name="lstm")

    def build(self, input_shape):
        pooled_shape, _grid_shape, _tokens_shape = input_shape
        self.image_embedding.build(tuple(pooled_shape))
        self.embedding.build(None)
        self.lstm.build((None, None, self.embedding_dim))
        self.output_layer.build((None, self.hidden_dim))

    def call(self, inputs, training=False):
        """Teacher forcing.

        Args:
            inputs: `(pooled [B, P], grid [B, L, D] (ignored), tokens int32 [B, T])`; tokens start
                with <start> and are right-padded with <pad> = 0.

        Returns:
            logits float32 `[B, T, V]`: at t, the scores of the word after `tokens[:, t]`.
        """
        pooled, _grid, tokens = inputs
        image = self.image_embedding(pooled)[:, None, :]                 # (B, 1, E)
        words = self.embedding(tokens)                                    # (B, T, E)
        sequence = keras.ops.concatenate([image, words], axis=1)          # (B, T+1, E)
        sequence = self.input_dropout(sequence, training=training)
        mask = keras.ops.concatenate(
            [keras.ops.ones_like(tokens[:, :1], dtype="bool"), keras.ops.not_equal(tokens, 0)], axis=1)
        hidden = self.lstm(sequence, mask=mask, training=training)        # (B, T+1, H)
        hidden = self.output_dropout(hidden[:, 1:], training=training)    # (B, T, H): drop the image step
        return self.output_layer(hidden)                                  # (B, T, V)

    def prepare(self, pooled, grid) -> tuple:
        """`(image embedding W_i pooled [B, E],)`; the grid is not used."""
        return (self.image_embedding(pooled),)                            # (B, E)

    def initial_state(self, context) -> list:
        """LSTM state after reading the image: `[h [B, H], c [B, H]]`."""
        (image,) = context
        zeros = keras.ops.zeros((keras.ops.shape(image)[0], self.hidden_dim), dtype=image.dtype)
        _, state = self.lstm.cell(image, [zeros, zeros], training=False)
        return list(state)

    def step(self, tokens, state, context, rows=None, width: int = 1):
        """One decoding step (see `CaptionDecoder`): the image was read by `initial_state`, so
        the step needs only the previous words; no attention (None)."""
        words = self.embed(tokens)                                        # (R, E)
        hidden, new_state = self.lstm.cell(words, list(state), training=False)
        return self.output_layer(hidden), list(new_state), None


@functools.cache
def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware: the `amx_bf16` or `avx512_bf16`
    flag of Linux's `/proc/cpuinfo` (Intel Sapphire Rapids and later, AMD Zen 4 and later).
    Elsewhere (another OS, an older CPU) False: there a bfloat16 product is emulated and slower
    than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_step_dtype(step_dtype: str) -> str:
    """A decoder's `step_dtype` with "auto" resolved: "bfloat16" where `native_bfloat16()`, else
    "float32" ("float32" and "bfloat16" unchanged).

    Raises:
        ValueError: `step_dtype` is none of "float32", "bfloat16", "auto".
    """
    if step_dtype not in ("float32", "bfloat16", "auto"):
        raise ValueError(f"step_dtype must be 'float32', 'bfloat16' or 'auto', got {step_dtype!r}")
    if step_dtype == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return step_dtype


class AttentionContext(NamedTuple):
    """What `AttentionDecoder.prepare` computes once per image for the decoding steps (B images,
    L cells of depth D'; E embedding, H hidden units, V words).

    Attributes:
        features: float32 `[B, L, D']`, the cells a_i with their position (`_features`).
        projected: float32 `[B, L, A]`, their attention projection W_a a_i.
        bias: float32 `[B, L]` added to the attention scores (`attention_bias`), or None.
        kernels: the step's weights in its matmul dtype (`AttentionDecoder.step_dtype`): the LSTM
            kernel stacked on its recurrent kernel `[E + D' + H, 4H]` (one product per step) and
            the output kernel `[H + D', V]`; None for teacher forcing (`attention_inputs`). With
            `AttentionDecoder.FACTORED_CONTEXT`, their rows that read the context are left out
            (`[E + H, 4H]` and `[H, V]`): the context enters through the two below.
        cell_gates: float32 `[B, L, 4H]`, each cell's product with the LSTM kernel's context rows
            (`FACTORED_CONTEXT` only; else None).
        cell_logits: float32 `[B, L, V]`, each cell's product with the output kernel's context
            rows (`FACTORED_CONTEXT` only; else None).
    """

    features: tf.Tensor
    projected: tf.Tensor
    bias: tf.Tensor | None = None
    kernels: tuple | None = None
    cell_gates: tf.Tensor | None = None
    cell_logits: tf.Tensor | None = None


@keras.saving.register_keras_serializable(package="helpers")
class AttentionDecoder(CaptionDecoder):
    """Soft-attention caption decoder of Xu et al. 2015 ("Show, Attend and Tell", sec. 4.2).

    h_0, c_0 = tanh(MLP(mean_i a_i)); at every step
        e_ti = v^T tanh(W_a a_i + W_h h_{t-1})         (additive attention, Bahdanau et al. 2015)
        alpha_t = softmax_i(e_ti)                      `[B, L]`, sums to 1 over the L grid cells
        z_t = beta_t * sum_i alpha_ti a_i,  beta_t = sigmoid(w_b h_{t-1})   (gate, sec. 4.2.1)
        h_t, c_t = LSTM([E y_{t-1}; z_t], h_{t-1}, c_{t-1})
        logits_t = W_o dropout([h_t; z_t])
    The grid cells a_i get a learned position embedding (one vector per cell) added and fixed
    sinusoidal (x, y) coordinates appended (`grid_coordinates`), so that attention can prefer
    "the next object to the right" and the context tells the LSTM *where* it looked ("left of",
    "above"); without them, position is known only as far as the CNN's padding leaks it.

    Decoding steps multiply in `step_dtype` (an attribute, not a weight: set it before decoding):
    "float32", "bfloat16" (the LSTM's and the output layer's products on bfloat16 inputs, their
    results rounded to bfloat16: `_matmul`; everything else float32), or "auto": bfloat16 where
    `native_bfloat16()`.
    The default is `DEFAULT_STEP_DTYPE`; teacher forcing (`call`, training) is always float32.
    """

    DEFAULT_STEP_DTYPE = "float32"
    # Decoding with the context's products factored through the cells (`prepare`, `step`): the
    # context z_t = sum_i w_ti a_i (w_ti = beta_t alpha_ti) is linear in the cells, so its products
    # with the LSTM kernel and the output kernel are sum_i w_ti (a_i W): each cell's product, made
    # once per image, weighted at every step. A step then multiplies [R, L] weights instead of
    # [R, D'] contexts: cheaper when a search runs more steps x hypotheses per image than it has
    # cells. Off here (a 7 x 7 grid: 49 cells, about as many as a beam of 3 runs row-steps per
    # image); on for `ConceptDecoder`'s sets of at most 10 cells.
    FACTORED_CONTEXT = False

    def __init__(self, vocabulary_size: int, embedding_dim: int = 256, hidden_dim: int = 512,
                 attention_dim: int = 256, dropout: float = 0.3, gate: bool = True,
                 position_embedding: bool = True, **kwargs):
        super().__init__(vocabulary_size, embedding_dim, hidden_dim, dropout, **kwargs)
        self.attention_dim, self.gate = int(attention_dim), bool(gate)
        self.use_position_embedding = bool(position_embedding)
        self.init_h = keras.layers.Dense(hidden_dim, activation="tanh", name="init_h")
        self.init_c = keras.layers.Dense(hidden_dim, activation="tanh", name="init_c")
        self.feature_projection = keras.layers.Dense(attention_dim, name="attention_features")   # W_a
        self.hidden_projection = keras.layers.Dense(attention_dim, use_bias=False, name="attention_hidden")  # W_h
        self.attention_score = keras.layers.Dense(1, name="attention_score")                    # v
        self.gate_layer = keras.layers.Dense(1, activation="sigmoid", name="gate") if gate else None
        self.input_dropout = keras.layers.Dropout(dropout)
        self.cell = keras.layers.LSTMCell(hidden_dim, name="lstm_cell")
        self.position_embedding = None
        self.step_dtype = self.DEFAULT_STEP_DTYPE     # decoding only, not saved (see the class)

    def build(self, input_shape):
        _pooled_shape, grid_shape, _tokens_shape = input_shape
        cells, depth = int(grid_shape[-2]), int(grid_shape[-1])
        self.grid_cells = cells
        if self.use_position_embedding:
            self.position_embedding = self.add_weight(
                name="position_embedding", shape=(cells, depth),
                initializer=keras.initializers.RandomNormal(stddev=0.3))   # distinct from the start
            self.coordinates = grid_coordinates(cells)                          # (L, C) numpy constant
            depth += int(self.coordinates.shape[-1])
        self._build_layers(cells, depth)

    def _build_layers(self, cells: int | None, depth: int) -> None:
        """Create the weights of attention, gate, LSTM and output for L cells of depth D'."""
        self.feature_dim = depth
        self.init_h.build((None, depth))
        self.init_c.build((None, depth))
        self.feature_projection.build((None, cells, depth))
        self.hidden_projection.build((None, self.hidden_dim))
        self.attention_score.build((None, cells, self.attention_dim))
        if self.gate_layer is not None:
            self.gate_layer.build((None, self.hidden_dim))
        self.embedding.build(None)
        self.cell.build((None, self.embedding_dim + depth))
        self.output_layer.build((None, self.hidden_dim + depth))

    def _features(self, grid):
        """Grid cells with their position: `[B, L, D + C]` (learned embedding added, fixed
        sinusoidal coordinates appended; `[B, L, D]` unchanged without position embedding)."""
        grid = keras.ops.cast(grid, "float32")
        if self.position_embedding is not None:
            grid = grid + self.position_embedding[None]
            coordinates = keras.ops.broadcast_to(
                keras.ops.convert_to_tensor(self.coordinates)[None],
                (keras.ops.shape(grid)[0], *self.coordinates.shape))
            grid = keras.ops.concatenate([grid, coordinates], axis=-1)
        return grid

    @classmethod
    def from_run_config(cls, config: Config, vocabulary_size: int, **kwargs) -> "AttentionDecoder":
        return cls(vocabulary_size, config.embedding_dim, config.hidden_dim, config.attention_dim,
                   config.dropout, **kwargs)

    def attention_bias(self, grid):
        """Added to the attention scores before the softmax, float32 `[B, L]`, or None (every
        cell may be attended). A decoder whose inputs have padding returns a large negative
        number on it (`ConceptDecoder`)."""
        return None

    def attention_inputs(self, pooled, grid) -> AttentionContext:
        """The cells with their position (`_features`), their projection W_a a_i (about
        L * D * A multiply-adds per image, more than the LSTM step itself for a 7 x 7 x 1280
        grid) and the `attention_bias`: what teacher forcing needs (no kernels)."""
        features = self._features(grid)                                   # (B, L, D')
        return AttentionContext(features, self.feature_projection(features), self.attention_bias(grid))

    def resolved_step_dtype(self) -> str:
        """`step_dtype` with "auto" resolved (`resolve_step_dtype`).

        Raises:
            ValueError: `step_dtype` is none of "float32", "bfloat16", "auto".
        """
        return resolve_step_dtype(self.step_dtype)

    def prepare(self, pooled, grid) -> AttentionContext:
        """`attention_inputs` and the step's kernels in `step_dtype` (`AttentionContext`); with
        `FACTORED_CONTEXT`, also each cell's products with the kernels' context rows (float32,
        `[B, L, 4H]` and `[B, L, V]`), and kernels without those rows."""
        dtype = self.resolved_step_dtype()
        context = self.attention_inputs(pooled, grid)
        lstm_kernel, output_kernel = self.cell.kernel, self.output_layer.kernel    # [E + D', 4H], [H + D', V]
        if not self.FACTORED_CONTEXT:
            kernels = (tf.concat([lstm_kernel, self.cell.recurrent_kernel], axis=0), output_kernel)
            return context._replace(kernels=tuple(tf.cast(kernel, dtype) for kernel in kernels))
        words, hidden = self.embedding_dim, self.hidden_dim
        kernels = (tf.concat([lstm_kernel[:words], self.cell.recurrent_kernel], axis=0), output_kernel[:hidden])
        return context._replace(
            kernels=tuple(tf.cast(kernel, dtype) for kernel in kernels),
            cell_gates=tf.einsum("bld,dg->blg", context.features, lstm_kernel[words:]),       # (B, L, 4H)
            cell_logits=tf.einsum("bld,dv->blv", context.features, output_kernel[hidden:]))   # (B, L, V)

    def initial_state(self, context) -> list:
        """`[h [B, H], c [B, H]]` from the mean grid cell (Xu et al. sec. 3.1.2)."""
        mean = keras.ops.mean(context.features, axis=1)                   # (B, D')
        return [self.init_h(mean), self.init_c(mean)]

    def attend(self, features, projected, hidden, bias=None):
        """Soft attention over the grid cells given the previous hidden state h_{t-1}.

        Args:
            features: float32 `[B, L, D]`, the cells with their position (`_features(grid)`).
            projected: float32 `[B, L, A]`, their projection W_a a_i (`feature_projection(features)`).
            hidden: float32 `[B, H]`, or `[B, K, H]` for K hypotheses of each image (beam search:
                the image's cells are shared by its K hypotheses, never copied for each of them).
            bias: float32 `[B, L]` added to the scores (`attention_bias`), or None.

        Returns:
            `(context, alpha)`: the gated context z_t float32 `[B, D]` (`[B, K, D]`) and the
            attention weights alpha_t `[B, L]` (`[B, K, L]`), summing to 1 over the L cells.
        """
        alpha, beta = self.attention_weights(projected, hidden, bias)
        if len(hidden.shape) == 3:
            context = keras.ops.einsum("bkl,bld->bkd", alpha, features)   # (B, K, D)
        else:
            context = keras.ops.sum(alpha[..., None] * features, axis=1)  # (B, D)
        if beta is not None:
            context = beta * context                                      # beta_t (B, [K,] 1)
        return context, alpha

    def attention_weights(self, projected, hidden, bias=None):
        """`(alpha, beta)` of `attend`: the attention weights alpha_t float32 `[B, L]` (`[B, K, L]`
        for a `[B, K, H]` query) and the gate beta_t `[B, 1]` (`[B, K, 1]`), None without a gate."""
        if len(hidden.shape) == 3:
            query = self.hidden_projection(hidden)                        # (B, K, A)
            scores = self.attention_score(keras.ops.tanh(
                projected[:, None, :, :] + query[:, :, None, :]))[..., 0]  # (B, K, L)
            if bias is not None:
                scores = scores + bias[:, None, :]
        else:
            scores = self.attention_score(keras.ops.tanh(
                projected + self.hidden_projection(hidden)[:, None, :]))[..., 0]  # (B, L)
            if bias is not None:
                scores = scores + bias
        alpha = keras.ops.softmax(scores, axis=-1)                        # (B, [K,] L)
        return alpha, None if self.gate_layer is None else self.gate_layer(hidden)

    def recur(self, words, state, context, training=False):
        """The LSTM step: `([h_t; z_t] float32 [R, H + D], [h_t, c_t])`, what `emit` reads."""
        x = keras.ops.concatenate([words, context], axis=-1)              # (R, E + D)
        x = self.input_dropout(x, training=training)
        output, new_state = self.cell(x, list(state), training=training)
        return keras.ops.concatenate([output, context], axis=-1), list(new_state)   # (R, H + D)

    def emit(self, output, training=False):
        """Word logits `[..., V]` of `[h_t; z_t]` `[..., H + D]` (any leading shape: teacher
        forcing projects every position at once, after the loop over time)."""
        return self.output_layer(self.output_dropout(output, training=training))

    def step(self, tokens, state, context, rows=None, width: int = 1):
        """One decoding step (see `CaptionDecoder`).

        With `rows`, attention runs over the `[B, width]` hypotheses of every image against that
        image's cells (`attend` with a `[B, K, H]` query: the cells are never copied per
        hypothesis), and only the R live rows go through the LSTM and the output layer. With
        `FACTORED_CONTEXT` the context z_t is never formed: the step weights the cells' products
        (`advance_factored`).

        Returns:
            `(logits [R, V], new state, attention alpha_t [R, L])`.
        """
        features, projected, bias = context.features, context.projected, context.bias
        hidden = state[0]
        if rows is not None:
            slots = tf.shape(features)[0] * width
            hidden = tf.scatter_nd(rows[:, None], hidden, [slots, self.hidden_dim])
            hidden = tf.reshape(hidden, [-1, width, self.hidden_dim])                  # (B, K, H)

        def per_row(values):        # (B, K, N) per slot -> (R, N) per live row
            return values if rows is None else tf.gather(tf.reshape(values, [-1, tf.shape(values)[-1]]), rows)

        words = self.embed(tokens)
        if self.FACTORED_CONTEXT:
            alpha, beta = self.attention_weights(projected, hidden, bias)              # (B, [K,] L)
            weights = alpha if beta is None else alpha * beta                         # w_ti = beta_t alpha_ti
            pattern = "bl,blg->bg" if rows is None else "bkl,blg->bkg"
            gates = per_row(tf.einsum(pattern, weights, context.cell_gates))           # (R, 4H)
            logits = per_row(tf.einsum(pattern, weights, context.cell_logits))         # (R, V)
            logits, new_state = self.advance_factored(words, state, gates, logits, context.kernels)
        else:
            attention_context, alpha = self.attend(features, projected, hidden, bias)  # (B, [K,] D'), (B, [K,] L)
            logits, new_state = self.advance(words, state, per_row(attention_context), context.kernels)
        return logits, new_state, per_row(alpha)

    def advance(self, words, state, context, kernels):
        """The LSTM step and the word logits once the context is known, for decoding: the LSTM of
        `keras.layers.LSTMCell` (gates i, f, c, o; no dropout) and the output layer, their
        products in the kernels' dtype (`AttentionContext.kernels`).

        Args:
            words: float32 `[R, E]` embedded previous words; state: `[h [R, H], c [R, H]]`;
            context: float32 `[R, D]` from `attend`; kernels: `AttentionContext.kernels`.

        Returns:
            `(logits float32 [R, V], [h_t, c_t])`.
        """
        gate_kernel, output_kernel = kernels
        hidden, memory = state
        gates = _matmul(tf.concat([words, context, hidden], axis=-1), gate_kernel) + self.cell.bias  # (R, 4H)
        hidden, memory = self._lstm(gates, memory)
        logits = _matmul(tf.concat([hidden, context], axis=-1), output_kernel) + self.output_layer.bias
        return logits, [hidden, memory]

    def advance_factored(self, words, state, context_gates, context_logits, kernels):
        """`advance` with the context's products already made (`FACTORED_CONTEXT`): the same
        LSTM step and logits, the context's part of the gates float32 `[R, 4H]` and of the
        logits float32 `[R, V]` added to the products of the words and hidden state with the
        kernels' other rows (`AttentionContext.kernels`, `[E + H, 4H]` and `[H, V]`).

        Returns:
            `(logits float32 [R, V], [h_t, c_t])`.
        """
        gate_kernel, output_kernel = kernels
        hidden, memory = state
        gates = _matmul(tf.concat([words, hidden], axis=-1), gate_kernel) + context_gates + self.cell.bias
        hidden, memory = self._lstm(gates, memory)
        logits = _matmul(hidden, output_kernel) + context_logits + self.output_layer.bias
        return logits, [hidden, memory]

    def _lstm(self, gates, memory):
        """`(h_t, c_t)` from the pre-activation gates `[R, 4H]` (i, f, c, o as `keras.layers.LSTMCell`)."""
        input_gate, forget_gate, candidate, output_gate = tf.split(gates, 4, axis=-1)
        activation, recurrent_activation = self.cell.activation, self.cell.recurrent_activation
        memory = recurrent_activation(forget_gate) * memory + recurrent_activation(input_gate) * activation(candidate)
        return recurrent_activation(output_gate) * activation(memory), memory

    def call(self, inputs, training=False, return_attention: bool = False):
        """Teacher forcing, a symbolic loop over time (`tf.scan`) of the same step as `step` (which
        writes the LSTM cell out, `advance`, to choose its precision; in float32 the two agree).

        Args:
            inputs: `(pooled [B, P], grid [B, L, D], tokens int32 [B, T])`, tokens start with
                <start>, right-padded with <pad> = 0.
            return_attention: also return the attention weights.

        Returns:
            logits float32 `[B, T, V]` (at t, scores of the word after `tokens[:, t]`), and with
            `return_attention` also alpha `[B, T, L]` (sums to 1 over L).
        """
        pooled, grid, tokens = inputs
        context = self.attention_inputs(pooled, grid)
        features, projected, bias = context.features, context.projected, context.bias
        words = self.embedding(tokens)                                    # (B, T, E)
        state = self.initial_state(context)
        batch = tf.shape(tokens)[0]

        # The loop over time carries only the recurrence; the output layer, the largest product
        # ([H + D] x V per position), runs once on every position after it (`emit`).
        def one_step(carry, words_t):
            _, _, hidden, memory = carry
            attention_context, alpha = self.attend(features, projected, hidden, bias)
            output, (hidden, memory) = self.recur(words_t, [hidden, memory], attention_context, training=training)
            return output, alpha, hidden, memory

        start = (tf.zeros([batch, self.hidden_dim + self.feature_dim]), tf.zeros([batch, tf.shape(features)[1]]),
                 *state)
        outputs, alpha, _, _ = tf.scan(one_step, tf.transpose(words, [1, 0, 2]), initializer=start)
        logits = self.emit(tf.transpose(outputs, [1, 0, 2]), training=training)   # (B, T, V)
        if return_attention:
            return logits, tf.transpose(alpha, [1, 0, 2])                 # (B, T, L)
        return logits

    def get_config(self):
        return {**super().get_config(), "attention_dim": self.attention_dim, "gate": self.gate,
                "position_embedding": self.use_position_embedding}


def _matmul(inputs, kernel):
    """float32 `inputs [R, N] @ kernel [N, M]`, in the kernel's dtype. With a bfloat16 kernel the
    inputs are rounded to bfloat16 and oneDNN accumulates in float32, but the sums come back
    rounded to bfloat16 (TensorFlow's CPU MatMul returns its inputs' dtype) before the cast."""
    dtype = tf.as_dtype(kernel.dtype)
    if dtype == tf.float32:
        return tf.matmul(inputs, kernel)
    return tf.cast(tf.matmul(tf.cast(inputs, dtype), kernel), tf.float32)


def grid_coordinates(cells: int, frequencies: int = 4) -> np.ndarray:
    """Fixed sinusoidal coordinates of the cells of a square grid (row-major), float32 `[L, 4 F]`:
    sin and cos of `pi * k * x` and `pi * k * y` for k = 1..F, x and y in [0, 1] (cell centres).
    A non-square L is treated as one row."""
    side = int(round(math.sqrt(cells)))
    rows, columns = (side, side) if side * side == cells else (1, cells)
    y, x = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(columns) + 0.5) / columns, indexing="ij")
    k = np.arange(1, frequencies + 1)[None, :]
    x, y = x.reshape(-1, 1), y.reshape(-1, 1)
    return np.concatenate([np.sin(np.pi * k * x), np.cos(np.pi * k * x),
                           np.sin(np.pi * k * y), np.cos(np.pi * k * y)], axis=-1).astype(np.float32)


@keras.saving.register_keras_serializable(package="helpers")
class ConceptDecoder(AttentionDecoder):
    """The soft-attention decoder over a *set of concepts* instead of an image grid: a caption
    from what a photo shows (semantic attention: You et al., CVPR 2016, "Image captioning with
    semantic attention"; Yao et al., ICCV 2017, "Boosting image captioning with attributes").

    Its "grid" is the encoded concept set float32 `[B, L, 3]`, rows `(concept id, confidence,
    count)` (`helpers.wordnet.concepts.ConceptVocabulary.encode`; id 0 is padding). Each concept
    becomes one attention cell

        a_i = E_c[id_i] + E_n[min(count_i, max_count)] + W_p confidence_i      (concept_dim)

    padding cells are zero, get no attention (`attention_bias`: -1e9) and are left out of the
    mean that starts the LSTM. Everything else (attention, gate, LSTM, output, the decoding
    protocol) is `AttentionDecoder`'s; a set has no order, so there is no position embedding, and
    the pooled input is ignored.

    Its decoding steps multiply in bfloat16 where the CPU does so natively (`DEFAULT_STEP_DTYPE`
    "auto"): on coco-mini its captions score the same CIDEr as float32 steps, in about 0.8 x the
    time (README, "Captions from concepts").
    """

    DEFAULT_STEP_DTYPE = "auto"
    FACTORED_CONTEXT = True       # at most `Config.max_concepts` (10) cells

    def __init__(self, vocabulary_size: int, num_concepts: int, embedding_dim: int = 256,
                 hidden_dim: int = 512, attention_dim: int = 256, dropout: float = 0.3, gate: bool = True,
                 concept_dim: int | None = None, max_count: int = 10, **kwargs):
        kwargs.pop("position_embedding", None)
        super().__init__(vocabulary_size, embedding_dim, hidden_dim, attention_dim, dropout, gate,
                         position_embedding=False, **kwargs)
        if num_concepts < 3:
            raise ValueError(f"num_concepts must be >= 3 (<pad>, <photo> and a concept), got {num_concepts}")
        self.num_concepts, self.max_count = int(num_concepts), int(max_count)
        self.concept_dim = int(concept_dim or embedding_dim)
        self.concept_embedding = keras.layers.Embedding(self.num_concepts, self.concept_dim, name="concept_embedding")
        self.count_embedding = keras.layers.Embedding(self.max_count + 1, self.concept_dim, name="count_embedding")
        self.confidence_projection = keras.layers.Dense(self.concept_dim, use_bias=False, name="confidence")

    @classmethod
    def from_run_config(cls, config: Config, vocabulary_size: int, num_concepts: int = 3,
                        **kwargs) -> "ConceptDecoder":
        return cls(vocabulary_size, num_concepts, config.embedding_dim, config.hidden_dim,
                   config.attention_dim, config.dropout, **kwargs)

    def build(self, input_shape):
        _pooled_shape, grid_shape, _tokens_shape = input_shape
        self.grid_cells = grid_shape[-2]
        self.concept_embedding.build(None)
        self.count_embedding.build(None)
        self.confidence_projection.build((None, 1))
        self._build_layers(self.grid_cells, self.concept_dim)

    def _features(self, grid):
        """Concept cells float32 `[B, L, concept_dim]` (zero on padding)."""
        grid = keras.ops.cast(grid, "float32")
        ids = keras.ops.cast(grid[..., 0], "int32")
        counts = keras.ops.clip(keras.ops.cast(grid[..., 2], "int32"), 0, self.max_count)
        cells = (keras.ops.take(self.concept_embedding.embeddings, ids, axis=0)
                 + keras.ops.take(self.count_embedding.embeddings, counts, axis=0)
                 + self.confidence_projection(grid[..., 1:2]))
        return cells * keras.ops.cast(keras.ops.not_equal(ids, 0), "float32")[..., None]

    def attention_bias(self, grid):
        """-1e9 on padding rows (concept id 0), 0 elsewhere: float32 `[B, L]`."""
        padding = keras.ops.cast(keras.ops.equal(keras.ops.cast(grid[..., 0], "int32"), 0), "float32")
        return -1e9 * padding

    def initial_state(self, context) -> list:
        """`[h [B, H], c [B, H]]` from the mean of the concept cells (padding left out)."""
        features, bias = context.features, context.bias
        present = keras.ops.cast(keras.ops.equal(bias, 0.0), "float32")              # (B, L)
        mean = keras.ops.sum(features, axis=1) / keras.ops.maximum(
            keras.ops.sum(present, axis=1, keepdims=True), 1.0)                       # (B, D)
        return [self.init_h(mean), self.init_c(mean)]

    def get_config(self):
        config = super().get_config()
        config.pop("position_embedding", None)
        return {**config, "num_concepts": self.num_concepts, "concept_dim": self.concept_dim,
                "max_count": self.max_count}


DECODERS: dict[str, type[CaptionDecoder]] = {"lstm": ShowAndTellDecoder, "attention": AttentionDecoder,
                                             "concepts": ConceptDecoder}


def build_decoder(config: Config, vocabulary_size: int, num_concepts: int | None = None) -> CaptionDecoder:
    """The decoder `DECODERS[config.decoder]` ("lstm", "attention" or "concepts") sized by
    `config` (and, for "concepts", by `num_concepts`, the concept ids of its vocabulary).

    Raises:
        ValueError: unknown decoder name (the message lists the registered ones), or a concept
            decoder without `num_concepts`.
    """
    if config.decoder not in DECODERS:
        raise ValueError(f"unknown decoder {config.decoder!r}; choose one of {sorted(DECODERS)}")
    if config.decoder == "concepts":
        if num_concepts is None:
            raise ValueError("a concept decoder needs num_concepts (ConceptVocabulary.num_ids)")
        return ConceptDecoder.from_run_config(config, vocabulary_size, num_concepts, name="decoder")
    return DECODERS[config.decoder].from_run_config(config, vocabulary_size, name="decoder")


@keras.saving.register_keras_serializable(package="helpers")
class CaptionTagger(keras.Model):
    """Both heads over encoder features: `{"pooled", "grid", "tokens"}` ->
    `{"caption": logits [B, T, V], "tags": probabilities [B, S]}`.

    Trained with masked cross-entropy on captions (<pad> ignored) plus `tag_loss_weight` times
    the binary cross-entropy of the tags (see `helpers.training.train.compile_heads`). Without a
    tagger (`tagger=None`: the concept decoder, whose input already is the tags) only
    `{"caption"}` comes out.
    """

    def __init__(self, decoder: CaptionDecoder, tagger: SynsetClassifier | None = None, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder
        self.tagger = tagger

    def call(self, inputs, training=False):
        pooled, grid, tokens = inputs["pooled"], inputs["grid"], inputs["tokens"]
        pooled = keras.ops.cast(pooled, "float32")
        grid = keras.ops.cast(grid, "float32")
        outputs = {"caption": self.decoder((pooled, grid, tokens), training=training)}
        if self.tagger is not None:
            outputs["tags"] = self.tagger(pooled, training=training)
        return outputs

    def build_for(self, cells: int, depth: int, pooled_dim: int | None = None) -> "CaptionTagger":
        """Create every weight by one call on zeros (`cells` = L, `depth` = D, `pooled_dim` = P,
        default D)."""
        self({"pooled": np.zeros((1, pooled_dim or depth), np.float32),
              "grid": np.zeros((1, cells, depth), np.float32), "tokens": np.ones((1, 2), np.int32)})
        return self

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras builds the loss and metrics from the first batch before `fit`; under a
        `tf.distribute` strategy it first averages that batch over the replicas with
        `strategy.reduce`, which `MultiWorkerMirroredStrategy` refuses for a nested batch (Keras
        3 issue keras-team/keras#20585: `fit` cannot start under it). Only shapes and dtypes are
        needed: build from the first replica's part of the batch instead."""
        strategy = self._distribute_strategy
        if strategy is None or iterator is None:
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = next(batches)
            break

        def first_replica(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        with strategy.scope():
            self._symbolic_build(data_batch=keras.tree.map_structure(first_replica, data_batch))

    def train_step(self, data):
        return _one_dimensional_under_multi_worker(super().train_step(data))

    def test_step(self, data):
        return _one_dimensional_under_multi_worker(super().test_step(data))

    def get_config(self):
        return {**super().get_config(),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "tagger": None if self.tagger is None else keras.saving.serialize_keras_object(self.tagger)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        tagger = config.pop("tagger")
        tagger = None if tagger is None else keras.saving.deserialize_keras_object(tagger)
        return cls(decoder, tagger, **config)


def _one_dimensional_under_multi_worker(logs: dict) -> dict:
    """A step's metric values as `[1]` tensors under a multi-worker `MultiWorkerMirroredStrategy`
    (unchanged otherwise). Keras 3 averages them over the workers with `strategy.reduce("MEAN",
    value, axis=0)`, which fails on scalars (keras-team/keras#20585); the reduction then returns
    scalars again, the mean over the replicas."""
    strategy = tf.distribute.get_strategy()
    if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode()):
        return logs
    return {name: keras.ops.reshape(value, (1,)) if len(keras.ops.shape(value)) == 0 else value
            for name, value in logs.items()}


def build_heads(config: Config, vocabulary_size: int, num_synsets: int, cells: int, depth: int,
                pooled_dim: int | None = None) -> CaptionTagger:
    """A built `CaptionTagger` sized by `config`, the vocabularies and the encoder: `cells` L and
    `depth` D of the grid, `pooled_dim` P of the pooled features (default D).

    For the concept decoder (`config.decoder == "concepts"`), `num_synsets` is the number of
    concept ids (`ConceptVocabulary.num_ids`), the grid is the encoded concept set (`depth` 3)
    and there is no tagger: the concepts are its input.
    """
    if config.decoder == "concepts":
        heads = CaptionTagger(build_decoder(config, vocabulary_size, num_synsets), None, name="heads")
        return heads.build_for(cells, depth, pooled_dim or 1)
    heads = CaptionTagger(build_decoder(config, vocabulary_size),
                          SynsetClassifier(num_synsets, config.tagger_hidden_dim, config.dropout, name="tagger"),
                          name="heads")
    return heads.build_for(cells, depth, pooled_dim)
