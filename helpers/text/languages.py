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
# attribute it cannot see ("a young child in a red shirt" for the astronaut, "Un jeune enfant",
# "Ein kleines Kind"; on Multi30K English CIDEr 0.482 -> 0.421, French 0.506 -> 0.469, German
# 0.429 -> 0.361). So:
#
# - English captions are rewritten after the search, word for word, which English grammar allows:
#   `NEUTRAL_ENGLISH` ("man" -> "person", "his" -> "their"), "a man and a woman" -> "two people",
#   a verb after "they" in the plural. A word that states a sex with no rewrite ("bride",
#   "mother") is rare and is left out of the search instead (`gendered_words`).
# - French and German agree articles, adjectives, participles and possessives with the noun's
#   grammatical gender ("un homme assis", "une personne assise"; "ein Mann ... seinem", "eine
#   Person ... ihrem"), so the words after the noun cannot be swapped one by one. There the
#   caption's subject is rewritten (`neutral_subject`: "Un jeune homme" -> "Une personne", "Zwei
#   Männer" -> "Zwei Personen", "Ein kleines Mädchen" -> "Ein Kind", case and number kept from the
#   determiner) and the decoder writes the rest again from that beginning with every such word
#   left out, agreeing as its training text taught it (Multi30K has "Une personne" 672 times,
#   "Eine Person" 488 times). A caption whose first such word has no rewrite here (a relative,
#   "Sängerin") gives way to the set's next caption that states none, if there is one.
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


_FRENCH_GENDERED = frozenset("""
    homme hommes femme femmes garçon garçons fille filles fillette fillettes dame dames monsieur
    messieurs madame mademoiselle gars mec mecs il ils elle elles lui lui-même elle-même mère mères
    père pères maman papa fils frère frères sœur sœurs soeur mari époux épouse mariée mariées marié
    mariés grand-mère grand-père oncle tante roi reine prince princesse joueuse joueuses chanteuse
    chanteuses musicienne musiciennes danseuse danseuses serveuse serveuses policière policières
    ouvrière ouvrières infirmière infirmières vendeuse vendeuses coiffeuse coiffeuses skieuse
    skieuses surfeuse surfeuses nageuse nageuses coureuse coureuses travailleuse travailleuses
    cuisinière cuisinières""".split())
_GERMAN_GENDERED = frozenset("""
    Mann Männer Männern Mannes Frau Frauen Junge Jungen Jungs Mädchen Mädchens Dame Damen Herr
    Herren Herrn Vater Väter Mutter Mütter Sohn Söhne Tochter Töchter Bruder Brüder Schwester
    Schwestern Braut Bräute Bräutigam Kerl Kerle Typ Typen Ehemann Ehefrau Oma Opa Mama Papa Onkel
    Tante König Königin Prinz Prinzessin er ihm ihn männlich männliche männlicher männlichen
    männliches männlichem weiblich weibliche weiblicher weiblichen weibliches weiblichem""".split())
# German compounds: a profession or role in -mann/-männer/-frau/-frauen and the feminine forms in
# -in/-innen ("Geschäftsmann", "Sängerin", "Tänzerinnen"; the masculine, "Sänger", is German's
# generic form); figures that are no person of the photo stay ("Weihnachtsmann", "Schneemann").
_GERMAN_GENDERED_COMPOUND = re.compile(r"^[A-ZÄÖÜ]\w*(?:mann|männer|männern|frau|frauen|erin|erinnen)$")
_GERMAN_NOT_GENDERED = frozenset({"Weihnachtsmann", "Schneemann", "Schneemänner", "Schlagmann"})


def is_gendered_word(word: str, lang: str = ENGLISH) -> bool:
    """Whether a vocabulary word states a person's sex: "man", "her", "bride"; "femme", "joueuse",
    "il"; "Mann", "Mädchen", "Sängerin" (see the section's comment).

    Args:
        word: one token as the language's `tokenize` writes it (English and French lowercase;
            German keeps its case: "Junge", the boy, states a sex; "junge", young, does not).
        lang: "eng", "fra" or "deu" (or its ISO 639-1 alias).

    Raises:
        ValueError: unknown language.
    """
    code = language_code(lang)
    if code == ENGLISH:
        return word in _ENGLISH_GENDERED
    if code == FRENCH:
        return word in _FRENCH_GENDERED
    return word in _GERMAN_GENDERED or (
        word not in _GERMAN_NOT_GENDERED and bool(_GERMAN_GENDERED_COMPOUND.match(word)))


