"""The network: a CNN encoder, a synset classifier and two caption decoders, and model bundles.

    images float32 [B, H, W, 3] in [0, 255]
        -> encoder (keras.applications backbone or the small `sample_cnn`, preprocessing inside)
        -> pooled [B, P] (global average and/or max of the last feature map) and grid [B, L, D] (its L = h * w cells)
    pooled -> `SynsetClassifier` -> tag probabilities [B, S]       (multi-label, sigmoid)
    pooled / grid + caption tokens -> decoder -> next-word logits [B, T, V]

Decoders (both Keras layers with `get_config()`, weights created in `__init__`/`build`):

- `ShowAndTellDecoder` ("lstm"): Vinyals et al. 2015, "Show and Tell", sec. 3.1: the image
  embedding is the LSTM's first input, then the word embeddings.
- `AttentionDecoder` ("attention"): Xu et al. 2015, "Show, Attend and Tell", sec. 4.2
  (deterministic soft attention) with the doubly stochastic gate beta (sec. 4.2.1).

Both offer teacher forcing (`call`) and one step at a time (`initial_state` + `step`), which
greedy decoding here and the batched beam search in `helpers.inference` use. `CaptionTagger`
trains both heads together over cached encoder features.

A bundle (`save_bundle` / `load_bundle`) is a folder with the weights (`.weights.h5`, no pickle),
`config.json`, `vocabulary.json`, `synsets.json` and `bundle.json` (the sizes the weights were
built for, checked on loading).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from helpers.config import Config

BUNDLE_FORMAT = "helpers.model.bundle"
BUNDLE_VERSION = 1


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be downloaded or read."""


class BundleMismatchError(ValueError):
    """A bundle's files (weights, vocabularies, config) do not belong together."""


# --- encoders -------------------------------------------------------------------------------------
def _scale_to_unit_range(images):
    """Pixels [0, 255] -> [-1, 1] (the "tf" mode of keras.applications)."""
    return images / 127.5 - 1.0


def sample_cnn(include_top: bool = False, weights=None, input_shape=(128, 128, 3), **_unused):
    """A compact conv net for the embedded sample (trained from scratch, no ImageNet weights).

    Five 3x3 conv + batch-norm + ReLU blocks with strides 2, 2, 2, 1, 2: a 128-pixel image gives
    an 8 x 8 x 128 feature map (receptive field 63 pixels, about 25 M multiply-adds per image).
    The signature follows `keras.applications` constructors; `include_top` must be False and
    `weights` None or a weights file of this network.

    Returns:
        `keras.Model` mapping preprocessed images float32 `[B, H, W, 3]` in [-1, 1] to the
        feature map `[B, H/16, W/16, 128]`.
    """
    if include_top:
        raise ValueError("sample_cnn has no classification top; use include_top=False")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    for block, (filters, stride) in enumerate([(16, 2), (32, 2), (64, 2), (64, 1), (128, 2)], 1):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                name=f"block{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = keras.layers.ReLU(name=f"block{block}_relu")(x)
    model = keras.Model(inputs, x, name="sample_cnn")
    if weights not in (None, "imagenet"):
        model.load_weights(weights)
    elif weights == "imagenet":
        raise WeightsUnavailableError("sample_cnn has no ImageNet weights; use weights=None "
                                      "(it is trained from scratch on the sample's tags)")
    return model


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """One backbone of the encoder registry.

    Attributes:
        name: registry key (`Config.backbone`).
        constructor: `keras.applications` constructor (or `sample_cnn`), called with
            `include_top=False, weights=..., input_shape=(size, size, 3)`.
        image_size: default input side in pixels.
        preprocess: maps pixels float32 [0, 255] to what the backbone expects
            (`keras.applications.<family>.preprocess_input`).
        pooled_dim: size of `pooled` (D, the channels of the last feature map, or 2 D for "avgmax").
        grid_shape: (h, w, D) of the last feature map at `image_size`.
        pooling: how `pooled` summarises the grid: "avg" (global average, what the ImageNet
            backbones were trained with), "max" (global max: a small object in one cell still
            shows) or "avgmax" (both, concatenated: `pooled_dim` = 2 x channels; what the
            from-scratch `sample_cnn` uses, since max alone passes gradient to one cell only).
    """

    name: str
    constructor: Callable
    image_size: int
    preprocess: Callable
    pooled_dim: int
    grid_shape: tuple[int, int, int]
    pooling: str = "avg"

    @property
    def grid_cells(self) -> int:
        """L = h * w at the default image size."""
        return self.grid_shape[0] * self.grid_shape[1]


