"""Visual Genome (Krishna et al. 2017, v1.2/v1.4 JSON) read as a stream, one image at a time.

The official files are large (`objects.json` about 0.4 GB, `relationships.json` about 0.7 GB
unzipped) and each is one JSON list of per-image entries; `json.load` of them needs several GB.
Here `ijson.items(file, "item")` yields one image's entry at a time, so memory is bounded by the
largest image's records, not by the file (measured by `python -m bench.vgenome_memory`).

Every reader accepts:
    * the plain file (`objects.json`, `objects_v1.2.json`, ...),
    * the official download `objects.json.zip` (the member is read through `zipfile`, never
      extracted),
    * a folder holding either (`vgenome/`), the file then being chosen by its kind.

Formats (field names as in the official files; see data/README.md):
    image_data.json     [{"image_id", "url", "width", "height", "coco_id", "flickr_id"}, ...]
    objects.json        [{"image_id", "objects": [{"object_id", "x", "y", "w", "h", "names",
                                                  "synsets"}, ...]}, ...]
    attributes.json     like objects.json with key "attributes" and per-object "attributes"
    relationships.json  [{"image_id", "relationships": [{"relationship_id", "predicate",
                          "synsets", "subject": {...object, "name"}, "object": {...}}]}, ...]
    object_synsets.json {"object name": "synset.n.01", ...}
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import ijson
from tqdm.auto import tqdm

from helpers.data.coco import DatasetError

logger = logging.getLogger(__name__)

README_HINT = "see data/README.md"


@dataclasses.dataclass
class VGObject:
    """One annotated object (box in pixels of the VG image: x, y top-left; w, h size)."""

    names: list[str]
    synsets: list[str]             # WordNet synset names, e.g. ["clock.n.01"]; may be empty
    x: int
    y: int
    w: int
    h: int
    object_id: int = 0
    attributes: list[str] = dataclasses.field(default_factory=list)  # attributes.json only


@dataclasses.dataclass
class VGImageObjects:
    """The objects of one Visual Genome image."""

    image_id: int                  # Visual Genome image id (not the COCO id)
    objects: list[VGObject]


@dataclasses.dataclass
class VGRelationship:
    relationship_id: int
    predicate: str
    synsets: list[str]
    subject: VGObject
    object: VGObject


@dataclasses.dataclass
class VGImage:
    """One entry of image_data.json."""

    image_id: int                  # Visual Genome image id
    coco_id: int | None            # MS COCO image id (None: not a COCO image)
    width: int
    height: int
    url: str
    flickr_id: int | None = None


# --- opening plain, zipped or folder inputs -------------------------------------------------------
def _find_in_folder(folder: Path, kind: str) -> Path:
    pattern = re.compile(rf"^{re.escape(kind)}(_v\d+([._]\d+)?)?\.json(\.zip)?$"
                         rf"|^{re.escape(kind)}\.zip$")

    def preference(candidate: Path) -> tuple:
        """Unversioned name first, then the newest version (v1.4 before v1.2); plain before zip."""
        version = re.search(r"_v(\d+)(?:[._](\d+))?", candidate.name)
        major, minor = (int(version[1]), int(version[2] or 0)) if version else (99, 99)
        return -major, -minor, candidate.suffix == ".zip", candidate.name

    candidates = sorted((p for p in folder.iterdir() if pattern.match(p.name)), key=preference)
    if not candidates:
        raise DatasetError(f"no Visual Genome {kind} file in {folder}: expected {kind}.json, "
                           f"{kind}_v1.2.json or {kind}.json.zip ({README_HINT})")
    return candidates[0]


def resolve(path: str | Path, kind: str) -> Path:
    """The file to read for `kind` (`objects`, `image_data`, ...): `path` itself or found in it.

    Raises:
        DatasetError: `path` does not exist or a folder has no file of that kind.
    """
    path = Path(path)
    if path.is_dir():
        return _find_in_folder(path, kind)
    if not path.is_file():
        raise DatasetError(f"Visual Genome {kind} file {path} does not exist ({README_HINT})")
    return path


@contextlib.contextmanager
def _open(path: Path, kind: str) -> Iterator[IO[bytes]]:
    """Binary stream of the JSON text of `path` (a .json file or a .zip holding one)."""
    if not zipfile.is_zipfile(path):
        with path.open("rb") as stream:
            yield stream
        return
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if n.endswith(".json") and "__MACOSX" not in n]
        preferred = [n for n in members if Path(n).name.startswith(kind)]
        chosen = (preferred or members)[:1]
        if not chosen or (len(members) > 1 and not preferred):
            raise DatasetError(f"{path} holds {members or 'no .json member'}; expected one "
                               f"{kind}*.json member ({README_HINT})")
        with archive.open(chosen[0]) as stream:
            yield stream


def _iter_items(path: Path, kind: str, example: str) -> Iterator[dict]:
    """Stream the elements of the top-level JSON list in `path` (one dict per image)."""
    expected = f"a JSON list of per-image entries like {example}"
    with _open(path, kind) as stream:
        head = stream.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        raise DatasetError(f"{path} is not {kind} data: expected {expected} ({README_HINT})")
    with _open(path, kind) as stream:
        try:
            for item in ijson.items(stream, "item", use_float=True):
                if not isinstance(item, dict):
                    raise DatasetError(f"{path}: found {item!r:.100} where {expected} was expected")
                yield item
        except ijson.JSONError as error:
            reason = " ".join(str(error).split())  # yajl's message spans several lines
            raise DatasetError(f"{path} is not valid JSON ({reason}); the file may be truncated: "
                               f"download it again (expected {expected}; {README_HINT})") from error
        except (zipfile.BadZipFile, EOFError) as error:
            raise DatasetError(f"{path} is a damaged zip archive ({error}); download it again "
                               f"({README_HINT})") from error


def _object(record: dict, path: Path) -> VGObject:
    try:
        names = record["names"] if "names" in record else [record["name"]]
        return VGObject(
            object_id=int(record.get("object_id", record.get("id", 0))),
            names=[str(n) for n in names], synsets=list(record.get("synsets", [])),
            x=int(record["x"]), y=int(record["y"]), w=int(record["w"]), h=int(record["h"]),
            attributes=[str(a) for a in record.get("attributes", None) or []],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: object {record!r:.200} lacks names/x/y/w/h ({error}); "
                           f"expected Visual Genome's object layout ({README_HINT})") from error


def _image_id(item: dict, path: Path) -> int:
    image_id = item.get("image_id", item.get("id"))
    if image_id is None:
        raise DatasetError(f"{path}: entry {item!r:.150} has no 'image_id' ({README_HINT})")
    return int(image_id)


# --- public readers -------------------------------------------------------------------------------
def iter_image_objects(path: str | Path) -> Iterator[VGImageObjects]:
    """Yield each image's objects from objects.json (or attributes.json), streaming.

    Args:
        path: objects/attributes file (.json or .json.zip), or a folder holding `objects.json`.

    Yields:
        `VGImageObjects` in file order. After the last one, the number of objects without any
        synset is logged (they are kept, with `synsets == []`).

    Raises:
        DatasetError: missing, truncated or malformed file.
    """
    path = resolve(path, "objects")
    kind = "attributes" if path.name.startswith("attributes") else "objects"
    example = '{"image_id": 1, "objects": [{"object_id", "names", "synsets", "x", "y", "w", "h"}]}'
    n_objects = n_missing = 0
    for item in _iter_items(path, kind, example):
        records = item.get("objects", item.get("attributes"))
        if not isinstance(records, list):
            raise DatasetError(f"{path}: entry {item!r:.150} has no 'objects' list; expected "
                               f"{example} ({README_HINT})")
        objects = [_object(record, path) for record in records]
        n_objects += len(objects)
        n_missing += sum(not obj.synsets for obj in objects)
        yield VGImageObjects(_image_id(item, path), objects)
    if n_missing:
        logger.info("%s: %d of %d objects have no synset", path.name, n_missing, n_objects)


def iter_relationships(path: str | Path) -> Iterator[tuple[int, list[VGRelationship]]]:
    """Yield `(vg_image_id, relationships)` per image from relationships.json, streaming.

    Raises:
        DatasetError: missing, truncated or malformed file.
    """
    path = resolve(path, "relationships")
    example = '{"image_id": 1, "relationships": [{"predicate", "subject", "object", ...}]}'
    for item in _iter_items(path, "relationships", example):
        try:
            relationships = [
                VGRelationship(int(r.get("relationship_id", r.get("id", 0))), str(r["predicate"]),
                               list(r.get("synsets", [])), _object(r["subject"], path),
                               _object(r["object"], path))
                for r in item["relationships"]
            ]
        except (KeyError, TypeError) as error:
            raise DatasetError(f"{path}: entry {item!r:.150} lacks {error}; expected {example} "
                               f"({README_HINT})") from error
        yield _image_id(item, path), relationships


def load_image_data(path: str | Path) -> dict[int, VGImage]:
    """Map Visual Genome image id -> `VGImage` (COCO id, size, url) from image_data.json.

    Args:
        path: image_data.json (.json or .zip) or a folder holding it.

    Raises:
        DatasetError: missing, truncated or malformed file.
    """
    path = resolve(path, "image_data")
    example = '{"image_id": 1, "coco_id": 139, "width": 800, "height": 600, "url": "..."}'
    images: dict[int, VGImage] = {}
    for item in _iter_items(path, "image_data", example):
        try:
            image_id = _image_id(item, path)
            coco_id, flickr_id = item.get("coco_id"), item.get("flickr_id")
            images[image_id] = VGImage(
                image_id=image_id, coco_id=int(coco_id) if coco_id is not None else None,
                width=int(item["width"]), height=int(item["height"]), url=str(item.get("url", "")),
                flickr_id=int(flickr_id) if flickr_id is not None else None,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"{path}: entry {item!r:.150} lacks {error}; expected {example} "
                               f"({README_HINT})") from error
    return images


def synsets_by_coco_id(vgenome_dir: str | Path) -> dict[int, set[str]]:
    """Object synsets of every Visual Genome image that is also a COCO image, keyed by COCO id.

    Args:
        vgenome_dir: folder with image_data and objects files (plain or zipped).

    Returns:
        `{coco_id: {"clock.n.01", ...}}` for every VG image with a `coco_id` (images whose objects
        have no synset map to an empty set). Objects without synsets are counted and logged.

    Raises:
        DatasetError: a file is missing, truncated or malformed.
    """
    vgenome_dir = Path(vgenome_dir)
    images = load_image_data(vgenome_dir)
    to_coco = {vg_id: image.coco_id for vg_id, image in images.items() if image.coco_id is not None}
    result: dict[int, set[str]] = {}
    n_objects = n_missing = 0
    objects_path = resolve(vgenome_dir, "objects")
    for entry in tqdm(iter_image_objects(objects_path), desc="Visual Genome objects", unit="image",
                      total=len(images), leave=False):
        coco_id = to_coco.get(entry.image_id)
        if coco_id is None:
            continue
        synsets = result.setdefault(coco_id, set())
        for obj in entry.objects:
            n_objects += 1
            n_missing += not obj.synsets
            synsets.update(obj.synsets)
    if n_missing:
        logger.warning("%d of %d objects on COCO images in %s have no synset", n_missing,
                       n_objects, objects_path.name)
    logger.info("Visual Genome: %d COCO images with object synsets", len(result))
    return result


def load_object_synsets(path: str | Path) -> dict[str, str]:
    """Map object name -> synset from object_synsets.json (e.g. "trash can" -> "rubbish.n.01").

    Raises:
        DatasetError: missing, malformed file, or not a JSON object of strings.
    """
    path = resolve(path, "object_synsets")
    expected = 'a JSON object {"object name": "synset.n.01", ...}'
    with _open(path, "object_synsets") as stream:
        try:
            data = json.load(io.TextIOWrapper(stream, encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DatasetError(f"{path} is not valid JSON ({error}); the file may be truncated "
                               f"(expected {expected}; {README_HINT})") from error
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DatasetError(f"{path} is not {expected} ({README_HINT})")
    return data


def object_counts(path: str | Path) -> dict[int, int]:
    """Objects per Visual Genome image id, streaming (memory: one image at a time + the counts)."""
    return {entry.image_id: len(entry.objects) for entry in iter_image_objects(path)}
