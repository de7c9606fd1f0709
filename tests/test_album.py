"""Tests for helpers/album/tagging.py: pictures found safely, whole albums tagged with the real trained
Captioner (the `trained_run` fixture) through the prediction cache, the command line (`helpers.cli.tag_album_command`),
XMP sidecars with the real ExifTool, and `--untag` giving the original album.ini back byte for
byte. The album.ini text rules themselves are tested in tests/test_album_ini.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_album_ini import USER_INI, assert_only_our_lines_added, read_like_myphotoshare
from test_images import BAD_FILES, write_photo_corpus

from helpers import cli
from helpers.album import tagging as album
from helpers.album.files import write_ini
from helpers.album.ini import update_ini_text
from helpers.data import images
from helpers.wordnet import keywords

GOOD = ["plain.jpg", "Orchidée.jpg", "La gare de l'Est.jpg", "UPPER.JPG", "cmyk.jpg", "gray.png",
        "alpha.png", "sixteen.png", "palette.gif", "rotated.jpg"]
needs_exiftool = pytest.mark.skipif(
    shutil.which("exiftool") is None,
    reason="exiftool not installed (apt-get install libimage-exiftool-perl, or .ci/install-exiftool)")


@pytest.fixture(autouse=True)
def private_cache_home(tmp_path, monkeypatch):
    """The command line's default prediction cache goes to this test's folder, not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# ---------------------------------------------------------------------- scanning

@pytest.fixture()
def user_album(tmp_path, shared_data) -> Path:
    """An album folder with the photo corpus (good and bad files) and USER_INI."""
    root = tmp_path / "albums"
    folder = root / "paris"
    photo = sorted((shared_data / "coco-mini-2017" / "val2017").glob("*.jpg"))[0]
    write_photo_corpus(folder, photo)
    (folder / ".hidden.jpg").write_bytes((folder / "plain.jpg").read_bytes())
    (folder / "clip.mp4").write_bytes(b"not really a video")
    (root / "outside.jpg").write_bytes((folder / "plain.jpg").read_bytes())
    (folder / "link-out.jpg").symlink_to(root / "outside.jpg")
    (folder / "album.ini").write_text(USER_INI, encoding="utf-8")
    return folder


def test_scan_album_finds_pictures_and_refuses_outside(user_album):
    scan = album.scan_album(user_album)
    assert scan.error is None
    reasons = {item.name: item.reason for item in scan.skipped}
    assert "no such file" in reasons["missing.jpg"]
    assert "outside the album" in reasons["../outside.jpg"]
    assert "outside the album" in reasons["link-out.jpg"]
    assert ".hidden.jpg" not in scan.pictures and "clip.mp4" not in scan.pictures
    assert set(GOOD) <= set(scan.pictures)
    assert set(BAD_FILES) - {"iphone.heic"} <= set(scan.pictures)  # found; the model reports them
    assert list(scan.pictures)[:4] == ["Orchidée.jpg", "La gare de l'Est.jpg", "plain.jpg",
                                       "notes.jpg"]  # album.ini order first
    assert "UPPER.JPG" in scan.new_sections and "plain.jpg" not in scan.new_sections


# ---------------------------------------------------------------------- whole albums, real model

@pytest.fixture(scope="module")
def captioner(trained_run):
    from helpers.predict.predictors import Captioner

    return Captioner.from_bundle(trained_run)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): (path.read_bytes() if path.is_file() else b"")
            for path in sorted(folder.rglob("*")) if not path.is_symlink()}


