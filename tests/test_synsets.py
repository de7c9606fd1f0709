"""helpers.wordnet.synsets: word -> synset mapping, tag targets and hypernyms,
checked against real WordNet / OMW data and real COCO captions."""

from __future__ import annotations

import collections
import json

import pytest

from helpers.text.vocab import tokenize
from helpers.wordnet import synsets
from helpers.wordnet.keywords import keyword
from helpers.wordnet.synset_vocabulary import SynsetVocabulary
from helpers.wordnet.synsets import COCO_CATEGORY_SYNSETS, SENSE_OVERRIDES, SynsetMapper, image_synsets

SAMPLE_WORDS = ["red", "green", "black", "purple", "pink", "aqua",
                "circle", "square", "triangle", "rectangle", "ellipse", "hexagon"]


@pytest.fixture(scope="module")
def mapper() -> SynsetMapper:
    return SynsetMapper()


# --- explicit maps --------------------------------------------------------------------------
def test_coco_category_synsets_cover_the_80_categories(shared_data):
    instances = json.loads((shared_data / "coco-mini-2017" / "annotations" /
                            "instances_val2017.json").read_text(encoding="utf-8"))
    names = {category["name"] for category in instances["categories"]}
    assert len(names) == 80
    assert set(COCO_CATEGORY_SYNSETS) == names


def test_every_explicit_synset_exists_and_is_a_noun():
    explicit = list(COCO_CATEGORY_SYNSETS.values()) + [s for s in SENSE_OVERRIDES.values() if s]
    for name in explicit:
        synset = synsets.get_synset(name)
        assert synset.name() == name, f"{name} resolves to {synset.name()}: use the canonical name"
        assert synset.pos() == "n"
    definitions = {name: synsets.get_synset(s).definition() for name, s in COCO_CATEGORY_SYNSETS.items()}
    assert "computer" in definitions["keyboard"] or "data input" in definitions["keyboard"]
    assert "cursor" in definitions["mouse"]
    assert "television" in definitions["tv"]
    assert "neckwear" in definitions["tie"]
    assert "frankfurter" in definitions["hot dog"]
    assert "games" in definitions["sports ball"]


def test_get_synset_rejects_unknown_names():
    with pytest.raises(ValueError, match="not a WordNet synset"):
        synsets.get_synset("no_such_thing.n.01")


# --- word mapping ---------------------------------------------------------------------------
def test_map_word_rules(mapper):
    assert mapper.map_word("dog") == "dog.n.01"
    assert mapper.map_word("dogs") == "dog.n.01"             # lemmatised
    assert mapper.map_word("the") is None                    # stopword
    assert mapper.map_word("3") is None                      # not alphabetic
    assert mapper.map_word("t-shirt") is None
    assert mapper.map_word("big") is None                    # no noun sense
    assert mapper.map_word("sitting") is None                # mostly a verb (sitting.n.01 is rare)
    assert mapper.map_word("large") is None                  # mostly an adjective
    assert mapper.map_word("building") == "building.n.01"    # a noun often enough
    assert mapper.map_word("hands") == "hand.n.01"           # singular, not hands.n.01
    assert mapper.map_word("men") == "man.n.01"
    assert mapper.map_word("mouse") == "mouse.n.04"          # COCO category sense
    assert mapper.map_word("kites") == "kite.n.03"
    assert mapper.map_word("tv") == "television_receiver.n.01"
    assert mapper.map_word("table") == "table.n.02"          # override: furniture
    assert mapper.map_word("picture") is None                # override: about the photo
    assert mapper.map_word("frisbee") == "frisbee.n.01"      # first sense when nothing else applies


def test_every_coco_category_name_maps_to_its_synset(mapper):
    for name, synset in COCO_CATEGORY_SYNSETS.items():
        assert mapper.map_word(name) == synset, name
        assert mapper.map_word(name.replace(" ", "_")) == synset, name
        assert mapper.caption_synsets(f"a photo of a {name}") == {synset}, name
    assert mapper.map_word("ice_cream") == "ice_cream.n.01"
    assert mapper.map_word("no such thing") is None


def test_sample_words_map_to_synsets_with_french_and_spanish_keywords(mapper):
    for word in SAMPLE_WORDS:
        synset = mapper.map_word(word)
        assert synset is not None, word
        assert keyword(synset, "eng") is not None
        for lang in ("fra", "spa"):
            assert keyword(synset, lang, fallback="none"), (word, synset, lang)


def test_two_word_names(mapper):
    mapped = dict(mapper.map_caption("A hot dog and a teddy bear near a fire hydrant."))
    assert mapped == {"hot dog": "hotdog.n.02", "teddy bear": "teddy.n.01",
                      "fire hydrant": "fireplug.n.01"}
    assert mapper.caption_synsets("Two cell phones by a stop sign in the living room") == {
        "cellular_telephone.n.01", "street_sign.n.01", "living_room.n.01"}
    # not names: an adjective before a noun, a verb before a preposition
    assert mapper.caption_synsets("a black cat laying on a bed") == {
        "black.n.01", "cat.n.01", "bed.n.01"}


