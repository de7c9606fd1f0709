"""Tests of helpers/data/coco.py on the real COCO-mini, Karpathy and Flickr8k files in ../shared."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import pytest
from pycocotools.coco import COCO

from helpers.data import coco
from helpers.data.coco import DatasetError


@pytest.fixture(scope="module")
def coco_mini(shared_data):
    return shared_data / "coco-mini-2017"


@pytest.fixture(scope="module")
def flickr(shared_data):
    return shared_data / "flickr8k-text"


@pytest.mark.parametrize("split, n_images, n_captions", [("val2017", 79, 395), ("train2017", 80, 400)])
def test_coco_mini_counts(coco_mini, split, n_images, n_captions):
    records = coco.load_coco(coco_mini, split)
    assert len(records) == n_images
    assert coco.captions_count(records) == n_captions
    assert [r.image_id for r in records] == sorted(r.image_id for r in records)
    assert all(r.split == split and r.path.is_file() and r.path.parent.name == split
               for r in records)
    assert all(r.width > 0 and r.height > 0 and all(c == c.strip() and c for c in r.captions)
               for r in records)


def test_categories_match_pycocotools(coco_mini):
    with contextlib.redirect_stdout(io.StringIO()):
        index = COCO(str(coco_mini / "annotations" / "instances_val2017.json"))
    records = coco.load_coco(coco_mini, "val2017")
    assert sum(bool(r.categories) for r in records) > 70
    for record in records:
        annotations = index.loadAnns(index.getAnnIds(imgIds=[record.image_id]))
        expected = sorted({c["name"] for c in index.loadCats([a["category_id"] for a in annotations])})
        assert record.categories == expected


def test_image_ids_select_in_order_and_unknown_ids_are_logged(coco_mini, caplog):
    every = coco.load_coco(coco_mini, "val2017")
    wanted = [every[5].image_id, every[2].image_id, 999_999_999]
    with caplog.at_level(logging.WARNING, logger="helpers.data.coco"):
        chosen = coco.load_coco(coco_mini, "val2017", image_ids=wanted)
    assert [r.image_id for r in chosen] == wanted[:2]
    assert chosen[0].captions == every[5].captions
    assert "1 of 3 requested image ids" in caplog.text


def test_images_without_captions_are_counted(coco_mini, tmp_path, caplog):
    data = json.loads((coco_mini / "annotations" / "captions_val2017.json").read_text())
    last = data["images"][-1]["id"]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != last]
    data["annotations"][0]["caption"] = "   "  # an empty caption is dropped, not kept
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING, logger="helpers.data.coco"):
        records = coco.load_coco(tmp_path, "val2017")
    assert len(records) == 78 and last not in {r.image_id for r in records}
    assert coco.captions_count(records) == 395 - 5 - 1
    assert "1 images in captions_val2017.json have no caption" in caplog.text
    assert "image files are not under" in caplog.text  # no JPEGs in tmp_path
    kept = coco.load_coco(tmp_path, "val2017", keep_uncaptioned=True)
    uncaptioned = [r for r in kept if r.image_id == last]
    assert len(kept) == 79 and uncaptioned[0].captions == [] and uncaptioned[0].categories == []


def test_missing_truncated_and_wrong_files_raise_dataset_error(coco_mini, tmp_path):
    with pytest.raises(DatasetError, match=r"annotations/captions_val2017\.json.*data/README\.md"):
        coco.load_coco(tmp_path, "val2017")
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    target = annotations / "captions_val2017.json"
    text = (coco_mini / "annotations" / "captions_val2017.json").read_text()
    target.write_text(text[: len(text) // 2])  # an interrupted download
    with pytest.raises(DatasetError, match="captions_val2017.json is not valid JSON.*truncated"):
        coco.load_coco(tmp_path, "val2017")
    target.write_text(json.dumps([{"image_id": 1, "caption": "a list, not COCO's dict"}]))
    with pytest.raises(DatasetError, match="captions_val2017.json is not an official COCO captions"):
        coco.load_coco(tmp_path, "val2017")
    target.write_text(json.dumps({"images": [], "annotations": [{"image_id": 1, "text": "x"}]}))
    with pytest.raises(DatasetError, match="'image_id', 'caption'"):
        coco.load_coco(tmp_path, "val2017")
    assert issubclass(DatasetError, ValueError)


def test_karpathy_lists(shared_data):
    folder = shared_data / "karpathy-coco-splits"
    val = coco.load_karpathy_split(folder / "karpathy_val_images.txt")
    test = coco.load_karpathy_split(folder / "karpathy_test_images.txt")
    assert len(val) == len(set(val)) == 5000 and len(test) == len(set(test)) == 5000
    assert set(val).isdisjoint(test)
    assert all(isinstance(i, int) and i > 0 for i in val + test)
    first = (folder / "karpathy_test_images.txt").read_text().split()[1]
    assert test[0] == int(first)


def test_karpathy_json_and_bad_lists(tmp_path):
    dataset = {"images": [{"split": "test", "cocoid": 42, "filename": "a.jpg"},
                          {"split": "restval", "cocoid": 7, "filename": "b.jpg"}]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps(dataset))
    assert coco.load_karpathy_split(tmp_path / "dataset_coco.json", split="test") == [42]
    with pytest.raises(DatasetError, match="pass split="):
        coco.load_karpathy_split(tmp_path / "dataset_coco.json")
    (tmp_path / "bad.txt").write_text("val2014/x.jpg 12\nthree fields here\n")
    with pytest.raises(DatasetError, match="bad.txt, line 2"):
        coco.load_karpathy_split(tmp_path / "bad.txt")
    with pytest.raises(DatasetError, match="does not exist"):
        coco.load_karpathy_split(tmp_path / "absent.txt")


def test_flickr8k_captions_and_splits(flickr):
    records = coco.load_flickr(flickr / "Flickr8k.token.txt")
    assert len(records) == 8092 and coco.captions_count(records) == 40460
    # the file's one "2258277193_586949ec62.jpg.1#0" line belongs to 2258277193_586949ec62.jpg
    odd = next(r for r in records if r.file_name == "2258277193_586949ec62.jpg")
    assert len(odd.captions) == 5 and odd.captions[0] == "people waiting for the subway"
    assert len({r.image_id for r in records}) == 8092 and records[0].image_id == 1000268201
    sizes = {}
    for name in ("train", "dev", "test"):
        split = coco.load_flickr(flickr / "Flickr8k.token.txt",
                                 flickr / f"Flickr_8k.{name}Images.txt", images_dir="/images")
        assert {r.split for r in split} == {name}
        assert all(len(r.captions) == 5 and str(r.path) == f"/images/{r.file_name}" for r in split)
        sizes[name] = {r.file_name for r in split}
    assert {k: len(v) for k, v in sizes.items()} == {"train": 6000, "dev": 1000, "test": 1000}
    assert sizes["train"].isdisjoint(sizes["test"]) and sizes["dev"].isdisjoint(sizes["test"])


def test_flickr_bad_line_names_file_and_line(tmp_path):
    (tmp_path / "t.token.txt").write_text("a.jpg#0\tfine caption\nno tab or hash here\n")
    with pytest.raises(DatasetError, match=r"t\.token\.txt, line 2"):
        coco.load_flickr(tmp_path / "t.token.txt")
    with pytest.raises(DatasetError, match="does not exist"):
        coco.load_flickr(tmp_path / "absent.token.txt")


def test_instance_boxes_match_pycocotools_and_plot(coco_mini):
    import matplotlib

    matplotlib.use("Agg")
    from helpers import plots

    boxes = coco.load_instance_boxes(coco_mini, "val2017")
    with contextlib.redirect_stdout(io.StringIO()):
        index = COCO(str(coco_mini / "annotations" / "instances_val2017.json"))
    assert len(boxes) == 79 and sum(map(len, boxes.values())) == len(index.getAnnIds()) == 624
    first = next(iter(boxes))
    assert [b for _, b in boxes[first]] == [a["bbox"] for a in index.imgToAnns[first]]
    records = coco.load_coco(coco_mini, "val2017")[:3]
    figure = plots.plot_image_grid(records, boxes, columns=3, max_images=3)
    drawn = sum(len(ax.patches) for ax in figure.axes)
    assert drawn == sum(len(boxes[r.image_id]) for r in records) > 0
    assert figure.axes[0].get_title().startswith(str(records[0].image_id))
    matplotlib.pyplot.close(figure)
