"""Tests for helpers/widgets.py without a browser: the panel predicts once, and every control
re-filters the cached predictions at once (keywords, labels, diff), then writes album.ini (and
XMP sidecars); keywords the user removed from tags are shown greyed and never written again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_images import write_photo_corpus

from helpers.album.ini import parse_like_myphotoshare
from helpers.wordnet import keywords


class CountingCaptioner:
    """The real Captioner, counting how often the panel runs it."""

    def __init__(self, captioner):
        self.captioner = captioner
        self.calls = 0

    def predict(self, *args, **kwargs):
        self.calls += 1
        return self.captioner.predict(*args, **kwargs)

    def __getattr__(self, name):   # fingerprint, select_keywords: the captioner's
        return getattr(self.captioner, name)


@pytest.fixture(scope="module")
def captioner(trained_run):
    from helpers.predict.predictors import Captioner

    return Captioner.from_bundle(trained_run)


@pytest.fixture()
def small_album(tmp_path, shared_data) -> Path:
    photos = sorted((shared_data / "coco-mini-2017" / "val2017").glob("*.jpg"))
    corpus = write_photo_corpus(tmp_path / "corpus", photos[0])
    folder = tmp_path / "album"
    folder.mkdir()
    for name in ("plain.jpg", "Orchidée.jpg", "rotated.jpg", "truncated.jpg"):
        (folder / name).write_bytes(corpus[name].read_bytes())
    (folder / "album.ini").write_text(
        "# mine\n[DEFAULT]\nauthor = Ada\n\n[plain.jpg]\ntitle = Plain\n", encoding="utf-8")
    return folder


def expected_keywords(panel, nb_keywords, min_proba, lang):
    return {name: [word for _, word, _ in keywords.top_k_keywords(
        panel.predictions[name].synset_probabilities, nb_keywords, min_proba, lang)]
        for name in panel.predictions if panel.predictions[name].error is None}


def test_panel_predicts_once_and_updates_immediately(captioner, small_album):
    from helpers.widgets import AlbumTaggingPanel, language_options

    counting = CountingCaptioner(captioner)
    panel = AlbumTaggingPanel(counting, small_album, lang="eng", nb_keywords=3)
    assert counting.calls == 1
    assert ("French (fra)", "fra") in language_options()
    assert panel.keywords() == expected_keywords(panel, 3, 0.0, "eng")
    assert set(panel.keywords()) == {"plain.jpg", "Orchidée.jpg", "rotated.jpg"}
    assert "truncated" in panel.label_text("truncated.jpg")
    first = panel.keywords()["plain.jpg"]
    assert ", ".join(first) in panel.label_text("plain.jpg")
    assert f"+auto_tags = {','.join(first)}" in panel.diff

    panel.set(lang="fra", nb_keywords=1)
    assert panel.keywords() == expected_keywords(panel, 1, 0.0, "fra")
    french = panel.keywords()["plain.jpg"]
    assert french[0] in panel.label_text("plain.jpg") and f"+auto_tags = {french[0]}" in panel.diff

    top = max(panel.predictions["plain.jpg"].synset_probabilities.values())
    panel.set(min_proba=round(min(1.0, top + 0.01), 2))  # above plain.jpg's best synset
    assert panel.keywords()["plain.jpg"] == []
    assert "none above the threshold" in panel.label_text("plain.jpg")
    panel.set(min_proba=0.0, nb_keywords=4, captions=True)
    assert panel.keywords() == expected_keywords(panel, 4, 0.0, "fra")
    assert "+description = " in panel.diff
    assert counting.calls == 1  # no control ran the model again
    with pytest.raises(ValueError, match="unknown controls"):
        panel.set(colour="red")


def test_panel_writes_what_it_shows(captioner, small_album):
    from helpers.widgets import AlbumTaggingPanel

    panel = AlbumTaggingPanel(captioner, small_album, lang="spa", nb_keywords=2)
    shown = panel.keywords()
    assert not panel.write_button.disabled
    result = panel.write()
    assert result.written and result.backup_path.name == "album.ini.bak"
    config = parse_like_myphotoshare((small_album / "album.ini").read_text("utf-8"))
    assert {name: config.get(name, "auto_tags").split(",") for name in shown} == shown
    assert panel.diff == "" and panel.write_button.disabled  # nothing left to write
    assert "wrote" in panel.status.value


def test_removed_keywords_are_greyed_and_not_written_again(captioner, small_album):
    from helpers.widgets import AlbumTaggingPanel

    panel = AlbumTaggingPanel(captioner, small_album, lang="eng", nb_keywords=3)
    assert panel.merge_into_tags.value   # keywords go into tags by default (searchable)
    words = panel.keywords()["plain.jpg"]
    assert f"+tags = {', '.join(words)}" in panel.diff
    panel.write()
    # The user removes the first keyword from plain.jpg's tags by hand.
    path = small_album / "album.ini"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f"tags = {', '.join(words)}\n",
                                 f"tags = {', '.join(words[1:])}\n", 1), encoding="utf-8")
    panel.load()
    assert panel.rejected() == {"plain.jpg": [words[0]]}
    assert panel.keywords()["plain.jpg"] == words[1:]
    label = panel._labels["plain.jpg"].value
    assert "line-through" in label and words[0] in label and "never added again" in label
    panel.set(lang="fra", captions=True)   # other settings: still never proposed again
    panel.set(lang="eng")
    assert words[0] not in panel.keywords()["plain.jpg"] and panel.rejected()["plain.jpg"] == [words[0]]


def test_a_file_edited_after_the_preview_is_not_overwritten(captioner, small_album):
    from helpers.widgets import AlbumTaggingPanel

    panel = AlbumTaggingPanel(captioner, small_album, nb_keywords=2)
    assert panel.diff
    path = small_album / "album.ini"
    path.write_text(path.read_text(encoding="utf-8") + "# edited meanwhile\n", encoding="utf-8")
    result = panel.write()
    assert not result.written and "changed on disk" in result.error
    assert path.read_text(encoding="utf-8").endswith("# edited meanwhile\n")


@pytest.mark.skipif(shutil.which("exiftool") is None,
                    reason="exiftool not installed (apt-get install libimage-exiftool-perl)")
def test_panel_writes_xmp_sidecars(captioner, small_album):
    from test_xmp import exiftool_reads

    from helpers.widgets import AlbumTaggingPanel

    counting = CountingCaptioner(captioner)
    panel = AlbumTaggingPanel(counting, small_album, lang="fra", nb_keywords=2)
    assert "plain.jpg.xmp" not in panel.diff_view.value
    panel.set(xmp=True)
    assert "plain.jpg.xmp (new): +" in panel.diff_view.value and counting.calls == 1
    result = panel.write()
    assert result.sidecars_written == 3 and "XMP sidecar" in panel.status.value
    found = exiftool_reads(small_album / "plain.jpg.xmp", "XMP-dc:Subject")
    assert found["XMP-dc:Subject"] == panel.keywords()["plain.jpg"]
    assert not panel.result.changed and panel.write_button.disabled   # nothing left to write
