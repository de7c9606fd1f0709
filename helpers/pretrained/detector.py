"""YOLOX-Nano, a COCO object detector (80 categories), run on the CPU with onnxruntime.

YOLOX (Ge et al. 2021, "YOLOX: Exceeding YOLO Series in 2021", arXiv:2107.08430), Nano size:
0.91 M parameters, 1.08 GFLOPs at 416 x 416, 25.8 COCO val AP (the authors' table). Megvii's
weights (Apache-2.0), exported to ONNX. Reading an ONNX file runs no code (a protobuf graph).

    photo uint8 [H, W, 3] RGB
        -> `letterbox`: resize by r = min(416 / H, 416 / W), top-left on a 416 x 416 canvas of 114,
           BGR, NCHW                                              uint8 [1, 3, 416, 416]
        -> the network (float32 0..255 in, no mean/std)           float32 [1, 3549, 85]
        -> `decode_outputs`: grid decoding, score = objectness x class score, boxes / r,
           per-class greedy non-maximum suppression at IoU 0.45   `Detections`

Each grid cell keeps its best category only (argmax), as YOLOX's class-agnostic demo does: this
reproduces the reference detections of all 159 coco-mini photos.

The model file (`detector_path`): `$PHOTO_CAPTIONS_DETECTOR` if set; else
`$PHOTO_CAPTIONS_CACHE/yolox_nano.onnx` (default `~/.cache/photo-captions/`) when its manifest
`yolox_nano.json` (source, sha256, size) matches it; else downloaded once from Megvii's release
(`RELEASE_URL`), signature-checked and saved there atomically (temporary file, then `os.replace`).

Photos: `load_photo` decodes a file once, upright RGB, for both this detector and the 224-pixel
ImageNet classifier (a large JPEG at reduced scale, see there). `Detector.detect` takes any RGB array.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from helpers.data import images as image_files
from helpers.pretrained import efficientnet_lite
from helpers.pretrained.efficientnet_lite import WeightsUnavailableError, cache_dir

# --- the network (YOLOX-Nano, COCO, 416 x 416) -----------------------------------------------------------
INPUT_SIZE = 416              # network input side in pixels
PAD_VALUE = 114               # grey level of the letterbox canvas (YOLOX's preproc)
STRIDES = (8, 16, 32)         # pixels per grid cell of the three output levels, in row order
NUM_CLASSES = 80              # COCO categories, `COCO_CATEGORIES` order
NUM_ROWS = sum((INPUT_SIZE // stride) ** 2 for stride in STRIDES)   # 3549 grid cells
ROW_SIZE = 5 + NUM_CLASSES    # dx, dy, log w, log h, objectness, class scores
DEFAULT_MIN_SCORE = 0.25      # keep detections with objectness x class score above this
NMS_IOU = 0.45                # a box overlapping a better one of its class above this IoU is dropped
CLASSIFIER_SHORT_SIDE = 256   # the ImageNet crop needs 224 / 0.875 pixels on the short side

# The 80 COCO categories (instances_val2017.json, sorted by category id) = output columns 5..84.
COCO_CATEGORIES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis",
    "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)

# --- the model file ------------------------------------------------------------------------------------
RELEASE_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
DETECTOR_ENV = "PHOTO_CAPTIONS_DETECTOR"   # path of a yolox_nano.onnx to use instead of the cache
CACHE_MODEL_NAME = "yolox_nano.onnx"
CACHE_MANIFEST_NAME = "yolox_nano.json"
DOWNLOAD_TIMEOUT = 30.0       # seconds without an answer before the download gives up


class DetectorUnavailableError(WeightsUnavailableError):
    """The detector's ONNX file could not be found, downloaded or read, or is another network."""


# --- photos ----------------------------------------------------------------------------------------------
def load_photo(path: str | os.PathLike, max_pixels: int | None = -1) -> np.ndarray:
    """`load_photo_and_scale(path, max_pixels)[0]`: the photo as the detector and the classifier see it."""
    return load_photo_and_scale(path, max_pixels)[0]


