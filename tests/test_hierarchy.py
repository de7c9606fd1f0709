"""helpers.wordnet.hierarchy on real WordNet 3.0 / OMW (../shared/nltk_data) and real EfficientNet-Lite0
logits of 16 COCO photos (../shared/models/efficientnet-lite0-reference)."""

from __future__ import annotations

import ast
import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from helpers.wordnet import hierarchy
from helpers.wordnet.keywords import keyword
from helpers.wordnet.synsets import get_synset

SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
REFERENCE = SHARED_DIR / "models" / "efficientnet-lite0-reference"


@pytest.fixture(scope="module")
def tree() -> hierarchy.ImageNetHierarchy:
    return hierarchy.imagenet_hierarchy()


def one_hot(tree, *synsets_and_probabilities) -> np.ndarray:
    """float32 [1000] class probabilities with the given classes set."""
    row = np.zeros(len(tree.leaf_names), dtype=np.float32)
    for name, probability in synsets_and_probabilities:
        row[tree.leaf_names.index(name)] = probability
    return row


@pytest.fixture(scope="module")
def reference_photos(tree) -> dict[str, dict[str, float]]:
    """`{file name: hierarchical probabilities}` of the 16 reference photos (softmax of the
    float64 logits)."""
    if not (REFERENCE / "logits.npz").is_file():
        pytest.skip(f"{REFERENCE} not present")
    logits = np.load(REFERENCE / "logits.npz")["logits_float64"]               # (16, 1000)
    names = np.load(REFERENCE / "inputs.npz")["file_names"]
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return {str(name): tree.probabilities(row) for name, row in zip(names, probabilities)}


def words(chosen) -> list[str]:
    return [word for _, word, _ in chosen]


# --- the hierarchy ------------------------------------------------------------------------
def test_the_classes_are_the_wordnet_synsets_of_the_wnids(tree):
    assert len(tree.leaf_names) == 1000 and len(set(tree.leaf_names)) == 1000
    assert tree.leaf_names[0] == "tench.n.01"                 # n01440764
    assert tree.leaf_names[340] == "zebra.n.01"               # n02391049
    assert tree.synset_names[:1000] == tree.leaf_names
    assert len(tree) == 1860 and "entity.n.01" in tree and "dog.n.01" in tree
    assert tree.incidence.shape == (1000, 1860) and tree.incidence.dtype == np.float32


