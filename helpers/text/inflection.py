"""Inflection agreement from the training captions: a word whose other form follows the same words
far more often in the training text takes that form.

    repair = InflectionRepair(vocabulary, ngram_keys, ngram_counts)
    repair.repaired(ids("un groupe de personnes sont assis sur un trottoir"))
        -> ids("un groupe de personnes sont assises sur un trottoir")

A concept decoder learns agreement only as far as its LSTM carries it: the French decoder writes
"Un groupe de personnes sont assis" (the participle must agree with "personnes", feminine plural:
"assises") because "sont assis" is twice as frequent in its training text as "sont assises", while
that text has "personnes sont assises" in 80 captions and "personnes sont assis" in 6 (after "de
personnes sont": "assises" 17 times, "assis" twice). Every
candidate of its beam holds "assis", so re-ranking them cannot help; the text itself can.

The rule, left to right over a caption's words w_1 .. w_n: w_i is replaced by another form w' of
the same word (same Snowball stem, `nltk.stem.snowball`; "assis", "assise", "assises") when the
training captions hold the n-gram `(w_{i-n+1} .. w_{i-1}, w')` at least `REPAIR_MIN_COUNT` times
and at least `REPAIR_RATIO` times as often as `(w_{i-n+1} .. w_{i-1}, w_i)`, with n =
`REPAIR_ORDER`; the most frequent such form wins, and later words see the repaired ones. Only the
left context counts: in French and German the word that governs agreement (the subject, the noun)
comes before the participle or adjective that agrees with it. This is the count-based evidence of
an n-gram language model (Jurafsky and Martin, "Speech and Language Processing", ch. 3) restricted
to the choice between a word's inflected forms, as in corpus-based grammatical error correction
(Bergsma et al. 2009, "Web-scale N-gram models for lexical disambiguation").

Chosen on Multi30K val (never its test), with the decoders of `python -m bench.caption_languages`:
with 4-grams, ratio 4 or 8 and a minimum count of 5 or 10 (all four alike), French changes 10 of
1,014 captions, all "personnes sont assis" -> "assises" (CIDEr 0.452 -> 0.454), German and English
none. With trigrams
(ratio 3 or 4) German "und eine Frau" became "und einem Frau" and French "Un homme et une femme
assis" became "assise": a shorter context does not see the subject.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterable, Sequence

import numpy as np

REPAIR_ORDER = 4        # n: the word and the 3 words before it
REPAIR_RATIO = 4.0      # the other form is at least this many times as frequent after them ...
REPAIR_MIN_COUNT = 10   # ... and follows them in at least this many training captions
SNOWBALL_LANGUAGES = {"eng": "english", "fra": "french", "deu": "german", "spa": "spanish", "ita": "italian",
                      "por": "portuguese", "nld": "dutch", "swe": "swedish", "dan": "danish", "nob": "norwegian",
                      "fin": "finnish", "ron": "romanian", "hun": "hungarian", "rus": "russian"}


def ngram_keys(captions: Iterable[Sequence[int]], n: int, vocabulary_size: int) -> np.ndarray:
    """int64 keys of every n-gram inside each caption (word ids packed base `vocabulary_size`,
    first word most significant), in caption order.

    Raises:
        ValueError: `vocabulary_size ** n` does not fit in int64.
    """
    if vocabulary_size ** n >= 2 ** 63:
        raise ValueError(f"{n}-grams of a {vocabulary_size}-word vocabulary do not fit in int64 keys")
    keys = []
    for caption in captions:
        tokens = np.asarray(caption, np.int64)
        if len(tokens) < n:
            continue
        packed = np.zeros(len(tokens) - n + 1, np.int64)
        for offset in range(n):
            packed = packed * vocabulary_size + tokens[offset:len(tokens) - n + 1 + offset]
        keys.append(packed)
    return np.concatenate(keys) if keys else np.zeros(0, np.int64)


class InflectionRepair:
    """Repairs a caption's inflections from the n-gram counts of training captions (module docstring).

    Args:
        vocabulary: the decoder's word `helpers.text.vocab.Vocabulary` (its `language` picks the
            Snowball stemmer; a language without one gets no repair).
        keys: int64 `[N]` distinct `REPAIR_ORDER`-gram keys of the training captions, sorted
            (`ngram_keys` then `np.unique`); counts: `[N]` how often each occurs.

    Raises:
        ValueError: `keys` and `counts` differ in length, or `keys` are not distinct and sorted.
    """

    def __init__(self, vocabulary, keys: np.ndarray, counts: np.ndarray, order: int = REPAIR_ORDER,
                 ratio: float = REPAIR_RATIO, min_count: int = REPAIR_MIN_COUNT):
        keys, counts = np.asarray(keys, np.int64), np.asarray(counts, np.int64)
        if keys.shape != counts.shape:
            raise ValueError(f"{len(keys)} n-gram keys for {len(counts)} counts")
        self.vocabulary_size, self.order = len(vocabulary), int(order)
        self.ratio, self.min_count = float(ratio), int(min_count)
        if len(keys) > 1 and not np.all(keys[1:] > keys[:-1]):
            raise ValueError("n-gram keys must be distinct and sorted (np.unique)")
        self.forms = inflected_forms(vocabulary.language, tuple(vocabulary.id_to_word))
        # only the n-grams that end with a word that has other forms are ever looked up
        kept = np.isin(keys % self.vocabulary_size, np.fromiter(self.forms, np.int64, len(self.forms)))
        self._counts = dict(zip(keys[kept].tolist(), counts[kept].tolist()))

    @classmethod
    def from_captions(cls, vocabulary, captions: Iterable[Sequence[int]], **kwargs) -> "InflectionRepair":
        """The repair learnt from training captions given as word ids (without <start>, <end>)."""
        order = kwargs.get("order", REPAIR_ORDER)
        keys, counts = np.unique(ngram_keys(captions, order, len(vocabulary)), return_counts=True)
        return cls(vocabulary, keys, counts, **kwargs)

    def count(self, words: Sequence[int]) -> int:
        """How many times the training captions hold the n-gram `words` (n = `order`), whose last
        word has other forms (0 for any other n-gram: they are not kept)."""
        key = 0
        for word in words:
            key = key * self.vocabulary_size + int(word)
        return self._counts.get(key, 0)

    def repaired(self, tokens: Sequence[int]) -> list[int]:
        """The caption's word ids with the rule applied (a new list; `tokens` unchanged)."""
        words = [int(t) for t in tokens]
        for i in range(self.order - 1, len(words)):
            others = self.forms.get(words[i])
            if not others:
                continue
            context = words[i - self.order + 1:i]
            current = self.count([*context, words[i]])
            best, best_count = max(((other, self.count([*context, other])) for other in others),
                                   key=lambda pair: pair[1])
            if best_count >= self.min_count and best_count >= self.ratio * current:
                words[i] = best
        return words