def load_photo_and_scale(path: str | os.PathLike, max_pixels: int | None = -1) -> tuple[np.ndarray, float]:
    """A photo decoded once for both the detector and the ImageNet classifier: upright RGB.

    As `helpers.data.images.load_image(path)` (bomb guard, EXIF orientation, every mode to RGB), but
    a JPEG is decoded at reduced scale (DCT scaling by 1/2, 1/4 or 1/8) while its long side stays
    >= 416 (`letterbox` only shrinks) and its short side >= 256 (the classifier's 224 centre crop:
    `helpers.predict.batches.pixels_of_array(photo, 224, "center")`). A 4000 x 3000 JPEG comes out
    500 x 375, about 3x faster; one under 832 pixels is decoded in full (COCO photos: the exact
    reference input). From a reduced decode, scores move by up to ~0.04 (another resize filter).

    Args: `path`, any picture Pillow reads; `max_pixels` as `load_image`.

    Returns:
        `(pixels, scale)`: uint8 `[height, width, 3]` RGB pixels, upright as a viewer shows the
        photo, and the factor from their coordinates to the full-size photo's (1.0 when decoded in
        full; 2, 4 or 8 after DCT scaling): a box found on `pixels` times `scale` is a box in the
        photo (`helpers.data.images.load_image(path)`).

    Raises:
        helpers.data.images.ImageLoadError: the file cannot be read as a picture (`.reason` says why).
    """
    path = Path(path)
    image = image_files._open(path, image_files.default_max_pixels() if max_pixels == -1 else max_pixels)
    with image:
        full_width = image.width                      # as stored, before any reduced decode
        if image.format == "JPEG":                    # sides as stored: an EXIF rotation swaps both
            sides = (INPUT_SIZE, CLASSIFIER_SHORT_SIDE)
            image.draft("RGB", sides if image.width >= image.height else sides[::-1])
        try:
            image.load()
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise image_files.ImageLoadError(path, f"truncated or corrupt image data ({error})") from None
        except MemoryError:
            raise image_files.ImageLoadError(path, "too large: not enough memory to decode it") from None
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception as error:  # noqa: BLE001 - malformed EXIF must not lose the photo
            warnings.warn(f"{path}: EXIF orientation unreadable ({error}); kept as stored", stacklevel=2)
            upright = image
        scale = full_width / image.width              # the same factor on both sides (DCT scaling)
        try:
            return np.asarray(image_files._to_rgb(upright), dtype=np.uint8), scale
        except (OSError, ValueError) as error:
            raise image_files.ImageLoadError(path, f"unsupported format: cannot convert {image.format} "
                                                   f"mode {upright.mode!r} to RGB ({error})") from None


def letterbox(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The network input of a photo (YOLOX's `preproc`, Ge et al. 2021, with Pillow's resize).

    The photo is resized by `r = min(416 / height, 416 / width)` to `int(width * r) x
    int(height * r)` pixels with Pillow's (antialiased) bilinear filter, pasted at the top-left of a
    416 x 416 canvas of grey 114, and reordered to BGR, channels first. YOLOX's demo resizes with
    OpenCV's `INTER_LINEAR`: a few grey levels apart, ~1e-2 in scores.

    Args: `rgb` uint8 `[height, width, 3]` RGB pixels (e.g. `load_photo`). Returns `(network_input,
    r)`: uint8 `[1, 3, 416, 416]` BGR pixels and the ratio r (network pixels per photo pixel).

    Raises:
        ValueError: `rgb` is not a uint8 `[height, width, 3]` array with both sides >= 1.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise ValueError(f"the detector takes uint8 [height, width, 3] RGB photos, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    ratio = min(INPUT_SIZE / height, INPUT_SIZE / width)
    new_width, new_height = max(1, int(width * ratio)), max(1, int(height * ratio))
    resized = rgb
    if (new_width, new_height) != (width, height):
        resized = np.asarray(Image.fromarray(rgb).resize((new_width, new_height), Image.Resampling.BILINEAR))
    canvas = np.full((INPUT_SIZE, INPUT_SIZE, 3), PAD_VALUE, dtype=np.uint8)           # (416, 416, 3)
    canvas[:new_height, :new_width] = resized
    network_input = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None])  # (1, 3, 416, 416)
    return network_input, ratio


