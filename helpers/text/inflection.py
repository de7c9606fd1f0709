"""Agreement repaired from the training captions: a word whose other form follows the same words
far more often in the training text takes that form.

    repair = InflectionRepair(vocabulary, {4: (keys, counts), 2: (keys, counts)}, stopwords("fra"))
    repair.repaired(ids("un groupe de personnes sont assis sur un trottoir"))
        -> ids("un groupe de personnes sont assises sur un trottoir")

A concept decoder learns agreement only as far as its LSTM carries it: the French decoder writes
"Un groupe de personnes sont assis" (the participle must agree with "personnes", feminine plural:
"assises") because "sont assis" is twice as frequent in its training text as "sont assises", while
that text has "personnes sont assises" in 80 captions and "personnes sont assis" in 6 (after "de
personnes sont": "assises" 17 times, "assis" twice). Every candidate of its beam holds "assis", so
re-ranking them cannot help; the text itself can.

The rule, left to right over a caption's words w_1 .. w_n: w_i is replaced by another form w' of
the same word when

- w' and w_i are forms of one word (`agreement_variants`: the same Snowball stem, `nltk.stem.
  snowball`, and only an agreement ending apart: "assis", "assise", "assises"; "gelbe", "gelben");
  neither is a stopword (`fixed_words`: a determiner agrees with the noun *after* it, German
  "in einer schwarzen Jacke", where the words before say "einem");
- the training captions hold the n-gram `(w_{i-n+1} .. w_{i-1}, w')` at least `REPAIR_MIN_COUNT`
  times and at least `REPAIR_RATIO` times as often as `(w_{i-n+1} .. w_{i-1}, w_i)`, n =
  `REPAIR_ORDER` (in French and German the word that governs agreement, the subject or the noun,
  comes before the participle or adjective that agrees with it);
- and the bigram `(w', w_{i+1})` occurs in them: "a bench in a parking lot" is not "park lot",
  though "bench in a park" is far more frequent.

The most frequent such form wins, and later words see the repaired ones. This is the count-based
evidence of an n-gram language model (Jurafsky and Martin, "Speech and Language Processing",
ch. 3) restricted to the choice between a word's forms, as in corpus-based grammatical error
correction (Bergsma et al. 2009, "Web-scale N-gram models for lexical disambiguation").

Chosen on Multi30K val (never its test), with the decoders of `python -m bench.caption_languages`:
with 4-grams, ratio 4 or 8 and a minimum count of 5 or 10 (all four alike), French changes 10 of
1,014 captions, all "personnes sont assis" -> "assises" (CIDEr 0.452 -> 0.454), German and
English none. With trigrams (ratio 3 or 4) German "und eine Frau" became "und einem Frau" and
French "Un homme et une femme assis" became "assise": a shorter context does not see the subject.
Run on the human training captions themselves (29,000 per language), it changes 33 French ones,
about 17 for the better ("une chemise bleu" -> "bleue", "sont assis" -> "assises", "la rues" ->
"rue"), 6 for the worse ("tout en étant assises" -> "assis") and the rest neither ("mur de
brique" -> "briques"); 27 German ones, about 18 for the better ("einem rotem Hemd" -> "roten",
"zwei Frau" -> "Frauen"), 5 for the worse ("und eine Frau hält" -> "halten"); in English, no
agreement error among its 18 (`REPAIRED_LANGUAGES`).
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

REPAIR_ORDER = 4        # n: the word and the 3 words before it
REPAIR_RATIO = 4.0      # the other form is at least this many times as frequent after them ...
REPAIR_MIN_COUNT = 10   # ... and follows them in at least this many training captions
# The endings by which two forms of a word may differ (after their common beginning) for the
# repair: gender and number of French adjectives and participles ("assis", "assises"; "bleu",
# "bleus"), German declension ("gelbe", "gelben", "gelbem"; "Frau", "Frauen"), English number.
# Verb tenses and participles ("porte", "portant"; "sits", "sitting") are left alone: changing them
# changes the sentence, not its agreement.
AGREEMENT_ENDINGS = {"fra": frozenset({"", "e", "s", "es", "x"}),
                     "deu": frozenset({"", "e", "n", "en", "m", "em", "r", "er", "s", "es"}),
                     "eng": frozenset({"", "s", "es"})}
# The languages whose captions are repaired. Not English: on 20,000 of its human training captions
# the rule changes 18, none an agreement error ("two brown and white cows" -> "cow", "a black dog
# play" -> "plays"): English agrees in number only and its decoder gets that right.
REPAIRED_LANGUAGES = frozenset({"fra", "deu"})
SNOWBALL_LANGUAGES = {"eng": "english", "fra": "french", "deu": "german"}   # NLTK's stemmer of each


def packed_ngrams(tokens: Sequence[int], n: int, vocabulary_size: int) -> np.ndarray:
    """int64 keys of the n-grams of one word-id sequence, one per position (ids packed base
    `vocabulary_size`, first word most significant; empty when it has fewer than n words). The
    caller makes sure `vocabulary_size ** n` fits in int64 (`ngram_keys` checks)."""
    tokens = np.asarray(tokens, np.int64)
    if len(tokens) < n:
        return np.zeros(0, np.int64)
    keys = np.zeros(len(tokens) - n + 1, np.int64)
    for offset in range(n):
        keys = keys * vocabulary_size + tokens[offset:len(tokens) - n + 1 + offset]
    return keys


def ngram_keys(captions: Iterable[Sequence[int]], n: int, vocabulary_size: int) -> np.ndarray:
    """int64 keys of every n-gram inside each caption (`packed_ngrams`), in caption order.

    Raises:
        ValueError: `vocabulary_size ** n` does not fit in int64.
    """
    if vocabulary_size ** n >= 2 ** 63:
        raise ValueError(f"{n}-grams of a {vocabulary_size}-word vocabulary do not fit in int64 keys")
    keys = [packed_ngrams(caption, n, vocabulary_size) for caption in captions]
    return np.concatenate(keys) if keys else np.zeros(0, np.int64)


class InflectionRepair:
    """Repairs a caption's inflections from the n-gram counts of training captions (module docstring).

    Args:
        vocabulary: the decoder's word `helpers.text.vocab.Vocabulary` (a language outside
            `REPAIRED_LANGUAGES` gets no repair).
        ngrams: `{n: (keys, counts)}` for n = `order` and n = 2: int64 `[N]` the distinct n-gram
            keys of the training captions, sorted (`ngram_keys` then `np.unique`), and `[N]` how
            often each occurs.
        fixed_words: words never changed nor written instead of another (lower case): the
            language's stopwords, whose form follows the noun after them (German "einer
            schwarzen Jacke", French "de"/"des") or a referent out of sight ("il"/"ils").

    Raises:
        ValueError: an order is missing, keys and counts differ in length, or keys are not
            distinct and sorted.
    """

    def __init__(self, vocabulary, ngrams: Mapping[int, tuple[np.ndarray, np.ndarray]],
                 fixed_words: Collection[str] = (), order: int = REPAIR_ORDER, ratio: float = REPAIR_RATIO,
                 min_count: int = REPAIR_MIN_COUNT):
        self.vocabulary_size, self.order = len(vocabulary), int(order)
        self.ratio, self.min_count = float(ratio), int(min_count)
        self._ngrams = {}
        for n in (self.order, 2):
            if n not in ngrams:
                raise ValueError(f"the repair needs the {n}-gram counts, got orders {sorted(ngrams)}")
            keys, counts = (np.asarray(array, np.int64) for array in ngrams[n])
            if keys.shape != counts.shape:
                raise ValueError(f"{len(keys)} {n}-gram keys for {len(counts)} counts")
            if len(keys) > 1 and not np.all(keys[1:] > keys[:-1]):
                raise ValueError(f"{n}-gram keys must be distinct and sorted (np.unique)")
            self._ngrams[n] = (keys, counts)
        self.forms = inflected_forms(vocabulary.language, tuple(vocabulary.id_to_word),
                                     frozenset(word.lower() for word in fixed_words)
                                     ) if vocabulary.language in REPAIRED_LANGUAGES else {}

    @classmethod
    def from_captions(cls, vocabulary, captions: Iterable[Sequence[int]], **kwargs) -> "InflectionRepair":
        """The repair learnt from training captions given as word ids (without <start>, <end>)."""
        captions = [list(caption) for caption in captions]
        orders = {kwargs.get("order", REPAIR_ORDER), 2}
        return cls(vocabulary, {n: np.unique(ngram_keys(captions, n, len(vocabulary)), return_counts=True)
                                for n in orders}, **kwargs)

    def count(self, words: Sequence[int]) -> int:
        """How many times the training captions hold the n-gram `words` (n = `order` or 2)."""
        return int(self._lookup(np.asarray([words], np.int64))[0])

    def _lookup(self, ngrams: np.ndarray) -> np.ndarray:
        """int64 `[M]` counts of `[M, n]` n-grams of word ids (n = `order` or 2)."""
        keys = np.zeros(len(ngrams), np.int64)
        for column in range(ngrams.shape[1]):
            keys = keys * self.vocabulary_size + ngrams[:, column]
        known, counts = self._ngrams[ngrams.shape[1]]
        position = np.searchsorted(known, keys)
        inside = position < len(known)
        found = np.zeros(len(keys), bool)
        found[inside] = known[position[inside]] == keys[inside]
        result = np.zeros(len(keys), np.int64)
        result[found] = counts[position[found]]
        return result

    def repaired(self, tokens: Sequence[int]) -> list[int]:
        """The caption's word ids with the rule applied (a new list; `tokens` unchanged)."""
        words = [int(t) for t in tokens]
        for i in range(self.order - 1, len(words)):
            others = self.forms.get(words[i])
            if not others:
                continue
            forms = np.array([words[i], *others], np.int64)
            context = np.tile(np.asarray(words[i - self.order + 1:i], np.int64), (len(forms), 1))
            counts = self._lookup(np.column_stack([context, forms]))              # the evidence
            threshold = max(self.min_count, self.ratio * counts[0])
            fits = counts >= threshold
            if i + 1 < len(words):   # and the other form goes with the next word: "a bench in a
                # parking lot" keeps "parking" ("park lot" never occurs), though "in a park" is far
                # more frequent than "in a parking"
                fits &= self._lookup(np.column_stack([forms, np.full(len(forms), words[i + 1])])) > 0
            fits[0] = False
            if fits.any():
                words[i] = int(forms[np.argmax(np.where(fits, counts, -1))])
        return words


