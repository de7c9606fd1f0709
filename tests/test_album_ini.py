"""Tests for helpers/album/ini.py: album.ini edited in place byte for byte, the tags route that
keeps the user in charge (rejected keywords never come back), untagging back to the original
bytes, and atomic writes with backups. Every result is read back with MyPhotoShare's parser."""

from __future__ import annotations

import configparser
import difflib
import os
import stat
from pathlib import Path

import pytest

from helpers.album import files as album_files
from helpers.album import ini as album_ini
from helpers.album.ini import AlbumError, edit_ini, untag_ini_text, update_ini_text

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


def assert_only_our_lines_added(original: str, new: str, new_sections=()) -> None:
    """Every original byte kept: removing the tool's own lines (`auto_tags...`) and the sections
    appended for new pictures, at the end, gives the original back byte for byte."""
    kept = "".join(line for line in new.splitlines(keepends=True)
                   if not any(line.startswith(key + " =") for key in album_ini.TOOL_KEYS))
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


def parsed(text: str) -> configparser.ConfigParser:
    config = configparser.ConfigParser(allow_no_value=True)
    config.read_string(text)
    return config


def tags_of(text: str, name: str) -> list[str]:
    """A picture's tags as MyPhotoShare splits them."""
    return [tag.strip() for tag in parsed(text).get(name, "tags", fallback="").split(",")
            if tag.strip()]


def differences(expected: str, found: str) -> str:
    return "".join(difflib.unified_diff(expected.splitlines(True), found.splitlines(True)))


# ---------------------------------------------------------------------- the auto_tags route

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
    assert untag_ini_text(new) == text


def test_new_file_gets_a_header():
    new = update_ini_text("", {"b.jpg": ["cat"], "a.jpg": ["dog"]})
    assert new.startswith("# ")
    config = configparser.ConfigParser(allow_no_value=True)
    config.read_string(new)
    assert config.sections() == ["b.jpg", "a.jpg"]
    assert untag_ini_text(new) is None  # only what we created: the file can go


def test_invalid_ini_is_refused():
    with pytest.raises(AlbumError, match="not valid for MyPhotoShare"):
        album_ini.parse_like_myphotoshare("[a.jpg]\ntitle = 1\n[a.jpg]\ntitle = 2\n")


# ---------------------------------------------------------------------- the tags route

KEYWORDS = {"Orchidée.jpg": ["orchidée", "fleur", "Flower"], "La gare de l'Est.jpg": ["train", "gare"],
            "plain.jpg": ["chien"], "notes.jpg": ["papier"], "new photo.jpg": ["chat", "100%"]}


def test_tags_route_records_what_it_added_and_never_touches_the_users_tags():
    edit = edit_ini(USER_INI, KEYWORDS, merge_into_tags=True)
    new = edit.text
    assert tags_of(new, "Orchidée.jpg") == ["flower", "market", "orchidée", "fleur"]
    assert "tags = flower,market,orchidée,fleur\n" in new  # the user's separator style
    config = parsed(new)
    assert config.get("Orchidée.jpg", "auto_tags") == "orchidée,fleur"  # not the user's flower
    assert config.get("Orchidée.jpg", "auto_tags_state") == "in tags"
    assert config.get("plain.jpg", "auto_tags_state") == "in tags, new tags"
    assert config.get("new photo.jpg", "tags") == "chat, 100%"
    assert config.get("new photo.jpg", "auto_tags_state") == "in tags, new section"
    assert config.get("album", "tags") == "travel, Paris"
    assert edit_ini(new, KEYWORDS, merge_into_tags=True).text == new  # idempotent
    assert untag_ini_text(new) == USER_INI