_apps = keras.applications
ENCODERS: dict[str, EncoderSpec] = {
    spec.name: spec
    for spec in (
        EncoderSpec("xception", _apps.Xception, 299, _apps.xception.preprocess_input, 2048, (10, 10, 2048)),
        EncoderSpec("vgg16", _apps.VGG16, 224, _apps.vgg16.preprocess_input, 512, (7, 7, 512)),
        EncoderSpec("resnet50", _apps.ResNet50, 224, _apps.resnet50.preprocess_input, 2048, (7, 7, 2048)),
        EncoderSpec("inception_v3", _apps.InceptionV3, 299, _apps.inception_v3.preprocess_input,
                    2048, (8, 8, 2048)),
        EncoderSpec("efficientnet_b0", _apps.EfficientNetB0, 224, _apps.efficientnet.preprocess_input,
                    1280, (7, 7, 1280)),
        EncoderSpec("mobilenet_v2", _apps.MobileNetV2, 224, _apps.mobilenet_v2.preprocess_input,
                    1280, (7, 7, 1280)),
        EncoderSpec("mobilenet_v3_small", _apps.MobileNetV3Small, 224,
                    _apps.mobilenet_v3.preprocess_input, 576, (7, 7, 576)),
        EncoderSpec("sample_cnn", sample_cnn, 128, _scale_to_unit_range, 256, (8, 8, 128), "avgmax"),
    )
}


def encoder_spec(name: str) -> EncoderSpec:
    """The registry entry of `name`; `ValueError` listing the known names otherwise."""
    if name not in ENCODERS:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name]


@keras.saving.register_keras_serializable(package="helpers")
class ImagePreprocessing(keras.layers.Layer):
    """Pixels float32 `[B, H, W, 3]` in [0, 255] -> the input range of backbone `backbone`."""

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self._preprocess = encoder_spec(backbone).preprocess

    def call(self, images):
        return self._preprocess(keras.ops.cast(images, "float32"))

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


