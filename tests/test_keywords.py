"""helpers.wordnet.keywords: synset -> keyword in a language (real WordNet / OMW data)."""

from __future__ import annotations

import pytest

from helpers.wordnet import keywords
from helpers.wordnet.keywords import keyword


def test_keywords_best_lemma():
    assert keyword("dog.n.01", "fra") == "chien"
    assert keyword("dog.n.01", "spa") == "perro"          # not "can"
    assert keyword("red.n.01", "fra") == "rouge"          # not "bureaucratie"
    assert keyword("black.n.01", "fra") == "noir"         # not "galeux"
    assert keyword("heart.n.01", "fra") == "cœur"         # repaired from OMW's "c\x9cur"
    assert keyword("brown_bear.n.01", "fra") == "ours brun"   # not the scientific "ursus arctos"
    assert keyword("great_white_shark.n.01", "fra") == "grand requin blanc"
    assert keyword("male_child.n.01") == "boy"
    assert keyword("television_receiver.n.01") == "television"
    assert keyword("dog.n.01") == "dog"
    assert keyword("ellipse.n.01") == "ellipse"            # one-word head kept (not "oval")
    assert [keyword(name, "fra") for name in ("dog.n.01", "cat.n.01")] == ["chien", "chat"]
    assert " " in keyword("cellular_telephone.n.01")      # underscores -> spaces


def test_omw_encoding_repair():
    assert keywords._repair("c\x9cur") == "cœur" and keywords._repair("\x8cuvre") == "Œuvre"
    names = keywords._lemma_names("heart.n.01", "fra")
    assert "cœur" in names and not any("\x80" <= ch <= "\x9f" for name in names for ch in name)
    assert len(names) == len(set(names))


def test_scientific_names_give_way_to_common_words():
    # OMW's only French lemma of domestic_cat.n.01 is "felis_domesticus": people search "chat",
    # the word of its most specific hypernym (cat.n.01), not "animal domestique" (domestic_animal)
    assert keywords._lemma_names("domestic_cat.n.01", "fra") == ("felis_domesticus",)
    assert keyword("domestic_cat.n.01", "fra") == "chat"
    assert keyword("domestic_cat.n.01", "fra", fallback="none") is None
    assert keyword("domestic_cat.n.01", "fra", fallback="english") == "felis domesticus"
    assert keyword("tench.n.01", "spa") != "tinca tinca"
    assert keyword("bald_eagle.n.01", "fra") == "pygargue à tête blanche"   # both in OMW: the word
    assert keywords.is_scientific_name("haliaeetus_leucocephalus", "fra")  # English WordNet has it
    assert keywords.is_scientific_name("Felis_domesticus", "fra")
    assert keywords.is_scientific_name("tinca_tinca", "spa")
    assert keywords.is_scientific_name("felis_silvestris_catus", "spa")
    # not species names: a breed named after a place, common words, a genus that is a word too
    assert not keywords.is_scientific_name("Labrador_retriever", "fra")
    assert not keywords.is_scientific_name("border_collie", "fra")
    assert not keywords.is_scientific_name("ours_brun", "fra")
    assert not keywords.is_scientific_name("rosa_silvestre", "spa")      # "rosa": a Spanish word


def test_keyword_fallbacks():
    # street_sign.n.01 has no French lemma; its hypernym sign.n.02 has
    assert keyword("street_sign.n.01", "fra", fallback="none") is None
    assert keyword("street_sign.n.01", "fra") == keyword("sign.n.02", "fra") is not None
    assert keyword("street_sign.n.01", "fra", fallback="english") == "street sign"
    with pytest.raises(ValueError, match="fallback"):
        keyword("dog.n.01", "fra", fallback="guess")
    with pytest.raises(ValueError, match="not installed"):
        keyword("dog.n.01", "xx")
    with pytest.raises(ValueError, match="not a WordNet synset"):
        keyword("no_such_thing.n.01", "fra")


def test_available_languages():
    languages = keywords.available_languages()
    assert languages["eng"] == "English" and languages["fra"] == "French"
    assert languages["spa"] == "Spanish" and languages["cmn"] == "Chinese (simplified)"
    assert languages["qcn"] == "Chinese (traditional)" and languages["nob"] == "Norwegian Bokmål"
    assert len(languages) >= 20
    assert all(name != code for code, name in languages.items())   # every code has a name


def test_top_k_keywords_threshold_translation_and_duplicates():
    probabilities = {"dog.n.01": 0.9, "cat.n.01": 0.2, "hound.n.01": 0.8, "x.n.01": 0.7,
                     "car.n.01": 0.05}
    words = {"dog.n.01": "chien", "hound.n.01": "Chien", "cat.n.01": "chat", "car.n.01": "voiture"}
    chosen = keywords.top_k_keywords(probabilities, 5, 0.1, "fra", lambda s, lang: words.get(s))
    assert [word for _, word, _ in chosen] == ["chien", "chat"]  # duplicate and untranslated gone
    assert keywords.top_k_keywords(probabilities, 1, 0.0, "fra",
                                 lambda s, lang: words.get(s)) == [("dog.n.01", "chien", 0.9)]



def test_unique_keywords_keeps_the_first_spelling():
    assert keywords.unique_keywords(["Chien", "chien", "", "chat", "CHAT"]) == ["Chien", "chat"]