def neutral_rewrites(vocabulary_words: Sequence[str], lang: str = ENGLISH) -> dict[str, tuple[str, ...]]:
    """Each word of a vocabulary that states a sex and has a neutral rewrite whose words are all in
    the vocabulary, mapped to those words (`NEUTRAL_ENGLISH`; empty in French and German)."""
    if language_code(lang) not in NEUTRAL_LANGUAGES:
        return {}
    known = set(vocabulary_words)
    rewrites = {word: tuple(NEUTRAL_ENGLISH[word].split()) for word in known if word in NEUTRAL_ENGLISH}
    return {word: words for word, words in rewrites.items() if known.issuperset(words)}


def gendered_words(vocabulary_words: Sequence[str], lang: str = ENGLISH) -> list[int]:
    """The indices of a vocabulary's words (its `id_to_word`) that state a sex and have no
    word-for-word rewrite in it (`neutral_rewrites`), ascending: in English the few the beam search
    leaves out; in French and German all of them, left out where the decoder writes a caption
    again after its `neutral_subject`."""
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


# The subject rewrite of French and German (`neutral_subject`). Each noun that states a sex: its
# kind (a person, "personne" / "Person", feminine in both; or a child, "enfant" / "Kind") and
# number (1 one, 2 several, 0 either: German "Mädchen", "Jungen" take it from the determiner).
_FRENCH_SUBJECTS = {**dict.fromkeys("homme femme dame monsieur mec madame".split(), ("person", 1)),
                    **dict.fromkeys("hommes femmes dames messieurs mecs".split(), ("person", 2)),
                    "gars": ("person", 0),
                    **dict.fromkeys("garçon fille fillette".split(), ("child", 1)),
                    **dict.fromkeys("garçons filles fillettes".split(), ("child", 2))}
_GERMAN_SUBJECTS = {**dict.fromkeys("Mann Mannes Frau Dame Herr Herrn Kerl Typ".split(), ("person", 1)),
                    **dict.fromkeys("Männer Männern Frauen Damen Herren Kerle Typen".split(), ("person", 2)),
                    "Junge": ("child", 1), "Mädchens": ("child", 1), "Jungs": ("child", 2),
                    "Mädchen": ("child", 0), "Jungen": ("child", 0)}
# Words between a determiner and its noun that are left out with the noun: age and size, guesses
# like the sex ("Un jeune homme" -> "Une personne", "Ein kleiner Junge" -> "Ein Kind").
_FRENCH_NOUN_ADJECTIVES = frozenset("jeune jeunes petit petite petits petites vieil vieux vieille vieilles "
                                    "grand grande grands grandes autre autres".split())
_GERMAN_NOUN_ADJECTIVE = re.compile(r"^(?:jung|alt|älter|klein|groß|ander)(?:e|er|en|em|es)?$")
_FRENCH_PLURAL_DETERMINERS = frozenset("des les ces deux trois quatre cinq six sept huit neuf dix plusieurs "
                                       "quelques nombreux nombreuses mes tes ses nos vos leurs".split())
_GERMAN_NUMERALS = frozenset("zwei drei vier fünf sechs sieben acht neun zehn mehrere viele einige "
                             "zahlreiche beide wenige".split())
_GERMAN_DATIVE_PREPOSITIONS = frozenset("mit von bei zu zum zur aus nach seit gegenüber".split())
# German determiner -> case of the noun after it ("nom", "acc", "dat", "gen", "pl"), by the
# grammatical gender of the noun that states a sex (m: Mann, Junge; f: Frau; n: Mädchen).
_GERMAN_CASES = {
    "m": {"ein": "nom", "einen": "acc", "einem": "dat", "eines": "gen", "der": "nom", "den": "acc",
          "dem": "dat", "des": "gen", "dieser": "nom", "diesen": "acc", "diesem": "dat", "kein": "nom"},
    "f": {"eine": "nom", "einer": "dat", "die": "nom", "der": "dat", "diese": "nom", "dieser": "dat",
          "keine": "nom"},
    "n": {"ein": "nom", "einem": "dat", "eines": "gen", "das": "nom", "dem": "dat", "des": "gen",
          "dieses": "nom", "diesem": "dat", "kein": "nom"},
}
_GERMAN_GENDER = {**dict.fromkeys("Mann Mannes Herr Herrn Kerl Typ Junge Jungen".split(), "m"),
                  **dict.fromkeys("Frau Dame".split(), "f"), **dict.fromkeys("Mädchen Mädchens".split(), "n")}
