"""Synset -> keyword in a language, and the one rule choosing a photo's keywords.

A photo's tags are WordNet noun synsets ("dog.n.01"); people read them as keywords in their
language through Open Multilingual Wordnet (Bond & Foster, "Linking and extending an open
multilingual wordnet", ACL 2013), read by NLTK: `keyword("dog.n.01", "fra") == "chien"`.
When a synset has no lemma in a language, its nearest hypernym that has one is used, so a French
album never gets a silent English word.

`top_k_keywords` is the single top-k / threshold selector of the project: the album tagger,
the Captioner's `tags` and the notebook-4 panel all call it.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Mapping

from helpers.wordnet.synsets import get_synset, wordnet

# --- multilingual keywords ------------------------------------------------------------------
# English names of the Open Multilingual Wordnet language codes NLTK may report.
LANGUAGE_NAMES: dict[str, str] = {
    "als": "Albanian", "arb": "Arabic", "bul": "Bulgarian", "cat": "Catalan",
    "cmn": "Chinese (simplified)", "dan": "Danish", "ell": "Greek", "eng": "English",
    "eus": "Basque", "fas": "Persian", "fin": "Finnish", "fra": "French", "glg": "Galician",
    "heb": "Hebrew", "hrv": "Croatian", "ind": "Indonesian", "isl": "Icelandic", "ita": "Italian",
    "ita_iwn": "Italian (IWN)", "jpn": "Japanese", "lit": "Lithuanian", "nld": "Dutch",
    "nno": "Norwegian Nynorsk", "nob": "Norwegian Bokmål", "pol": "Polish", "por": "Portuguese",
    "qcn": "Chinese (traditional)", "ron": "Romanian", "slk": "Slovak", "slv": "Slovenian",
    "spa": "Spanish", "swe": "Swedish", "tha": "Thai", "zsm": "Malay",
}
FALLBACKS = ("hypernym", "none", "english")
_HYPERNYM_LEVELS = 3   # how far up `fallback="hypernym"` looks


@functools.cache
def available_languages() -> dict[str, str]:
    """`{code: English name}` of the WordNet languages installed (always "eng"), sorted by code."""
    reader = wordnet()
    if getattr(reader, "_omw_reader", None) is not None and not getattr(reader, "omw_langs", None):
        reader.add_omw()   # NLTK lists the OMW languages only once it has looked at them
    return {code: LANGUAGE_NAMES.get(code, code) for code in sorted(reader.langs())}


def _repair(lemma: str) -> str:
    """Undo a cp1252 mojibake in OMW data: C1 control characters are the cp1252 byte
    (OMW French has 'c\\x9cur' for 'cœur': \\x9c -> œ, \\x8c -> Œ)."""
    if not any("\x80" <= character <= "\x9f" for character in lemma):
        return lemma
    repaired = []
    for character in lemma:
        if "\x80" <= character <= "\x9f":
            try:
                character = bytes([ord(character)]).decode("cp1252")
            except UnicodeDecodeError:   # 0x81, 0x8d, 0x8f, 0x90, 0x9d: undefined in cp1252
                pass
        repaired.append(character)
    return "".join(repaired)


@functools.cache
def _lemma_names(synset_name: str, lang: str) -> tuple[str, ...]:
    """Repaired, de-duplicated lemma names of a synset in a language (OMW order)."""
    names = get_synset(synset_name).lemma_names(lang)
    return tuple(dict.fromkeys(_repair(name) for name in names))


@functools.cache
def _english_keyword(synset_name: str) -> str:
    """WordNet's head lemma, unless it has several words and a one-word lemma is tagged more
    often in SemCor (then the most tagged one-word lemma): `male_child.n.01` -> "boy",
    `greenish_blue.n.01` stays, `ellipse.n.01` stays (not "oval")."""
    lemmas = get_synset(synset_name).lemmas()
    head = lemmas[0]
    single = [lemma for lemma in lemmas if "_" not in lemma.name()]
    if "_" in head.name() and single:
        best = max(single, key=lambda lemma: lemma.count())  # first of the most tagged
        if best.count() > head.count():
            return best.name()
    return head.name()


@functools.cache
def _is_genus(word: str) -> bool:
    """Whether WordNet names a genus `word` (case-insensitive): "felis" (genus Felis), "cancer"
    (genus Cancer); not "labrador", "border", "yorkshire"."""
    wanted = f"genus_{word.casefold()}"
    return any(wanted in (name.casefold() for name in synset.lemma_names())
               for synset in wordnet().synsets(word, pos="n"))


@functools.cache
def is_scientific_name(lemma: str, lang: str) -> bool:
    """Whether a lemma of `lang` is a Linnaean species name: two or more words, the first a genus
    WordNet knows, and either English WordNet lists the name too ("Haliaeetus_leucocephalus",
    "Felis_domesticus") or the genus is no other word of `lang` ("tinca tinca" in Spanish).
    Not "Labrador_retriever", "border collie", "ours brun", nor Spanish "rosa_de_Jericó", whose
    "rosa" is a Spanish word too."""
    words = lemma.replace(" ", "_").split("_")
    if len(words) < 2 or not words[0] or not _is_genus(words[0]):
        return False
    if lang == "eng" or wordnet().synsets("_".join(words), pos="n"):
        return True
    return all(any(name.casefold().startswith("genus_") for name in synset.lemma_names())
               for synset in wordnet().synsets(words[0].casefold(), pos="n", lang=lang))


@functools.cache
def _best_lemma(synset_name: str, lang: str) -> str | None:
    """Best lemma of a synset in `lang` (None if it has none): see `keyword`."""
    if lang == "eng":
        return _english_keyword(synset_name)
    candidates = _lemma_names(synset_name, lang)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    head = _english_keyword(synset_name)
    translations = collections.Counter()
    for sibling in wordnet().synsets(head):
        translations.update(set(candidates) & set(_lemma_names(sibling.name(), lang)))

    reader = wordnet()

    def rank(item):
        position, lemma = item
        looks_like_a_word = lemma[:1].islower() and len(lemma) > 1   # not "Paris", "GSM", "g"
        return (is_scientific_name(lemma, lang), -translations[lemma], not looks_like_a_word,
                "_" in lemma, -len(reader.synsets(lemma, lang=lang)), position)

    return min(enumerate(candidates), key=rank)[1]


def _common_word(synset_name: str, lang: str) -> str | None:
    """`_best_lemma`, unless the synset's only lemmas in `lang` are scientific names (the best
    one is then scientific: rule 0 ranks them last)."""
    lemma = _best_lemma(synset_name, lang)
    return None if lemma is None or (lang != "eng" and is_scientific_name(lemma, lang)) else lemma


@functools.cache
def _keyword(synset_name: str, lang: str, fallback: str) -> str | None:
    lemma = _common_word(synset_name, lang)
    if lemma is None and fallback == "hypernym":
        level = [get_synset(synset_name)]
        for _ in range(_HYPERNYM_LEVELS):  # breadth first, nearest level first
            level = [parent for synset in level
                     for parent in synset.hypernyms() + synset.instance_hypernyms()]
            found = [(-parent.min_depth(), parent.name(), word) for parent in level
                     if (word := _common_word(parent.name(), lang)) is not None]
            if found:   # the most specific parent with a word: "chat" before "animal domestique"
                lemma = min(found)[2]
                break
        else:   # no common word near: the synset's scientific name, if it has one
            lemma = _best_lemma(synset_name, lang)
    elif lemma is None and fallback == "english":
        lemma = _best_lemma(synset_name, lang) or _english_keyword(synset_name)
    return None if lemma is None else lemma.replace("_", " ")


def keyword(synset_name: str, lang: str = "eng", fallback: str = "hypernym") -> str | None:
    """The word showing a synset to people, in a WordNet language.

    Best-lemma rule: in English, WordNet's head lemma, unless the head has several words and a
    one-word lemma of the synset is tagged more often in SemCor (`male_child.n.01` -> "boy"). In another
    language, among the synset's lemmas
    there (`synset.lemma_names(lang)`, encoding glitches repaired and duplicates dropped), prefer

    0. anything but a scientific name (`is_scientific_name`: "Ursus arctos", a genus WordNet
       knows then a species) that OMW also lists as a lemma of the language
       (`brown_bear.n.01` in French: "ours brun", not "ursus arctos"),
    1. the lemma that also translates the most synsets sharing the synset's English keyword
       (OMW entries contain errors and rare synonyms: `red.n.01` in French has "bureaucratie",
       "paperasserie" and "rouge", and only "rouge" also translates the other "red" synsets),
    2. then a lowercase-initial lemma of two or more letters over proper nouns, abbreviations
       and single letters ("GSM", "g"),
    3. then one word over several ("mujer" over "hembra_adulta", "girafe" over
       "giraffa_camelopardalis"),
    4. then the lemma naming more synsets in that language (the commoner word: Spanish
       `dog.n.01` has "can" and "perro"; "perro" names 2 synsets, "can" 1),
    5. then OMW's order;

    underscores become spaces. A synset whose only lemmas in `lang` are scientific names
    (`domestic_cat.n.01` in French: "felis domesticus") counts as one without a lemma there:
    people search their photos for "chat", so `fallback` applies, and the scientific name is
    kept only when the hypernym fallback finds no common word (or with `fallback="english"`).

    Args:
        synset_name: e.g. "dog.n.01".
        lang: a code of `available_languages()` ("fra", "spa", "cmn", ...).
        fallback: when the synset has no lemma in `lang`: "hypernym" uses the nearest hypernym
            (breadth first, up to 3 levels; within a level the deepest, then by name) that has
            one; "none" gives None; "english" gives the
            English keyword (only when asked: never silently English for another language).

    Returns:
        The keyword, or None (no lemma and no usable fallback).

    Raises:
        ValueError: unknown synset, language or fallback.
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    if lang not in available_languages():
        raise ValueError(f"WordNet language {lang!r} is not installed; available: "
                         f"{', '.join(available_languages())}")
    return _keyword(synset_name, lang, fallback)


