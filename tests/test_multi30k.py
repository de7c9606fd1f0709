"""helpers.data.multi30k: Multi30K task 1 read from ../shared, line-parallel, and its errors."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from helpers.data import multi30k
from helpers.data.coco import DatasetError, ImageRecord


@pytest.fixture(scope="module")
def root(shared_data) -> Path:
    return shared_data / "multi30k-task1"


def test_train_in_three_languages(root):
    records = multi30k.load_multi30k(root, "train", languages=("en", "fr", "deu"))
    assert len(records) == 29_000
    first = records[0]
    assert (first.image_id, first.file_name, first.split, first.line) == (1000092795, "1000092795.jpg", "train", 0)
    assert first.path == root / "1000092795.jpg"
    assert first.sentences == {
        "eng": "Two young, White males are outside near many bushes.",
        "fra": "Deux jeunes hommes blancs sont dehors près de buissons.",
        "deu": "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    }
    assert records[-1].line == 28_999 and len({r.image_id for r in records}) == 29_000
    assert all(r.sentences["fra"] for r in records)


@pytest.mark.parametrize("split, count, languages", [
    ("val", 1_014, ("en", "de", "fr", "cs")),
    ("test_2016_flickr", 1_000, ("en", "de", "fr", "cs")),
    ("test_2017_mscoco", 461, ("en", "de", "fr")),
])
def test_every_split_and_its_languages(root, split, count, languages):
    records = multi30k.load_multi30k(root, split, languages)
    assert len(records) == count
    assert all(len(r.sentences) == len(languages) for r in records)


def test_coco_photos_get_their_coco_image_id(root, tmp_path):
    records = multi30k.load_multi30k(root, "test_2017_mscoco", ("fr",), images_dir=tmp_path)
    first = records[0]
    assert (first.image_id, first.file_name) == (117071, "COCO_train2014_000000117071.jpg")   # "#367178" dropped
    assert first.path == tmp_path / "COCO_train2014_000000117071.jpg"
    assert len({r.image_id for r in records}) == 461
    assert multi30k.image_id("COCO_val2014_000000398076.jpg#657409") == (398076, "COCO_val2014_000000398076.jpg")
    with pytest.raises(DatasetError, match="neither a Flickr30K"):
        multi30k.image_id("photo.png")


def test_captions_as_image_records(root):
    records = multi30k.load_multi30k_captions(root, "val", language="de")
    assert len(records) == 1_014 and all(isinstance(r, ImageRecord) for r in records)
    english = multi30k.load_multi30k(root, "val", ("en",))
    assert [r.image_id for r in records] == [r.image_id for r in english]
    assert records[0].captions == [multi30k.load_multi30k(root, "val", ("de",))[0].sentences["deu"]]
    assert (records[0].width, records[0].height, records[0].categories, records[0].split) == (0, 0, [], "val")


def test_clear_errors(root, tmp_path):
    with pytest.raises(ValueError, match="no split 'dev'.*train, val"):
        multi30k.load_multi30k(root, "dev")
    with pytest.raises(ValueError, match="no language 'it'"):
        multi30k.load_multi30k(root, "val", ("it",))
    with pytest.raises(DatasetError, match=r"test_2017_mscoco\.cs\.gz does not exist"):
        multi30k.load_multi30k(root, "test_2017_mscoco", ("cs",))
    with pytest.raises(DatasetError, match=r"val\.images\.txt does not exist"):
        multi30k.load_multi30k(tmp_path, "val")
    shutil.copy(root / "val.images.txt", tmp_path)
    with gzip.open(tmp_path / "val.fr.gz", "wt", encoding="utf-8") as file:
        file.write("Un chien.\n" * 3)
    with pytest.raises(DatasetError, match=r"val\.fr\.gz has 3 lines but .*val\.images\.txt names 1,014"):
        multi30k.load_multi30k(tmp_path, "val", ("fr",))
    (tmp_path / "val.fr.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"cannot read .*val\.fr\.gz"):
        multi30k.load_multi30k(tmp_path, "val", ("fr",))
