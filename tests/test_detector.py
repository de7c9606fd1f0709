"""Tests of helpers.pretrained.detector against the YOLOX-Nano reference in ../shared.

`shared/models/yolox-nano` holds the ONNX file, the exact network inputs and outputs of 4 photos and
the decoded detections of all 159 coco-mini photos (see its README). The model file is located
with `PHOTO_CAPTIONS_DETECTOR` or a temporary cache; the "network" of the download tests is a local
HTTP server or a closed local port (these machines have no internet).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.data import images
from helpers.pretrained import detector
from helpers.pretrained.detector import DetectorUnavailableError

SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
MODEL_DIR = SHARED_DIR / "models" / "yolox-nano"
PHOTOS_DIR = SHARED_DIR / "data" / "coco-mini-2017"
MODEL_FILE = MODEL_DIR / "yolox_nano.onnx"
UNREACHABLE_URL = "http://127.0.0.1:9/yolox_nano.onnx"   # the discard port: connection refused at once

if not MODEL_FILE.is_file():
    pytest.skip(f"YOLOX-Nano reference {MODEL_DIR} not present (set SHARED_DIR)", allow_module_level=True)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(MODEL_DIR / "reference_outputs.npz") as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.fixture(scope="module")
def reference_detections() -> dict[str, list[dict]]:
    return json.loads((MODEL_DIR / "reference_detections.json").read_text(encoding="utf-8"))["photos"]


@pytest.fixture(scope="module")
def yolox() -> detector.Detector:
    return detector.Detector(MODEL_FILE)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache folder, no `PHOTO_CAPTIONS_DETECTOR`, and no network."""
    monkeypatch.setenv("PHOTO_CAPTIONS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(detector.DETECTOR_ENV, raising=False)
    monkeypatch.setattr(detector, "RELEASE_URL", UNREACHABLE_URL)
    return tmp_path / "cache"


def _reference_photos(reference) -> list[tuple[int, str]]:
    return [(k, f"val2017/{reference[f'name_{k}']}") for k in range(4)]


# --- categories, input, raw output ------------------------------------------------------------------------
def test_categories_are_the_coco_labels_in_column_order():
    labels = (MODEL_DIR / "coco_labels.txt").read_text(encoding="utf-8").splitlines()
    assert detector.COCO_CATEGORIES == tuple(labels)
    assert len(detector.COCO_CATEGORIES) == detector.NUM_CLASSES == 80
    assert detector.NUM_ROWS == 3549


def test_letterbox_reproduces_the_reference_inputs(reference):
    for k, name in _reference_photos(reference):
        network_input, ratio = detector.letterbox(detector.load_photo(PHOTOS_DIR / name))
        assert network_input.dtype == np.uint8 and network_input.shape == (1, 3, 416, 416)
        difference = np.abs(network_input.astype(np.int16) - reference[f"input_{k}"])
        assert difference.max() <= 3, name        # measured: 0 (identical) on all 4
        assert ratio == pytest.approx(float(reference[f"ratio_{k}"]), rel=1e-6)


def test_letterbox_pads_bottom_right_with_grey_in_bgr_order():
    rgb = np.zeros((100, 208, 3), dtype=np.uint8)
    rgb[..., 0] = 200                                              # pure red
    network_input, ratio = detector.letterbox(rgb)
    assert ratio == 2.0
    assert (network_input[0, :, :200, :] == np.array([0, 0, 200])[:, None, None]).all()   # B, G, R
    assert (network_input[0, :, 200:, :] == detector.PAD_VALUE).all()
    with pytest.raises(ValueError, match="uint8 \\[height, width, 3\\]"):
        detector.letterbox(rgb.astype(np.float32))


def test_load_photo_decodes_a_large_jpeg_at_reduced_scale_upright(tmp_path):
    name = "val2017/000000018575.jpg"                                    # 640 x 480: decoded in full
    small = detector.load_photo(PHOTOS_DIR / name)
    assert np.array_equal(small, images.load_image(PHOTOS_DIR / name))
    large = Image.fromarray(small).resize((2560, 1920), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6                                                      # orientation: rotate 90
    large.save(tmp_path / "large.jpg", quality=90, exif=exif)
    photo = detector.load_photo(tmp_path / "large.jpg")
    assert photo.shape == (640, 480, 3)                                   # 1/4 scale, upright (portrait)
    assert photo.shape[0] >= detector.INPUT_SIZE and photo.shape[1] >= detector.CLASSIFIER_SHORT_SIDE
    with pytest.raises(images.ImageLoadError, match="empty file"):
        (tmp_path / "empty.jpg").write_bytes(b"")
        detector.load_photo(tmp_path / "empty.jpg")


def test_network_reproduces_the_reference_outputs(yolox, reference):
    for k in range(4):
        output = yolox.run(reference[f"input_{k}"])
        expected = reference[f"output_{k}"]
        assert output.shape == (1, 3549, 85) and output.dtype == np.float32
        # box offsets (|x| up to ~5) differ by float round-off up to 1.7e-4, sigmoid scores by 2.5e-5
        np.testing.assert_allclose(output[..., :4], expected[..., :4], atol=3e-4)
        np.testing.assert_allclose(output[..., 4:], expected[..., 4:], atol=1e-4)


# --- decoding ---------------------------------------------------------------------------------------------
def _assert_same_detections(found: detector.Detections, expected: list[dict], name: str):
    assert list(found.categories) == [item["category"] for item in expected], name
    np.testing.assert_allclose(found.scores, [item["score"] for item in expected], atol=1e-3, err_msg=name)
    # the reference rounds boxes to 0.1 pixel
    np.testing.assert_allclose(found.boxes, [item["box_xyxy"] for item in expected], atol=0.06, err_msg=name)


def test_decode_outputs_reproduces_the_reference_detections(reference, reference_detections):
    for k, name in _reference_photos(reference):
        found = detector.decode_outputs(reference[f"output_{k}"], float(reference[f"ratio_{k}"]))
        assert found.boxes.dtype == np.float32 and found.scores.dtype == np.float32
        assert np.all(np.diff(found.scores) <= 0)
        _assert_same_detections(found, reference_detections[name], name)
    first = detector.decode_outputs(reference["output_0"][0], float(reference["ratio_0"]))   # [3549, 85] too
    assert first.counts(0.3) == {"person": 2, "chair": 2, "tv": 1, "clock": 1, "dining table": 1}
    assert first.max_scores()["tv"] == pytest.approx(0.8987, abs=1e-4)
    with pytest.raises(ValueError, match="3549"):
        detector.decode_outputs(np.zeros((1, 100, 85), np.float32), 1.0)


def test_detections_of_photo_files_match_the_reference(yolox, reference_detections):
    """Every 4th of the 159 photos (40, a few seconds), from the file to detections."""
    names = sorted(reference_detections)[::4]
    for name in names:
        found = yolox.detect(detector.load_photo(PHOTOS_DIR / name)).max_scores()
        expected: dict[str, float] = {}
        for item in reference_detections[name]:
            expected.setdefault(item["category"], item["score"])
        for category in {c for c, s in found.items() if s >= 0.3} | {c for c, s in expected.items() if s >= 0.3}:
            if category in found and category in expected:
                assert found[category] == pytest.approx(expected[category], abs=0.02), (name, category)
            else:   # found on one side only: must sit near the threshold
                assert max(found.get(category, 0), expected.get(category, 0)) < 0.32, (name, category)


def _greedy_nms(boxes, scores, labels, threshold):
    """The textbook loop (YOLOX demo's `nms`, per class), to check the vectorised one against."""
    iou, kept = detector.box_iou(boxes, boxes), []
    for label in np.unique(labels):
        order = [i for i in np.argsort(-scores, kind="stable") if labels[i] == label]
        while order:
            best, order = order[0], order[1:]
            kept.append(best)
            order = [i for i in order if iou[best, i] <= threshold]
    return sorted(kept, key=lambda i: -scores[i])


def test_non_max_suppression_is_greedy_and_per_class():
    boxes = np.array([[0, 0, 10, 10],      # 0: class 0, best
                      [1, 1, 11, 11],      # 1: IoU 0.68 with 0 -> dropped
                      [5, 0, 15, 10],      # 2: IoU 0.33 with 0 -> kept
                      [3, 3, 13, 13],      # 3: IoU 0.47 with 1 only, and 1 is dropped -> kept
                      [0, 0, 10, 10],      # 4: class 1, same box as 0 -> kept
                      [0, 0, 10, 10.5]],   # 5: class 1, IoU 0.95 with 4 -> dropped
                     dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], dtype=np.float32)
    labels = np.array([0, 0, 0, 0, 1, 1])
    assert detector.non_max_suppression(boxes, scores, labels, 0.45).tolist() == [0, 2, 3, 4]
    assert detector.non_max_suppression(boxes[:0], scores[:0], labels[:0]).tolist() == []

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, size=(300, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, size=(300, 2))], axis=1).astype(np.float32)
    scores, labels = rng.uniform(size=300).astype(np.float32), rng.integers(0, 3, size=300)
    assert detector.non_max_suppression(boxes, scores, labels, 0.45).tolist() == \
        _greedy_nms(boxes, scores, labels, 0.45)