_GERMAN_NEUTRAL = {   # (kind, case, definite) -> the neutral noun phrase
    ("person", "nom", False): "eine Person", ("person", "nom", True): "die Person",
    ("person", "acc", False): "eine Person", ("person", "acc", True): "die Person",
    ("person", "dat", False): "einer Person", ("person", "dat", True): "der Person",
    ("person", "gen", False): "einer Person", ("person", "gen", True): "der Person",
    ("child", "nom", False): "ein Kind", ("child", "nom", True): "das Kind",
    ("child", "acc", False): "ein Kind", ("child", "acc", True): "das Kind",
    ("child", "dat", False): "einem Kind", ("child", "dat", True): "dem Kind",
    ("child", "gen", False): "eines Kindes", ("child", "gen", True): "des Kindes",
}
_FRENCH_PAIRS = {("un", "homme", "et", "une", "femme"), ("une", "femme", "et", "un", "homme"),
                 ("un", "garçon", "et", "une", "fille"), ("une", "fille", "et", "un", "garçon")}
_GERMAN_PAIRS = {("ein", "Mann", "und", "eine", "Frau"), ("eine", "Frau", "und", "ein", "Mann"),
                 ("ein", "Junge", "und", "ein", "Mädchen"), ("ein", "Mädchen", "und", "ein", "Junge")}


def neutral_subject(words: Sequence[str], lang: str) -> list[str] | None:
    """The beginning of a French or German caption up to its first noun that states a sex, with
    that noun phrase rewritten without it; the decoder then writes the rest (see the section's
    comment). None when the caption has no such word, or when its first one is not a noun
    rewritten here (a relative, a profession: "mère", "Sängerin"; a pronoun).

    Args:
        words: the caption's tokens as `tokenize` writes them (German: a caption's first word is
            lowercased when it is a determiner, "ein", "zwei").
        lang: "fra" or "deu" (or "fr", "de"); English is rewritten word for word instead
            (`neutral_words`), so it gives None.

    Returns:
        The tokens of the new beginning: ["un", "jeune", "homme", "est"] -> ["une", "personne"];
        ["deux", "hommes"] -> ["deux", "personnes"]; ["un", "groupe", "d'", "hommes"] ->
        ["un", "groupe", "de", "personnes"]; ["un", "homme", "et", "une", "femme"] -> ["deux",
        "personnes"]; ["ein", "kleiner", "Junge"] -> ["ein", "Kind"]; ["mit", "einem", "Mann"] ->
        ["mit", "einer", "Person"]; ["zwei", "Männer"] -> ["zwei", "Personen"].

    Raises:
        ValueError: unknown language.
    """
    code = language_code(lang)
    if code == ENGLISH:
        return None
    first = next((i for i, word in enumerate(words) if is_gendered_word(word, code)), None)
    subjects = _FRENCH_SUBJECTS if code == FRENCH else _GERMAN_SUBJECTS
    if first is None or words[first] not in subjects:
        return None
    kind, number = subjects[words[first]]
    start = first                                   # the noun phrase: determiner, adjectives, noun
    adjective = (_FRENCH_NOUN_ADJECTIVES.__contains__ if code == FRENCH
                 else lambda word: bool(_GERMAN_NOUN_ADJECTIVE.match(word)))
    while start > 0 and adjective(words[start - 1]):
        start -= 1
    determiner = words[start - 1] if start > 0 else None
    pairs = _FRENCH_PAIRS if code == FRENCH else _GERMAN_PAIRS
    for pair_start in (start - 1, start):
        if pair_start >= 0 and tuple(words[pair_start:pair_start + 5]) in pairs:
            both = ("deux" if code == FRENCH else "zwei",
                    {("person", FRENCH): "personnes", ("child", FRENCH): "enfants",
                     ("person", GERMAN): "Personen", ("child", GERMAN): "Kinder"}[kind, code])
            return [*words[:pair_start], *both]
    if code == FRENCH:
        return _french_subject(words, start, determiner, kind, number)
    return _german_subject(words, first, start, determiner, kind, number)


