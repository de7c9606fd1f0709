"""helpers.demo's last step: the real album tagged with no training (`make demo`'s ending)."""

from __future__ import annotations

import hashlib

from helpers import demo


def _digests(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.glob("*.jpg"))}


def test_tag_real_album_in_french(tmp_path, capsys):
    before = _digests(demo.EXAMPLE_ALBUM)
    figure = demo.tag_real_album(tmp_path)          # an out_dir outside the project
    lines = capsys.readouterr().out.splitlines()
    tagged = dict(line.split(" --> ", 1) for line in lines if " --> " in line)
    # "caption | keywords" where a concept decoder was trained (runs/concepts), else keywords
    tagged = {name: value.rsplit(" | ", 1)[-1] for name, value in tagged.items()}

    assert set(tagged) == set(before) and len(tagged) >= 6
    assert all(words and not words.startswith("(") for words in tagged.values())
    assert tagged["cat.jpg"] == "chat"              # not OMW's Latin "felis domesticus"
    assert figure == tmp_path / "real_album_keywords.png" and figure.stat().st_size > 10_000
    assert str(figure) in lines[-1]                 # printed in full: it is not in the project
    assert _digests(demo.EXAMPLE_ALBUM) == before   # the project's photos are never written


def test_without_multi30k_the_demo_keeps_english_captions_and_says_what_to_download(tmp_path, monkeypatch, capsys):
    from helpers.data import caption_text

    monkeypatch.delenv(caption_text.MULTI30K_VARIABLE, raising=False)
    assert demo.train_concept_decoder(tmp_path, run_name="concepts-test-fra", language="fra") is None
    said = capsys.readouterr().out
    assert "no captions in fra" in said and "Multi30K" in said and caption_text.MULTI30K_VARIABLE in said
    assert "stay in English" in said and not (tmp_path / "2_Training_concepts_fra.ipynb").exists()
