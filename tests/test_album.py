"""Tests for helpers/album.py: album.ini edited in place (byte-for-byte), pictures found safely,
and whole albums tagged with the real trained Captioner (the `trained_run` fixture)."""

from __future__ import annotations

import configparser
import difflib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from helpers import album, keywords
from helpers.album import AlbumError, update_ini_text
from test_images import BAD_FILES, write_photo_corpus

# A user's album.ini with everything mps_autotags used to destroy.
USER_INI = """\
# My holiday album -- written by hand, please keep my notes!
; a semicolon comment too

[DEFAULT]
country_name = France
author = Ada

[album]
title = Paris, spring
description = Ten days in Paris.
  Mostly trains and flowers.
	Tab-indented line, 100%% true.
tags = travel, Paris

# the flower market
[Orchidée.jpg]
title = Une orchidée
tags = flower,market
unknown_key =   kept as is   
keyword_without_value

# the station
[La gare de l'Est.jpg]
description = Made by %(author)s
date = 2024-04-01

[plain.jpg]

[missing.jpg]
title = this photo was deleted

[../outside.jpg]
title = not in this folder

[notes.jpg]
title = a text file named .jpg
# last comment, no section follows
"""

GOOD = ["plain.jpg", "Orchidée.jpg", "La gare de l'Est.jpg", "UPPER.JPG", "cmyk.jpg", "gray.png",
        "alpha.png", "sixteen.png", "palette.gif", "rotated.jpg"]


def assert_only_our_lines_added(original: str, new: str, new_sections=()) -> None:
    """Every original byte kept: removing `auto_tags` lines (and the sections appended for new
    pictures, at the end) gives the original back byte for byte."""
    kept = "".join(line for line in new.splitlines(keepends=True)
                   if not line.startswith(album.AUTO_TAGS_KEY + " ="))
    assert kept.startswith(original), "".join(difflib.unified_diff(
        original.splitlines(True), kept.splitlines(True)))
    tail = kept[len(original):]
    assert sorted(line for line in tail.splitlines() if line.strip()) == sorted(
        f"[{name}]" for name in new_sections)


def read_like_myphotoshare(path: Path, encoding="utf-8") -> configparser.ConfigParser:
    config = configparser.ConfigParser(allow_no_value=True)
    with open(path, encoding=encoding) as file:
        config.read_file(file)
    return config


# ---------------------------------------------------------------------- album.ini text editing

def test_update_keeps_every_user_byte():
    keywords = {"Orchidée.jpg": ["orchidée", "fleur"], "La gare de l'Est.jpg": ["train", "gare"],
                "plain.jpg": ["chien"], "new photo.jpg": ["chat", "100%"]}
    new = update_ini_text(USER_INI, keywords)
    assert_only_our_lines_added(USER_INI, new, ["new photo.jpg"])
    config = configparser.ConfigParser(allow_no_value=True)
    config.read_string(new)
    assert config.get("Orchidée.jpg", "auto_tags") == "orchidée,fleur"
    assert config.get("new photo.jpg", "auto_tags") == "chat,100%"  # % escaped as %%
    assert "auto_tags = chat,100%%" in new
    assert config.get("La gare de l'Est.jpg", "description") == "Made by Ada"  # interpolation ok
    # auto_tags goes after the section's last option, before the comments of the next section.
    assert "keyword_without_value\nauto_tags = orchidée,fleur\n\n# the station\n" in new
    assert "[plain.jpg]\nauto_tags = chien\n" in new
    assert update_ini_text(new, keywords) == new  # idempotent


def test_crlf_line_endings_are_kept():
    original = USER_INI.replace("\n", "\r\n")
    new = update_ini_text(original, {"plain.jpg": ["chien"], "zz.jpg": ["chat"]})
    assert new.count("\n") == new.count("\r\n")  # no lone LF introduced
    assert_only_our_lines_added(original, new, ["zz.jpg"])


def test_merge_into_tags_and_captions():
    keywords = {"Orchidée.jpg": ["Flower", "orchid"], "La gare de l'Est.jpg": ["train"],
                "plain.jpg": ["dog"]}
    descriptions = {name: "A caption." for name in keywords}
    new = update_ini_text(USER_INI, keywords, descriptions, merge_into_tags=True)
    config = configparser.ConfigParser(allow_no_value=True)
    config.read_string(new)
    assert config.get("Orchidée.jpg", "tags") == "flower,market,orchid"  # no duplicate "Flower"
    assert config.get("plain.jpg", "tags") == "dog"
    assert config.get("Orchidée.jpg", "description") == "A caption."
    assert config.get("La gare de l'Est.jpg", "description") == "Made by Ada"  # user's kept
    assert update_ini_text(new, keywords, descriptions, merge_into_tags=True) == new


