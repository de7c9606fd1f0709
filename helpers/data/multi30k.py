"""Multi30K task 1: parallel photo descriptions in English, German, French and Czech.

Multi30K (Elliott et al. 2016, "Multi30K: Multilingual English-German Image Descriptions"; French:
Elliott et al. 2017) gives one description per Flickr30K photo in each language, the German and
French ones being translations of the English one. Expected layout (the raw text of the public
repository `multi30k/dataset`, `data/task1/raw/` and `data/task1/image_splits/`):

    <root>/<split>.<lang>.gz      one UTF-8 sentence per line, gzip; lang: en de fr cs
    <root>/<split>.images.txt     the photo of each line, same line order

| split | sentences per language | languages |
|---|---|---|
| `train` | 29,000 | en de fr cs |
| `val` | 1,014 | en de fr cs |
| `test_2016_flickr` | 1,000 | en de fr cs |
| `test_2017_mscoco` | 461 (COCO photos) | en de fr |

Image ids: a Flickr30K photo is named by its Flickr id ("1000092795.jpg"), which is the record's
`image_id` (1000092795), as `helpers.data.coco.load_flickr` does for Flickr30K; the COCO photos of
`test_2017_mscoco` are listed as "COCO_train2014_000000117071.jpg#367178" (file name, then the id of
the COCO caption that was translated): their `image_id` is the COCO image id (117071), unique
across COCO 2014 train and val, and `file_name` drops the "#...". Both are stable: they come from
the names alone, not from line positions.

Languages are named by ISO 639-3 codes in the records ("eng", "deu", "fra", "ces"), as elsewhere in
the project; the arguments also take the file suffixes "en", "de", "fr", "cs".
"""

from __future__ import annotations

import dataclasses
import gzip
import re
from collections.abc import Sequence
from pathlib import Path

from helpers.data.coco import DatasetError, ImageRecord

SPLITS = ("train", "val", "test_2016_flickr", "test_2017_mscoco")
FILE_LANGUAGES = {"eng": "en", "deu": "de", "fra": "fr", "ces": "cs"}   # ISO 639-3 -> file suffix
LAYOUT_HINT = ("expected Multi30K task 1 raw text: <root>/<split>.<en|de|fr|cs>.gz and "
               "<root>/<split>.images.txt (github.com/multi30k/dataset, data/task1)")
_FLICKR_NAME = re.compile(r"^(?P<id>\d+)\.jpg$")
_COCO_NAME = re.compile(r"^(?P<file>COCO_(?:train|val)2014_(?P<id>\d{12})\.jpg)(?:#\d+)?$")


@dataclasses.dataclass
class Multi30kRecord:
    """One photo and its description in each language asked for.

    Attributes:
        image_id: Flickr id of a Flickr30K photo, COCO image id of a COCO photo (see the module).
        file_name: the photo's file name ("1000092795.jpg", "COCO_val2014_000000398076.jpg").
        path: where the photo is expected (`images_dir / file_name`; photos are not part of Multi30K).
        sentences: `{ISO 639-3 code: sentence}`, e.g. `{"eng": "Two young, White males ...",
            "fra": "Deux jeunes hommes ..."}`, whitespace-stripped.
        split: the split's name.
        line: 0-based line of the split's files (the same in every language).
    """

    image_id: int
    file_name: str
    path: Path
    sentences: dict[str, str]
    split: str
    line: int


def file_language(lang: str) -> str:
    """ISO 639-3 code of a Multi30K language given as "en"/"eng", "de"/"deu", "fr"/"fra" or "cs"/"ces".

    Raises:
        ValueError: for another language.
    """
    code = str(lang).strip().lower()
    code = {suffix: iso for iso, suffix in FILE_LANGUAGES.items()}.get(code, code)
    if code not in FILE_LANGUAGES:
        raise ValueError(f"Multi30K task 1 has no language {lang!r}; it has "
                         f"{', '.join(f'{iso} ({suffix})' for iso, suffix in FILE_LANGUAGES.items())}")
    return code


