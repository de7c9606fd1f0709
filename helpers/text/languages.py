"""Caption tokenisation and detokenisation per language: English, French and German.

Languages are named by ISO 639-3 codes, as the project's keywords are ("eng", "fra", "deu");
`language_code` also accepts the ISO 639-1 aliases "en", "fr" and "de".

`tokenize(text, lang)` gives the word tokens a caption vocabulary is built from; punctuation-only
tokens are dropped, as for English captions:

- English ("eng"): exactly `helpers.text.vocab.tokenize` (NLTK's Treebank tokens, lowercased).
- French and German: the text is put in Unicode NFC form (a decomposed "é" and a composed one are
  the same token) and the apostrophes ’ ‘ ʼ become '. A token is a run of letters and digits that
  may hold, between two of them, a hyphen ("porte-avions", "t-shirt", "schwarz-gelben"), a period
  ("U.S", "95.000"), a slash ("Freund/in"), an ampersand or an apostrophe ("aujourd'hui",
  "quelqu'un", "McDonald's"), and a comma or colon between digits ("1,5", "11:27"). Accents and
  "ß", "œ" are kept.
- French only: elision is split off, the article or pronoun keeping its apostrophe: "l'homme" ->
  "l'", "homme"; "d'une" -> "d'", "une"; "qu'il" -> "qu'", "il"; likewise c' j' m' n' s' t'
  jusqu' lorsqu' puisqu' quoiqu'; "l' homme" gives the same tokens. Other words with an
  apostrophe ("aujourd'hui", "quelqu'un", "presqu'île") stay whole. Everything is lowercased, as
  in English (French does not capitalise nouns; proper names lose their capital, as in English).
- German keeps its case, because nouns are capitalised and the capital tells words apart
  ("Essen", food; "essen", to eat). Only the first word of the caption is lowercased, and only
  when it is one of the closed class of words that are written in lower case inside a sentence
  (`GERMAN_LOWERCASE_STARTERS`: articles, numerals, pronouns, prepositions, ... "Ein", "Zwei",
  "Der", "Mehrere"); a caption starting with a noun ("Männer", "Kinder") keeps its capital. So "Ein
  Mann" and "ein Mann" give the same tokens, the text comes back with its case, and the vocabulary
  holds one "ein", not "Ein" and "ein". A later sentence of the same caption keeps its first capital
  (the period is dropped, so it could not be restored). In both languages the first part of a
  compound keeps its hyphen before a space or comma ("Obst- und Gemüsestand").

Measured on Multi30K task 1 train (29,000 sentences per language), min_count 5, ids including the 4
special ones (tests/test_languages.py checks these numbers):

| language | tokens | distinct | ids | train tokens covered | val tokens covered |
|---|---|---|---|---|---|
| English (`vocab.tokenize`) | 345,479 | 10,191 | 3,249 | 96.68% | 96.14% |
| French | 376,660 | 11,188 | 3,435 | 96.62% | 96.30% |
| German (this rule) | 322,316 | 19,123 | 3,581 | 93.03% | 92.02% |
| German, every capital kept | 322,316 | 19,168 | 3,614 | 93.02% | 91.99% |
| German, all lowercased | 322,316 | 18,616 | 3,538 | 93.21% | 92.19% |

Lowercasing all of German would save 43 ids (1%) but lose which words are nouns, so text could not
be written back correctly; the compounds, not the case, make German's vocabulary larger.

`detokenize(tokens, lang)` writes text back: the first letter of every sentence is capitalised, a
French elided token joins the next word ("l'" + "homme" -> "l'homme"), there is no space before a
comma, period or closing bracket, nor after an opening one. Before "?", "!" and ";" French
typography puts a narrow no-break space (U+202F) and before ":" a no-break space (U+00A0), as the
Imprimerie nationale's rules ask; `detokenize` writes those (German and English write none). Caption
tokens rarely hold such punctuation (`tokenize` drops it), but a decoder that keeps punctuation
tokens gets correct French. No final period is added: captions are shown as phrases.

Round trip: for every caption `s`, `detokenize(tokenize(s, lang), lang)` has the words of `s`
with their accents, in order; what differs is punctuation standing between words, which `tokenize`
drops, whitespace, the case of the first letter and, for French, case (lowercased). Checked on all
29,000 French and German Multi30K train sentences (tests/test_languages.py states the equalities).
Known loss: a quoted first part of a German compound loses the hyphen with its quotes
("„Open“-Anzeige" -> "Open Anzeige"; 35 of 29,000 German train sentences).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

ENGLISH, FRENCH, GERMAN = "eng", "fra", "deu"
LANGUAGES = {ENGLISH: "English", FRENCH: "French", GERMAN: "German"}   # ISO 639-3 code -> name
ALIASES = {"en": ENGLISH, "fr": FRENCH, "de": GERMAN}                   # ISO 639-1 -> ISO 639-3
ISO_639_1 = {code: alias for alias, code in ALIASES.items()}            # ISO 639-3 -> ISO 639-1


def language_code(lang: str) -> str:
    """The ISO 639-3 code of a supported language: "eng", "fra" or "deu".

    Args:
        lang: an ISO 639-3 code ("eng", "fra", "deu") or ISO 639-1 alias ("en", "fr", "de"), any case.

    Raises:
        ValueError: for any other language, listing the supported ones.
    """
    code = str(lang).strip().lower()
    code = ALIASES.get(code, code)
    if code not in LANGUAGES:
        supported = ", ".join(f"{code} ({name})" for code, name in LANGUAGES.items())
        raise ValueError(f"language {lang!r} is not supported for captions; use one of {supported} "
                         f"or the aliases {', '.join(ALIASES)}")
    return code


# --- tokenisation ----------------------------------------------------------------------------
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})
# A word (letters/digits joined by - . / & ' and, between digits, , or :), or one other character.
# A German first part of a compound keeps its hyphen before a space or comma ("Obst- und Gemüse").
_TOKEN = re.compile(r"\w+(?:(?:[-./&']|(?<=\d)[,:](?=\d))\w+)*(?:-(?=[\s,]))?|\S")
_HAS_WORD_CHARACTER = re.compile(r"[^\W_]")
_SENTENCE_END = {".", "!", "?"}
# French words that elide before a vowel or mute h (apostrophe included), longest first.
FRENCH_ELISIONS = ("jusqu'", "lorsqu'", "puisqu'", "quoiqu'", "qu'", "c'", "d'", "j'", "l'", "m'",
                   "n'", "s'", "t'")
_FRENCH_ELISION = re.compile(rf"^({'|'.join(FRENCH_ELISIONS)})(?=\w)", re.IGNORECASE)
# French tokens also include an elided word written apart ("l' homme", as " ".join of tokens).
_FRENCH_TOKEN = re.compile(rf"(?i:\b(?:{'|'.join(FRENCH_ELISIONS)})(?=\s|$))|{_TOKEN.pattern}")
# German words written in lower case inside a sentence that often start a caption; the first
# word of a sentence is lowercased only if it is one of these (nouns keep their capital).
GERMAN_LOWERCASE_STARTERS = frozenset("""
    ein eine einer eines einem einen der die das dem den des dies diese dieser dieses diesem diesen
    jene jener jenes manche mancher einige mehrere viele wenige zahlreiche alle beide etliche
    kein keine jede jeder jedes zwei drei vier fünf sechs sieben acht neun zehn elf zwölf zwanzig
    hundert es er sie man wir ich du ihr jemand niemand etwas nichts hier da dort nahe
    in im an am auf bei beim mit nach von vom vor hinter neben über unter zwischen aus zu zum zur
    durch für gegen ohne um während trotz wegen und oder aber als wenn wie wo was wer nur auch
    noch so dabei draußen drinnen