def test_a_keyword_the_user_removed_is_never_added_back():
    tagged = update_ini_text(USER_INI, KEYWORDS, merge_into_tags=True)
    edited = tagged.replace("tags = flower,market,orchidée,fleur", "tags = flower,market,orchidée")
    again = edit_ini(edited, KEYWORDS, merge_into_tags=True)
    assert tags_of(again.text, "Orchidée.jpg") == ["flower", "market", "orchidée"]
    assert again.rejected["Orchidée.jpg"] == ["fleur"]
    config = parsed(again.text)
    assert config.get("Orchidée.jpg", "auto_tags") == "orchidée"
    assert config.get("Orchidée.jpg", "auto_tags_rejected") == "fleur"
    # Still rejected on every later run, in either route; untagging restores the original.
    for merge in (True, False, True):
        text = edit_ini(again.text, KEYWORDS, merge_into_tags=merge).text
        assert "fleur" not in tags_of(text, "Orchidée.jpg")
        assert "fleur" not in parsed(text).get("Orchidée.jpg", "auto_tags").split(",")
    assert untag_ini_text(again.text) == USER_INI
    # Putting it back by hand makes it the user's: no longer rejected, kept by --untag.
    back = again.text.replace("tags = flower,market,orchidée\n", "tags = flower,market,orchidée,fleur\n")
    text = edit_ini(back, KEYWORDS, merge_into_tags=True).text
    assert "auto_tags_rejected" not in text.split("[Orchidée.jpg]")[1].split("[")[0]
    assert tags_of(untag_ini_text(text), "Orchidée.jpg") == ["flower", "market", "fleur"]


def test_adopted_keyword_stays_and_new_choices_replace_ours():
    tagged = update_ini_text(USER_INI, KEYWORDS, merge_into_tags=True)
    adopted = tagged.replace("auto_tags = orchidée,fleur", "auto_tags = fleur")  # orchidée: mine
    spanish = {"Orchidée.jpg": ["orquídea", "flor"]}
    text = edit_ini(adopted, spanish, merge_into_tags=True).text
    assert tags_of(text, "Orchidée.jpg") == ["flower", "market", "orchidée", "orquídea", "flor"]
    assert parsed(text).get("Orchidée.jpg", "auto_tags") == "orquídea,flor"
    assert tags_of(untag_ini_text(text), "Orchidée.jpg") == ["flower", "market", "orchidée"]


def test_switching_routes():
    # An album tagged the old way (auto_tags only, as mps_autotags): nothing counts as rejected.
    legacy = update_ini_text(USER_INI, KEYWORDS)
    into_tags = edit_ini(legacy, KEYWORDS, merge_into_tags=True)
    assert not any(into_tags.rejected.values())
    assert tags_of(into_tags.text, "plain.jpg") == ["chien"]
    # Back to auto_tags only: our keywords leave tags, the user's stay.
    back = update_ini_text(into_tags.text, KEYWORDS)
    assert tags_of(back, "Orchidée.jpg") == ["flower", "market"] and tags_of(back, "plain.jpg") == []
    assert parsed(back).get("Orchidée.jpg", "auto_tags") == "orchidée,fleur,Flower"
    assert untag_ini_text(back) == USER_INI


TAGS_LAYOUTS = ["tags=a,b", "tags: a, b,", "tags = a,\n  b", "tags =", "tags = ", "Tags = a ; b  ",
                "tags = a,b,\t", "tags = 100%% sure", "date = 2024-05-01"]


@pytest.mark.parametrize("layout", TAGS_LAYOUTS)
@pytest.mark.parametrize("default", ["", "[DEFAULT]\ntags = holiday, sea\n\n"])
@pytest.mark.parametrize("line_end", ["\n", "\r\n", ""])
def test_untag_gives_back_the_original_bytes(layout, default, line_end):
    text = (default + "[x.jpg]\ntitle = t\n" + layout + "\n\n# the next one\n[y.jpg]\ntitle = y"
            ).replace("\n", line_end or "\n") + line_end
    keywords = {"x.jpg": ["k1", "A", "k%2"], "y.jpg": ["k1", "holiday"], "z.jpg": ["new"]}
    for merge in (True, False):
        edit = edit_ini(text, keywords, {"y.jpg": "A caption."}, merge_into_tags=merge)
        album_ini.check_written(edit.text, edit)
        if line_end == "\r\n":
            assert edit.text.count("\n") == edit.text.count("\r\n")
        assert edit_ini(edit.text, keywords, {"y.jpg": "A caption."}, merge).text == edit.text
        untagged = untag_ini_text(edit.text)
        assert untagged == text, differences(text, untagged)


