"""Concepts from caption text and from the tagger, the concept vocabulary, the tagger noise, and
the caption-text corpus with the benchmark photos left out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.wordnet import concepts as C
from helpers.wordnet.synsets import SynsetMapper

SHARED = Path(__file__).resolve().parents[2] / "shared"
COCO_4800 = SHARED / "data" / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json"
FLICKR8K = SHARED / "data" / "flickr8k-text" / "Flickr8k.token.txt"
COCO_MINI = SHARED / "data" / "coco-mini-2017"
needs_shared = pytest.mark.skipif(not COCO_4800.is_file() or not COCO_MINI.is_dir(), reason="needs ../shared data")


@pytest.fixture(scope="module")
def mapper():
    return SynsetMapper()


@pytest.mark.parametrize("caption, expected", [
    ("A man and two dogs on a beach", {"person.n.01": 1, "dog.n.01": 2}),
    ("a group of people standing next to a bus", {"person.n.01": C.MANY, "bus.n.01": 1}),
    ("Two women playing frisbee", {"person.n.01": 2, "frisbee.n.01": 1}),
    ("men riding horses", {"person.n.01": C.SEVERAL, "horse.n.01": C.SEVERAL}),
    ("a little boy holding a puppy", {"person.n.01": 1, "dog.n.01": 1}),
    ("a man and a woman", {"person.n.01": 2}),
    ("a couple of giraffes", {"giraffe.n.01": 2}),
])
def test_caption_concepts_counts_and_tagger_view(mapper, caption, expected):
    found = C.caption_concepts(caption, mapper)
    assert {synset: found[synset] for synset in expected} == expected
    assert all(synset in C.tagger_synsets() for synset in found)


def test_tagger_view_generalises_to_what_the_tagger_says():
    assert C.tagger_view("man.n.01") == "person.n.01"
    assert C.tagger_view("puppy.n.01") == "dog.n.01"
    assert C.tagger_view("dog.n.01") == "dog.n.01"
    assert C.tagger_view("street.n.01") is None         # neither the detector nor ImageNet-1k names it
    assert C.tagger_view("sky.n.01") is None


def test_image_concepts_votes_and_instances(mapper):
    captions = ["A dog catches a frisbee in a park.", "Two dogs playing with a frisbee.",
                "A dog on the grass.", "a man throws a frisbee to his dog", "A brown dog."]
    concepts = C.image_concepts(captions, mapper, categories={"person": 1, "dog": 2})
    by_synset = {c.synset: c for c in concepts}
    assert concepts[0].synset == "dog.n.01" and by_synset["dog.n.01"].count == 2   # the instances' count
    assert by_synset["frisbee.n.01"].count == 1 and "person.n.01" in by_synset      # 3 votes; an instance
    assert all(c.confidence == 1.0 for c in concepts)


def test_concept_vocabulary_encodes_sets_with_photo_row_and_nearest_ancestor(mapper, tmp_path):
    sets = [[C.Concept("dog.n.01"), C.Concept("frisbee.n.01")]] * 5 + [[C.Concept("pizza.n.01")]] * 2
    vocabulary = C.ConceptVocabulary.from_concept_sets(sets, min_images=5)
    assert "dog.n.01" in vocabulary and "person.n.01" in vocabulary        # COCO categories always
    assert vocabulary.num_ids == len(vocabulary) + 2
    encoded = vocabulary.encode([C.Concept("golden_retriever.n.01", 0.6, 1), C.Concept("frisbee.n.01", 0.9, 1),
                                 C.Concept("dog.n.01", 0.4, 3)], max_concepts=5)
    assert encoded.shape == (5, 3) and encoded.dtype == np.float32
    assert tuple(encoded[0]) == (C.PHOTO_CONCEPT_ID, 1.0, 0.0)
    assert vocabulary.synset(int(encoded[1, 0])) == "frisbee.n.01"
    assert vocabulary.synset(int(encoded[2, 0])) == "dog.n.01"            # retriever merged into dog
    assert encoded[2, 1] == pytest.approx(0.6) and encoded[2, 2] == 3      # larger confidence and count
    assert (encoded[3:] == 0).all()
    assert [c.synset for c in vocabulary.decode(encoded)] == ["frisbee.n.01", "dog.n.01"]
    vocabulary.save(tmp_path / "concepts.json")
    assert C.ConceptVocabulary.load(tmp_path / "concepts.json") == vocabulary


def test_predicted_concepts_from_detections_and_keywords():
    detections = [("person", 0.9, (0, 0, 1, 1)), ("person", 0.5, (0, 0, 1, 1)), ("person", 0.2, (0, 0, 1, 1)),
                  ("dog", 0.7, (0, 0, 1, 1))]
    keywords = [("people.n.01", 0.5), ("golden_retriever.n.01", 0.6), ("seashore.n.01", 0.4)]
    concepts = C.predicted_concepts(detections, keywords, min_score=0.3)
    assert [(c.synset, c.count) for c in concepts] == [
        ("person.n.01", 2), ("dog.n.01", 1), ("golden_retriever.n.01", 1), ("seashore.n.01", 1)]


def test_specific_synset_descends_to_the_deepest_hyponym_probable_enough():
    probabilities = {"geological_formation.n.01": 0.86, "natural_elevation.n.01": 0.67, "mountain.n.01": 0.67,
                     "alp.n.01": 0.665, "valley.n.01": 0.18, "person.n.01": 0.99, "dog.n.01": 0.9}
    assert C.specific_synset("geological_formation.n.01", 0.86, probabilities, ratio=0.75) == ("alp.n.01", 0.665)
    # below the ratio every hyponym is too unsure: the keyword stays
    assert C.specific_synset("geological_formation.n.01", 0.86, probabilities, ratio=0.8) == (
        "geological_formation.n.01", 0.86)
    # a more probable synset that is not below the keyword is not a candidate
    assert C.specific_synset("canine.n.02", 0.5, probabilities, ratio=0.5) == ("dog.n.01", 0.9)
    assert C.specific_synset("mountain.n.01", 0.67, {"mountain.n.01": 0.67}) == ("mountain.n.01", 0.67)
    keywords = [("geological_formation.n.01", 0.86)]
    assert [c.synset for c in C.predicted_concepts([], keywords, 0.3, probabilities)] == (
        ["alp.n.01"] if C.SPECIFIC_RATIO <= 0.77 else ["geological_formation.n.01"])


def test_noise_measure_and_corrupt_rates():
    truth = [[C.Concept("dog.n.01"), C.Concept("frisbee.n.01"), C.Concept("seashore.n.01")]] * 10
    predicted = [[C.Concept("dog.n.01", 0.8), C.Concept("bowl.n.01", 0.4)]] * 10
    noise = C.ConceptNoise.measure(truth, predicted)
    assert noise.miss == {"coco": 0.5, "other": 1.0}
    assert noise.extras_per_photo == 1.0 and noise.extra_synsets == {"bowl.n.01": 10.0}
    assert noise.hit_confidences == [0.8] * 10 and noise.extra_confidences == [0.4] * 10
    rng = np.random.default_rng(0)
    draws = [noise.corrupt(truth[0], rng) for _ in range(4000)]
    kept = np.mean([any(c.synset == "dog.n.01" for c in d) for d in draws])
    assert kept == pytest.approx(0.5, abs=0.03)
    assert not any(c.synset == "seashore.n.01" for d in draws for c in d)
    assert np.mean([sum(c.synset == "bowl.n.01" for c in d) for d in draws]) == pytest.approx(1.0, abs=0.06)


def test_shipped_noise_is_the_measured_one():
    noise = C.ConceptNoise.load()
    assert noise.photos == 80 and 0 < noise.miss["coco"] < 0.5 and noise.miss["other"] > 0.5
    assert "person.n.01" in noise.extra_synsets and len(noise.hit_confidences) > 50


@needs_shared
def test_caption_text_leaves_out_every_coco_mini_photo():
    from helpers.data.caption_text import excluded_image_ids, load_caption_text

    excluded = excluded_image_ids([COCO_MINI])
    assert len(excluded) == 239                     # 80 train2017 + 159 val2017 JPEGs, annotated or not
    in_4800 = {a["image_id"] for a in json.loads(COCO_4800.read_text())["annotations"]}
    assert len(in_4800 & excluded) == 15            # val2017 ids are val2014 ids
    records = load_caption_text([COCO_4800, FLICKR8K], excluded)
    ids = {record.image_id for record in records}
    assert not ids & excluded
    assert len(ids) == 4800 - 15 + 8092
