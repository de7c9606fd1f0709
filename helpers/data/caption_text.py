"""Caption text without photos: the training corpus of the concept decoder.

A source is one caption file, in either format the project reads:

- a COCO captions JSON (`captions_train2017.json` from COCO's annotations archive, 414k captions;
  `../shared/data/coco-val2014-captions-4800/captions_val2014_subset4800.json`); when an
  `instances_<same suffix>.json` lies beside it, each image also gets its COCO instance counts;
- a Flickr8k / Flickr30k token file (`Flickr8k.token.txt`: `<image>.jpg#<n><TAB><caption>`);
- a Multi30K task-1 folder (`train.en.gz`, `train.fr.gz`, `train.de.gz`, `train.images.txt`;
  `helpers.data.multi30k`): its training split, one description per Flickr30K photo, line-parallel
  in English, French and German. The concepts of a French or German description come from its
  English sentence (`load_parallel_caption_text`): no translation anywhere.

Flickr photo ids (Flickr8k and Multi30K, the same photos when both have them) are offset by
`FLICKR_ID_OFFSET`, so they never meet a COCO id; the captions of one photo from several sources
are merged.

`load_caption_text` reads several into one list of `ImageRecord`s (image ids must not collide
between sources), `excluded_image_ids` gives the ids of photos that must never be trained on
(the benchmark photos of coco-mini: val2017 ids are val2014 ids, so their captions are in the
val2014 files), and `caption_text_sources` / `excluded_sources` resolve the settings, with the
environment variables `PHOTO_CAPTIONS_TEXT` and `PHOTO_CAPTIONS_EXCLUDE` (comma-separated paths;
the Makefile, tests and benchmarks point them at `../shared` when it is there).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

from helpers.data.coco import DatasetError, ImageRecord, load_flickr

TEXT_VARIABLE = "PHOTO_CAPTIONS_TEXT"
MULTI30K_VARIABLE = "PHOTO_CAPTIONS_MULTI30K"     # a Multi30K folder: the text of French and German decoders
FLICKR_ID_OFFSET = 10**10
EXCLUDE_VARIABLE = "PHOTO_CAPTIONS_EXCLUDE"
MIN_INSTANCE_AREA = 0.01     # an instance counts when it covers >= 1 % of the photo (what a detector finds)
DOWNLOAD_HINT = ("download COCO's annotations (http://images.cocodataset.org/annotations/"
                 "annotations_trainval2017.zip, 241 MB: captions_train2017.json is inside) or Flickr8k's "
                 f"text, and name the files with caption_text=... or {TEXT_VARIABLE}=file1,file2")


def _paths(value: str | Sequence[str] | None) -> list[Path]:
    if value is None or value == "":
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [Path(item.strip()).expanduser() for item in items if str(item).strip()]


def caption_text_sources(value: str | Sequence[str] | None = None, language: str = "eng") -> list[Path]:
    """The caption files (or Multi30K folders) to train on: `value` (comma-separated), else
    `$PHOTO_CAPTIONS_TEXT` for English and `$PHOTO_CAPTIONS_MULTI30K` for another language.

    Raises:
        DatasetError: none is given, or a named file does not exist (says what to download).
    """
    variable = TEXT_VARIABLE if language in ("eng", "en") else MULTI30K_VARIABLE
    paths = _paths(value) or _paths(os.environ.get(variable))
    if not paths:
        hint = DOWNLOAD_HINT if variable == TEXT_VARIABLE else (
            f"captions in {language} come from Multi30K (github.com/multi30k/dataset, data/task1/raw: "
            f"train.en.gz, train.{language[:2]}.gz, and image_splits/train.txt as train.images.txt); name its "
            f"folder with caption_text=... or {MULTI30K_VARIABLE}=folder")
        raise DatasetError(f"no caption text to train the concept decoder on; {hint}")
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise DatasetError(f"caption files {missing} do not exist; {DOWNLOAD_HINT}")
    return paths


def excluded_sources(value: str | Sequence[str] | None = None) -> list[Path]:
    """COCO folders or annotation files whose photos are never trained on: `value`
    (comma-separated), else `$PHOTO_CAPTIONS_EXCLUDE`; paths that do not exist are an error."""
    paths = _paths(value) or _paths(os.environ.get(EXCLUDE_VARIABLE))
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise DatasetError(f"folders of photos to exclude {missing} do not exist")
    return paths


def excluded_image_ids(sources: Iterable[str | Path]) -> set[int]:
    """Image ids of every photo in COCO annotation files (`*.json`) or folders (their
    `annotations/*.json` and `*.json`, and the COCO-named JPEGs `000000397133.jpg` under them,
    annotated or not): the photos whose captions are never trained on.

    Raises:
        DatasetError: a file is not a COCO annotation file (no "images" list).
    """
    ids: set[int] = set()
    for source in sources:
        source = Path(source)
        if source.is_dir():
            ids.update(int(path.stem) for path in source.rglob("*.jpg") if path.stem.isdigit())
        files = ([source] if source.is_file() else
                 sorted(source.glob("annotations/*.json")) + sorted(source.glob("*.json")))
        for file in files:
            data = _read_json(file)
            if "images" not in data:
                raise DatasetError(f"{file} has no 'images' list: not a COCO annotation file")
            ids.update(int(image["id"]) for image in data["images"])
    return ids


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DatasetError(f"cannot read {path} as JSON: {error}") from error


def load_coco_captions(path: str | Path) -> list[ImageRecord]:
    """The images of a COCO captions JSON with their captions (no photo needed), sorted by id;
    with `instances_<suffix>.json` beside it, `categories` holds one name per instance covering
    at least `MIN_INSTANCE_AREA` of its photo once, and `instance_counts` their numbers.

    Raises:
        DatasetError: the file is missing, not JSON, or has no "annotations" with captions.
    """
    path = Path(path)
    data = _read_json(path)
    if "annotations" not in data or "images" not in data:
        raise DatasetError(f"{path} is not a COCO captions file (needs 'images' and 'annotations')")
    captions: dict[int, list[str]] = collections.defaultdict(list)
    for annotation in data["annotations"]:
        text = str(annotation.get("caption", "")).strip()
        if text:
            captions[int(annotation["image_id"])].append(text)
    images = {int(image["id"]): image for image in data["images"]}
    instances: dict[int, list[str]] = collections.defaultdict(list)
    instances_path = path.with_name(path.name.replace("captions_", "instances_", 1))
    if instances_path != path and instances_path.is_file():
        objects = _read_json(instances_path)
        names = {category["id"]: category["name"] for category in objects.get("categories", [])}
        for annotation in objects.get("annotations", []):
            image = images.get(int(annotation["image_id"]))
            if image is None or annotation.get("iscrowd"):
                continue
            area = float(image.get("width", 0)) * float(image.get("height", 0))
            if area and float(annotation.get("area", 0)) >= MIN_INSTANCE_AREA * area:
                instances[int(annotation["image_id"])].append(names[annotation["category_id"]])
    split = path.stem.replace("captions_", "")
    return [ImageRecord(image_id, images[image_id].get("file_name", ""), path.parent / images[image_id].get(
                            "file_name", ""), int(images[image_id].get("width", 0)),
                        int(images[image_id].get("height", 0)), captions[image_id],
                        sorted(set(instances.get(image_id, []))), split,
                        dict(collections.Counter(instances.get(image_id, []))))
            for image_id in sorted(captions) if image_id in images]


def _flickr_ids(records: list[ImageRecord]) -> list[ImageRecord]:
    for record in records:
        record.image_id += FLICKR_ID_OFFSET
    return records


def _load_source(source: Path, language: str = "eng") -> list[ImageRecord]:
    from helpers.data.multi30k import load_multi30k_captions

    if source.is_dir():
        return _flickr_ids(load_multi30k_captions(source, "train", language))
    if source.suffix == ".json":
        return load_coco_captions(source)
    return _flickr_ids(load_flickr(source))


def load_caption_text(sources: Iterable[str | Path], exclude: Iterable[int] = ()) -> list[ImageRecord]:
    """The images of several English caption sources (COCO JSON, Flickr token files, Multi30K
    folders), without the `exclude`d COCO image ids; one record per photo (a Flickr photo in two
    sources gets the captions of both), sorted by image id.

    Raises:
        DatasetError: a file cannot be read.
    """
    exclude = set(exclude)
    merged: dict[int, ImageRecord] = {}
    for source in sources:
        for record in _load_source(Path(source)):
            if record.image_id in exclude:
                continue
            if record.image_id in merged:
                merged[record.image_id].captions.extend(record.captions)
            else:
                merged[record.image_id] = record
    return [merged[image_id] for image_id in sorted(merged)]


def load_parallel_caption_text(sources: Iterable[str | Path], language: str) -> tuple[list[ImageRecord], dict]:
    """Captions in `language` ("fra", "deu", ...) and the English text their concepts come from:
    the training split of Multi30K folders, line-parallel.

    Returns:
        `(records, english)`: one record per photo with its description(s) in `language`, sorted by
        image id; `english[image_id]` the English sentence(s) of the same lines.

    Raises:
        DatasetError: a source that is not a Multi30K folder, or an unreadable file.
    """
    from helpers.data.multi30k import load_multi30k

    records: dict[int, ImageRecord] = {}
    english: dict[int, list[str]] = {}
    for source in map(Path, sources):
        if not source.is_dir():
            raise DatasetError(f"{source}: captions in {language} are read from Multi30K folders (train.en.gz "
                               f"beside train.{language[:2]}.gz), not from caption files")
        for item in load_multi30k(source, "train", ("eng", language)):
            text, parallel = item.sentences[language], item.sentences["eng"]
            if not text or not parallel:
                continue
            image_id = item.image_id + FLICKR_ID_OFFSET
            if image_id not in records:
                records[image_id] = ImageRecord(image_id, item.file_name, item.path, 0, 0, [], [], "train")
                english[image_id] = []
            records[image_id].captions.append(text)
            english[image_id].append(parallel)
    return [records[i] for i in sorted(records)], english