""".split())


def _words(text: str, code: str) -> list[str]:
    """Word and single punctuation tokens of `text` (NFC, apostrophes normalised), in order."""
    text = unicodedata.normalize("NFC", text).translate(_APOSTROPHES)
    return (_FRENCH_TOKEN if code == FRENCH else _TOKEN).findall(text)


def tokenize(text: str, lang: str = ENGLISH) -> list[str]:
    """Split a caption into word tokens of its language, dropping punctuation.

    Args:
        text: any caption text (one or several sentences).
        lang: language code or alias (see `language_code`).

    Returns:
        The tokens, e.g. ``tokenize("L’homme porte-avions, aujourd'hui.", "fr")`` is
        ``["l'", "homme", "porte-avions", "aujourd'hui"]`` and ``tokenize("Ein Mann isst Essen.",
        "de")`` is ``["ein", "Mann", "isst", "Essen"]``. English: `helpers.text.vocab.tokenize`.

    Raises:
        ValueError: for an unsupported language.
        helpers.data.nltk_data.NltkDataMissing: English only, see `helpers.text.vocab.tokenize`.
    """
    code = language_code(lang)
    if code == ENGLISH:
        from helpers.text import vocab  # vocab imports this module: import at call time

        return vocab.tokenize(text)
    tokens: list[str] = []
    first = True
    for token in _words(text, code):
        if not _HAS_WORD_CHARACTER.search(token):      # punctuation-only: dropped
            continue
        if code == FRENCH:
            token = token.lower()
            elided = _FRENCH_ELISION.match(token)
            if elided:
                tokens.append(elided[1])
                token = token[elided.end():]
        elif first and token.lower() in GERMAN_LOWERCASE_STARTERS:
            token = token.lower()
        tokens.append(token)
        first = False
    return tokens


# --- detokenisation --------------------------------------------------------------------------
_NO_SPACE_BEFORE = {",", ".", ")", "]", "}", "…"}
_NO_SPACE_AFTER = {"(", "[", "{", "„"}
# French typography: a narrow no-break space before ? ! ; and a no-break space before : and inside « ».
_FRENCH_SPACE_BEFORE = {"?": "\u202f", "!": "\u202f", ";": "\u202f", ":": "\u00a0", "»": "\u00a0"}
_ENGLISH_CLITICS = re.compile(r"^(?:'s|'m|'d|'ll|'re|'ve|n't)$", re.IGNORECASE)


def _space_before(token: str, code: str) -> str:
    """What goes between the text so far and `token` (not after an elision or opening bracket)."""
    if token in _NO_SPACE_BEFORE:
        return ""
    if token in ("?", "!", ";", ":", "»"):
        return _FRENCH_SPACE_BEFORE[token] if code == FRENCH else ("" if token != "»" else " ")
    if code == ENGLISH and _ENGLISH_CLITICS.match(token):
        return ""
    return " "


def _capitalise(word: str) -> str:
    """`word` with its first letter upper-case (unless that changes its length, like "ß")."""
    first = word[:1].upper()
    return first + word[1:] if len(first) == 1 else word


def detokenize(tokens: Sequence[str], lang: str = ENGLISH) -> str:
    """Write tokens back as text of their language.

    Args:
        tokens: word tokens (as `tokenize` gives), optionally with punctuation tokens.
        lang: language code or alias (see `language_code`).

    Returns:
        The text: sentence-initial capitals; French elided tokens joined to the next word; no space
        before , . ) ] nor after ( [ „; French puts U+202F before ? ! ; and U+00A0 before : (see the
        module docstring); English joins clitics ("is", "n't" -> "isn't"). No final period is added.
        E.g. ``detokenize(["l'", "homme", "est", "là"], "fr")`` is ``"L'homme est là"``.

    Raises:
        ValueError: for an unsupported language.
    """
    code = language_code(lang)
    text = ""
    glue_next = True               # no space before the next token (start, after an elision, "(")
    sentence_start = True
    for token in tokens:
        token = str(token)
        if not token:
            continue
        is_word = bool(_HAS_WORD_CHARACTER.search(token))
        if is_word and sentence_start:
            token = _capitalise(token)
            sentence_start = False
        text += ("" if glue_next else _space_before(token, code)) + token
        sentence_start = sentence_start or (not is_word and token in _SENTENCE_END)
        glue_next = token in _NO_SPACE_AFTER or (code == FRENCH and token.lower() in FRENCH_ELISIONS)
        if code == FRENCH and token == "«":
            text += "\u00a0"
            glue_next = True
    return text


# --- words that state a sex ----------------------------------------------------------------------
# The concepts a caption is written from say "person" (a detector's category, a count), never a
# sex, so "a man" or "a woman" in a caption is the decoder's guess from its training text: in
# COCO's captions "man" is the most frequent way to name a person, and the English decoder wrote
# "a man" for 33 of the 35 coco-mini photos it gave a sex to, "a man in a red shirt" for a woman
# astronaut. A captioner that cannot see the evidence should say "person" (Hendricks et al., ECCV
# 2018, "Women also snowboard: overcoming bias in captioning models"; Google Cloud Vision dropped
# its "man" and "woman" labels in 2020 for the same reason, and Azure AI Vision offers
# "gender-neutral captions" that write "a person" for "a man").
#
# Forbidding these words in the beam search does not work: the decoder's next guess was another
# attribute it cannot see ("a young child in a red shirt" for the astronaut, on Multi30K English
# CIDEr 0.482 -> 0.421). So English captions are rewritten after the search, word for word, which
# English grammar allows: `NEUTRAL_ENGLISH` ("man" -> "person", "his" -> "their"), "a man and a
# woman" -> "two people", and a verb after "they" in the plural. A word that states a sex and has
# no such rewrite ("bride", "mother") is rare and is left out of the search instead
# (`gendered_words` minus the rewritable ones). French and German agree articles, adjectives and
# participles with the noun's grammatical gender ("un homme assis", "une personne assise"), so a
# word-for-word rewrite would break the sentence: their captions keep the decoder's words.
_ENGLISH_GENDERED = frozenset("""
    man men woman women boy boys girl girls guy guys lady ladies gentleman gentlemen he she his her
    hers him himself herself male female males females mother mothers father fathers mom mommy dad
    daddy son sons daughter daughters brother brothers sister sisters husband wife bride groom
    bridegroom grandmother grandfather grandma grandpa uncle aunt nephew niece king queen prince
    princess boyfriend girlfriend businessman businessmen businesswoman policeman policemen
    policewoman fireman firemen fisherman fishermen cowboy cowboys cowgirl cowgirls sportsman
    actress waitress waiter nun monk schoolgirl schoolboy""".split())
# The rewrite of each English word that states a sex and has a neutral one ("" leaves it out:
# "a female skier" -> "a skier"); a rewrite is used only when all its words are in the vocabulary.
NEUTRAL_ENGLISH = {
    **dict.fromkeys(("man", "woman", "guy", "lady", "gentleman"), "person"),
    **dict.fromkeys(("men", "women", "guys", "ladies", "gentlemen"), "people"),
    **dict.fromkeys(("boy", "girl", "son", "daughter"), "child"),
    **dict.fromkeys(("boys", "girls", "sons", "daughters"), "children"),
    **dict.fromkeys(("his", "her", "hers"), "their"),
    **dict.fromkeys(("he", "she"), "they"),
    "him": "them", "himself": "themselves", "herself": "themselves",
    **dict.fromkeys(("male", "female", "males", "females"), ""),
    **dict.fromkeys(("mother", "father", "mom", "dad", "mommy", "daddy"), "parent"),
    **dict.fromkeys(("mothers", "fathers"), "parents"),
    **dict.fromkeys(("policeman", "policewoman"), "police officer"),
    **dict.fromkeys(("policemen",), "police officers"),
    **dict.fromkeys(("fireman",), "firefighter"), "firemen": "firefighters",
    **dict.fromkeys(("businessman", "businesswoman"), "business person"),
    "businessmen": "business people",
    **dict.fromkeys(("fisherman",), "person fishing"),
    **dict.fromkeys(("cowboy", "cowgirl"), "rider"), **dict.fromkeys(("cowboys", "cowgirls"), "riders"),
    **dict.fromkeys(("waiter", "waitress"), "server"),
}
# Phrases rewritten as a whole before the words: a pair of one of each sex is two people.
_ENGLISH_NEUTRAL_PHRASES = {("a", "man", "and", "a", "woman"): ("two", "people"),
                            ("a", "woman", "and", "a", "man"): ("two", "people"),
                            ("a", "boy", "and", "a", "girl"): ("two", "children"),
                            ("a", "girl", "and", "a", "boy"): ("two", "children")}
_AFTER_THEY = {"is": "are", "was": "were", "has": "have", "does": "do"}
NEUTRAL_LANGUAGES = frozenset({ENGLISH})     # languages whose captions are rewritten


def is_gendered_word(word: str, lang: str = ENGLISH) -> bool:
    """Whether an English vocabulary word states a person's sex ("man", "her", "bride"); always
    False in French and German, whose captions are not rewritten (see the section's comment).

    Raises:
        ValueError: unknown language.
    """
    return language_code(lang) == ENGLISH and word in _ENGLISH_GENDERED


def neutral_rewrites(vocabulary_words: Sequence[str], lang: str = ENGLISH) -> dict[str, tuple[str, ...]]:
    """Each word of a vocabulary that states a sex and has a neutral rewrite whose words are all in
    the vocabulary, mapped to those words (`NEUTRAL_ENGLISH`; empty in French and German)."""
    if language_code(lang) not in NEUTRAL_LANGUAGES:
        return {}
    known = set(vocabulary_words)
    rewrites = {word: tuple(NEUTRAL_ENGLISH[word].split()) for word in known if word in NEUTRAL_ENGLISH}
    return {word: words for word, words in rewrites.items() if known.issuperset(words)}


def gendered_words(vocabulary_words: Sequence[str], lang: str = ENGLISH) -> list[int]:
    """The indices of a vocabulary's words (its `id_to_word`) that state a sex and have no neutral
    rewrite in it (`neutral_rewrites`), ascending: the beam search leaves them out."""
    rewrites = neutral_rewrites(vocabulary_words, lang)
    return [index for index, word in enumerate(vocabulary_words)
            if is_gendered_word(word, lang) and word not in rewrites]


def neutral_words(words: Sequence[str], rewrites: dict[str, tuple[str, ...]]) -> tuple[list[str], list[int]]:
    """A caption's words with those that state a sex rewritten (English; see the section's comment).

    Args:
        words: the caption's tokens, lowercase as `tokenize` writes them.
        rewrites: `neutral_rewrites(vocabulary words)`: only these words are rewritten (so the
            result is in the vocabulary); "a man and a woman" (either order; "a boy and a girl")
            becomes "two people" ("two children") when both its nouns are rewritable.

    Returns:
        `(new words, source)`: `source[i]` is the index in `words` of the word that `new words[i]`
        comes from (for a decoder's attention rows). "a man riding his bike" -> "a person riding
        their bike"; "a man and a woman sitting" -> "two people sitting"; "she is" -> "they are".
    """
    out: list[str] = []
    source: list[int] = []
    index = 0
    while index < len(words):
        phrase = next((p for p in _ENGLISH_NEUTRAL_PHRASES
                       if tuple(words[index:index + len(p)]) == p and p[1] in rewrites and p[4] in rewrites), None)
        if phrase is not None:
            out += _ENGLISH_NEUTRAL_PHRASES[phrase]
            source += [index, index + 1]
            index += len(phrase)
            continue
        word = words[index]
        if word in rewrites:
            new = rewrites[word]
        elif out and out[-1] == "they" and source[-1] == index - 1 and word in _AFTER_THEY:
            new = (_AFTER_THEY[word],)
        else:
            new = (word,)
        out += new
        source += [index] * len(new)
        index += 1
    return out, source
