"""The no-training predictor for real photos: YOLOX-Nano's COCO categories fused with the ImageNet
hierarchy (`helpers.predict.fused`), on the real photos of `examples/album` and COCO synsets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helpers.predict.fused import (
    CROWD,
    PEOPLE,
    PEOPLE_MIN_COUNT,
    PERSON,
    VERIFY_BELOW,
    VERIFY_MIN_PROBABILITY,
    animals_to_verify,
    box_crop,
    count_synsets,
    fused_probabilities,
    verified_detections,
)
from helpers.predict.prediction import DETECTION_MIN_SCORE
from helpers.wordnet.keywords import keyword
from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS
from helpers.wordnet.synsets import get_synset, wordnet

ALBUM = Path(__file__).resolve().parents[1] / "examples" / "album"
needs_detector = pytest.mark.skipif(not os.environ.get("PHOTO_CAPTIONS_DETECTOR"),
                                    reason="no detector file (../shared/models/yolox-nano)")


def test_each_coco_category_synset_has_the_category_as_english_lemma():
    # The reviewed table: the category's name, or its head word, is a lemma of its synset
    # (stop sign -> street_sign.n.01: WordNet has no stop-sign synset, "sign" is the head).
    for category, name in COCO_CATEGORY_SYNSETS.items():
        lemmas = {lemma.lower() for lemma in get_synset(name).lemma_names("eng")}
        head = wordnet().morphy(category.split()[-1], "n") or category.split()[-1]    # skis -> ski
        assert (category.replace(" ", "_") in lemmas or category.replace(" ", "") in lemmas   # wineglass
                or any(lemma.split("_")[-1] == head for lemma in lemmas)), (category, name, lemmas)


def test_people_are_counted_with_the_words_photo_libraries_use():
    assert count_synsets([0.9]) == {}
    assert count_synsets([0.4, 0.9, 0.7]) == {PEOPLE: 0.7}          # the second-best person
    assert set(count_synsets([0.5] * 8)) == {PEOPLE, CROWD}
    assert keyword(PEOPLE, "fra") == "gens" and keyword(CROWD, "fra") == "foule"


def test_fusion_keeps_the_specific_concept_adds_people_and_lets_the_detector_name_animals():
    box = (0.0, 0.0, 10.0, 10.0)
    imagenet = {"golden_retriever.n.01": 0.7, "dog.n.01": 0.72, "bird.n.01": 0.3, "tripod.n.01": 0.5}
    detections = [("dog", 0.8, box), ("person", 0.9, box), ("person", 0.6, box),
                  ("person", 0.1, box), ("cat", 0.2, box)]
    fused = fused_probabilities(imagenet, detections)
    assert fused["dog.n.01"] == 0.8 and fused["golden_retriever.n.01"] == 0.7
    assert fused[PERSON] == 0.9 and fused[PEOPLE] == 0.6              # two people above the threshold
    assert "bird.n.01" not in fused                                  # an animal the detector does not see
    assert "cat.n.01" not in fused and fused["tripod.n.01"] == 0.5   # below DETECTION_MIN_SCORE; not an animal
    assert imagenet["bird.n.01"] == 0.3                              # the input is not changed
    assert 0.1 < DETECTION_MIN_SCORE <= 0.8 and PEOPLE_MIN_COUNT == 2


def test_uncertain_animals_are_checked_on_their_best_box_and_refuted_ones_dropped():
    box, other = (0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 20.0, 30.0)
    detections = [("sheep", 0.62, box), ("sheep", 0.32, other), ("dog", 0.9, box), ("bird", 0.46, other),
                  ("giraffe", 0.5, box), ("person", 0.5, box), ("horse", 0.2, box)]
    checks = animals_to_verify(detections)
    # the best sheep box; not the sure dog, the giraffe (no ImageNet class), people or low scores
    assert checks == {"sheep": ("sheep", 0.62, box), "bird": ("bird", 0.46, other)}
    assert animals_to_verify(detections, below=0.0) == {}
    kept = verified_detections(detections, {"sheep": {"sheep.n.01": VERIFY_MIN_PROBABILITY / 2},
                                            "bird": {"bird.n.01": 0.5}})
    assert kept == [d for d in detections if d[0] != "sheep"]      # every sheep box, in order
    assert VERIFY_MIN_PROBABILITY < 0.1 < VERIFY_BELOW <= 1.0


def test_a_box_crop_is_the_square_around_the_box_cut_at_the_edges():
    photo = np.zeros((100, 200, 3), dtype=np.uint8)
    photo[:, 150:] = 255                                            # white right quarter
    crop = box_crop(photo, (160.0, 40.0, 190.0, 60.0), size=32)     # a box inside the white part
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8 and crop.min() == 255
    assert box_crop(photo, (0.0, 0.0, 200.0, 100.0), size=16).mean() == pytest.approx(255 / 4, abs=8)


@pytest.fixture(scope="module")
def tagger():
    from helpers.predict.fused import PretrainedTagger

    return PretrainedTagger()


@needs_detector
def test_real_photos_get_people_objects_and_counts(tagger, tmp_path):
    photos = {name: ALBUM / name for name in ("astronaut.jpg", "cameraman.jpg", "dogs_at_door.jpg",
                                               "coffee.jpg", "cat.jpg")}
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((ALBUM / "cat.jpg").read_bytes()[:2000])
    predictions = tagger.predict([*photos.values(), corrupt], progress=False)
    by_name = {Path(p.path).name: p for p in predictions}
    for name in ("astronaut.jpg", "cameraman.jpg"):
        assert PERSON in [s for s, _, _ in by_name[name].tags], by_name[name].tags
        assert by_name[name].counts() == {"person": 1}
    assert by_name["dogs_at_door.jpg"].counts()["dog"] >= 2             # two spaniels (a third box overlaps them)
    assert any(s in ("domestic_cat.n.01", "cat.n.01") for s, _, _ in by_name["cat.jpg"].tags)
    assert {"cup", "dining table"} <= set(by_name["coffee.jpg"].counts())
    assert by_name["corrupt.jpg"].error and not by_name["corrupt.jpg"].tags
    boxes = [box for _, _, box in by_name["cat.jpg"].detections]
    assert boxes and all(x1 < x2 and y1 < y2 for x1, y1, x2, y2 in boxes)   # photo pixels, not clipped
    french = tagger.predict([photos["astronaut.jpg"]], lang="fra", progress=False)[0]
    assert keyword(PERSON, "fra") in [word for _, word, _ in french.tags]


@needs_detector
def test_animals_the_classifier_does_not_see_in_their_box_are_dropped(tagger):
    # YOLOX-Nano finds sheep in dandelion seed heads (0.62) and a horse by a didgeridoo player (0.58)
    names = ("dandelions.jpg", "didgeridoo_player.jpg", "dogs_at_door.jpg", "nuthatch.jpg")
    checked = tagger.predict([ALBUM / name for name in names], progress=False)
    fingerprint = tagger.fingerprint
    tagger.verify_below = 0.0
    try:
        unchecked = tagger.predict([ALBUM / name for name in names], progress=False)
        assert tagger.fingerprint != fingerprint           # the re-run cache tells them apart
    finally:
        tagger.verify_below = VERIFY_BELOW
    assert tagger.fingerprint == fingerprint
    before = {name: p.counts() for name, p in zip(names, unchecked)}
    after = {name: p.counts() for name, p in zip(names, checked)}
    assert "sheep" in before["dandelions.jpg"] and "sheep" not in after["dandelions.jpg"]
    assert "horse" in before["didgeridoo_player.jpg"] and after["didgeridoo_player.jpg"] == {"person": 1}
    assert "horse.n.01" not in [s for s, _, _ in checked[1].tags]
    # true animals of the same scores stay: three spaniels (0.52 at best), a nuthatch (0.33)
    assert after["dogs_at_door.jpg"] == before["dogs_at_door.jpg"] and after["dogs_at_door.jpg"]["dog"] >= 2
    assert after["nuthatch.jpg"] == before["nuthatch.jpg"] == {"bird": 1}


@needs_detector
def test_a_caption_concept_is_the_most_specific_synset_the_photo_supports(tagger):
    from helpers.wordnet.concepts import SPECIFIC_RATIO, predicted_concepts

    [mountains] = tagger.predict([ALBUM / "autumn_mountains.jpg"], progress=False)
    [(keyword_synset, _, probability)] = mountains.tags
    assert keyword_synset == "geological_formation.n.01"           # the keyword rule hedges
    assert mountains.synset_probabilities["alp.n.01"] >= SPECIFIC_RATIO * probability
    concepts = predicted_concepts(mountains.detections, [(keyword_synset, probability)], DETECTION_MIN_SCORE,
                                  mountains.synset_probabilities)
    assert [c.synset for c in concepts] == ["alp.n.01"]
    assert concepts[0].confidence == pytest.approx(mountains.synset_probabilities["alp.n.01"])
    hedged = predicted_concepts(mountains.detections, [(keyword_synset, probability)], DETECTION_MIN_SCORE)
    assert [c.synset for c in hedged] == [keyword_synset]


@needs_detector
def test_imagenet_is_the_pretrained_models_former_name(tagger):
    from helpers.predict.fused import PretrainedTagger
    from helpers.predict.imagenet import ImageNetTagger
    from helpers.predict.predictors import load_predictor

    former = load_predictor(model="imagenet")          # a ConceptCaptioner over it where runs/concepts exists
    assert isinstance(tagger, PretrainedTagger) and isinstance(getattr(former, "tagger", former), PretrainedTagger)
    assert tagger.fingerprint != ImageNetTagger().fingerprint        # old cached predictions are not reused
    assert tagger.default_min_proba == ImageNetTagger.default_min_proba


def test_no_detector_file_is_one_clear_error(monkeypatch, tmp_path):
    from helpers.predict.fused import PretrainedTagger
    from helpers.pretrained import detector

    monkeypatch.setenv("PHOTO_CAPTIONS_DETECTOR", str(tmp_path / "missing.onnx"))
    with pytest.raises(detector.DetectorUnavailableError, match="PHOTO_CAPTIONS_DETECTOR"):
        PretrainedTagger()


@needs_detector
def test_boxes_are_in_full_size_photo_pixels_for_a_reduced_decode(tagger):
    from helpers.data.images import load_image
    from helpers.pretrained.detector import load_photo_and_scale

    photo = ALBUM / "mariachi_band.jpg"
    pixels, scale = load_photo_and_scale(photo)
    full = load_image(photo)
    assert scale == 2.0 and full.shape[1] == 2 * pixels.shape[1]          # 1024 x 680 decoded at 1/2
    found = tagger.detector.detect(pixels)
    [prediction] = tagger.predict([photo], progress=False)
    assert [d[0] for d in prediction.detections] == list(found.categories)
    for (_, _, box), reduced in zip(prediction.detections, found.boxes):
        assert box == pytest.approx(tuple(2.0 * v for v in reduced))
    assert max(box[2] for _, _, box in prediction.detections) > pixels.shape[1]   # beyond the reduced width
    assert all(box[2] <= full.shape[1] + 1 and box[3] <= full.shape[0] + 1 for _, _, box in prediction.detections)


def test_benchmark_judges_count_keywords_by_the_annotated_instances():
    # bench.real_photos_detector: "people" is right where >= 2 persons are annotated (people.n.01 is
    # person.n.01's member holonym in WordNet), "crowd" where COCO marks a crowd region
    from bench.real_photos import load_photos
    from bench.real_photos_detector import count_references

    records, _ = load_photos()
    by_name = dict(zip([r.file_name for r in records], count_references(records)))
    assert by_name["000000129648.jpg"] == {PEOPLE, CROWD}        # 14 persons, one crowd region
    assert by_name["000000442450.jpg"] == {PEOPLE}               # 2 persons
    assert PEOPLE not in by_name["000000069468.jpg"]             # 1 person


def test_tagging_runs_numpy_blas_on_one_thread_and_gives_the_threads_back(tagger, monkeypatch):
    # OpenBLAS's idle threads spin after each product, taking a core from TensorFlow
    # (helpers.predict.batches.one_blas_thread); the user's setting is restored afterwards
    import threadpoolctl

    from helpers.predict.batches import one_blas_thread
    from helpers.wordnet import hierarchy

    def blas_threads():
        return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    assert before, "NumPy has a BLAS"
    seen = []
    propagate = hierarchy.ImageNetHierarchy.propagate

    def recording(self, class_probabilities):        # the real product, its thread count noted
        seen.append(blas_threads())
        return propagate(self, class_probabilities)

    monkeypatch.setattr(hierarchy.ImageNetHierarchy, "propagate", recording)
    predictions = tagger.predict([ALBUM / "cat.jpg", ALBUM / "coffee.jpg"], progress=False)
    assert all(p.ok for p in predictions) and seen and all(threads == [1] * len(before) for threads in seen)
    assert blas_threads() == before
    with one_blas_thread():
        assert blas_threads() == [1] * len(before)
    assert blas_threads() == before