def agreement_variants(language: str, first: str, second: str) -> bool:
    """Whether two words are forms of one word that differ only by an agreement ending of the
    language (`AGREEMENT_ENDINGS`) after their common beginning, with the same initial case:
    "assis" / "assises", "bleu" / "bleue", "noirs" / "noires"; "gelbe" / "gelben", "Stuhl" /
    "Stühlen", "hält" / "halten" (German compares without umlauts); "cow" / "cows". Not "porte" /
    "portant", "parked" / "parking", "Junge" / "junges"."""
    endings = AGREEMENT_ENDINGS.get(language)
    if endings is None or first == second or first[:1].isupper() != second[:1].isupper():
        return False
    first, second = first.lower(), second.lower()
    if language == "deu":
        first, second = (word.translate(_UMLAUTS) for word in (first, second))
    common = len(os.path.commonprefix([first, second]))
    return common > 0 and first[common:] in endings and second[common:] in endings


_UMLAUTS = str.maketrans("äöü", "aou")


@functools.lru_cache(maxsize=8)
def inflected_forms(language: str, words: tuple[str, ...], fixed: frozenset[str] = frozenset()
                    ) -> dict[int, tuple[int, ...]]:
    """`{word id: ids of its other forms}`: the words of a vocabulary with its Snowball stem that
    are `agreement_variants` of it, for its alphabetic words but those in `fixed` (lower case;
    special tokens, punctuation and numbers have none); empty for a language without
    `AGREEMENT_ENDINGS`. Cached per language, word list and fixed words."""
    if language not in AGREEMENT_ENDINGS:
        return {}
    from nltk.stem.snowball import SnowballStemmer

    stem = SnowballStemmer(SNOWBALL_LANGUAGES[language]).stem
    groups = collections.defaultdict(list)
    for word_id, word in enumerate(words):
        if not word.startswith("<") and word.isalpha() and word.lower() not in fixed:
            groups[stem(word.lower())].append(word_id)
    forms = {}
    for group in groups.values():
        for word_id in group:
            others = tuple(other for other in group if agreement_variants(language, words[word_id], words[other]))
            if others:
                forms[word_id] = others
    return forms


def lemma_ids(language: str, words: tuple[str, ...]) -> np.ndarray:
    """int32 `[V]`: for each word id, the smallest id of the words it is linked to by
    `inflected_forms` (directly or through others): "assis", "assise" and "assises" share one, a
    word with no other form keeps its own. Read-only."""
    ids = np.arange(len(words), dtype=np.int32)
    forms = inflected_forms(language, words)
    for word_id in sorted(forms):           # union-find by smallest id
        root = min(_root(ids, word_id), *(_root(ids, other) for other in forms[word_id]))
        for member in (word_id, *forms[word_id]):
            ids[_root(ids, member)] = root
    for word_id in range(len(ids)):
        ids[word_id] = _root(ids, word_id)
    ids.flags.writeable = False
    return ids


def _root(ids: np.ndarray, word_id: int) -> int:
    while ids[word_id] != word_id:
        word_id = int(ids[word_id])
    return word_id
