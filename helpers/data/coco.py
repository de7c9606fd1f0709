"""Caption datasets as one list of `ImageRecord`s: MS COCO (2014/2017), Karpathy splits, Flickr8k/30k.

COCO is read through the official `pycocotools.coco.COCO` index; Flickr's `*.token.txt` files and
the Karpathy split lists are plain text. Every loader raises `DatasetError` (a `ValueError`) naming
the file and the layout it expected when a file is missing, truncated or not what it should be,
and logs (never raises) the recoverable oddities of real data: images without captions, image
files not on disk, requested ids that are not in the split.

Expected COCO layout (see data/README.md):

    <root>/annotations/captions_<split>.json     required
    <root>/annotations/instances_<split>.json    optional (object categories per image)
    <root>/<split>/<file_name>                   the images, e.g. <root>/val2017/000000397133.jpg
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from pycocotools.coco import COCO

logger = logging.getLogger(__name__)

README_HINT = "see data/README.md"


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or not in the expected format.

    The message names the file and the layout that was expected.
    """


@dataclasses.dataclass
class ImageRecord:
    """One image and its reference captions.

    Attributes:
        image_id: dataset image id (COCO `id`; Flickr photo id, the number before `_` or `.`).
        file_name: file name as the annotation gives it (e.g. `000000397133.jpg`).
        path: where the image file is expected (it may not exist when only captions were fetched).
        width, height: image size in pixels as annotated (0: unknown, e.g. Flickr).
        captions: reference captions, whitespace-stripped, annotation order.
        categories: COCO instance category names on the image, sorted, unique (empty without an
            instances file).
        split: split name (`val2017`, `train2014`, `train` for Flickr's trainImages list, ...).
        instance_counts: category name -> instances large enough to count (COCO captions read by
            `helpers.data.caption_text` with their instances file); empty when unknown.
    """

    image_id: int
    file_name: str
    path: Path
    width: int
    height: int
    captions: list[str]
    categories: list[str]
    split: str
    instance_counts: dict[str, int] = dataclasses.field(default_factory=dict)


# --- COCO -----------------------------------------------------------------------------------------
def _read_json(path: Path, expected: str):
    """json.load with errors that name the file and the layout expected."""
    if not path.is_file():
        raise DatasetError(f"expected {expected} at {path}, but it does not exist; {README_HINT}")
    try:
        with path.open("rb") as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(
            f"{path} is not valid JSON ({error}); the file may be truncated: download it again "
            f"(expected {expected}; {README_HINT})") from error


def _coco_index(path: Path, kind: str) -> COCO:
    """Build a `pycocotools.coco.COCO` index of a captions or instances file, checking its layout."""
    expected = f"an official COCO {kind} file with 'images' and 'annotations' lists"
    data = _read_json(path, expected)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{path} is not {expected} (found {found}); {README_HINT}")
    required = {"captions": ("image_id", "caption"), "instances": ("image_id", "category_id")}[kind]
    for annotation in data["annotations"][:1]:
        if not isinstance(annotation, dict) or any(key not in annotation for key in required):
            raise DatasetError(f"{path}: annotations must have keys {list(required)} "
                               f"(found {annotation!r:.200}); expected {expected}")
    if kind == "instances" and not isinstance(data.get("categories"), list):
        raise DatasetError(f"{path} has no 'categories' list; expected {expected}")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