def test_default_tags_and_description_are_inherited():
    text = "[DEFAULT]\ntags = holiday\ndescription = Our trip\n\n[a.jpg]\ntitle = A\n"
    new = update_ini_text(text, {"a.jpg": ["beach", "holiday"]}, {"a.jpg": "A beach."},
                          merge_into_tags=True)
    config = configparser.ConfigParser(allow_no_value=True)
    config.read_string(new)
    assert config.get("a.jpg", "tags") == "holiday, beach"
    assert config.get("a.jpg", "description") == "Our trip"  # inherited: not overwritten


def test_new_file_gets_a_header():
    new = update_ini_text("", {"b.jpg": ["cat"], "a.jpg": ["dog"]})
    assert new.startswith("# ")
    config = configparser.ConfigParser(allow_no_value=True)
    config.read_string(new)
    assert config.sections() == ["b.jpg", "a.jpg"]


def test_invalid_ini_is_refused():
    with pytest.raises(AlbumError, match="not valid for MyPhotoShare"):
        album.parse_like_myphotoshare("[a.jpg]\ntitle = 1\n[a.jpg]\ntitle = 2\n")


# ---------------------------------------------------------------------- scanning and writing

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


def test_write_is_atomic_with_backup_and_keeps_encoding_crlf(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    original = "# Été 2024\r\n[Orchidée.jpg]\r\ntitle = Fleur d'été\r\n".encode("latin-1")
    (folder / "album.ini").write_bytes(original)
    ini = album.read_ini(folder / "album.ini")
    assert ini.encoding == "cp1252" and ini.newline == "\r\n"
    new_text = update_ini_text(ini.text, {"Orchidée.jpg": ["orchidée", "fleur"]})
    backup = album.write_ini(ini, new_text)
    assert backup == folder / "album.ini.bak" and backup.read_bytes() == original
    written = (folder / "album.ini").read_bytes()
    assert written.startswith(original) and written.endswith(
        "auto_tags = orchidée,fleur\r\n".encode("latin-1"))
    assert sorted(p.name for p in folder.iterdir()) == ["album.ini", "album.ini.bak"]  # no temp
    # A keyword the encoding cannot hold: clear error, nothing changed.
    ini = album.read_ini(folder / "album.ini")
    greek = update_ini_text(ini.text, {"Orchidée.jpg": ["ορχιδέα"]})
    with pytest.raises(AlbumError, match="cp1252.*UTF-8"):
        album.write_ini(ini, greek)
    assert (folder / "album.ini").read_bytes() == written


def test_concurrent_change_is_not_overwritten(tmp_path):
    path = tmp_path / "album.ini"
    path.write_text("[a.jpg]\n", encoding="utf-8")
    ini = album.read_ini(path)
    path.write_text("[a.jpg]\ntitle = edited meanwhile\n", encoding="utf-8")
    with pytest.raises(AlbumError, match="changed on disk"):
        album.write_ini(ini, update_ini_text(ini.text, {"a.jpg": ["x"]}))
    assert "edited meanwhile" in path.read_text(encoding="utf-8")


def test_read_only_folder_is_reported_and_untouched(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "album.ini").write_text("[a.jpg]\n", encoding="utf-8")
    ini = album.read_ini(folder / "album.ini")
    folder.chmod(0o555)
    try:
        with pytest.raises(AlbumError, match="read-only"):
            album.write_ini(ini, update_ini_text(ini.text, {"a.jpg": ["x"]}))
        assert sorted(os.listdir(folder)) == ["album.ini"]
    finally:
        folder.chmod(0o755)
    (folder / "album.ini").chmod(stat.S_IRUSR)
    with pytest.raises(AlbumError, match="read-only"):
        album.write_ini(ini, update_ini_text(ini.text, {"a.jpg": ["x"]}))


# ---------------------------------------------------------------------- whole albums, real model

@pytest.fixture(scope="module")
def captioner(trained_run):
    from helpers.inference import Captioner

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
                              progress=False, echo=None)
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
    expected = [word for _, word, _ in keywords.select_keywords(
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
                            progress=False, echo=None)
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
                              echo=None)
    assert summary.albums[0].written
    data = (user_album / "album.ini").read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n")
    text = data.decode("cp1252")
    assert_only_our_lines_added(original.decode("latin-1"), text,
                                [n for n in summary.albums[0].keywords if n != "Orchidée.jpg"])
    config = read_like_myphotoshare(user_album / "album.ini", encoding="cp1252")
    assert config.get("Orchidée.jpg", "auto_tags") == ",".join(
        summary.albums[0].keywords["Orchidée.jpg"])


def test_read_only_album_and_cli_exit_status(captioner, trained_run, user_album, capsys):
    from helpers.__main__ import main

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
    album.write_ini(scan.ini, update_ini_text(scan.ini.text, {"a.jpg": ["x"]}))
    assert (folder / "album.ini").is_symlink()
    assert (folder / "album.ini").read_text(encoding="utf-8") == "[a.jpg]\ntitle = A\nauto_tags = x\n"
    outside = tmp_path / "outside.ini"
    outside.write_text("[b.jpg]\n", encoding="utf-8")
    (folder / "album.ini").unlink()
    (folder / "album.ini").symlink_to(outside)
    assert "outside the album" in album.scan_album(folder).error