def build_encoder(name: str, weights: str | None = "imagenet", image_size: int | None = None,
                  trainable: bool = False) -> keras.Model:
    """Build the image encoder of backbone `name`.

    Args:
        name: key of `ENCODERS`.
        weights: "imagenet" (downloaded once by Keras into ~/.keras/models/), None (random
            initialisation), or a path: a `.weights.h5` file of a whole encoder saved by this
            module (e.g. a bundle's `encoder.weights.h5`), or a `keras.applications` weights file
            (`*_notop.h5`) of the backbone.
        image_size: input side in pixels (None: the backbone's default).
        trainable: whether the backbone's weights train (False: frozen, batch norm in inference mode).

    Returns:
        `keras.Model` named "encoder" mapping images float32 `[B, S, S, 3]`, pixels in [0, 255],
        to `{"pooled": [B, P], "grid": [B, L, D]}` (L = h * w cells of the last feature map,
        row-major; P = D, or 2 D for "avgmax" pooling). Preprocessing is inside the model: feed
        raw pixels.

    Raises:
        ValueError: unknown backbone name or bad image size.
        WeightsUnavailableError: "imagenet" weights could not be downloaded (offline) or a
            weights file is missing or does not fit.
    """
    spec = encoder_spec(name)
    size = int(image_size or spec.image_size)
    if size < 32:
        raise ValueError(f"image_size must be at least 32 pixels, got {size}")
    whole_encoder_file = None
    backbone_weights = weights
    if weights not in (None, "imagenet"):
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailableError(f"weights file {path} does not exist; pass an existing "
                                          f"file, weights='imagenet' or weights=None")
        if path.name.endswith(".weights.h5"):
            whole_encoder_file, backbone_weights = path, None
        else:
            backbone_weights = str(path)
    try:
        backbone = spec.constructor(include_top=False, weights=backbone_weights,
                                    input_shape=(size, size, 3))
    except WeightsUnavailableError:
        raise
    except Exception as error:  # keras raises a plain Exception on a failed URL fetch
        if weights == "imagenet":
            raise WeightsUnavailableError(
                f"could not get the ImageNet weights of {name} ({type(error).__name__}: {error}). "
                f"Without network access: copy the backbone's '*_notop.h5' file into "
                f"~/.keras/models/, or pass its path as weights=..., or use weights=None "
                f"(random initialisation; train the encoder on tags first)") from error
        raise WeightsUnavailableError(f"could not load weights {weights} into {name}: {error}") from error
    backbone.trainable = trainable
    images = keras.Input(shape=(size, size, 3), name="images")
    x = ImagePreprocessing(name, name="preprocess")(images)
    feature_map = backbone(x)                                    # (B, h, w, D)
    _, h, w, depth = feature_map.shape
    if spec.pooling == "avgmax":
        pooled = keras.layers.Concatenate(name="pooled")([
            keras.layers.GlobalAveragePooling2D(name="average_pool")(feature_map),
            keras.layers.GlobalMaxPooling2D(name="max_pool")(feature_map)])          # (B, 2D)
    else:
        pooling = keras.layers.GlobalMaxPooling2D if spec.pooling == "max" else keras.layers.GlobalAveragePooling2D
        pooled = pooling(name="pooled")(feature_map)             # (B, D)
    grid = keras.layers.Reshape((h * w, depth), name="grid")(feature_map)      # (B, L, D)
    encoder = keras.Model(images, {"pooled": pooled, "grid": grid}, name="encoder")
    if whole_encoder_file is not None:
        try:
            encoder.load_weights(whole_encoder_file)
        except Exception as error:
            raise WeightsUnavailableError(
                f"{whole_encoder_file} does not fit a {name} encoder at {size} px: {error}") from error
    return encoder


def encoder_output_shapes(encoder: keras.Model) -> tuple[int, int, int]:
    """`(L, D, P)`: grid cells, grid feature size and pooled size of a `build_encoder` model."""
    _, cells, depth = encoder.output["grid"].shape
    return int(cells), int(depth), int(encoder.output["pooled"].shape[-1])


def set_trainable_blocks(encoder: keras.Model, layers: int | None) -> None:
    """Make the last `layers` layers of the backbone trainable (None or <= 0: all of them).

    This is both "fine-tune the top blocks of a pretrained backbone" and, with all layers,
    "train a randomly initialised backbone end to end". Batch-norm layers stay frozen in a
    partly trainable pretrained backbone (their statistics come from ImageNet).
    """
    backbone = next(layer for layer in encoder.layers if isinstance(layer, keras.Model))
    backbone.trainable = True
    if layers is None or layers <= 0:
        return
    for index, layer in enumerate(backbone.layers):
        in_top = index >= len(backbone.layers) - layers
        layer.trainable = in_top and not isinstance(layer, keras.layers.BatchNormalization)