def load_coco(root: str | Path, split: str = "val2017", image_ids: Iterable[int] | None = None,
              *, keep_uncaptioned: bool = False) -> list[ImageRecord]:
    """Load the images of one COCO split with their captions (and categories when available).

    Args:
        root: folder with `annotations/captions_<split>.json` (required),
            `annotations/instances_<split>.json` (optional) and the images in `<split>/`.
        split: `train2017`, `val2017`, `train2014`, `val2014`, ... (file suffix and image folder).
        image_ids: only these images, in this order (e.g. a Karpathy split). Ids not in the split
            are counted and logged, not fatal (Karpathy lists mix 2014 train and val images).
        keep_uncaptioned: keep images listed in the captions file with no caption (default: they
            are left out, counted and logged).

    Returns:
        `ImageRecord`s sorted by image id (or in `image_ids` order).

    Raises:
        DatasetError: a required file is missing, is not valid JSON, or is not COCO's layout.
    """
    root = Path(root)
    annotations = root / "annotations"
    captions_path = annotations / f"captions_{split}.json"
    if not captions_path.is_file():
        raise DatasetError(
            f"expected {captions_path} (COCO layout <root>/annotations/captions_{split}.json and "
            f"images in <root>/{split}/); {README_HINT}")
    captions = _coco_index(captions_path, "captions")
    instances_path = annotations / f"instances_{split}.json"
    instances = _coco_index(instances_path, "instances") if instances_path.is_file() else None

    if image_ids is None:
        wanted = sorted(captions.imgs)
    else:
        wanted = [int(i) for i in image_ids]
        unknown = [i for i in wanted if i not in captions.imgs]
        if unknown:
            logger.warning("%d of %d requested image ids are not in %s (e.g. %s); skipped",
                           len(unknown), len(wanted), captions_path.name, unknown[:3])
        wanted = [i for i in wanted if i in captions.imgs]

    records, uncaptioned, missing_files = [], 0, 0
    for image_id in wanted:
        image = captions.imgs[image_id]
        texts = [annotation["caption"].strip() for annotation in captions.imgToAnns.get(image_id, [])]
        texts = [text for text in texts if text]
        if not texts:
            uncaptioned += 1
            if not keep_uncaptioned:
                continue
        categories: list[str] = []
        if instances is not None:
            category_ids = {a["category_id"] for a in instances.imgToAnns.get(image_id, [])}
            categories = sorted({instances.cats[i]["name"] for i in category_ids})
        path = root / split / image["file_name"]
        if not path.is_file():
            missing_files += 1
        records.append(ImageRecord(
            image_id=image_id, file_name=image["file_name"], path=path,
            width=int(image.get("width", 0)), height=int(image.get("height", 0)),
            captions=texts, categories=categories, split=split,
        ))
    if uncaptioned:
        logger.warning("%d images in %s have no caption%s", uncaptioned, captions_path.name,
                       "" if keep_uncaptioned else "; left out")
    if missing_files:
        logger.warning("%d of %d image files are not under %s (captions still loaded; download "
                       "the images to train or caption them; %s)", missing_files, len(records),
                       root / split, README_HINT)
    return records


# --- Karpathy splits ------------------------------------------------------------------------------
def load_karpathy_split(path: str | Path, split: str | None = None) -> list[int] | list[str]:
    """Image ids (COCO) or file names (Flickr) of a Karpathy/standard split.

    Accepted formats:
        * `karpathy_{train,val,test}_images.txt` (bottom-up-attention): lines
          `val2014/COCO_val2014_000000253964.jpg 253964` -> COCO image ids (`int`).
        * a list of file names, one per line (`Flickr_8k.testImages.txt`) -> names (`str`).
        * Karpathy's `dataset_coco.json` / `dataset_flickr8k.json` with `split` (`train`, `val`,
          `test`, `restval`) -> COCO ids (`cocoid`) or Flickr file names.

    Raises:
        DatasetError: the file is missing, empty, or a line/entry is in none of these formats.
    """
    path = Path(path)
    layout = ("lines '<folder>/<file>.jpg <coco id>', lines '<file>.jpg', or Karpathy's "
              "dataset_*.json with a split name")
    if path.suffix == ".json":
        data = _read_json(path, "Karpathy's dataset_*.json ({'images': [{'split', ...}]})")
        if split is None:
            raise DatasetError(f"{path} holds every split: pass split='train', 'val', 'test' or "
                               "'restval'")
        try:
            images = [image for image in data["images"] if image["split"] == split]
            if images and "cocoid" in images[0]:
                return [int(image["cocoid"]) for image in images]
            return [image["filename"] for image in images]
        except (KeyError, TypeError) as error:
            raise DatasetError(f"{path} is not Karpathy's dataset_*.json (missing {error}); "
                               f"expected {layout}") from error
    if not path.is_file():
        raise DatasetError(f"split list {path} does not exist; expected {layout}")
    ids: list[int] = []
    names: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 2 and fields[1].isdigit():
            ids.append(int(fields[1]))
        elif len(fields) == 1:
            names.append(fields[0])
        else:
            raise DatasetError(f"{path}, line {number}: {line!r} is not in the expected format "
                               f"({layout})")
    if ids and names:
        raise DatasetError(f"{path} mixes '<file> <id>' lines and bare file names; expected {layout}")
    if not ids and not names:
        raise DatasetError(f"split list {path} is empty; expected {layout}")
    return ids or names