# --- the model file -------------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    """One protobuf field: an int as a varint, bytes or str length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def identity_onnx(shape: list[int]) -> bytes:
    """An ONNX model `output = Identity(images)`, float `shape`, written field by field (no `onnx` here)."""
    def value_info(name):
        dims = b"".join(_field(1, _field(1, d)) for d in shape)           # TensorShapeProto.dim.dim_value
        tensor = _field(1, 1) + _field(2, dims)                           # elem_type FLOAT, shape
        return _field(1, name) + _field(2, _field(1, tensor))             # name, TypeProto.tensor_type
    node = _field(1, "images") + _field(2, "output") + _field(4, "Identity")
    graph = _field(1, node) + _field(2, "identity") + _field(11, value_info("images")) + \
        _field(12, value_info("output"))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(2, 13))     # ir_version 8, graph, opset 13


def test_a_model_with_another_signature_is_refused(tmp_path):
    path = tmp_path / "identity.onnx"
    path.write_bytes(identity_onnx([1, 3, 416, 416]))
    with pytest.raises(DetectorUnavailableError) as error:
        detector.Detector(path)
    message = str(error.value)
    assert str(path) in message and "not YOLOX-Nano" in message
    assert "[1, 3549, 85]" in message and "'output', [1, 3, 416, 416]" in message