# --- decoding --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Detections:
    """The objects found on one photo, best first.

    Attributes:
        boxes: float32 `[N, 4]`, `(x1, y1, x2, y2)` in photo pixels (not clipped to the photo).
        scores: float32 `[N]`, objectness x class score in (0, 1], decreasing.
        labels: int64 `[N]`, category ids 0..79 (`COCO_CATEGORIES`).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def categories(self) -> tuple[str, ...]:
        """The category name of each detection, `COCO_CATEGORIES[label]`."""
        return tuple(COCO_CATEGORIES[label] for label in self.labels)

    def counts(self, min_score: float = DEFAULT_MIN_SCORE) -> dict[str, int]:
        """`{category: number of detections with score >= min_score}`, most frequent first."""
        names, numbers = np.unique(self.labels[self.scores >= min_score], return_counts=True)
        order = np.argsort(-numbers, kind="stable")
        return {COCO_CATEGORIES[names[i]]: int(numbers[i]) for i in order}

    def max_scores(self) -> dict[str, float]:
        """`{category: its best score}`, best first."""
        best: dict[str, float] = {}
        for label, score in zip(self.labels, self.scores):   # already best first
            best.setdefault(COCO_CATEGORIES[label], float(score))
        return best


@functools.cache
def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Cell offsets float32 `[3549, 2]` (x, y) and strides float32 `[3549, 1]`, in output row order."""
    offsets, strides = [], []
    for stride in STRIDES:
        cells = INPUT_SIZE // stride
        y, x = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")        # row-major: y, then x
        offsets.append(np.stack([x.ravel(), y.ravel()], axis=1))                      # (cells², 2)
        strides.append(np.full((cells * cells, 1), stride))
    return np.concatenate(offsets).astype(np.float32), np.concatenate(strides).astype(np.float32)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pair: float `[A, 4]`, `[B, 4]` `(x1, y1, x2, y2)` -> `[A, B]`."""
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])                # (A, B, 2)
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])            # (A, B, 2)
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)        # (A, B)
    area_a = np.prod(boxes_a[:, 2:] - boxes_a[:, :2], axis=1)                         # (A,)
    area_b = np.prod(boxes_b[:, 2:] - boxes_b[:, :2], axis=1)                         # (B,)
    union = area_a[:, None] + area_b[None, :] - intersection
    return intersection / np.maximum(union, np.finfo(np.float32).tiny)


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                        iou_threshold: float = NMS_IOU) -> np.ndarray:
    """Greedy per-class non-maximum suppression, vectorised; indices of the kept boxes, best first.

    Greedy NMS keeps a box unless a kept box of its class with a higher score overlaps it with
    IoU > `iou_threshold`. Per class, with boxes by decreasing score, `suppresses[i, j]` says box i
    would drop box j; `keep = no kept box suppresses it` is solved by iterating from all-kept: each
    pass fixes at least the next box in score order, and the first repeat is the unique solution,
    i.e. the greedy result. Passes = longest chain of suppressions + 1 (2-4 on photos).

    Args: boxes float `[N, 4]` `(x1, y1, x2, y2)`, scores float `[N]`, labels int `[N]`; returns int64
    `[K]` indices into them, by decreasing score (ties: input order).
    """
    kept = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[np.argsort(-scores[members], kind="stable")]                  # (n,) best first
        suppresses = np.triu(box_iou(boxes[members], boxes[members]) > iou_threshold, k=1)  # (n, n)
        keep = np.ones(len(members), dtype=bool)
        while True:
            update = ~(suppresses & keep[:, None]).any(axis=0)
            if np.array_equal(update, keep):
                break
            keep = update
        kept.append(members[keep])
    kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return kept[np.argsort(-scores[kept], kind="stable")].astype(np.int64)


def decode_outputs(output: np.ndarray, ratio: float, min_score: float = DEFAULT_MIN_SCORE) -> Detections:
    """Raw network output -> detections in photo pixels (YOLOX's `decode_in_inference` and demo NMS).

    Per grid cell: centre `(dx + x, dy + y) * stride`, size `exp(log w, log h) * stride`, score =
    objectness x best class score (one category per cell), kept when score > `min_score`; boxes are
    divided by `ratio`, then `non_max_suppression` per category at IoU `NMS_IOU`.

    Args:
        output: float32 `[1, 3549, 85]` or `[3549, 85]`; ratio: the photo's `letterbox` ratio r;
        min_score: scores strictly above it are kept.

    Returns `Detections`, best first. Raises `ValueError` for an output of another shape.
    """
    output = np.asarray(output, dtype=np.float32)
    if output.shape not in ((1, NUM_ROWS, ROW_SIZE), (NUM_ROWS, ROW_SIZE)):
        raise ValueError(f"YOLOX-Nano output must be [1, {NUM_ROWS}, {ROW_SIZE}], got {list(output.shape)}")
    output = output.reshape(NUM_ROWS, ROW_SIZE)                                        # (3549, 85)
    class_scores = output[:, 4:5] * output[:, 5:]                                       # (3549, 80)
    labels = class_scores.argmax(axis=1)                                                # (3549,)
    scores = class_scores[np.arange(NUM_ROWS), labels]                                  # (3549,)
    rows = np.flatnonzero(scores > min_score)                                           # (n,)
    offsets, strides = _grid()
    centres = (output[rows, 0:2] + offsets[rows]) * strides[rows]                       # (n, 2) network px
    sizes = np.exp(output[rows, 2:4]) * strides[rows]                                   # (n, 2)
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / np.float32(ratio)  # (n, 4)
    keep = non_max_suppression(boxes, scores[rows], labels[rows])
    return Detections(boxes=boxes[keep].astype(np.float32), scores=scores[rows][keep].astype(np.float32),
                      labels=labels[rows][keep].astype(np.int64))


# --- the detector ----------------------------------------------------------------------------------------
class Detector:
    """YOLOX-Nano in an onnxruntime CPU session.

    Args: `path` of the `.onnx` file (e.g. `detector_path()`); `threads`: onnxruntime intra-op
    threads (None: its default, one per core). Attributes: `path`, `sha256` (hex) of the file, and
    `fingerprint`, its first 16 hex digits, to key caches of detections.

    Raises:
        DetectorUnavailableError: the file is missing, not a readable ONNX model, or its signature is
            not one float input `[1, 3, 416, 416]` and one output `[1, 3549, 85]`.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime

        self.path = Path(path)
        try:
            model = self.path.read_bytes()
        except OSError as error:
            raise DetectorUnavailableError(f"cannot read the detector model {self.path}: {error}") from None
        self.sha256 = hashlib.sha256(model).hexdigest()
        self.fingerprint = self.sha256[:16]
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            raise DetectorUnavailableError(
                f"{self.path} ({len(model):,} bytes) is not a readable ONNX model: {str(error).strip()[:300]}; "
                f"replace it with YOLOX-Nano's yolox_nano.onnx ({RELEASE_URL})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        found = [(node.name, node.shape, node.type) for node in inputs + outputs]
        if not (len(inputs) == 1 and len(outputs) == 1 and inputs[0].type == "tensor(float)"
                and list(inputs[0].shape) == [1, 3, INPUT_SIZE, INPUT_SIZE]
                and list(outputs[0].shape) == [1, NUM_ROWS, ROW_SIZE]):
            raise DetectorUnavailableError(
                f"{self.path} is not YOLOX-Nano for 416 x 416 photos: expected one float input "
                f"[1, 3, {INPUT_SIZE}, {INPUT_SIZE}] and one output [1, {NUM_ROWS}, {ROW_SIZE}], found "
                f"{len(inputs)} input(s) and {len(outputs)} output(s) (name, shape, type): {found}")
        self.input_name = inputs[0].name

    def __repr__(self) -> str:
        return f"Detector({str(self.path)!r}, fingerprint={self.fingerprint!r})"

    def run(self, network_input: np.ndarray) -> np.ndarray:
        """The raw network: uint8 or float `[1, 3, 416, 416]` BGR 0..255 -> float32 `[1, 3549, 85]`."""
        feed = {self.input_name: np.asarray(network_input, dtype=np.float32)}
        return self.session.run(None, feed)[0]

    def detect(self, rgb: np.ndarray, min_score: float = DEFAULT_MIN_SCORE) -> Detections:
        """Objects on one photo: uint8 `[H, W, 3]` RGB -> `Detections` in its pixels, best first.

        Raises:
            ValueError: as `letterbox`.
        """
        network_input, ratio = letterbox(rgb)
        return decode_outputs(self.run(network_input), ratio, min_score)

    def detect_batch(self, photos: list[np.ndarray], min_score: float = DEFAULT_MIN_SCORE) -> list[Detections]:
        """`detect` on each photo (the network has a fixed batch of 1)."""
        return [self.detect(rgb, min_score) for rgb in photos]


# --- finding the model file ------------------------------------------------------------------------------
def _valid_cache(model_file: Path, manifest_file: Path) -> bool:
    """Whether the manifest records this very file (sha256 and size)."""
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        return (isinstance(manifest, dict) and manifest.get("size") == model_file.stat().st_size
                and manifest.get("sha256") == efficientnet_lite._sha256(model_file))
    except (OSError, ValueError):
        return False


def _write_manifest(manifest_file: Path, source: str, model: Detector) -> None:
    text = json.dumps({"source": source, "sha256": model.sha256, "size": model.path.stat().st_size}, indent=2)
    efficientnet_lite._atomic_write(manifest_file, lambda path: path.write_text(text + "\n", encoding="utf-8"))


def _download(url: str, model_file: Path) -> None:
    """`url` -> temporary file beside `model_file` -> signature check -> `os.replace` -> manifest.

    Raises:
        OSError, urllib.error.URLError, http.client.HTTPException: network or disk failure.
        DetectorUnavailableError: what came is not YOLOX-Nano.
    """
    def fetch(temporary: Path) -> None:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response, open(temporary, "wb") as file:
            shutil.copyfileobj(response, file)
        Detector(temporary)                                                # signature check, before the rename

    model_file.parent.mkdir(parents=True, exist_ok=True)
    efficientnet_lite._atomic_write(model_file, fetch)
    _write_manifest(model_file.with_name(CACHE_MANIFEST_NAME), url, Detector(model_file))


def detector_path() -> Path:
    """The YOLOX-Nano `.onnx` file: `$PHOTO_CAPTIONS_DETECTOR`, else the cache, else downloaded.

    Order as in the module docstring. A cached file whose manifest does not match it (edited,
    truncated, replaced) is deleted and downloaded again; one without a manifest (put there by hand)
    is checked and adopted. Returns the file to pass to `Detector`.

    Raises:
        DetectorUnavailableError: the variable names a missing file, a hand-placed file is not
            YOLOX-Nano, or the download failed (one message: the URL, the cache path and the variable).
    """
    variable = os.environ.get(DETECTOR_ENV)
    if variable:
        path = Path(variable).expanduser()
        if not path.is_file():
            raise DetectorUnavailableError(
                f"{DETECTOR_ENV}={variable} but there is no such file; point it at a yolox_nano.onnx "
                f"({RELEASE_URL}) or unset it to use the cached copy in {cache_dir()}")
        return path
    model_file, manifest_file = cache_dir() / CACHE_MODEL_NAME, cache_dir() / CACHE_MANIFEST_NAME
    if model_file.is_file() and _valid_cache(model_file, manifest_file):
        return model_file
    if model_file.is_file() and not manifest_file.exists():                 # put there by hand
        model = Detector(model_file)
        try:
            _write_manifest(manifest_file, "placed by hand", model)
        except OSError as error:                                            # read-only cache: still usable
            warnings.warn(f"could not write {manifest_file} ({error})", stacklevel=2)
        return model_file
    for stale in (model_file, manifest_file):               # an invalid cache is never used, even by hand
        with contextlib.suppress(OSError):
            stale.unlink(missing_ok=True)
    url = RELEASE_URL
    try:
        _download(url, model_file)
    except DetectorUnavailableError as error:                              # it came, but is wrong
        raise DetectorUnavailableError(f"downloaded {url}, but it is not the expected model: {error}; "
                                       f"set {DETECTOR_ENV} to the path of a yolox_nano.onnx") from None
    except Exception as error:  # noqa: BLE001 - URLError, HTTPException, timeouts, disk errors
        raise DetectorUnavailableError(
            f"the YOLOX-Nano detector model is not available: {DETECTOR_ENV} is not set, there is no valid "
            f"cached copy at {model_file}, and downloading {url} failed ({type(error).__name__}: {error}). "
            f"Download that file by hand and save it as {model_file}, or set {DETECTOR_ENV} to the path "
            f"of a yolox_nano.onnx") from None
    return model_file


@functools.lru_cache(maxsize=4)
def _cached_detector(path: Path, size: int, modified_ns: int, threads: int | None) -> Detector:
    return Detector(path, threads=threads)


def load_detector(path: str | os.PathLike | None = None, threads: int | None = None) -> Detector:
    """A `Detector` of `path` (None: `detector_path()`), shared while the file and `threads` are
    unchanged (`threads`: onnxruntime intra-op threads, None: one per core).

    Raises:
        DetectorUnavailableError: as `detector_path` and `Detector`.
    """
    path = Path(path) if path is not None else detector_path()
    try:
        status = path.resolve().stat()
    except OSError as error:
        raise DetectorUnavailableError(f"cannot read the detector model {path}: {error}") from None
    return _cached_detector(path.resolve(), status.st_size, status.st_mtime_ns, threads)