def top_k_keywords(
    synset_probabilities: Mapping[str, float],
    nb_keywords: int = 5,
    min_proba: float = 0.0,
    lang: str = "eng",
    translate: Callable[[str, str], str | None] | None = None,
) -> list[tuple[str, str, float]]:
    """The most probable synsets with a keyword in `lang`, as `(synset, keyword, probability)`.

    Synsets are taken by decreasing probability (ties by name) while probability >= `min_proba`;
    a synset without a lemma in `lang` is passed over, and two synsets with the same keyword count
    once, so up to `nb_keywords` distinct keywords come back. Commas (the tags separator) become
    spaces.

    Args:
        synset_probabilities: synset name ("dog.n.01") -> probability in [0, 1].
        nb_keywords: at most this many keywords.
        min_proba: confidence threshold in [0, 1].
        lang: Open Multilingual Wordnet code ("eng", "fra", "spa", ...).
        translate: `(synset, lang) -> keyword or None`; default `keyword`.
    """
    if translate is None:
        translate = keyword
    chosen: list[tuple[str, str, float]] = []
    seen: set[str] = set()
    for synset, probability in sorted(synset_probabilities.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(chosen) >= nb_keywords or probability < min_proba:
            break
        word = translate(synset, lang)
        if not word:
            continue
        word = " ".join(word.replace(",", " ").split())
        if word.casefold() in seen:
            continue
        seen.add(word.casefold())
        chosen.append((synset, word, float(probability)))
    return chosen


def unique_keywords(words) -> list[str]:
    """`words` without empty ones and without repeats, compared case-insensitively (the first
    spelling is kept, in order): "Chien", "chien" -> "Chien"."""
    seen, kept = set(), []
    for word in words:
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            kept.append(word)
    return kept