def test_keywords_with_separators_read_back_as_one_keyword():
    words = ["a, b", "line\nbreak", "100 %", 'say "hi"', "x|y", "  spaced  "]
    edit = edit_ini("[a.jpg]\n", {"a.jpg": words}, merge_into_tags=True)
    album_ini.check_written(edit.text, edit)
    assert tags_of(edit.text, "a.jpg") == ["a b", "line break", "100 %", 'say "hi"', "x|y", "spaced"]
    assert untag_ini_text(edit.text) == "[a.jpg]\n"


# ---------------------------------------------------------------------- writing

def test_write_is_atomic_with_backup_and_keeps_encoding_crlf(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    original = "# Été 2024\r\n[Orchidée.jpg]\r\ntitle = Fleur d'été\r\n".encode("latin-1")
    (folder / "album.ini").write_bytes(original)
    ini = album_files.read_ini(folder / "album.ini")
    assert ini.encoding == "cp1252" and ini.newline == "\r\n"
    new_text = update_ini_text(ini.text, {"Orchidée.jpg": ["orchidée", "fleur"]})
    backup = album_files.write_ini(ini, new_text)
    assert backup == folder / "album.ini.bak" and backup.read_bytes() == original
    written = (folder / "album.ini").read_bytes()
    assert written.startswith(original) and written.endswith(
        "auto_tags = orchidée,fleur\r\n".encode("latin-1"))
    assert sorted(p.name for p in folder.iterdir()) == ["album.ini", "album.ini.bak"]  # no temp
    # A keyword the encoding cannot hold: clear error, nothing changed.
    ini = album_files.read_ini(folder / "album.ini")
    greek = update_ini_text(ini.text, {"Orchidée.jpg": ["ορχιδέα"]})
    with pytest.raises(AlbumError, match="cp1252.*UTF-8"):
        album_files.write_ini(ini, greek)
    assert (folder / "album.ini").read_bytes() == written


def test_concurrent_change_is_not_overwritten(tmp_path):
    path = tmp_path / "album.ini"
    path.write_text("[a.jpg]\n", encoding="utf-8")
    ini = album_files.read_ini(path)
    path.write_text("[a.jpg]\ntitle = edited meanwhile\n", encoding="utf-8")
    with pytest.raises(AlbumError, match="changed on disk"):
        album_files.write_ini(ini, update_ini_text(ini.text, {"a.jpg": ["x"]}))
    assert "edited meanwhile" in path.read_text(encoding="utf-8")


def test_read_only_folder_is_reported_and_untouched(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "album.ini").write_text("[a.jpg]\n", encoding="utf-8")
    ini = album_files.read_ini(folder / "album.ini")
    folder.chmod(0o555)
    try:
        with pytest.raises(AlbumError, match="read-only"):
            album_files.write_ini(ini, update_ini_text(ini.text, {"a.jpg": ["x"]}))
        assert sorted(os.listdir(folder)) == ["album.ini"]
    finally:
        folder.chmod(0o755)
    (folder / "album.ini").chmod(stat.S_IRUSR)
    with pytest.raises(AlbumError, match="read-only"):
        album_files.write_ini(ini, update_ini_text(ini.text, {"a.jpg": ["x"]}))


def test_untagging_a_file_we_created_deletes_it_with_a_backup(tmp_path):
    path = tmp_path / "album.ini"
    path.write_text(update_ini_text("", {"a.jpg": ["x"]}, merge_into_tags=True), encoding="utf-8")
    tagged = path.read_bytes()
    ini = album_files.read_ini(path)
    assert album_files.write_ini(ini, untag_ini_text(ini.text)) == tmp_path / "album.ini.bak"
    assert not path.exists() and (tmp_path / "album.ini.bak").read_bytes() == tagged