def test_dog_is_the_sum_of_its_breeds(tree):
    breeds = [i for i, name in enumerate(tree.leaf_names)
              if "dog.n.01" in hierarchy.ancestors(name)]
    assert len(breeds) == 118 == tree.leaf_count("dog.n.01")
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(1000), size=3).astype(np.float32)   # (3, 1000)
    propagated = tree.propagate(probabilities)                                 # (3, 1860)
    assert propagated.shape == (3, 1860) and propagated.dtype == np.float32
    np.testing.assert_allclose(propagated[:, tree.index("dog.n.01")],
                               probabilities[:, breeds].sum(axis=1), rtol=1e-5)
    np.testing.assert_allclose(propagated[:, tree.index("entity.n.01")], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(propagated[:, :1000], probabilities)


def test_a_class_reached_by_two_paths_counts_once(tree):
    # golden retriever -> dog -> canine -> carnivore -> ... -> animal, and
    # golden retriever -> dog -> domestic animal -> animal: two paths join at animal.n.01
    paths = get_synset("golden_retriever.n.01").hypernym_paths()
    assert sum("animal.n.01" in [s.name() for s in path] for path in paths) >= 2
    row = tree.probabilities(one_hot(tree, ("golden_retriever.n.01", 1.0)))
    assert row["domestic_animal.n.01"] == row["canine.n.02"] == 1.0
    assert row["animal.n.01"] == 1.0 and row["entity.n.01"] == 1.0
    assert tree.leaf_count("entity.n.01") == 1000


def test_depth_information_gain_and_shape_errors(tree):
    assert hierarchy.depth("entity.n.01") == 0
    assert hierarchy.depth("animal.n.01") == 6 and hierarchy.depth("dog.n.01") == 8
    assert hierarchy.information_gain("entity.n.01") == 0.0
    assert hierarchy.information_gain("zebra.n.01") == pytest.approx(np.log2(1000))
    assert hierarchy.information_gain("dog.n.01") == pytest.approx(np.log2(1000 / 118))
    with pytest.raises(ValueError, match=r"\[\.\.\., 1000\]"):
        tree.propagate(np.zeros((2, 999)))


def test_uninformative_abstractions(tree):
    for name in hierarchy.ABSTRACTIONS:
        get_synset(name)   # every listed name is a real synset (ValueError otherwise)
    for name in ("entity.n.01", "physical_entity.n.01", "object.n.01", "whole.n.02",
                 "artifact.n.01", "living_thing.n.01", "organism.n.01", "matter.n.03",
                 "instrumentality.n.03", "abstraction.n.06", "relation.n.01"):
        assert not hierarchy.is_informative(name), name
    for name in ("animal.n.01", "dog.n.01", "person.n.01", "food.n.01", "vehicle.n.01",
                 "zebra.n.01", "grass.n.01"):
        assert hierarchy.is_informative(name), name
    # the leaf-count rule: above more than half of the classes
    assert all(not hierarchy.is_informative(name) for name in tree.synset_names
               if tree.leaf_count(name) > 500)


# --- keyword paths ------------------------------------------------------------------------
def test_keyword_path_golden_retriever():
    assert hierarchy.keyword_path("golden_retriever.n.01") == [
        "animal", "vertebrate", "mammal", "dog", "golden retriever"]
    assert hierarchy.keyword_path("golden_retriever.n.01", "fra")[-2:] == ["chien",
                                                                          "golden retriever"]
    # Spanish OMW has no lemma for the breed: the path stops at "perro", never English
    assert hierarchy.keyword_path("golden_retriever.n.01", "spa")[-1] == "perro"
    assert hierarchy.keyword_path("man.n.01", "spa") == ["persona", "adulto", "hombre"]
    assert hierarchy.keyword_path("refrigerator.n.01") == ["refrigerator"]


def test_keyword_path_is_one_deterministic_path_of_informative_ancestors():
    path = hierarchy.hypernym_path("brown_bear.n.01")
    assert path == ("animal.n.01", "vertebrate.n.01", "mammal.n.01", "bear.n.01",
                    "brown_bear.n.01")
    for general, specific in itertools.pairwise(path):
        assert general in hierarchy.ancestors(specific)
    assert hierarchy.hypernym_path("brown_bear.n.01") == path   # cached, same every call


# --- keyword selection --------------------------------------------------------------------
def test_reference_photos_get_the_expected_keywords(reference_photos):
    expected = {
        "000000113354.jpg": "zebra",          # zebra 0.92
        "000000235064.jpg": "brown bear",     # brown bear 0.97
        "000000519611.jpg": "ice bear",       # ice bear 0.96
        "000000160012.jpg": "pizza",
        "000000407574.jpg": "banana",
        "000000531134.jpg": "traffic light",  # not "light", its only-child hypernym
        "000000073326.jpg": "refrigerator",
        # hedging: coonhound 0.56, Doberman 0.24, Rottweiler 0.08 -> dog (0.95)
        "000000427034.jpg": "dog",
        # trolleybus 0.66, minibus 0.17 -> bus (trolleybus, minibus and school bus: 0.84)
        "000000568290.jpg": "bus",
    }
    for name, word in expected.items():
        chosen = hierarchy.specific_keywords(reference_photos[name])
        assert words(chosen)[0] == word, (name, chosen)
    zebra = hierarchy.specific_keywords(reference_photos["000000113354.jpg"])
    assert zebra[0][0] == "zebra.n.01" and zebra[0][2] == pytest.approx(0.920, abs=1e-3)


def test_no_keyword_is_an_ancestor_of_another(reference_photos):
    for probabilities in reference_photos.values():
        for min_proba in (0.0, 0.05, 0.2):
            chosen = [s for s, _, _ in hierarchy.specific_keywords(probabilities, 5, min_proba)]
            assert chosen
            for synset in chosen:
                assert not set(chosen) & hierarchy.ancestors(synset), chosen
                assert hierarchy.is_informative(synset)


def test_min_proba_and_nb_keywords(reference_photos):
    photo = reference_photos["000000508602.jpg"]      # egret 0.63, crane 0.32: wading bird
    loose = hierarchy.specific_keywords(photo, 5, min_proba=0.0)
    assert len(loose) == 5
    assert [p for _, _, p in loose] != sorted(p for _, _, p in loose)   # score order
    assert all(p >= 0.5 for _, _, p in hierarchy.specific_keywords(photo, 5, min_proba=0.5))
    assert len(hierarchy.specific_keywords(photo, 2, min_proba=0.0)) == 2
    assert hierarchy.specific_keywords(photo, 0) == []
    # nothing reaches min_proba: the best keyword alone, unless asked not to
    assert len(hierarchy.specific_keywords(photo, 5, min_proba=0.999)) == 1
    assert hierarchy.specific_keywords(photo, 5, min_proba=0.999, at_least_one=False) == []
    with pytest.raises(ValueError, match="min_proba"):
        hierarchy.specific_keywords(photo, 5, min_proba=1.5)
    with pytest.raises(ValueError, match="WordNet synset"):
        hierarchy.specific_keywords({"not a synset": 0.5})


def test_chain_gives_general_to_specific(tree, reference_photos):
    chosen = hierarchy.specific_keywords(
        tree.probabilities(one_hot(tree, ("golden_retriever.n.01", 0.9),
                                   ("tabby.n.01", 0.1))), nb_keywords=1, chain=True)
    assert words(chosen) == ["animal", "vertebrate", "mammal", "dog", "golden retriever"]
    assert [p for _, _, p in chosen] == sorted((p for _, _, p in chosen), reverse=True)
    for probabilities in reference_photos.values():
        chained = [s for s, _, _ in hierarchy.specific_keywords(probabilities, chain=True)]
        for position, synset in enumerate(chained):   # no ancestor after its descendant
            assert not set(chained[position + 1:]) & hierarchy.ancestors(synset), chained


def test_french_and_spanish_never_fall_back_to_english(tree, reference_photos):
    coonhound = tree.probabilities(one_hot(tree, ("black-and-tan_coonhound.n.01", 1.0)))
    assert keyword("black-and-tan_coonhound.n.01", "fra", fallback="none") is None
    assert words(hierarchy.specific_keywords(coonhound, lang="fra")) == ["chien"]
    assert words(hierarchy.specific_keywords(coonhound, lang="spa")) == ["perro"]
    assert "black-and-tan coonhound" not in words(
        hierarchy.specific_keywords(coonhound, lang="fra", min_proba=0.0, nb_keywords=5))
    for probabilities in reference_photos.values():
        for lang in ("fra", "spa"):
            chosen = hierarchy.specific_keywords(probabilities, lang=lang)
            assert chosen, lang
            for synset, word, _ in chosen:
                assert word == keyword(synset, lang).replace(",", " ")   # hypernym fallback only
            assert len({w.casefold() for w in words(chosen)}) == len(chosen)
    zebra = reference_photos["000000113354.jpg"]
    assert words(hierarchy.specific_keywords(zebra, lang="fra")) == ["zèbre"]


def test_a_trained_models_probabilities_need_not_be_monotone(tree):
    mixed = {"person.n.01": 0.3, "man.n.01": 0.8, "grass.n.01": 0.6}
    raised = hierarchy.consistent_probabilities(mixed)
    assert raised == {"person.n.01": 0.8, "man.n.01": 0.8, "grass.n.01": 0.6}
    assert words(hierarchy.specific_keywords(mixed)) == ["man", "grass"]
    assert words(hierarchy.specific_keywords(mixed, chain=True)) == [
        "person", "adult", "man", "plant", "herb", "grass"]
    # merged with an ImageNet map: the higher probability per synset
    imagenet = tree.probabilities(one_hot(tree, ("golden_retriever.n.01", 0.7),
                                          ("tabby.n.01", 0.3)))
    merged = dict(imagenet)
    for name, probability in {"dog.n.01": 0.95, "grass.n.01": 0.5}.items():
        merged[name] = max(merged.get(name, 0.0), probability)
    chosen = hierarchy.specific_keywords(merged)
    assert words(chosen)[:2] == ["golden retriever", "grass"]
    assert "dog" not in words(chosen)


def test_class_names():
    names = hierarchy.class_names()
    assert len(names) == 1000 and names[340] == "zebra" and None not in names
    french = hierarchy.class_names("fra")
    assert french[340] == "zèbre" and "black-and-tan coonhound" not in french


def test_the_module_stays_below_the_model_layer():
    """Imports flow one way: helpers.wordnet.hierarchy may not import TensorFlow, Keras or the modules
    above it (model, inference, album, train, features)."""
    tree_ = ast.parse(Path(hierarchy.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree_):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{alias.name}" if node.module == "helpers" else
                         node.module for alias in node.names}
    allowed_helpers = {"helpers.config", "helpers.data.nltk_data", "helpers.wordnet.synsets",
                       "helpers.wordnet.keywords"}
    for name in imported:
        assert not name.startswith(("tensorflow", "keras")), name
        if name.startswith("helpers"):
            assert name in allowed_helpers, name
