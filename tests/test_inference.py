"""helpers.predict.predictors: the Captioner on a model trained on the sample (captions, tags in French,
corrupt photos, in-memory arrays) and the `caption` command."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from helpers.predict import decoding
from helpers.predict import predictors as inference
from helpers.predict.imagenet import ImageNetTagger


@pytest.fixture(scope="module")
def captioner(trained_run):
    return inference.Captioner.from_bundle(trained_run)


@pytest.fixture(scope="module")
def val_photos(trained_run):
    config = json.loads((Path(trained_run) / "config.json").read_text())
    photos = sorted((Path(config["data_dir"]) / config["val_split"]).glob("*.jpg"))
    assert len(photos) >= 4
    return photos[:4]


def test_captioner_captions_and_tags_in_french_and_survives_a_corrupt_photo(captioner, val_photos, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    photos = [val_photos[0], corrupt, *val_photos[1:]]
    predictions = captioner.predict(photos, beam_width=3, top_n=3, nb_keywords=3, lang="fra",
                                    batch_size=2, progress=False)
    assert [p.path for p in predictions] == [str(p) for p in photos]
    assert predictions[1].error and not predictions[1].captions and not predictions[1].ok
    good = [p for i, p in enumerate(predictions) if i != 1]
    vocabulary = captioner.vocabulary
    for prediction in good:
        assert prediction.error is None and len(prediction.captions) == 3
        log_probs = [lp for _, lp in prediction.captions]
        assert log_probs == sorted(log_probs, reverse=True)  # alpha = 0: score = log-probability
        assert all(text.strip() and all(w in vocabulary for w in text.split()) for text, _ in prediction.captions)
        assert set(prediction.synset_probabilities) == set(captioner.synset_names)
        assert 1 <= len(prediction.tags) <= 3
        from helpers.wordnet import keywords

        for synset, keyword, probability in prediction.tags:
            assert keyword == keywords.keyword(synset, "fra")
            assert probability == prediction.synset_probabilities[synset]
    # The same photos one at a time give the same captions (batching does not change results).
    (alone,) = captioner.predict([val_photos[1]], beam_width=3, top_n=3, nb_keywords=3, lang="fra", progress=False)
    assert alone.captions[0][0] == predictions[2].captions[0][0]
    assert alone.captions[0][1] == pytest.approx(predictions[2].captions[0][1], abs=1e-3)


def test_early_stopping_for_fewer_captions_returns_the_same_best_ones(captioner, trained_run):
    """With top_n < beam_width the search drops hypotheses that can no longer be among the top_n
    and stops early; it must return exactly the first top_n of the complete search. Checked on the
    trained decoder (whose captions end at varied lengths) and 24 val photos."""
    from helpers.data.images import load_images

    config = json.loads((Path(trained_run) / "config.json").read_text())
    photos = sorted((Path(config["data_dir"]) / config["val_split"]).glob("*.jpg"))[:24]
    pixels = np.stack([p for _, p in load_images(photos, size=captioner.image_size)])
    pooled, grid, _ = captioner._features(pixels)
    decoder = captioner.bundle.decoder
    for alpha in (0.0, 0.7, 2.0):
        complete = decoding.beam_search(decoder, pooled, grid, beam_width=4, max_length=16,
                                         length_normalization=alpha)
        lengths = {h.length for hypotheses in complete for h in hypotheses if h.finished}
        assert len(lengths) >= 3                                       # captions end at varied lengths
        for top_n in (1, 2):
            pruned = decoding.beam_search(decoder, pooled, grid, beam_width=4, max_length=16,
                                           length_normalization=alpha, top_n=top_n)
            for found, expected in zip(pruned, complete):
                assert [h.tokens.tolist() for h in found] == [h.tokens.tolist() for h in expected[:top_n]]
                assert [h.score for h in found] == pytest.approx([h.score for h in expected[:top_n]], abs=1e-5)
                if expected[0].attention is not None:
                    np.testing.assert_allclose(found[0].attention, expected[0].attention, atol=1e-5)


def test_captioner_accepts_uint8_arrays(captioner, val_photos):
    from helpers.data.images import load_image

    size = captioner.image_size
    pixels = load_image(val_photos[0], size=size)
    from_array, from_file = captioner.predict([pixels, val_photos[0]], beam_width=2, top_n=1, progress=False)
    assert from_array.path == "<array 0>"
    assert from_array.captions[0][0] == from_file.captions[0][0]
    bad = captioner.predict([np.zeros((4, 4, 3), np.float32)], progress=False)[0]
    assert "uint8" in bad.error


def test_caption_cli_prints_captions_with_probabilities_and_tags(trained_run, val_photos):
    from helpers.__main__ import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["caption", "--run", str(trained_run), str(val_photos[0]), "--beam-width", "3",
                       "--lang", "spa"])
    assert status == 0
    lines = buffer.getvalue().splitlines()
    assert lines[0] == str(val_photos[0])
    assert [line.strip()[:2] for line in lines[1:4]] == ["0)", "1)", "2)"]
    assert all("(p=" in line for line in lines[1:4])
    assert lines[4].strip().startswith("tags: ")


# --------------------------------------------------------------- no training: the ImageNet tagger
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "models" / "efficientnet-lite0-reference"


@pytest.fixture(scope="module")
def imagenet_tagger():
    return ImageNetTagger()


@pytest.fixture(scope="module")
def reference():
    if not (REFERENCE / "logits.npz").is_file():
        pytest.skip(f"reference fixture {REFERENCE} not present")
    names = [str(name) for name in np.load(REFERENCE / "inputs.npz")["file_names"]]
    return names, np.load(REFERENCE / "logits.npz")["top5"]


def test_imagenet_tagger_keywords_of_real_photos(imagenet_tagger, reference, shared_data, tmp_path):
    """Real COCO photos: the hierarchy probabilities contain the reference model's top-1 class with
    the highest class probability, French keywords come without an English fallback, and a corrupt
    file is reported while the others are tagged."""
    from helpers.wordnet import hierarchy

    names, top5 = reference
    photos = [shared_data / "coco-mini-2017" / "val2017" / name for name in names[:6]]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(photos[0].read_bytes()[:500])
    predictions = imagenet_tagger.predict(photos + [corrupt], lang="fra", progress=False)
    assert not predictions[-1].ok and "truncated" in predictions[-1].error
    leaves = hierarchy.imagenet_hierarchy().leaf_names
    for prediction, top in zip(predictions[:6], top5):
        assert prediction.ok and prediction.captions == []
        probabilities = prediction.synset_probabilities
        best_leaf = max((name for name in leaves if name in probabilities), key=probabilities.get)
        assert best_leaf == leaves[top[0]]
        assert probabilities["entity.n.01"] == pytest.approx(1.0, abs=1e-4)
        assert 1 <= len(prediction.tags) <= 5
    words = {Path(p.path).name: [word for _, word, _ in p.tags] for p in predictions[:6]}
    assert "zèbre" in words[names[0]]                       # the zebra photo
    assert "ours polaire" in words[names[2]]                # the polar bear
    assert imagenet_tagger.fingerprint == ImageNetTagger().fingerprint


def test_combined_predictor_keeps_captions_and_takes_the_higher_probability(trained_run, val_photos,
                                                                            imagenet_tagger):
    captioner = inference.Captioner.from_bundle(trained_run)
    combined = inference.CombinedPredictor(captioner, imagenet_tagger)
    (merged,) = combined.predict(val_photos[:1], beam_width=2, top_n=1, progress=False)
    (alone,) = captioner.predict(val_photos[:1], beam_width=2, top_n=1, progress=False)
    (imagenet,) = imagenet_tagger.predict(val_photos[:1], progress=False)
    assert merged.captions == alone.captions
    for synset in set(alone.synset_probabilities) | set(imagenet.synset_probabilities):
        assert merged.synset_probabilities[synset] == pytest.approx(max(
            alone.synset_probabilities.get(synset, 0.0), imagenet.synset_probabilities.get(synset, 0.0)))
    assert combined.fingerprint not in (captioner.fingerprint, imagenet_tagger.fingerprint)
    with pytest.raises(ValueError, match="model='pretrained'"):
        inference.load_predictor()


def test_caption_cli_with_the_imagenet_model_prints_keywords(reference, shared_data):
    from helpers.__main__ import main

    names, _ = reference
    photo = shared_data / "coco-mini-2017" / "val2017" / names[0]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["caption", "--model", "imagenet", str(photo), "--lang", "spa"])
    assert status == 0
    lines = buffer.getvalue().splitlines()
    assert Path(lines[0]).resolve() == photo.resolve(), lines
    from helpers.wordnet.keywords import keyword

    # the tags line follows the captions when a concept decoder (runs/concepts) has been trained
    [tags] = [line.strip() for line in lines if line.strip().startswith("tags: ")]
    assert tags.startswith(f"tags: {keyword('zebra.n.01', 'spa')} ("), lines


def test_captions_cut_at_the_maximum_length_are_ended_where_none_finished(trained_run, val_photos):
    from helpers.data.images import load_image

    short = inference.Captioner.from_bundle(trained_run, max_length=2)   # the sample's captions are longer
    predictions = short.predict(val_photos, beam_width=3, top_n=3, progress=False)
    pooled, grid, _ = short._features(np.stack([load_image(path, size=short.image_size) for path in val_photos]))
    raw = decoding.beam_search(short.bundle.decoder, pooled, grid, beam_width=3, max_length=2, top_n=3)
    assert not any(h.finished for image in raw for h in image)              # what ending them is for
    for prediction in predictions:
        assert prediction.hypotheses and all(h.finished for h in prediction.hypotheses)
        assert all(1 <= len(h.tokens) <= 2 for h in prediction.hypotheses)
        assert [text for text, _ in prediction.captions] == [short.vocabulary.decode(h.tokens)
                                                             for h in prediction.hypotheses]
    # where one hypothesis finished, the cut ones are kept as they are and come after it
    full = decoding.beam_search(short.bundle.decoder, pooled, grid, beam_width=3, max_length=16, top_n=1)
    mixed = [[*raw[0], full[0][0]]]
    (ordered,) = decoding.end_stuck(short.bundle.decoder, pooled[:1], grid[:1], mixed)
    assert full[0][0].finished and ordered[0] is full[0][0] and ordered[1:] == list(raw[0])