# --- heads ----------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="helpers")
class SynsetClassifier(keras.layers.Layer):
    """Multi-label synset (tag) classifier: pooled `[B, D]` -> probabilities `[B, S]`.

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


class _Decoder(keras.layers.Layer):
    """What both decoders share: sizes, the word embedding and the output projection."""

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

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout}

    def _embed(self, tokens):
        """Word embeddings `[B, E]` of token ids `[B]` (no Keras mask attached)."""
        return keras.ops.take(self.embedding.embeddings, keras.ops.cast(tokens, "int32"), axis=0)

    def greedy_decode(self, pooled, grid, max_length: int = 24):
        """Most likely word at every step (no beam), for quick looks during training.

        `helpers.inference.greedy_decode` (one compiled loop) with its result as a plain array.

        Args:
            pooled: float32 `[B, D]`; grid: float32 `[B, L, D]`.
            max_length: maximum number of generated tokens (<end> included).

        Returns:
            int32 numpy array `[B, max_length]` of token ids after <start>, <pad> after <end>.
        """
        from helpers.inference import greedy_decode
        from helpers.vocab import END_ID, PAD_ID

        hypotheses = greedy_decode(self, pooled, grid, max_length=max_length)
        output = np.full((len(hypotheses), max_length), PAD_ID, np.int32)
        for row, hypothesis in zip(output, hypotheses):
            tokens = list(hypothesis.tokens) + ([END_ID] if hypothesis.finished else [])
            row[:len(tokens)] = tokens
        return output


@keras.saving.register_keras_serializable(package="helpers")
class ShowAndTellDecoder(_Decoder):
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
            inputs: `(pooled [B, D], grid [B, L, D] (ignored), tokens int32 [B, T])`; tokens start
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

    def initial_state(self, pooled, grid=None):
        """LSTM state after reading the image: `[h [B, H], c [B, H]]`."""
        image = self.image_embedding(pooled)                              # (B, E)
        zeros = keras.ops.zeros((keras.ops.shape(pooled)[0], self.hidden_dim), dtype=image.dtype)
        _, state = self.lstm.cell(image, [zeros, zeros], training=False)
        return list(state)

    def step(self, tokens, state, pooled=None, grid=None):
        """One decoding step.

        Args:
            tokens: int32 `[B]`, the previous word of every sequence.
            state: `[h [B, H], c [B, H]]` from `initial_state` or the previous step.

        Returns:
            `(logits [B, V], new state, None)` (no attention).
        """
        words = self._embed(tokens)                                       # (B, E)
        hidden, new_state = self.lstm.cell(words, list(state), training=False)
        return self.output_layer(hidden), list(new_state), None


@keras.saving.register_keras_serializable(package="helpers")
class AttentionDecoder(_Decoder):
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
    """

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

    def initial_state(self, pooled, grid):
        """`[h [B, H], c [B, H]]` from the mean grid cell (Xu et al. sec. 3.1.2)."""
        mean = keras.ops.mean(self._features(grid), axis=1)               # (B, D)
        return [self.init_h(mean), self.init_c(mean)]

    def attend(self, features, projected, hidden):
        """Soft attention over the grid cells given the previous hidden state h_{t-1}.

        Args:
            features: float32 `[B, L, D]`, the cells with their position (`_features(grid)`).
            projected: float32 `[B, L, A]`, their projection W_a a_i (`feature_projection(features)`).
            hidden: float32 `[B, H]`, or `[B, K, H]` for K hypotheses of each image (beam search:
                the image's cells are shared by its K hypotheses, never copied for each of them).

        Returns:
            `(context, alpha)`: the gated context z_t float32 `[B, D]` (`[B, K, D]`) and the
            attention weights alpha_t `[B, L]` (`[B, K, L]`), summing to 1 over the L cells.
        """
        if len(hidden.shape) == 3:
            query = self.hidden_projection(hidden)                        # (B, K, A)
            scores = self.attention_score(keras.ops.tanh(
                projected[:, None, :, :] + query[:, :, None, :]))         # (B, K, L, 1)
            alpha = keras.ops.softmax(scores[..., 0], axis=-1)            # (B, K, L)
            context = keras.ops.einsum("bkl,bld->bkd", alpha, features)   # (B, K, D)
        else:
            scores = self.attention_score(keras.ops.tanh(
                projected + self.hidden_projection(hidden)[:, None, :]))  # (B, L, 1)
            alpha = keras.ops.softmax(scores[..., 0], axis=-1)            # (B, L)
            context = keras.ops.sum(alpha[..., None] * features, axis=1)  # (B, D)
        if self.gate_layer is not None:
            context = self.gate_layer(hidden) * context                   # beta_t (B, [K,] 1)
        return context, alpha

    def advance(self, words, state, context, training=False):
        """The LSTM step and the word logits once the context is known.

        Args:
            words: float32 `[R, E]` embedded previous words; state: `[h [R, H], c [R, H]]`;
            context: float32 `[R, D]` from `attend`.

        Returns:
            `(logits [R, V], [h_t, c_t])`.
        """
        x = keras.ops.concatenate([words, context], axis=-1)              # (R, E + D)
        x = self.input_dropout(x, training=training)
        output, new_state = self.cell(x, list(state), training=training)
        output = keras.ops.concatenate([output, context], axis=-1)        # (R, H + D)
        return self.output_layer(self.output_dropout(output, training=training)), list(new_state)

    def _step(self, words, state, features, projected, training=False):
        """One step from embedded words `[B, E]`: logits `[B, V]`, state, alpha `[B, L]`."""
        context, alpha = self.attend(features, projected, state[0])
        logits, new_state = self.advance(words, state, context, training=training)
        return logits, new_state, alpha

    def step(self, tokens, state, pooled, grid):
        """One decoding step.

        Args:
            tokens: int32 `[B]`, the previous word of every sequence.
            state: `[h [B, H], c [B, H]]` from `initial_state` or the previous step.
            pooled: unused (kept for a common API); grid: float `[B, L, D]` encoder grid.

        Returns:
            `(logits [B, V], new state, attention [B, L])`.
        """
        features = self._features(grid)
        projected = self.feature_projection(features)                     # (B, L, A)
        return self._step(self._embed(tokens), state, features, projected)

    def call(self, inputs, training=False, return_attention: bool = False):
        """Teacher forcing, a symbolic loop over time (`tf.scan`) of the same step as `step`.

        Args:
            inputs: `(pooled [B, D], grid [B, L, D], tokens int32 [B, T])`, tokens start with
                <start>, right-padded with <pad> = 0.
            return_attention: also return the attention weights.

        Returns:
            logits float32 `[B, T, V]` (at t, scores of the word after `tokens[:, t]`), and with
            `return_attention` also alpha `[B, T, L]` (sums to 1 over L).
        """
        pooled, grid, tokens = inputs
        features = self._features(grid)                                   # (B, L, D)
        projected = self.feature_projection(features)                     # (B, L, A)
        words = self.embedding(tokens)                                    # (B, T, E)
        state = self.initial_state(pooled, grid)
        batch = tf.shape(tokens)[0]

        def one_step(carry, words_t):
            _, _, hidden, memory = carry
            logits, (hidden, memory), alpha = self._step(words_t, [hidden, memory], features,
                                                         projected, training=training)
            return logits, alpha, hidden, memory

        start = (tf.zeros([batch, self.vocabulary_size]), tf.zeros([batch, self.grid_cells]), *state)
        logits, alpha, _, _ = tf.scan(one_step, tf.transpose(words, [1, 0, 2]), initializer=start)
        logits = tf.transpose(logits, [1, 0, 2])                          # (B, T, V)
        if return_attention:
            return logits, tf.transpose(alpha, [1, 0, 2])                 # (B, T, L)
        return logits

    def get_config(self):
        return {**super().get_config(), "attention_dim": self.attention_dim, "gate": self.gate,
                "position_embedding": self.use_position_embedding}


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


