"""helpers.text.alignment: the English word each French or German word of Multi30K's parallel
training descriptions is aligned with (Dice), on the real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.text.alignment import ALIGNMENT_MIN_DICE, aligned_words

MULTI30K = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "multi30k-task1"


@pytest.mark.skipif(not (MULTI30K / "train.de.gz").is_file(), reason="needs ../shared Multi30K")
@pytest.mark.parametrize("language", ["fra", "deu"])
def test_words_are_aligned_with_the_english_word_they_translate(language):
    from helpers.data.multi30k import load_multi30k

    records = load_multi30k(MULTI30K, "train", ("eng", language))
    aligned = aligned_words((([r.sentences["eng"]], [r.sentences[language]]) for r in records), language)
    expected = {"fra": {"personne": "person", "femmes": "women", "homme": "man", "chien": "dog", "plage": "beach",
                        "arme": "weapon", "bol": "bowl", "bouteille": "bottle", "eau": "water"},
                "deu": {"Person": "person", "Frauen": "women", "Mann": "man", "Hund": "dog", "Strand": "beach",
                        "Waffe": "weapon", "Behälter": "container", "Schüssel": "bowl", "Flasche": "bottle"}}[language]
    assert {word: aligned.get(word, (None,))[0] for word in expected} == expected
    assert all(dice >= ALIGNMENT_MIN_DICE for _, dice in aligned.values())
    # function words are aligned with function words, if at all; a rare word with nothing
    function_words = {"fra": ("un", "sur"), "deu": ("ein", "auf")}[language]
    assert all(aligned.get(word, ("a",))[0] in {"a", "an", "on", "the", "in"} for word in function_words)
    assert len(aligned) > 1000
