"""Tests of helpers/data/sample.py: determinism, official formats, captions that match the pixels."""

from __future__ import annotations

import configparser
import contextlib
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from helpers.data import coco, sample

SMALL = dict(n_train=40, n_val=10, n_album=6)


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small_sample")
    sample.make_sample(out, seed=0, **SMALL)
    return out


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _vg_descriptions(root: Path) -> dict[int, list[str]]:
    """COCO id -> ["big red circle", ...] left to right, read from the Visual Genome files."""
    vg_to_coco = {e["image_id"]: e["coco_id"] for e in json.loads(
        (root / "vgenome" / "image_data.json").read_text())}
    result = {}
    for entry in json.loads((root / "vgenome" / "attributes.json").read_text()):
        objects = sorted(entry["attributes"], key=lambda o: (o["x"] + o["w"] / 2, o["y"] + o["h"] / 2))
        result[vg_to_coco[entry["image_id"]]] = [
            f"{o['attributes'][1]} {o['attributes'][0]} {o['names'][0]}" for o in objects]
    return result


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path, small_sample):
    again = tmp_path / "again"
    sample.make_sample(again, seed=0, **SMALL)
    first, second = _all_files(small_sample), _all_files(again)
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == []

    other = tmp_path / "other"
    sample.make_sample(other, seed=1, **SMALL)
    assert (other / "annotations" / "captions_train2017.json").read_bytes() != \
        first["annotations/captions_train2017.json"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' numpy 2 copy warning
def test_counts_and_pycocotools_loads_every_file(small_sample):
    for split, n_images in (("train2017", 40), ("val2017", 10)):
        for kind in ("captions", "instances"):
            with contextlib.redirect_stdout(io.StringIO()):
                index = COCO(str(small_sample / "annotations" / f"{kind}_{split}.json"))
            assert len(index.getImgIds()) == n_images
            if kind == "captions":
                assert len(index.getAnnIds()) == 5 * n_images
            else:
                assert [c["name"] for c in index.loadCats(index.getCatIds())] == list(sample.SHAPES)
                for annotation in index.loadAnns(index.getAnnIds()):
                    x, y, w, h = annotation["bbox"]
                    assert 0 <= x and 0 <= y and x + w <= 128 and y + h <= 128
                    assert 0 < annotation["area"] <= w * h + 1e-6
                    assert annotation["iscrowd"] == 0
                    mask = index.annToMask(annotation)  # polygon segmentation is valid
                    assert abs(int(mask.sum()) - annotation["area"]) < 0.25 * annotation["area"] + 20
        images = sorted((small_sample / split).glob("*.jpg"))
        assert len(images) == n_images
        assert Image.open(images[0]).size == (128, 128)
    train = coco.load_coco(small_sample, "train2017")
    val = coco.load_coco(small_sample, "val2017")
    assert {r.image_id for r in train}.isdisjoint(r.image_id for r in val)
    assert all(r.path.is_file() and len(r.captions) == 5 for r in train + val)


def test_default_sample_has_documented_size(sample_dir):
    summary_counts = {split: coco.load_coco(sample_dir, split) for split in ("train2017", "val2017")}
    assert len(summary_counts["train2017"]) == 2000
    assert len(summary_counts["val2017"]) == 300
    assert coco.captions_count(summary_counts["train2017"] + summary_counts["val2017"]) == 11500
    assert len(list((sample_dir / "album").glob("*.[jJ][pP][gG]"))) == 24


def test_every_caption_describes_every_shape_left_to_right(small_sample):
    descriptions = _vg_descriptions(small_sample)
    colours, shapes = set(sample.COLOURS), set(sample.SHAPES)
    for split in ("train2017", "val2017"):
        for record in coco.load_coco(small_sample, split):
            objects = descriptions[record.image_id]
            assert sorted({d.split()[2] for d in objects}) == record.categories
            templates_used = set()
            for caption in record.captions:
                words = caption.split()
                assert len(words) <= 20
                # each object's "{size} {colour} {shape}" appears as often as it is on the image
                for description, count in Counter(objects).items():
                    assert caption.count(description) == count, (caption, objects)
                assert Counter(w for w in words if w in colours) == \
                    Counter(d.split()[1] for d in objects)
                assert Counter(w for w in words if w in shapes) == \
                    Counter(d.split()[2] for d in objects)
                templates_used.add(caption)
            assert len(templates_used) == 5  # five distinct templates


def test_relation_words_match_positions(small_sample):
    vg_relations = json.loads((small_sample / "vgenome" / "relationships.json").read_text())
    checked = 0
    for entry in vg_relations:
        for relation in entry["relationships"]:
            s, o = relation["subject"], relation["object"]
            dx = (o["x"] + o["w"] / 2) - (s["x"] + s["w"] / 2)
            dy = (o["y"] + o["h"] / 2) - (s["y"] + s["h"] / 2)
            expected = "left of" if dx >= abs(dy) else ("above" if dy > 0 else "below")
            assert relation["predicate"] == expected
            checked += 1
    assert checked > 10


def test_pixels_have_the_annotated_colour(small_sample):
    """The centre of each shape's box is painted in the colour its captions name."""
    base = {name: np.array(rgb) for name, rgb in sample.COLOURS.items()}
    vg_to_coco = {e["image_id"]: e["coco_id"] for e in json.loads(
        (small_sample / "vgenome" / "image_data.json").read_text())}
    files = {r.image_id: r.path for split in ("train2017", "val2017")
             for r in coco.load_coco(small_sample, split)}
    for entry in json.loads((small_sample / "vgenome" / "attributes.json").read_text()):
        pixels = np.asarray(Image.open(files[vg_to_coco[entry["image_id"]]]), dtype=np.int32)
        for obj in entry["attributes"]:
            cy, cx = obj["y"] + obj["h"] // 2, obj["x"] + obj["w"] // 2
            rgb = pixels[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(axis=0)
            nearest = min(base, key=lambda name: np.abs(base[name] - rgb).sum())
            assert nearest == obj["attributes"][0]
        background = pixels[:3, :3].reshape(-1, 3).mean(axis=0)
        assert background.min() > 220  # near-white corner


def test_no_other_noun_reaches_two_captions_of_an_image(small_sample):
    """Only colour and shape nouns may be in >= 2 captions of an image (the tag vote rule)."""
    from helpers.data.nltk_data import NltkDataMissing, ensure_nltk_data

    try:
        ensure_nltk_data(["wordnet", "stopwords"])
    except NltkDataMissing as error:
        pytest.skip(str(error))
    from nltk.corpus import stopwords, wordnet

    stop = set(stopwords.words("english"))
    allowed = set(sample.COLOURS) | set(sample.SHAPES) | set(sample.SIZES)

    def nouns(text: str) -> set[str]:
        return {wordnet.morphy(w, wordnet.NOUN) or w for w in text.split()
                if w not in stop and w not in allowed and w.isalpha() and wordnet.synsets(w, "n")}

    # every template, with every relation filled in
    for count, templates in sample.TEMPLATES.items():
        seen: Counter = Counter()
        for template in templates:
            words = set()
            for rel, (inv, _) in sample.RELATIONS.items():
                words |= nouns(template.format(a="big red circle", b="tiny aqua square",
                                               c="big pink hexagon", rel=rel, inv=inv))
            seen.update(words)
        assert [w for w, n in seen.items() if n > 1] == [], count
    # and on the generated captions
    for record in coco.load_coco(small_sample, "train2017"):
        votes = Counter(w for caption in record.captions for w in nouns(caption))
        assert [w for w, n in votes.items() if n >= 2] == []


def test_visual_genome_files_round_trip_to_coco_ids(small_sample):
    vg = small_sample / "vgenome"
    image_data = json.loads((vg / "image_data.json").read_text())
    assert set(image_data[0]) == {"width", "url", "height", "image_id", "coco_id", "flickr_id"}
    coco_ids = {r.image_id: r for s in ("train2017", "val2017") for r in coco.load_coco(small_sample, s)}
    assert sorted(e["coco_id"] for e in image_data) == sorted(coco_ids)
    assert all(e["image_id"] != e["coco_id"] for e in image_data)
    assert all((small_sample / e["url"]).is_file() for e in image_data)
    vg_to_coco = {e["image_id"]: e["coco_id"] for e in image_data}
    synsets = json.loads((vg / "synsets.json").read_text())
    objects = json.loads((vg / "objects.json").read_text())
    assert len(objects) == len(image_data)
    for entry in objects:
        record = coco_ids[vg_to_coco[entry["image_id"]]]
        assert sorted({o["names"][0] for o in entry["objects"]}) == record.categories
        for obj in entry["objects"]:
            assert set(obj) == {"synsets", "h", "object_id", "names", "w", "y", "x"}
            assert obj["synsets"] == [f"{obj['names'][0]}.n.01"] and obj["synsets"][0] in synsets
    relationships = json.loads((vg / "relationships.json").read_text())
    first = next(r for e in relationships for r in e["relationships"])
    assert set(first) == {"predicate", "object", "relationship_id", "synsets", "subject"}
    assert "name" in first["subject"] and "names" not in first["subject"]


def test_album_ini_is_myphotoshare_and_interpolates(small_sample):
    album = small_sample / "album"
    names = sample.album_file_names(6)
    assert sorted(p.name for p in album.iterdir() if p.name != "album.ini") == sorted(names)
    assert any(" " in n for n in names) and any(n.endswith(".JPG") for n in names)
    parser = configparser.ConfigParser(allow_no_value=True)
    assert parser.read(album / "album.ini", encoding="utf-8")
    assert parser.get("album", "title") == "Shapes cut from paper"
    description = parser.get("album", "description")
    assert "Made by Ada for a 100% synthetic" in description and description.count("\n") == 2
    pictures = [s for s in parser.sections() if s != "album"]
    assert set(pictures) < set(names)  # some photos have no section
    assert parser.get(pictures[0], "country_name") == "Imaginary Land"  # from [DEFAULT]
    assert any("50% done" in parser.get(s, "description", fallback="") for s in pictures)
    for name in names:
        with Image.open(album / name) as image:
            assert image.format == "JPEG" and image.size[0] in (128, 256)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        sample.make_sample(tmp_path, n_train=0)
    with pytest.raises(ValueError, match="image_size"):
        sample.make_sample(tmp_path, image_size=32)