def test_map_coco_4800_captions(shared_data, mapper):
    path = shared_data / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json"
    annotations = json.loads(path.read_text(encoding="utf-8"))["annotations"]
    by_image = collections.defaultdict(list)
    for annotation in annotations:
        by_image[annotation["image_id"]].append(annotation["caption"])
    assert len(by_image) == 4_800
    class CountingMapper(SynsetMapper):   # the real mapper, counting what it computes
        computed = 0

        def _map_new_word(self, word):
            self.computed += 1
            return super()._map_new_word(word)

    fresh = CountingMapper()
    per_image = [image_synsets(captions, fresh) for captions in by_image.values()]
    # memoised: one computation per distinct word, none on a second pass
    distinct = {token for annotation in annotations for token in tokenize(annotation["caption"])}
    assert fresh.computed == len(fresh.cache) == len(fresh)
    assert set(fresh.cache) <= distinct
    assert len(fresh.cache) > 0.97 * len(distinct)   # the rest only occur inside "hot dog" etc.
    assert [image_synsets(c, fresh) for c in by_image.values()] == per_image
    assert fresh.computed == len(fresh.cache)
    vocabulary = SynsetVocabulary.build(per_image, min_images=5)
    top = vocabulary.names[:30]
    assert vocabulary.names[0] == "man.n.01"
    for expected in ("woman.n.01", "people.n.01", "person.n.01", "table.n.02", "dog.n.01",
                     "cat.n.01", "street.n.01", "plate.n.04", "pizza.n.01", "giraffe.n.01"):
        assert expected in top, (expected, top)
    for wrong in ("sitting.n.01", "standing.n.01", "white.n.01", "two.n.01", "large.n.01",
                  "table.n.01", "work_force.n.01", "fisher.n.02", "ring.n.02"):
        assert wrong not in vocabulary
    assert 300 < len(vocabulary) < 500
    assert vocabulary.num_images == 4_800


def test_sample_tags_are_exactly_its_colours_and_shapes(sample_dir, mapper):
    captions = json.loads((sample_dir / "annotations" / "captions_train2017.json").read_text())
    by_image = collections.defaultdict(list)
    for annotation in captions["annotations"]:
        by_image[annotation["image_id"]].append(annotation["caption"])
    vocabulary = SynsetVocabulary.build(
        (image_synsets(c, mapper) for c in by_image.values()), min_images=5)
    assert set(vocabulary.names) == {mapper.map_word(word) for word in SAMPLE_WORDS}


# --- image synsets --------------------------------------------------------------------------
def test_image_synsets_votes(mapper):
    captions = ["A dog on a couch.", "A dog sleeping on a sofa.", "A cat near a dog.",
                "A dog.", "A sofa and a lamp."]
    # dog: 4 captions, sofa (couch + sofa): 3, cat: 1, lamp: 1
    assert image_synsets(captions, mapper) == {"dog.n.01", "sofa.n.01"}
    assert image_synsets(captions, mapper, min_votes=4) == {"dog.n.01"}
    assert image_synsets(captions, mapper, extra={"lamp.n.02"}) == {
        "dog.n.01", "sofa.n.01", "lamp.n.02"}
    # fewer captions than votes: every caption must agree
    assert image_synsets(["A cat."], mapper, min_votes=2) == {"cat.n.01"}
    assert image_synsets([], mapper, extra=["cat.n.01"]) == {"cat.n.01"}


def test_coco_category_synsets_helper(mapper):
    assert synsets.coco_category_synsets(["tv", "person"]) == {
        "television_receiver.n.01", "person.n.01"}
    with pytest.raises(KeyError, match="not a COCO category"):
        synsets.coco_category_synsets(["circle"])
    assert synsets.coco_category_synsets(["circle", "hot dog"], mapper) == {
        "circle.n.01", "hotdog.n.02"}


def test_records_synsets(shared_data, mapper):
    from helpers.data import coco

    records = coco.load_coco(shared_data / "coco-mini-2017", "train2017")
    per_image = synsets.records_synsets(records, mapper, vg_synsets={records[0].image_id: {"x.n.01"}},
                                        progress=False)
    assert len(per_image) == len(records) == 80
    for record, found in zip(records, per_image):
        assert synsets.coco_category_synsets(record.categories) <= found   # categories always count
        assert image_synsets(record.captions, mapper) <= found
    assert "x.n.01" in per_image[0] and "x.n.01" not in per_image[1]


# --- hypernyms ------------------------------------------------------------------------------
def test_hypernym_roll_up():
    assert synsets.hypernyms("dog.n.01", 1) == {"canine.n.02", "domestic_animal.n.01"}
    assert {"carnivore.n.01", "animal.n.01"} <= synsets.hypernyms("dog.n.01", 2)
    assert synsets.with_hypernyms({"dog.n.01"}, depth=0) == {"dog.n.01"}
    rolled = synsets.with_hypernyms({"dog.n.01", "cat.n.01"}, depth=1)
    assert rolled == {"dog.n.01", "cat.n.01", "canine.n.02", "domestic_animal.n.01", "feline.n.01"}
    assert SynsetVocabulary.build([{"dog.n.01"}, {"cat.n.01"}], min_images=2).names == []
    vocabulary = SynsetVocabulary.build([{"dog.n.01"}, {"cat.n.01"}], min_images=2, hypernym_depth=2)
    assert vocabulary.names == ["carnivore.n.01"]   # the one synset on both images
    assert vocabulary.hypernym_depth == 2