def image_id(name: str) -> tuple[int, str]:
    """`(image_id, file_name)` of a line of `<split>.images.txt` (see the module docstring).

    Raises:
        DatasetError: for a name that is neither a Flickr30K nor a COCO 2014 photo name.
    """
    flickr = _FLICKR_NAME.match(name)
    if flickr:
        return int(flickr["id"]), name
    coco = _COCO_NAME.match(name)
    if coco:
        return int(coco["id"]), coco["file"]
    raise DatasetError(f"{name!r} is neither a Flickr30K photo name ('<digits>.jpg') nor a COCO "
                       f"one ('COCO_train2014_<12 digits>.jpg#<caption id>'); {LAYOUT_HINT}")


def _read_lines(path: Path, gzipped: bool) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"Multi30K file {path} does not exist; {LAYOUT_HINT}")
    try:
        if gzipped:
            with gzip.open(path, "rt", encoding="utf-8", newline="\n") as file:
                return file.read().split("\n")
        return path.read_text(encoding="utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as error:   # gzip raises OSError/EOFError
        raise DatasetError(f"cannot read {path} ({error}); the file may be truncated or not "
                           f"{'gzip' if gzipped else 'text'}: download it again ({LAYOUT_HINT})") from error


def _without_final_newline(lines: list[str]) -> list[str]:
    return lines[:-1] if lines and lines[-1] == "" else lines


def load_multi30k(root: str | Path, split: str = "train", languages: Sequence[str] = ("en", "fr"),
                  images_dir: str | Path | None = None) -> list[Multi30kRecord]:
    """Read one split of Multi30K task 1 in several languages, line-parallel.

    Args:
        root: folder with `<split>.<lang>.gz` and `<split>.images.txt`.
        split: one of `SPLITS`.
        languages: languages to read ("en", "fr", "de", "cs" or their ISO 639-3 codes).
        images_dir: folder of the photos, for `path` only (default: `root`).

    Returns:
        One `Multi30kRecord` per line, in file order (29,000 for `train`).

    Raises:
        ValueError: unknown split or language.
        DatasetError: a file is missing or unreadable, the files' line counts differ, or a photo
            name is not Flickr30K's or COCO's.
    """
    if split not in SPLITS:
        raise ValueError(f"Multi30K task 1 has no split {split!r}; its splits are {', '.join(SPLITS)}")
    codes = list(dict.fromkeys(file_language(lang) for lang in languages))
    if not codes:
        raise ValueError("give at least one language to read")
    root = Path(root)
    images_dir = Path(images_dir) if images_dir is not None else root
    names_file = root / f"{split}.images.txt"
    names = [name.strip() for name in _without_final_newline(_read_lines(names_file, gzipped=False))]
    sentences = {}
    for code in codes:
        path = root / f"{split}.{FILE_LANGUAGES[code]}.gz"
        lines = _without_final_newline(_read_lines(path, gzipped=True))
        if len(lines) != len(names):
            raise DatasetError(f"{path} has {len(lines):,} lines but {names_file} names {len(names):,} "
                               f"photos; the files of a split must be line-parallel ({LAYOUT_HINT})")
        sentences[code] = [line.strip() for line in lines]
    records = []
    for line, name in enumerate(names):
        number, file_name = image_id(name)
        records.append(Multi30kRecord(image_id=number, file_name=file_name, path=images_dir / file_name,
                                      sentences={code: sentences[code][line] for code in codes},
                                      split=split, line=line))
    return records


def load_multi30k_captions(root: str | Path, split: str = "train", language: str = "fr",
                           images_dir: str | Path | None = None) -> list[ImageRecord]:
    """One language of a Multi30K split as the project's caption records.

    Args:
        root, split, images_dir: as `load_multi30k`.
        language: the captions' language ("en", "fr", "de", "cs" or ISO 639-3).

    Returns:
        `helpers.data.coco.ImageRecord`s in file order, one per photo, with its one caption
        (`captions` has one entry; empty sentences give an empty list), `width`/`height` 0
        (unknown), no `categories`, and `split` the Multi30K split name.

    Raises:
        ValueError, DatasetError: as `load_multi30k`.
    """
    code = file_language(language)
    return [ImageRecord(image_id=record.image_id, file_name=record.file_name, path=record.path, width=0,
                        height=0, captions=[record.sentences[code]] if record.sentences[code] else [],
                        categories=[], split=split)
            for record in load_multi30k(root, split, (code,), images_dir)]