def test_tag_album_end_to_end(captioner, user_album):
    root = user_album.parent
    outside_before = {name: data for name, data in _tree(root).items()
                      if not name.startswith(user_album.name + "/")}
    files_before = set(os.listdir(user_album))
    summary = album.tag_album(captioner, album_dir=user_album, lang="fra", nb_keywords=3,
                              merge_into_tags=False, progress=False, echo=None)
    [result] = summary.albums
    assert result.error is None and result.written and summary.anything_done
    # Every good photo tagged (in French), every bad one reported with its reason.
    assert set(GOOD) <= set(result.keywords)
    assert all(1 <= len(result.keywords[name]) <= 3 for name in GOOD)
    reasons = {item.name: item.reason for item in result.skipped}
    for name, reason in BAD_FILES.items():
        assert reason in reasons[name], (name, reasons.get(name))
    for name in ("missing.jpg", "../outside.jpg", "link-out.jpg"):
        assert name in reasons
    # The keywords are the model's, chosen by the documented rule.
    [prediction] = captioner.predict([user_album / "Orchidée.jpg"], top_n=1, progress=False)
    expected = [word for _, word, _ in keywords.top_k_keywords(
        prediction.synset_probabilities, 3, 0.0, "fra")]
    assert result.keywords["Orchidée.jpg"] == expected
    # No user byte lost; new sections only for pictures that had none; a backup of the original.
    text = (user_album / "album.ini").read_text(encoding="utf-8")
    new_sections = [name for name in result.keywords if f"[{name}]" not in USER_INI]
    assert "UPPER.JPG" in new_sections and "plain.jpg" not in new_sections
    assert_only_our_lines_added(USER_INI, text, new_sections)
    assert result.backup_path.read_text(encoding="utf-8") == USER_INI
    # MyPhotoShare reads it.
    config = read_like_myphotoshare(user_album / "album.ini")
    for name, words in result.keywords.items():
        assert config.get(name, "auto_tags") == ",".join(words)
    assert config.get("album", "description").endswith("100% true.")
    # Nothing written outside the album folder; inside, only album.ini changed + its backup.
    assert {name: data for name, data in _tree(root).items()
            if not name.startswith(user_album.name + "/")} == outside_before
    assert set(os.listdir(user_album)) == files_before | {"album.ini.bak"}
    assert set(album.scan_album(user_album).pictures) == set(result.keywords) | set(BAD_FILES)
    # Running twice with the same model changes nothing (and does not touch the backup).
    again = album.tag_album(captioner, album_dir=user_album, lang="fra", nb_keywords=3,
                            merge_into_tags=False, progress=False, echo=None)
    assert not again.albums[0].written and again.albums[0].diff == "" and again.anything_done
    assert (user_album / "album.ini").read_text(encoding="utf-8") == text
    assert result.backup_path.read_text(encoding="utf-8") == USER_INI


def test_preview_prints_and_writes_nothing(captioner, user_album):
    lines = []
    summary = album.tag_album(captioner, album_ini=user_album / "album.ini", update=False,
                              nb_keywords=2, progress=False, echo=lines.append)
    assert (user_album / "album.ini").read_text(encoding="utf-8") == USER_INI
    assert not (user_album / "album.ini.bak").exists()
    result = summary.albums[0]
    assert sorted(lines) == sorted(f"{name} --> {','.join(words)}"
                                   for name, words in result.keywords.items())
    assert "+auto_tags = " in summary.diff and summary.anything_done
    assert "would change" in str(summary)


def test_captions_and_merge_into_tags(captioner, user_album):
    summary = album.tag_album(captioner, album_dir=user_album, captions=True,
                              merge_into_tags=True, progress=False, echo=None)
    result = summary.albums[0]
    config = read_like_myphotoshare(user_album / "album.ini")
    assert config.get("La gare de l'Est.jpg", "description") == "Made by Ada"  # the user's
    assert config.get("plain.jpg", "description") == result.descriptions["plain.jpg"]
    assert result.descriptions["plain.jpg"][0].isupper() and result.descriptions["plain.jpg"][-1] == "."
    tags = [tag.strip().casefold() for tag in config.get("Orchidée.jpg", "tags").split(",")]
    assert tags[:2] == ["flower", "market"] and len(tags) == len(set(tags))
    assert set(word.casefold() for word in result.keywords["Orchidée.jpg"]) <= set(tags)


