"""Which English word each word of another language translates, from parallel captions alone.

    aligned_words(pairs, "deu") -> {"Person": ("person", 0.84), "Waffe": ("weapon", 0.71), ...}

Each word w of the other language is aligned with the English word e that most often shares a
caption pair with it, measured by the Dice coefficient of their caption pairs,

    Dice(w, e) = 2 n(w, e) / (n(w) + n(e)),

n counting the caption pairs that hold the word(s). This is the heuristic word alignment of Och and
Ney 2003 ("A systematic comparison of various statistical alignment models", Computational
Linguistics 29(1), section 4.1); on Multi30K's 29,000 German and French descriptions it gives
"Person" - "person" (0.84), "Frauen" - "women", "Waffe" - "weapon", "Behälter" - "container",
"Strand" - "beach" (not "formation"). A concept decoder's `ConceptLexicon` reads it: which words
name a person, and what to call a container. No translation system: only the decoder's own
training pairs.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from helpers.text.languages import tokenize
from helpers.text.vocab import tokenize as english_tokens

ALIGNMENT_MIN_PAIRS = 5        # caption pairs a word and its English word share at least
ALIGNMENT_MIN_DICE = 0.4       # and their Dice coefficient: "Behälter" - "container" 0.47, "Blume" - "flower" 0.44


def aligned_words(pairs: Iterable[tuple[list[str], list[str]]], language: str,
                  min_pairs: int = ALIGNMENT_MIN_PAIRS, min_dice: float = ALIGNMENT_MIN_DICE
                  ) -> dict[str, tuple[str, float]]:
    """The English word each word of `language` is aligned with (module docstring).

    Args:
        pairs: per image, `(English captions, captions in language)`; each image is one pair
            (its words are the union over its captions).
        language: the other captions' language code (`helpers.text.languages.tokenize`).
        min_pairs, min_dice: a word with no English word sharing at least `min_pairs` images
            with it at a Dice of at least `min_dice` is not aligned.

    Returns:
        `{word: (English word, Dice)}`, words as `tokenize(text, language)` writes them.
    """
    english_count: collections.Counter = collections.Counter()
    word_count: collections.Counter = collections.Counter()
    together: collections.Counter = collections.Counter()
    for english, captions in pairs:
        english_words = {token for caption in english for token in english_tokens(caption)}
        words = {token for caption in captions for token in tokenize(caption, language)}
        english_count.update(english_words)
        word_count.update(words)
        together.update((word, e) for word in words for e in english_words)
    best: dict[str, tuple[str, float]] = {}
    for (word, english), shared in together.items():
        if shared < min_pairs:
            continue
        dice = 2 * shared / (word_count[word] + english_count[english])
        if dice >= min_dice and dice > best.get(word, ("", 0.0))[1]:
            best[word] = (english, round(dice, 4))
    return best
