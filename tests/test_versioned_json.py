"""helpers.data.versioned_json: round trip, clear errors and atomic writes, on real files."""

from __future__ import annotations

import json
import os
import stat

import pytest

from helpers.data import versioned_json
from helpers.data.versioned_json import read_versioned_json, write_versioned_json

FORMAT = "tests.Thing"
PAYLOAD = {"names": ["cœur", "dog"], "counts": [3, 1], "nested": {"a": None}}


def test_round_trip_and_layout(tmp_path):
    path = write_versioned_json(tmp_path / "sub" / "thing.json", FORMAT, 2, PAYLOAD)
    assert path == tmp_path / "sub" / "thing.json"
    # one line of UTF-8, format and version first, non-ASCII as is: the layout files already have
    text = path.read_text(encoding="utf-8")
    assert text == ('{"format": "tests.Thing", "format_version": 2, "names": ["cœur", "dog"], '
                    '"counts": [3, 1], "nested": {"a": null}}\n')
    assert read_versioned_json(path, FORMAT, 2, "Thing") == PAYLOAD
    assert read_versioned_json(path, FORMAT, 5, "Thing") == PAYLOAD    # newer code reads older files
    assert sorted(p.name for p in path.parent.iterdir()) == ["thing.json"]   # no temporary left


def test_wrong_format_name(tmp_path):
    path = write_versioned_json(tmp_path / "thing.json", "tests.Other", 1, PAYLOAD)
    with pytest.raises(ValueError, match=r"thing.json: not a saved Thing \(format 'tests.Other', "
                                         r"expected 'tests.Thing'\)"):
        read_versioned_json(path, FORMAT, 1, "Thing")
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved Thing .a JSON list"):
        read_versioned_json(path, FORMAT, 1, "Thing")


@pytest.mark.parametrize("version", [2, None, "1"])
def test_future_or_missing_version(tmp_path, version):
    path = tmp_path / "thing.json"
    path.write_text(json.dumps({"format": FORMAT, "format_version": version, **PAYLOAD}), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"Thing format version {version!r} is not supported "
                                         r"\(this code reads versions <= 1\); update"):
        read_versioned_json(path, FORMAT, 1, "Thing")


def test_truncated_empty_or_missing_file(tmp_path):
    path = write_versioned_json(tmp_path / "thing.json", FORMAT, 1, PAYLOAD)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match="thing.json is not valid JSON .*was it written by Thing.save"):
        read_versioned_json(path, FORMAT, 1, "Thing")
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_versioned_json(path, FORMAT, 1, "Thing")
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="is not valid JSON .*utf-8"):
        read_versioned_json(path, FORMAT, 1, "Thing")
    with pytest.raises(FileNotFoundError):
        read_versioned_json(tmp_path / "missing.json", FORMAT, 1, "Thing")


def test_payload_cannot_hide_the_format(tmp_path):
    with pytest.raises(ValueError, match="cannot have the keys"):
        write_versioned_json(tmp_path / "thing.json", FORMAT, 1, {"format": "x"})
    assert not (tmp_path / "thing.json").exists()


def test_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = write_versioned_json(tmp_path / "thing.json", FORMAT, 1, PAYLOAD)
    before = path.read_bytes()
    # not serialisable: fails before anything is written
    with pytest.raises(TypeError):
        write_versioned_json(path, FORMAT, 1, {"names": {"a set"}})

    # the disk fails once the new content is in the temporary file (full, say), or the rename fails
    def fail(*args):
        raise OSError(28, "No space left on device")

    for step in ("fsync", "replace"):
        with monkeypatch.context() as patch:
            patch.setattr(versioned_json.os, step, fail)
            with pytest.raises(OSError, match="No space left"):
                write_versioned_json(path, FORMAT, 1, {"names": ["x" * 100_000]})
        assert path.read_bytes() == before, step
        assert sorted(p.name for p in tmp_path.iterdir()) == ["thing.json"], step   # temporary removed


def test_overwrite_keeps_mode_and_writes_through_a_link(tmp_path):
    target = write_versioned_json(tmp_path / "real.json", FORMAT, 1, PAYLOAD)
    os.chmod(target, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_versioned_json(link, FORMAT, 1, {"names": ["new"]})
    assert link.is_symlink() and read_versioned_json(target, FORMAT, 1, "Thing") == {"names": ["new"]}
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


class Names(versioned_json.IndexedNames):
    FORMAT_NAME = FORMAT
    FORMAT_VERSION = 1

    def _payload(self) -> dict:
        return {"names": self._names}

    @classmethod
    def _from_payload(cls, payload) -> "Names":
        return cls(payload["names"])


class OtherNames(Names):
    FORMAT_NAME = "tests.OtherNames"


def test_indexed_names(tmp_path):
    names = Names(["b", "a"])
    assert len(names) == 2 and "a" in names and "c" not in names
    assert names == Names(["b", "a"]) != Names(["a", "b"])
    assert names != OtherNames(["b", "a"]) and names != ["b", "a"]
    with pytest.raises(TypeError):
        hash(names)
    with pytest.raises(ValueError, match=r"names repeated in the vocabulary: \['a'\]"):
        Names(["a", "b", "a"])
    assert names.to_dict() == {"format": FORMAT, "format_version": 1, "names": ["b", "a"]}
    assert Names.from_dict(names.to_dict()) == names
    assert Names.load(names.save(tmp_path / "names.json")) == names
    with pytest.raises(ValueError, match="not a saved OtherNames"):
        OtherNames.load(tmp_path / "names.json")