def test_latin1_crlf_album_and_an_unwritable_language(captioner, user_album):
    original = ("# Été\r\n[DEFAULT]\r\nauthor = Zoé\r\n\r\n[Orchidée.jpg]\r\n"
                "title = Fleur d'été\r\n").encode("latin-1")
    (user_album / "album.ini").write_bytes(original)
    greek = album.tag_album(captioner, album_dir=user_album, lang="ell", progress=False, echo=None)
    assert greek.albums[0].error and "UTF-8" in greek.albums[0].error
    assert (user_album / "album.ini").read_bytes() == original and not greek.anything_done
    summary = album.tag_album(captioner, album_dir=user_album, lang="fra", progress=False,
                              merge_into_tags=False, echo=None)
    assert summary.albums[0].written
    data = (user_album / "album.ini").read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    text = data.decode("cp1252")
    assert_only_our_lines_added(original.decode("latin-1"), text,
                                [n for n in summary.albums[0].keywords if n != "Orchidée.jpg"])
    config = read_like_myphotoshare(user_album / "album.ini", encoding="cp1252")
    assert config.get("Orchidée.jpg", "auto_tags") == ",".join(
        summary.albums[0].keywords["Orchidée.jpg"])


def tag_album_cli(argv: list[str], predictor) -> int:
    """`python -m helpers tag-album ARGV` as helpers.cli runs it, with `predictor` loaded."""
    return cli.tag_album_command(parse_tag_album(argv), lambda args: predictor)


def parse_tag_album(argv: list[str]):
    """The arguments of `python -m helpers tag-album ARGV`."""
    return cli.build_parser().parse_args(["tag-album", *argv])


def test_read_only_album_and_cli_exit_status(captioner, trained_run, user_album, capsys):
    def main(argv):
        assert argv[0] == "tag-album"
        return tag_album_cli(argv[1:], captioner)

    user_album.chmod(0o555)
    try:
        status = main(["tag-album", "--run", str(trained_run), "--album-dir", str(user_album)])
        out = capsys.readouterr().out
        assert status == 1 and "read-only" in out and "tagged" in out
        assert (user_album / "album.ini").read_text(encoding="utf-8") == USER_INI
        assert not (user_album / "album.ini.bak").exists()
        status = main(["tag-album", "--run", str(trained_run), "--album-dir", str(user_album),
                       "--no-update", "--lang", "spa", "--nb-keywords", "2"])
        out = capsys.readouterr().out
        assert status == 0 and "plain.jpg --> " in out and "+auto_tags" in out
    finally:
        user_album.chmod(0o755)
    status = main(["tag-album", "--run", str(trained_run), "--album-dir", str(user_album),
                   "--min-proba", "0.0", "--captions"])
    assert status == 0 and "wrote" in capsys.readouterr().out
    assert main(["tag-album", "--run", str(trained_run),
                 "--album-dir", str(user_album / "nope")]) == 2


def test_recursive_album_tree(captioner, tmp_path, shared_data):
    photos = sorted((shared_data / "coco-mini-2017" / "val2017").glob("*.jpg"))
    root = tmp_path / "Pictures"
    for folder, sources in (("2023/Rome", photos[:2]), ("2024", photos[2:4]), ("2024/.cache",
                                                                                 photos[4:5])):
        (root / folder).mkdir(parents=True)
        for source in sources:
            shutil.copy(source, root / folder / source.name)
    (root / "2024" / "album.ini").write_text("[album]\ntitle = 2024\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(photos[5], elsewhere / "x.jpg")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    summary = album.tag_album(captioner, album_dir=root, recursive=True, progress=False,
                              echo=None)
    assert sorted(str(r.album_dir.relative_to(root)) for r in summary.albums) == ["2023/Rome",
                                                                                   "2024"]
    assert summary.pictures_tagged == 4 and len(summary.files_written) == 2
    assert (root / "2023" / "Rome" / "album.ini").read_text(encoding="utf-8").startswith("# ")
    assert not (elsewhere / "album.ini").exists() and not (root / "2024/.cache/album.ini").exists()
    assert read_like_myphotoshare(root / "2024" / "album.ini").get("album", "title") == "2024"


