"""Tests of helpers/data/vgenome.py on the official Visual Genome JSON of images 1-5 (../shared)."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from helpers.data import coco, sample, vgenome
from helpers.data.coco import DatasetError


@pytest.fixture(scope="module")
def vg(shared_data):
    return shared_data / "vgenome-sample"


def _json_counts(path, key="objects"):
    data = json.loads(path.read_text())
    return {entry.get("image_id", entry.get("id")): len(entry[key]) for entry in data}


@pytest.mark.parametrize("name, key", [("objects_v1.2.json", "objects"),
                                       ("attributes_v1.2.json", "attributes"),
                                       ("objects_v1.0.json", "objects")])
def test_object_counts_match_json_load(vg, name, key):
    expected = _json_counts(vg / name, key)
    assert len(expected) == 5
    assert vgenome.object_counts(vg / name) == expected


def test_objects_keep_every_field(vg):
    first_json = json.loads((vg / "attributes_v1.2.json").read_text())[0]
    first = next(vgenome.iter_image_objects(vg / "attributes_v1.2.json"))
    assert first.image_id == first_json["image_id"] == 1
    for obj, raw in zip(first.objects, first_json["attributes"]):
        assert obj.object_id == raw["object_id"] and obj.names == raw["names"]
        assert obj.synsets == raw["synsets"] and (obj.x, obj.y, obj.w, obj.h) == \
            (raw["x"], raw["y"], raw["w"], raw["h"])
        assert obj.attributes == raw.get("attributes", [])


def test_zip_and_folder_inputs_give_the_same_objects(vg, tmp_path):
    expected = _json_counts(vg / "objects_v1.2.json")
    archive = tmp_path / "objects.json.zip"  # as downloaded from the Visual Genome site
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(vg / "objects_v1.2.json", arcname="objects.json")
    assert vgenome.object_counts(archive) == expected
    assert vgenome.object_counts(tmp_path) == expected          # folder holding only the zip
    assert vgenome.object_counts(vg) == expected                 # folder: newest version, v1.2
    shutil.copy(vg / "image_data.json", tmp_path / "image_data.json")
    with zipfile.ZipFile(tmp_path / "image_data.json.zip", "w") as zipped:
        zipped.write(vg / "image_data.json", arcname="image_data.json")
    assert vgenome.load_image_data(tmp_path / "image_data.json.zip") == \
        vgenome.load_image_data(tmp_path / "image_data.json")


def test_image_data_and_relationships(vg):
    images = vgenome.load_image_data(vg / "image_data.json")
    raw = json.loads((vg / "image_data.json").read_text())
    assert sorted(images) == [e["image_id"] for e in raw] == [1, 2, 3, 4, 5]
    assert images[1].width == raw[0]["width"] and images[1].url == raw[0]["url"]
    assert all(image.coco_id is None for image in images.values())
    relationships = dict(vgenome.iter_relationships(vg))
    assert {k: len(v) for k, v in relationships.items()} == \
        _json_counts(vg / "relationships_v1.2.json", "relationships")
    first_raw = json.loads((vg / "relationships_v1.2.json").read_text())[0]["relationships"][0]
    first = relationships[1][0]
    assert (first.predicate, first.subject.names, first.object.synsets) == \
        (first_raw["predicate"], [first_raw["subject"]["name"]], first_raw["object"]["synsets"])


def test_object_synsets(vg):
    mapping = vgenome.load_object_synsets(vg / "object_synsets.json")
    raw = json.loads((vg / "object_synsets.json").read_text())
    assert len(mapping) == len(raw) == 40154
    assert mapping["trash can"] == "rubbish.n.01" and mapping["yellow bananas"] == "banana.n.01"


def test_synsets_by_coco_id_on_real_objects(vg, tmp_path):
    """Give images 1-5 COCO ids: each COCO id gets exactly the synsets of its VG objects."""
    image_data = json.loads((vg / "image_data.json").read_text())
    for entry in image_data[:4]:
        entry["coco_id"] = 1000 + entry["image_id"]
    (tmp_path / "image_data.json").write_text(json.dumps(image_data))
    shutil.copy(vg / "objects_v1.2.json", tmp_path / "objects_v1.2.json")
    objects = json.loads((vg / "objects_v1.2.json").read_text())
    expected = {1000 + e["image_id"]: {s for o in e["objects"] for s in o["synsets"]}
                for e in objects if e["image_id"] <= 4}
    assert vgenome.synsets_by_coco_id(tmp_path) == expected
    assert len(expected[1001]) > 20


def test_synsets_by_coco_id_round_trips_on_the_sample(tmp_path):
    sample.make_sample(tmp_path, n_train=12, n_val=4, n_album=0)
    synsets = vgenome.synsets_by_coco_id(tmp_path / "vgenome")
    records = coco.load_coco(tmp_path, "train2017") + coco.load_coco(tmp_path, "val2017")
    assert synsets == {r.image_id: {f"{c}.n.01" for c in r.categories} for r in records}


def test_truncated_and_malformed_files_raise_dataset_error(vg, tmp_path):
    text = (vg / "objects_v1.2.json").read_text()
    truncated = tmp_path / "objects.json"
    truncated.write_text(text[: int(len(text) * 0.6)])
    stream = vgenome.iter_image_objects(truncated)
    assert next(stream).image_id == 1  # streamed: the first image comes before the damage
    with pytest.raises(DatasetError, match=r"objects\.json is not valid JSON.*truncated"):
        list(stream)
    with zipfile.ZipFile(tmp_path / "objects.zip", "w") as zipped:
        zipped.write(truncated, arcname="objects.json")
    with pytest.raises(DatasetError, match=r"objects\.zip is not valid JSON"):
        vgenome.object_counts(tmp_path / "objects.zip")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"image_id": 1, "objects": []}))
    with pytest.raises(DatasetError, match=r"wrong\.json is not objects data: expected a JSON list"):
        vgenome.object_counts(wrong)
    wrong.write_text(json.dumps([{"image_id": 1, "boxes": []}]))
    with pytest.raises(DatasetError, match="has no 'objects' list"):
        vgenome.object_counts(wrong)
    with pytest.raises(DatasetError, match="does not exist"):
        vgenome.load_image_data(tmp_path / "absent.json")
    with pytest.raises(DatasetError, match="no Visual Genome image_data file"):
        vgenome.load_image_data(tmp_path)
    (tmp_path / "object_synsets.json").write_text('{"dog": "dog.n.01", ')
    with pytest.raises(DatasetError, match="object_synsets.json is not valid JSON"):
        vgenome.load_object_synsets(tmp_path)