@functools.lru_cache(maxsize=8)
def inflected_forms(language: str, words: tuple[str, ...]) -> dict[int, tuple[int, ...]]:
    """`{word id: ids of the other words with its Snowball stem}` for the alphabetic words of a
    vocabulary (special tokens, punctuation and numbers have none); empty for a language NLTK's
    Snowball stemmer does not cover (`SNOWBALL_LANGUAGES`). Cached per language and word list."""
    if language not in SNOWBALL_LANGUAGES:
        return {}
    from nltk.stem.snowball import SnowballStemmer

    stem = SnowballStemmer(SNOWBALL_LANGUAGES[language]).stem
    groups = collections.defaultdict(list)
    for word_id, word in enumerate(words):
        if not word.startswith("<") and word.isalpha():
            groups[stem(word.lower())].append(word_id)
    return {word_id: tuple(other for other in group if other != word_id)
            for group in groups.values() if len(group) > 1 for word_id in group}


def lemma_ids(language: str, words: tuple[str, ...]) -> np.ndarray:
    """int32 `[V]`: for each word id, the smallest id of the words with its Snowball stem
    (`inflected_forms`): "assis", "assise" and "assises" share one, a word with no other form
    keeps its own. Read-only."""
    ids = np.arange(len(words), dtype=np.int32)
    for word_id, others in inflected_forms(language, words).items():
        ids[word_id] = min(word_id, *others)
    ids.flags.writeable = False
    return ids

