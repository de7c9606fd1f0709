"""Tests for helpers/album/xmp.py with the real ExifTool: sidecars written, merged and untagged, read
back exactly by ExifTool (its command line, not our wrapper) in several scripts; bad sidecars left
alone. Skipped, with the reason, where ExifTool is not installed (CI installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.album import xmp
from helpers.wordnet.keywords import keyword

pytestmark = pytest.mark.skipif(
    shutil.which("exiftool") is None,
    reason="exiftool not installed (apt-get install libimage-exiftool-perl, or .ci/install-exiftool)")

DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:foo="http://example.com/foo/1.0/"
   darktable:xmp_version="5"
   foo:custom="kept, with a comma">
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1"/>
    </rdf:Seq>
   </darktable:history>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>Dog</rdf:li>
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def exiftool_reads(path: Path, *tags: str) -> dict[str, list[str]]:
    """What the exiftool program itself reads (lists as lists, all items, numbers as printed)."""
    output = subprocess.run(["exiftool", "-j", "-m", "-G1", *[f"-{tag}" for tag in tags], str(path)],
                            capture_output=True, text=True, check=True).stdout
    [record] = json.loads(output, parse_int=str, parse_float=str)
    return {key: value if isinstance(value, list) else [value]
            for key, value in record.items() if key != "SourceFile"}


@pytest.fixture()
def photo(tmp_path, shared_data) -> Path:
    source = sorted((shared_data / "coco-mini-2017" / "val2017").glob("*.jpg"))[0]
    path = tmp_path / "album" / "IMG_0001.jpg"
    path.parent.mkdir()
    shutil.copy(source, path)
    return path


@pytest.fixture()
def session():
    with xmp.ExifTool() as running:
        yield running


def write(session, photo, keywords, naming="photo.jpg.xmp") -> xmp.SidecarPlan:
    plan = xmp.read_sidecars(session, [photo], naming)[photo]
    xmp.plan_keywords(plan, keywords)
    xmp.apply_sidecar(session, plan)
    return plan


SYNSETS = ["dog.n.01", "heart.n.02", "bicycle.n.01", "golden_retriever.n.01"]


@pytest.mark.parametrize("lang", ["eng", "fra", "arb", "heb", "cmn", "ell", "bul"])
def test_exiftool_reads_keywords_back_exactly_in_every_script(session, photo, lang):
    pairs = [(word, xmp.keyword_path(synset, word, lang)) for synset in SYNSETS
             if (word := keyword(synset, lang))]
    if lang == "fra":
        pairs.append(("Orchidée", ("plante", "fleur", "Orchidée")))   # "cœur" is heart.n.02
    photo_bytes = photo.read_bytes()
    plan = write(session, photo, pairs)
    words = list(dict.fromkeys(word for word, _ in pairs))
    paths = list(dict.fromkeys("|".join(path) for _, path in pairs))
    assert plan.path == photo.with_name("IMG_0001.jpg.xmp") and plan.path.is_file()
    found = exiftool_reads(plan.path, "XMP-dc:Subject", "XMP-lr:HierarchicalSubject")
    assert found == {"XMP-dc:Subject": words, "XMP-lr:HierarchicalSubject": paths}
    assert photo.read_bytes() == photo_bytes   # the photo itself is never touched
    if lang == "fra":
        assert {"chien", "cœur", "vélo", "Orchidée"} <= set(words)
    assert all(path.endswith(word) for word, path in zip(words, paths))


def test_awkward_keywords_read_back_as_written(session, photo):
    words = ["a, b", "x|y", "100%", 'say "hi"', "it's", "line\nbreak", "1.50", "007", "<b>&amp;",
             "ﬁ ligature", "😀"]
    pairs = [(word, ("thing", word)) for word in words]
    plan = write(session, photo, pairs, naming="photo.xmp")
    assert plan.path == photo.with_suffix(".xmp")
    found = exiftool_reads(plan.path, "XMP-dc:Subject", "XMP-lr:HierarchicalSubject")
    assert found["XMP-dc:Subject"] == words
    assert found["XMP-lr:HierarchicalSubject"] == [
        "thing|" + " ".join(word.replace("|", " ").split()) for word in words]   # | separates levels


def test_existing_sidecar_is_merged_and_untag_removes_only_ours(session, photo):
    sidecar = photo.with_name(photo.name + ".xmp")
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    original = sidecar.read_bytes()
    plan = write(session, photo, [("dog", ("animal", "dog")), ("cat", ("animal", "cat"))])
    assert plan.added == ["cat"]   # "Dog" was there already (case-insensitive)
    assert (sidecar.parent / (sidecar.name + ".bak")).read_bytes() == original
    found = exiftool_reads(sidecar, "XMP-dc:Subject", "XMP-lr:HierarchicalSubject",
                           "XMP-foo:all", "XMP-darktable:all")
    assert found["XMP-dc:Subject"] == ["holiday", "Dog", "cat"]
    assert found["XMP-lr:HierarchicalSubject"] == ["animal|dog", "animal|cat"]
    assert found["XMP-foo:Custom"] == ["kept, with a comma"]
    assert found["XMP-darktable:Xmp_version"] == ["5"]
    assert found["XMP-darktable:HistoryOperation"] == ["exposure"]
    # Running again changes nothing.
    again = xmp.plan_keywords(xmp.read_sidecars(session, [photo])[photo],
                              [("dog", ("animal", "dog")), ("cat", ("animal", "cat"))])
    assert not again.changed
    # Untag: the user's keywords and every other namespace stay; ours and our record go.
    untag = xmp.plan_untag(xmp.read_sidecars(session, [photo])[photo])
    assert not untag.delete and untag.removed == ["cat"]
    xmp.apply_sidecar(session, untag)
    found = exiftool_reads(sidecar, "XMP:all")
    assert found["XMP-dc:Subject"] == ["holiday", "Dog"]
    assert "XMP-lr:HierarchicalSubject" not in found   # both paths were ours
    assert not any(key.startswith("XMP-tagalbum:") for key in found)
    assert found["XMP-foo:Custom"] == ["kept, with a comma"]


def test_a_sidecar_we_created_is_deleted_by_untag(session, photo):
    plan = write(session, photo, [("dog", ("animal", "dog"))])
    assert plan.raw is None and plan.path.is_file()
    untag = xmp.plan_untag(xmp.read_sidecars(session, [photo])[photo])
    assert untag.delete
    assert xmp.apply_sidecar(session, untag) == plan.path.with_name(plan.path.name + ".bak")
    assert not plan.path.exists()


def test_a_keyword_the_user_removed_is_never_added_back(session, photo):
    pairs = [("dog", ("animal", "dog")), ("cat", ("animal", "cat"))]
    plan = write(session, photo, pairs)
    subprocess.run(["exiftool", "-overwrite_original", "-XMP-dc:Subject-=cat",
                    "-XMP-lr:HierarchicalSubject-=animal|cat", str(plan.path)], check=True,
                   capture_output=True)
    again = xmp.plan_keywords(xmp.read_sidecars(session, [photo])[photo], pairs)
    assert again.added == [] and again.after[xmp.REJECTED] == ["cat"]
    xmp.apply_sidecar(session, again)
    found = exiftool_reads(plan.path, "XMP-dc:Subject", "XMP-tagalbum:all")
    assert found["XMP-dc:Subject"] == ["dog"]
    assert xmp.read_sidecars(session, [photo])[photo].before[xmp.REJECTED] == ["cat"]


def test_a_huge_keyword_list_survives(session, photo):
    sidecar = photo.with_name(photo.name + ".xmp")
    existing = [f"keyword {index}" for index in range(3000)]
    subprocess.run(["exiftool", "-o", str(sidecar), "-sep", ";",
                    "-XMP-dc:Subject=" + ";".join(existing)], check=True, capture_output=True)
    write(session, photo, [("dog", ("animal", "dog"))])
    assert exiftool_reads(sidecar, "XMP-dc:Subject")["XMP-dc:Subject"] == existing + ["dog"]


def test_bad_sidecars_are_reported_and_left_alone(session, tmp_path, photo):
    sidecar = photo.with_name(photo.name + ".xmp")
    for content in (b"not xml at all\n", b"<?xml version='1.0'?><x:xmpmeta xmlns:x='adobe:ns:meta/'>"):
        sidecar.write_bytes(content)
        plan = xmp.plan_keywords(xmp.read_sidecars(session, [photo])[photo], [("dog", ("dog",))])
        assert plan.error and not plan.changed and "sidecar unreadable" in plan.error
        assert xmp.apply_sidecar(session, plan) is None and sidecar.read_bytes() == content
    # Read-only sidecar: refused, untouched.
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    sidecar.chmod(0o444)
    plan = xmp.plan_keywords(xmp.read_sidecars(session, [photo])[photo], [("cat", ("cat",))])
    with pytest.raises(xmp.XmpError, match="read-only"):
        xmp.apply_sidecar(session, plan)
    assert sidecar.read_text(encoding="utf-8") == DARKTABLE_SIDECAR
    sidecar.chmod(0o644)
    # Edited between the preview and the write: refused, the edit kept.
    plan = xmp.plan_keywords(xmp.read_sidecars(session, [photo])[photo], [("cat", ("cat",))])
    sidecar.write_text(DARKTABLE_SIDECAR.replace("holiday", "edited meanwhile"), encoding="utf-8")
    with pytest.raises(xmp.XmpError, match="changed on disk"):
        xmp.apply_sidecar(session, plan)
    assert "edited meanwhile" in sidecar.read_text(encoding="utf-8")
    assert sorted(path.name for path in photo.parent.iterdir()) == [photo.name, sidecar.name]


def test_sidecar_names_and_a_shared_name(session, tmp_path):
    assert xmp.sidecar_path("a/b.JPG") == Path("a/b.JPG.xmp")
    assert xmp.sidecar_path("a/b.JPG", "photo.xmp") == Path("a/b.xmp")
    with pytest.raises(ValueError, match="sidecar naming"):
        xmp.sidecar_path("a.jpg", "a.xmp")
    photos = [tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "b.jpg"]
    plans = xmp.read_sidecars(session, photos, "photo.xmp")
    assert "a.jpg, a.png" in plans[photos[0]].error and plans[photos[2]].error is None


def test_missing_exiftool_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(xmp.ExifToolMissing, match="libimage-exiftool-perl"):
        xmp.check_exiftool()
