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
    # the copy is tagged as tag-album does it: album.ini with the keywords in tags, the captions
    # (when a decoder was there) as description
    import configparser

    ini = tmp_path / "real_album" / "album.ini"
    assert f"written into {ini}" in lines[-1]
    written = configparser.ConfigParser(interpolation=None)
    written.read(ini, encoding="utf-8")
    assert set(before) <= set(written.sections())
    assert all(written[name]["tags"] == tagged[name] for name in before)
    captioned = [line for line in lines if " --> " in line and " | " in line]
    assert all(written[line.split(" --> ")[0]]["description"] == line.split(" --> ")[1].rsplit(" | ", 1)[0]
               for line in captioned)


def test_without_multi30k_the_demo_keeps_english_captions_and_says_what_to_download(tmp_path, monkeypatch, capsys):
    from helpers.data import caption_text

    monkeypatch.delenv(caption_text.MULTI30K_VARIABLE, raising=False)
    assert demo.train_concept_decoder(tmp_path, run_name="concepts-test-fra", language="fra") is None
    said = capsys.readouterr().out
    assert "no captions in fra" in said and "Multi30K" in said and caption_text.MULTI30K_VARIABLE in said
    assert "stay in English" in said and not (tmp_path / "2_Training_concepts_fra.ipynb").exists()


def test_notebook_2_saves_a_concept_decoder_with_its_training_captions(tmp_path):
    """Notebook 2 on caption text (the demo's path, as a plumbing check) writes `consensus.npz`
    into the bundle, as `python -m helpers train` does: without it `--model pretrained` captions
    with plain beam search, and French and German get no check against invented objects."""
    import shutil

    import pytest

    from helpers.data import caption_text
    from helpers.predict.concept_captions import load_consensus

    try:
        caption_text.caption_text_sources(None, "eng")
    except caption_text.DatasetError:
        pytest.skip("needs caption text (../shared)")
    from helpers.bundle import load_bundle

    run_name = "concepts-test-notebook"
    try:
        ran = demo.train_concept_decoder(tmp_path, quick=True, run_name=run_name)
        assert ran is not None and ran.output.is_file()
        bundle = load_bundle(demo.RUNS_DIR / run_name / "bundle")
        index = load_consensus(bundle)
        assert index is not None and index.vocabulary_size == len(bundle.vocabulary)
        assert len(index.captions) == 64                    # the plumbing check's training images
        assert (demo.RUNS_DIR / run_name / "bundle" / "consensus.npz").is_file()
    finally:
        shutil.rmtree(demo.RUNS_DIR / run_name, ignore_errors=True)


def test_a_concept_training_step_is_timed_on_this_machine():
    import pytest

    from helpers.config import CAPTION_TEXT, Config
    from helpers.training.train import concept_step_seconds

    config = Config.for_dataset(CAPTION_TEXT)
    short, full = (concept_step_seconds(config, 1000, 100, length) for length in (4, config.max_caption_length))
    assert 0 < short < full < 30           # 4 positions cost less than 20
    with pytest.raises(ValueError, match="concept decoder"):
        concept_step_seconds(Config(), 1000, 100)


def test_the_demo_sizes_its_trainings_to_the_machine(sample_dir, tmp_path, capsys):
    """On a machine too slow for the demo's sizes, the concept decoders train on fewer images
    (same epochs) and the sample for fewer epochs, within their budgets, and say so; on a fast
    one nothing is cut."""
    import pytest

    from helpers.config import SAMPLE_SETTINGS
    from helpers.data import caption_text

    try:
        files = caption_text.caption_text_sources(None, "eng")
    except caption_text.DatasetError:
        pytest.skip("needs caption text (../shared)")
    measured = demo.plan_concept_training("eng", files)            # the probe runs here
    assert measured.step_seconds > 0 and measured.predicted_seconds > demo.FIXED_SECONDS
    fast = demo.plan_concept_training("eng", files, budget=10**6, step_seconds=measured.step_seconds)
    assert fast.changes == demo.DEMO_CONCEPT_CHANGES and fast.cut == ""
    slow = demo.plan_concept_training("eng", files, budget=120, step_seconds=measured.step_seconds * 4)
    assert slow.changes["epochs"] == demo.DEMO_CONCEPT_CHANGES["epochs"]
    images = slow.changes["max_train_images"]
    assert 1000 <= images < demo.DEMO_CONCEPT_CHANGES["max_train_images"] and images % 500 == 0
    assert slow.predicted_seconds <= 120 or images == 1000
    assert f"{images:,} of 8,000 images" in slow.cut
    # twice the images would not have fitted (unless the floor of 1,000 was hit)
    assert images == 1000 or demo.plan_concept_training(
        "eng", files, budget=10**6, step_seconds=measured.step_seconds * 4).predicted_seconds > 120

    assert demo.plan_sample_training(0.01).changes == {}
    sample = demo.plan_sample_training(0.4, budget=200)
    assert 1 <= sample.changes["encoder_epochs"] < SAMPLE_SETTINGS["encoder_epochs"]
    assert 1 <= sample.changes["epochs"] < SAMPLE_SETTINGS["epochs"]
    assert demo.SAMPLE_FIXED_SECONDS < sample.predicted_seconds <= 200 and "encoder" in sample.cut
    # one more epoch of each would not have fitted
    assert demo.plan_sample_training(0.4, budget=10**6).predicted_seconds > 200
    bigger = {name: count + 1 for name, count in sample.changes.items()}
    assert demo.SAMPLE_FIXED_SECONDS + 0.4 * sum(
        demo.SAMPLE_PROBE_STEPS_PER_EPOCH[name] * count for name, count in bigger.items()) > 200
    parameters = demo.series_parameters(sample_dir, "sample", False, None, sample_changes=sample.changes)
    assert parameters["2_Training.ipynb"]["changes"] == sample.changes
    # the summary says again what was cut
    capsys.readouterr()
    demo.print_summary([demo.NotebookRun("2_Training_concepts.ipynb", tmp_path / "a.ipynb", 1.0, plan=slow),
                        demo.NotebookRun("2_Training.ipynb", tmp_path / "b.ipynb", 2.0, plan=sample)],
                       tmp_path, tmp_path)
    summary = capsys.readouterr().out
    assert slow.cut in summary and sample.cut in summary