DECODERS = {"lstm": ShowAndTellDecoder, "attention": AttentionDecoder}


def build_decoder(config: Config, vocabulary_size: int) -> _Decoder:
    """The decoder `config.decoder` ("lstm" or "attention") sized by `config`."""
    if config.decoder == "lstm":
        return ShowAndTellDecoder(vocabulary_size, config.embedding_dim, config.hidden_dim,
                                  config.dropout, name="decoder")
    if config.decoder == "attention":
        return AttentionDecoder(vocabulary_size, config.embedding_dim, config.hidden_dim,
                                config.attention_dim, config.dropout, name="decoder")
    raise ValueError(f"unknown decoder {config.decoder!r}; choose one of {sorted(DECODERS)}")


@keras.saving.register_keras_serializable(package="helpers")
class CaptionTagger(keras.Model):
    """Both heads over encoder features: `{"pooled", "grid", "tokens"}` ->
    `{"caption": logits [B, T, V], "tags": probabilities [B, S]}`.

    Trained with masked cross-entropy on captions (<pad> ignored) plus `tag_loss_weight` times
    the binary cross-entropy of the tags (see `helpers.train.compile_heads`).
    """

    def __init__(self, decoder: _Decoder, tagger: SynsetClassifier, **kwargs):
        super().__init__(**kwargs)
        self.decoder = decoder
        self.tagger = tagger

    def call(self, inputs, training=False):
        pooled, grid, tokens = inputs["pooled"], inputs["grid"], inputs["tokens"]
        pooled = keras.ops.cast(pooled, "float32")
        grid = keras.ops.cast(grid, "float32")
        return {"caption": self.decoder((pooled, grid, tokens), training=training),
                "tags": self.tagger(pooled, training=training)}

    def build_for(self, cells: int, depth: int, pooled_dim: int | None = None) -> "CaptionTagger":
        """Create every weight by one call on zeros (`cells` = L, `depth` = D, `pooled_dim` = P,
        default D)."""
        self({"pooled": np.zeros((1, pooled_dim or depth), np.float32),
              "grid": np.zeros((1, cells, depth), np.float32), "tokens": np.ones((1, 2), np.int32)})
        return self

    def get_config(self):
        return {**super().get_config(),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "tagger": keras.saving.serialize_keras_object(self.tagger)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        tagger = keras.saving.deserialize_keras_object(config.pop("tagger"))
        return cls(decoder, tagger, **config)


def build_heads(config: Config, vocabulary_size: int, num_synsets: int, cells: int, depth: int,
                pooled_dim: int | None = None) -> CaptionTagger:
    """A built `CaptionTagger` sized by `config`, the vocabularies and the encoder: `cells` L and
    `depth` D of the grid, `pooled_dim` P of the pooled features (default D)."""
    heads = CaptionTagger(build_decoder(config, vocabulary_size),
                          SynsetClassifier(num_synsets, config.tagger_hidden_dim, config.dropout, name="tagger"),
                          name="heads")
    return heads.build_for(cells, depth, pooled_dim)


# --- bundles --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Bundle:
    """A trained model with everything needed to use it (see `load_bundle`).

    Attributes:
        config: the run's `Config`.
        vocabulary: `helpers.vocab.Vocabulary` of the decoder.
        synset_vocabulary: `helpers.synsets.SynsetVocabulary` of the classifier.
        encoder: images -> {"pooled", "grid"} (`build_encoder`).
        heads: the `CaptionTagger` (decoder + tagger).
        tagger: `heads.tagger`; decoder: `heads.decoder`.
        path: the bundle folder.
    """

    config: Config
    vocabulary: object
    synset_vocabulary: object
    encoder: keras.Model
    heads: CaptionTagger
    path: Path | None = None

    @property
    def tagger(self) -> SynsetClassifier:
        return self.heads.tagger

    @property
    def decoder(self) -> _Decoder:
        return self.heads.decoder

    @property
    def image_size(self) -> int:
        return int(self.encoder.input.shape[1])

    def encode(self, images) -> tuple[tf.Tensor, tf.Tensor]:
        """Encoder features of a batch.

        Args:
            images: uint8 or float `[B, H, W, 3]`, pixels in [0, 255]; resized to the encoder's
                input size when H, W differ from it.

        Returns:
            `(pooled float32 [B, D], grid float32 [B, L, D])`.
        """
        images = tf.cast(tf.convert_to_tensor(images), tf.float32)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [batch, height, width, 3], got shape {images.shape}")
        size = self.image_size
        if images.shape[1] != size or images.shape[2] != size:
            images = tf.image.resize(images, (size, size))
        features = self.encoder(images, training=False)
        return features["pooled"], features["grid"]

    def tag_probabilities(self, pooled) -> np.ndarray:
        """Synset probabilities float32 `[B, S]` of pooled features `[B, D]`."""
        return np.asarray(self.tagger(tf.convert_to_tensor(pooled, tf.float32), training=False))


def save_bundle(directory, config: Config, vocabulary, synset_vocabulary, encoder: keras.Model,
                heads: CaptionTagger) -> Path:
    """Write a bundle folder: encoder.weights.h5, heads.weights.h5, config.json,
    vocabulary.json, synsets.json and bundle.json (sizes, checked by `load_bundle`).

    Returns:
        The bundle folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cells, depth, pooled_dim = encoder_output_shapes(encoder)
    encoder.save_weights(directory / "encoder.weights.h5")
    heads.save_weights(directory / "heads.weights.h5")
    config.save(directory / "config.json")
    vocabulary.save(directory / "vocabulary.json")
    synset_vocabulary.save(directory / "synsets.json")
    manifest = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
        "backbone": config.backbone, "image_size": int(encoder.input.shape[1]),
        "decoder": config.decoder, "vocabulary_size": len(vocabulary),
        "num_synsets": len(synset_vocabulary), "grid_cells": cells, "feature_dim": depth,
        "pooled_dim": pooled_dim,
    }
    (directory / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return directory


def load_bundle(directory) -> Bundle:
    """Load a bundle written by `save_bundle`.

    Raises:
        FileNotFoundError: a bundle file is missing (names it).
        BundleMismatchError: the files do not belong together (vocabulary size vs the decoder,
            synset count vs the classifier, backbone / image size vs the config, weights that do
            not fit); the message says which and what to do.
    """
    from helpers.synsets import SynsetVocabulary
    from helpers.vocab import Vocabulary

    directory = Path(directory)
    names = ("bundle.json", "config.json", "vocabulary.json", "synsets.json",
             "encoder.weights.h5", "heads.weights.h5")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"bundle {directory} lacks {missing}; write it with "
                                f"helpers.model.save_bundle (train a run: python -m helpers train)")
    manifest = json.loads((directory / "bundle.json").read_text(encoding="utf-8"))
    config = Config.load(directory / "config.json")
    vocabulary = Vocabulary.load(directory / "vocabulary.json")
    synset_vocabulary = SynsetVocabulary.load(directory / "synsets.json")
    advice = "this bundle's files come from different runs — retrain or copy the matching files"
    if len(vocabulary) != manifest["vocabulary_size"]:
        raise BundleMismatchError(
            f"vocabulary has {len(vocabulary)} words but the decoder was built for "
            f"{manifest['vocabulary_size']}; {advice} (vocabulary.json)")
    if len(synset_vocabulary) != manifest["num_synsets"]:
        raise BundleMismatchError(
            f"synset vocabulary has {len(synset_vocabulary)} synsets but the classifier was built "
            f"for {manifest['num_synsets']}; {advice} (synsets.json)")
    image_size = config.image_size or encoder_spec(config.backbone).image_size
    if (config.backbone, image_size, config.decoder) != (manifest["backbone"], manifest["image_size"],
                                                         manifest["decoder"]):
        raise BundleMismatchError(
            f"config.json says {config.backbone} at {image_size} px with a {config.decoder} decoder "
            f"but the weights are {manifest['backbone']} at {manifest['image_size']} px with a "
            f"{manifest['decoder']} decoder; {advice} (config.json)")
    encoder = build_encoder(config.backbone, weights=None, image_size=image_size)
    heads = build_heads(config, len(vocabulary), len(synset_vocabulary), *encoder_output_shapes(encoder))
    for model, file in ((encoder, "encoder.weights.h5"), (heads, "heads.weights.h5")):
        try:
            model.load_weights(directory / file)
        except (ValueError, KeyError) as error:
            raise BundleMismatchError(f"{file} does not fit the model described by config.json, "
                                      f"vocabulary.json and synsets.json ({error}); {advice}") from error
    return Bundle(config, vocabulary, synset_vocabulary, encoder, heads, directory)