def test_every_unannotated_coco_photo_gets_keywords(captioner, shared_data, tmp_path):
    """The 80 val2017 photos of coco-mini without any annotation: an album of unseen photos."""
    coco = shared_data / "coco-mini-2017"
    annotated = set()
    for name in ("captions_val2017.json", "instances_val2017.json"):
        data = json.loads((coco / "annotations" / name).read_text(encoding="utf-8"))
        annotated |= {item["image_id"] for item in data["annotations"]}
    unannotated = [path for path in sorted((coco / "val2017").glob("*.jpg"))
                   if int(path.stem) not in annotated]
    assert len(unannotated) == 80
    folder = tmp_path / "unseen"
    folder.mkdir()
    for path in unannotated:
        shutil.copy(path, folder / path.name)
    summary = album.tag_album(captioner, album_dir=folder, lang="eng", nb_keywords=4,
                              progress=False, echo=None)
    result = summary.albums[0]
    assert result.written and not result.skipped
    assert len(result.keywords) == 80 and all(len(words) == 4 for words in result.keywords.values())
    config = read_like_myphotoshare(folder / "album.ini")
    assert len(config.sections()) == 80


def test_symlinked_album_ini_is_edited_through_the_link(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    (folder / "metadata.ini").write_text("[a.jpg]\ntitle = A\n", encoding="utf-8")
    (folder / "album.ini").symlink_to("metadata.ini")
    scan = album.scan_album(folder)
    assert scan.error is None and scan.ini.path == (folder / "metadata.ini").resolve()
    write_ini(scan.ini, update_ini_text(scan.ini.text, {"a.jpg": ["x"]}))
    assert (folder / "album.ini").is_symlink()
    assert (folder / "album.ini").read_text(encoding="utf-8") == "[a.jpg]\ntitle = A\nauto_tags = x\n"
    outside = tmp_path / "outside.ini"
    outside.write_text("[b.jpg]\n", encoding="utf-8")
    (folder / "album.ini").unlink()
    (folder / "album.ini").symlink_to(outside)
    assert "outside the album" in album.scan_album(folder).error


# ---------------------------------------------------------------------- the tags route, untag

def test_embedded_album_tag_reject_retag_untag(captioner, sample_dir, tmp_path, capsys):
    """On a copy of the embedded album: keywords go into tags; a keyword deleted by hand is not
    re-added; --untag gives back the original file byte for byte."""
    folder = tmp_path / "album"
    shutil.copytree(sample_dir / "album", folder)
    original = (folder / "album.ini").read_bytes()
    before = read_like_myphotoshare(folder / "album.ini")
    assert tag_album_cli(["--run", "sample", "--album-dir", str(folder), "--lang", "fra"],
                         captioner) == 0
    config = read_like_myphotoshare(folder / "album.ini")
    own = [name for name in before.sections() if before.has_option(name, "tags")
           and "tags" not in before.defaults() and name != "album"
           and config.get(name, "auto_tags", fallback="")]
    name = own[0]
    added = config.get(name, "auto_tags").split(",")
    users = [tag.strip() for tag in before.get(name, "tags").split(",")]
    tags = [tag.strip() for tag in config.get(name, "tags").split(",")]
    assert tags == users + added   # the user's tags first, untouched, then ours
    for picture in config.sections():
        if picture != "album":   # every picture searchable: its keywords are in tags
            assert set(config.get(picture, "auto_tags").split(",")) <= {
                tag.strip() for tag in config.get(picture, "tags").split(",")}
    # The user deletes one added keyword by hand.
    text = (folder / "album.ini").read_text(encoding="utf-8")
    line = f"tags = {', '.join(tags)}\n"
    assert text.count(line) >= 1
    edited = text.replace(line, f"tags = {', '.join(t for t in tags if t != added[0])}\n", 1)
    (folder / "album.ini").write_text(edited, encoding="utf-8")
    assert tag_album_cli(["--run", "sample", "--album-dir", str(folder), "--lang", "fra"],
                         captioner) == 0
    config = read_like_myphotoshare(folder / "album.ini")
    assert added[0] not in [tag.strip() for tag in config.get(name, "tags").split(",")]
    assert config.get(name, "auto_tags_rejected") == added[0]
    assert "predicted" in capsys.readouterr().out
    # --untag needs no model and gives back the original bytes.
    def no_model(args):
        raise AssertionError("--untag loaded a model")

    assert cli.tag_album_command(parse_tag_album(["--untag", "--album-dir", str(folder)]), no_model) == 0
    assert (folder / "album.ini").read_bytes() == original
    assert "untagged" in capsys.readouterr().out


def test_cli_needs_a_model_and_checks_before_loading_it(user_album, capsys):
    def no_model(args):
        raise AssertionError("the model was loaded before the checks")

    assert tag_album_cli(["--album-dir", str(user_album)], None) == 2
    out = capsys.readouterr().out
    assert "--run NAME" in out and "--model pretrained" in out
    for argv, message in ((["--lang", "xx"], "not installed"), (["--min-proba", "2"], "[0, 1]"),
                          (["--album-dir", str(user_album / "nope")], "does not exist")):
        args = parse_tag_album(["--run", "r", "--album-dir", str(user_album), *argv])
        assert cli.tag_album_command(args, no_model) == 2 and message in capsys.readouterr().out
    args = parse_tag_album(["--model", "imagenet", "--album-dir", str(user_album)])
    assert args.model == "imagenet" and args.run is None and args.merge_into_tags
    assert parse_tag_album(["--run", "r", "--album-dir", "x", "--no-merge-into-tags"]).merge_into_tags is False


# ---------------------------------------------------------------------- cache: fast re-runs

class CountingPredictor:
    """The real Captioner, recording the photos it is asked to predict."""

    def __init__(self, captioner):
        self.captioner, self.photos = captioner, []

    def predict(self, paths, **kwargs):
        self.photos.extend(paths)
        return self.captioner.predict(paths, **kwargs)

    def __getattr__(self, name):
        return getattr(self.captioner, name)


def test_rerun_decodes_no_photo(captioner, user_album, tmp_path, monkeypatch, shared_data):
    counting = CountingPredictor(captioner)
    cache = tmp_path / "cache.sqlite"
    run = dict(album_dir=user_album, cache=cache, progress=False, echo=None)
    first = album.tag_album(counting, lang="fra", **run)
    pictures = album.scan_album(user_album).pictures
    assert sorted(counting.photos) == sorted(pictures.values()) and first.predicted == len(pictures)
    text = (user_album / "album.ini").read_text(encoding="utf-8")

    def no_decoding(*args, **kwargs):
        raise AssertionError("a photo was decoded")

    with monkeypatch.context() as patch:
        patch.setattr(images, "load_images", no_decoding)
        patch.setattr(images, "load_image", no_decoding)
        again = album.tag_album(counting, lang="fra", **run)
        assert again.predicted == 0 and again.cached == len(pictures)
        assert again.albums[0].diff == "" and again.anything_done
        # Other language, threshold, number of keywords: no prediction either.
        other = album.tag_album(counting, lang="spa", nb_keywords=2, min_proba=0.05, update=False,
                                **run)
        assert other.predicted == 0 and other.albums[0].diff
    assert (user_album / "album.ini").read_text(encoding="utf-8") == text
    assert len(counting.photos) == len(pictures)
    # One photo added: only it is predicted.
    shutil.copy(pictures["plain.jpg"], user_album / "zz new.jpg")
    later = album.tag_album(counting, lang="fra", **run)
    assert counting.photos[len(pictures):] == [user_album.resolve() / "zz new.jpg"]
    assert later.predicted == 1 and "zz new.jpg" in later.albums[0].keywords
    # The cached keywords are the model's own, exactly.
    [fresh] = captioner.predict([pictures["Orchidée.jpg"]], top_n=1, progress=False)
    assert first.albums[0].keywords["Orchidée.jpg"] == [
        word for _, word, _ in captioner.select_keywords(fresh.synset_probabilities, 5, 0.0, "fra")]


def test_keywords_come_from_the_predictors_own_rule(captioner, user_album):
    class ReversedRule(CountingPredictor):
        def select_keywords(self, synset_probabilities, nb_keywords=5, min_proba=0.0, lang="eng"):
            return list(reversed(self.captioner.select_keywords(synset_probabilities, nb_keywords,
                                                                min_proba, lang)))

    summary = album.tag_album(ReversedRule(captioner), album_dir=user_album, update=False,
                              progress=False, echo=None)
    [fresh] = captioner.predict([user_album / "plain.jpg"], top_n=1, progress=False)
    expected = [word for _, word, _ in captioner.select_keywords(fresh.synset_probabilities)]
    assert summary.albums[0].keywords["plain.jpg"] == expected[::-1]


# ---------------------------------------------------------------------- XMP sidecars

@needs_exiftool
def test_xmp_sidecars_from_the_command_line(captioner, user_album, capsys):
    from test_xmp import exiftool_reads

    (user_album / "gray.png.xmp").write_bytes(b"not xml")   # reported, skipped; the rest goes on
    photo = user_album / "plain.jpg"
    photo_bytes = photo.read_bytes()
    original = (user_album / "album.ini").read_bytes()
    assert tag_album_cli(["--run", "r", "--album-dir", str(user_album), "--xmp", "--lang", "ell",
                          "--no-update"], captioner) == 0
    out = capsys.readouterr().out
    assert "plain.jpg.xmp (new): +" in out and not (user_album / "plain.jpg.xmp").exists()
    assert tag_album_cli(["--run", "r", "--album-dir", str(user_album), "--xmp", "--lang", "ell"],
                         captioner) == 0
    out = capsys.readouterr().out
    assert "gray.png.xmp" in out and "XMP sidecar left alone" in out
    assert (user_album / "gray.png.xmp").read_bytes() == b"not xml"
    config = read_like_myphotoshare(user_album / "album.ini")
    words = config.get("plain.jpg", "auto_tags").split(",")
    found = exiftool_reads(user_album / "plain.jpg.xmp", "XMP-dc:Subject",
                           "XMP-lr:HierarchicalSubject")
    assert found["XMP-dc:Subject"] == words
    assert [path.split("|")[-1] for path in found["XMP-lr:HierarchicalSubject"]] == words
    assert photo.read_bytes() == photo_bytes and "sidecar" in out
    # Untag: sidecars we created are gone, album.ini is the user's again.
    assert cli.tag_album_command(parse_tag_album(["--untag", "--xmp", "--album-dir", str(user_album)]),
                                 None) == 0
    assert not (user_album / "plain.jpg.xmp").exists()
    assert (user_album / "album.ini").read_bytes() == original
    assert (user_album / "gray.png.xmp").read_bytes() == b"not xml"


# ---------------------------------------------------------------------- layering

def test_album_code_never_imports_a_model():
    """Album tagging sits below the model: importing it (and the panel) loads no TensorFlow."""
    code = ("import sys, helpers.album.tagging, helpers.widgets\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow' or m in "
            "('helpers.predict.predictors', 'helpers.model', 'helpers.training.train', 'helpers.training.features'))\n"
            "print(bad)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    assert output.strip() == "[]"