def _french_subject(words, start, determiner, kind, number):
    noun = {("person", 1): "personne", ("person", 2): "personnes", ("child", 1): "enfant",
            ("child", 2): "enfants"}
    if determiner in ("un", "une"):
        return [*words[:start - 1], *(["une", "personne"] if kind == "person" else ["un", "enfant"])]
    if determiner in ("le", "la", "l'"):
        return [*words[:start - 1], *(["la", "personne"] if kind == "person" else ["l'", "enfant"])]
    if determiner in ("ce", "cet", "cette"):
        return [*words[:start - 1], *(["cette", "personne"] if kind == "person" else ["cet", "enfant"])]
    if determiner in ("d'", "de"):                  # "un groupe d'hommes": a plural
        return [*words[:start - 1], *(["de", "personnes"] if kind == "person" else ["d'", "enfants"])]
    if determiner in _FRENCH_PLURAL_DETERMINERS:
        return [*words[:start], noun[kind, 2]]
    if determiner is None or number == 2:       # no determiner: "hommes et femmes" keeps the number
        return [*words[:start], noun[kind, number or 2]]
    return None


_GERMAN_DETERMINERS = frozenset(word for cases in _GERMAN_CASES.values() for word in cases) | _GERMAN_NUMERALS | {
    "die", "den", "diese", "keine"}


def _german_subject(words, first, start, determiner, kind, number):
    if determiner is not None and determiner.lower() not in _GERMAN_DETERMINERS:
        determiner = None                           # "von Männern": a preposition, no determiner
    base = words[:start - 1] if determiner is not None else list(words[:start])
    lowered = None if determiner is None else determiner.lower()
    plural_noun = {"person": "Personen", "child": "Kinder"}[kind]
    before = words[start - 2].lower() if determiner is not None and start >= 2 else None
    if lowered in _GERMAN_NUMERALS or (lowered in ("die", "den", "diese", "keine") and number != 1
                                        and _GERMAN_GENDER.get(words[first]) != "f"):
        dative = lowered == "den" or before in _GERMAN_DATIVE_PREPOSITIONS
        noun = "Kindern" if kind == "child" and dative else plural_noun
        return [*words[:start], noun]
    if determiner is None:
        if number == 1:
            return None
        dative = start > 0 and words[start - 1].lower() in _GERMAN_DATIVE_PREPOSITIONS
        return [*words[:start], "Kindern" if kind == "child" and dative else plural_noun]
    gender = _GERMAN_GENDER.get(words[first])
    case = _GERMAN_CASES.get(gender, {}).get(lowered)
    if case is None or number == 2:
        return None
    definite = not lowered.startswith(("ein", "kein"))
    return [*base, *_GERMAN_NEUTRAL[kind, case, definite].split()]


_GERMAN_POSSESSIVES = {"sein": "ihr", "seine": "ihre", "seinem": "ihrem", "seinen": "ihren", "seiner": "ihrer",
                       "seines": "ihres"}


def neutral_possessives(words: Sequence[str], subject_end: int, lang: str) -> list[str]:
    """A German caption written after a neutral subject (`neutral_subject`, its last word at
    `subject_end - 1`) with the possessives after it agreeing with that subject: "Person",
    "Personen" and "Kinder" own with "ihr-" ("Eine Person fährt mit seinem Fahrrad" -> "ihrem";
    the decoder learnt "seinem" after "Ein Mann"); "Kind" keeps "sein-". Other languages (a
    French possessive agrees with the thing owned) and other subjects: `words` unchanged.

    Args:
        words: the caption's tokens; subject_end: the length of its neutral beginning.
        lang: the caption's language.
    """
    if language_code(lang) != GERMAN or subject_end < 1 or words[subject_end - 1] not in (
            "Person", "Personen", "Kinder", "Kindern"):
        return list(words)
    return [*words[:subject_end], *(_GERMAN_POSSESSIVES.get(word, word) for word in words[subject_end:])]