# --- Flickr8k / Flickr30k -------------------------------------------------------------------------
# "1000268201_693b08cb0e.jpg#0<TAB>caption"; Flickr8k has one "2258277193_586949ec62.jpg.1#0".
_TOKEN_LINE = re.compile(r"^(?P<name>[^#\t]+?\.jpe?g)(?:\.\d+)?#(?P<index>\d+)\t(?P<caption>.*)$",
                         re.IGNORECASE)
_SPLIT_NAME = re.compile(r"(train|dev|val|test)", re.IGNORECASE)


def _flickr_image_id(name: str) -> int | None:
    """Flickr photo id: the digits before `_` (Flickr8k) or `.` (Flickr30k)."""
    head = re.split(r"[_.]", name, maxsplit=1)[0]
    return int(head) if head.isdigit() else None


def load_flickr(token_file: str | Path, split_file: str | Path | None = None,
                images_dir: str | Path | None = None) -> list[ImageRecord]:
    """Load Flickr8k or Flickr30k captions (`Flickr8k.token.txt`, `results_20130124.token`).

    Args:
        token_file: lines `<image>.jpg#<n>\\t<caption>` (5 captions per image).
        split_file: optional list of image file names (e.g. `Flickr_8k.trainImages.txt`): only
            these images, in this order; the record split is `train`/`dev`/`val`/`test` from its
            name. Names without captions are counted and logged.
        images_dir: folder of the JPEGs (default: the token file's folder); only used for `path`.

    Returns:
        `ImageRecord`s; `width`/`height` are 0 (unknown) and `categories` empty.

    Raises:
        DatasetError: a file is missing or a line is not `<name>.jpg#<n><TAB><caption>`.
    """
    token_file = Path(token_file)
    if not token_file.is_file():
        raise DatasetError(f"Flickr caption file {token_file} does not exist; expected lines "
                           f"'<image>.jpg#<n><TAB><caption>' ({README_HINT})")
    images_dir = Path(images_dir) if images_dir is not None else token_file.parent
    captions: dict[str, list[str]] = {}
    with token_file.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            match = _TOKEN_LINE.match(line)
            if match is None:
                raise DatasetError(f"{token_file}, line {number}: {line[:80]!r} is not "
                                   "'<image>.jpg#<n><TAB><caption>' (Flickr8k/30k token format)")
            caption = match["caption"].strip()
            if caption:
                captions.setdefault(match["name"], []).append(caption)

    split = "flickr"
    names = list(captions)
    if split_file is not None:
        split_file = Path(split_file)
        wanted = load_karpathy_split(split_file)
        if not all(isinstance(name, str) for name in wanted):
            raise DatasetError(f"{split_file} lists COCO ids; a Flickr split lists file names")
        found = _SPLIT_NAME.search(split_file.name)
        split = found[1].lower() if found else split_file.stem
        absent = [name for name in wanted if name not in captions]
        if absent:
            logger.warning("%d of %d images in %s have no caption in %s (e.g. %s); skipped",
                           len(absent), len(wanted), split_file.name, token_file.name, absent[:3])
        names = [name for name in wanted if name in captions]

    ids = {name: _flickr_image_id(name) for name in captions}
    if None in ids.values() or len(set(ids.values())) < len(ids):  # fall back to positions
        ids = {name: position for position, name in enumerate(captions, start=1)}
    return [ImageRecord(image_id=ids[name], file_name=name, path=images_dir / name, width=0,
                        height=0, captions=captions[name], categories=[], split=split)
            for name in names]


def load_instance_boxes(root: str | Path, split: str = "val2017",
                        image_ids: Iterable[int] | None = None) -> dict[int, list[tuple[str, list[float]]]]:
    """Object boxes per image from `<root>/annotations/instances_<split>.json`.

    Returns:
        `{image_id: [(category name, [x, y, width, height]), ...]}`, boxes in image pixels, in
        annotation order (`helpers.plots.plot_image_grid` draws them).

    Raises:
        DatasetError: the instances file is missing, not valid JSON, or not COCO's layout.
    """
    path = Path(root) / "annotations" / f"instances_{split}.json"
    instances = _coco_index(path, "instances")
    wanted = sorted(instances.imgs) if image_ids is None else [int(i) for i in image_ids]
    return {image_id: [(instances.cats[a["category_id"]]["name"], [float(v) for v in a["bbox"]])
                       for a in instances.imgToAnns.get(image_id, [])]
            for image_id in wanted}


def captions_count(records: Iterable[ImageRecord]) -> int:
    """Total number of captions over `records`."""
    return sum(len(record.captions) for record in records)