def test_a_corrupt_or_missing_file_is_refused_clearly(tmp_path):
    path = tmp_path / "yolox_nano.onnx"
    path.write_bytes(b"\x00garbage, not a protobuf" * 10)
    with pytest.raises(DetectorUnavailableError, match="is not a readable ONNX model") as error:
        detector.Detector(path)
    assert str(path) in str(error.value) and detector.RELEASE_URL in str(error.value)
    with pytest.raises(DetectorUnavailableError, match="cannot read the detector model"):
        detector.Detector(tmp_path / "missing.onnx")


def test_the_environment_variable_wins(cache, monkeypatch):
    monkeypatch.setenv(detector.DETECTOR_ENV, str(MODEL_FILE))
    assert detector.detector_path() == MODEL_FILE
    loaded = detector.load_detector()
    assert loaded is detector.load_detector(MODEL_FILE)
    assert loaded.fingerprint == "d39bee73564e3380"     # README's sha256
    assert not cache.exists()


def test_the_environment_variable_naming_a_missing_file_is_an_error(cache, monkeypatch, tmp_path):
    monkeypatch.setenv(detector.DETECTOR_ENV, str(tmp_path / "nowhere.onnx"))
    with pytest.raises(DetectorUnavailableError, match="PHOTO_CAPTIONS_DETECTOR=.*nowhere.onnx.*no such file"):
        detector.detector_path()


def test_no_file_and_no_network_is_one_clear_error(cache):
    with pytest.raises(DetectorUnavailableError) as error:
        detector.detector_path()
    message = str(error.value)
    for part in (UNREACHABLE_URL, str(cache / "yolox_nano.onnx"), "PHOTO_CAPTIONS_DETECTOR", "by hand"):
        assert part in message
    assert list(cache.iterdir()) == []                     # nothing half-written left behind


def test_a_cached_file_that_no_longer_matches_its_manifest_is_not_used(cache):
    cache.mkdir()
    shutil.copyfile(MODEL_FILE, cache / "yolox_nano.onnx")   # as if put there by hand: adopted
    assert detector.detector_path() == cache / "yolox_nano.onnx"
    manifest = json.loads((cache / "yolox_nano.json").read_text(encoding="utf-8"))
    assert manifest["sha256"].startswith("d39bee73564e3380") and manifest["size"] == 3_713_911
    assert detector.detector_path() == cache / "yolox_nano.onnx"   # now through its manifest

    with open(cache / "yolox_nano.onnx", "ab") as file:             # changed after caching
        file.write(b"\x00")
    with pytest.raises(DetectorUnavailableError, match="no valid cached copy.*downloading"):
        detector.detector_path()                                    # a new download was tried
    assert list(cache.iterdir()) == []                              # the stale pair was removed


def _serve(folder: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_checks_the_model_and_caches_it_atomically(cache, monkeypatch, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(MODEL_FILE, served / "yolox_nano.onnx")
    (served / "identity.onnx").write_bytes(identity_onnx([1, 3, 416, 416]))
    server = _serve(served)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setattr(detector, "RELEASE_URL", f"{base}/identity.onnx")
        with pytest.raises(DetectorUnavailableError, match="downloaded .*identity.onnx, but it is not"):
            detector.detector_path()
        assert list(cache.iterdir()) == []

        monkeypatch.setattr(detector, "RELEASE_URL", f"{base}/yolox_nano.onnx")
        assert detector.detector_path() == cache / "yolox_nano.onnx"
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(path.name for path in cache.iterdir()) == ["yolox_nano.json", "yolox_nano.onnx"]
    manifest = json.loads((cache / "yolox_nano.json").read_text(encoding="utf-8"))
    assert manifest["source"].endswith("/yolox_nano.onnx") and manifest["size"] == 3_713_911
    assert detector.load_detector().sha256 == manifest["sha256"]
