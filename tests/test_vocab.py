"""helpers.text.vocab: NLTK-equivalent tokenisation and the word Vocabulary, on real captions."""

from __future__ import annotations

import collections
import json

import nltk
import numpy as np
import pytest

from helpers.text import vocab
from helpers.text.vocab import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary, tokenize


def nltk_tokens(caption: str) -> list[str]:
    """The reference `tokenize` must reproduce."""
    return [t for t in nltk.word_tokenize(caption.lower()) if any(c.isalnum() for c in t)]


def coco_4800_captions(shared_data) -> list[str]:
    path = shared_data / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json"
    return [a["caption"] for a in json.loads(path.read_text(encoding="utf-8"))["annotations"]]


def flickr8k_captions(shared_data) -> list[str]:
    path = shared_data / "flickr8k-text" / "Flickr8k.token.txt"
    return [line.split("\t", 1)[1] for line in path.read_text(encoding="utf-8").splitlines()]


TRICKY = [
    "A man's T-shirt, isn't it?",
    "Two dogs' bowls (red and blue) on the floor!",
    "'Hello' said the sign: \"Welcome to St. Louis.\"",
    "A man. He is riding a bike... on 5th Ave. near the U.S. flag.",
    "You cannot park here, gonna get a ticket; wanna bet? Lemme see -- gotta go",
    "rock'n'roll band; 'tis the season, 'twas night; d'ye see more'n that",
    "3,000 people at 10:30 pay $5 for 50% off & e-mail a/b <b> [x] {y} #1 @home *star*",
    "“Quoted” words ‘single’ it’s « français » — en–dash",
    'A small child plays with the letter " P. "',
    "A clock reads 12:45.",
    "Mr. Smith's dog, Dr. Who's TARDIS and Mt. Fuji.",
    "trailing period after quote.\"  ",
    "",
    "...",
    "   a   b\tc\n d  ",
    "the ceiling fan 's blades and teh t.v.",
]


@pytest.mark.parametrize("caption", TRICKY)
def test_tokenize_matches_nltk_on_tricky_text(caption):
    assert tokenize(caption) == nltk_tokens(caption)


def test_tokenize_examples():
    assert tokenize("A man's T-shirt, isn't it?") == ["a", "man", "'s", "t-shirt", "is", "n't", "it"]
    assert tokenize("3,000 dogs.") == ["3,000", "dogs"]
    assert tokenize("Near St. Louis. A dog.") == ["near", "st.", "louis", "a", "dog"]


@pytest.fixture(scope="module")
def coco_4800(shared_data):
    """The 24,019 captions of the COCO val2014 4800-image set and their NLTK tokens (~8 s)."""
    captions = coco_4800_captions(shared_data)
    return captions, [nltk_tokens(c) for c in captions]


def test_tokenize_matches_nltk_on_every_coco_caption(coco_4800):
    captions, reference = coco_4800
    assert len(captions) == 24_019
    mismatches = [(c, t) for c, t in zip(captions, reference) if tokenize(c) != t]
    assert mismatches == []


def test_tokenize_matches_nltk_on_flickr8k(shared_data):
    captions = flickr8k_captions(shared_data)
    assert len(captions) == 40_460
    # NLTK is ~25x slower: compare on every caption needing a rule beyond "split on spaces,
    # drop commas and the final period" (about 2,000) plus every 10th of the others.
    simple = [all(ch.isalnum() or ch in " ,." for ch in c) for c in captions]
    checked = [c for c, plain in zip(captions, simple) if not plain] + [
        c for c, plain in zip(captions, simple) if plain][::10]
    assert len(checked) > 5_000
    mismatches = [c for c in checked if tokenize(c) != nltk_tokens(c)]
    assert mismatches == []


def test_vocabulary_size_matches_independent_nltk_count(coco_4800):
    captions, reference_tokens = coco_4800
    reference = collections.Counter(t for tokens in reference_tokens for t in tokens)
    assert vocab.count_words(captions) == reference
    expected = sorted((w for w, n in reference.items() if n >= 5), key=lambda w: (-reference[w], w))
    vocabulary = Vocabulary.build(captions, min_count=5)
    assert vocabulary.id_to_word == ["<pad>", "<start>", "<end>", "<unk>", *expected]
    assert len(vocabulary) == len(expected) + 4
    print(f"COCO val2014 4800 images: {len(vocabulary)} ids at min_count=5")
    # real-data sanity: the commonest words, about 2.3k ids, ~97% of the tokens covered
    assert vocabulary.id_to_word[4:7] == ["a", "on", "of"]
    assert 2_000 < len(vocabulary) < 3_000
    assert 0.95 < vocabulary.coverage(captions) < 0.99


def test_encode_decode_roundtrip_and_truncation():
    captions = ["A dog runs on the grass.", "A dog sleeps.", "The dog runs."] * 5
    vocabulary = Vocabulary.build(captions, min_count=5)
    ids = vocabulary.encode("A dog runs on the moon.")
    assert ids[0] == START_ID and ids[-1] == END_ID
    assert ids[-2] == UNK_ID  # "moon" is unknown
    assert vocabulary.decode(ids) == "a dog runs on the <unk>"
    short = vocabulary.encode("A dog runs on the grass.", max_length=4)
    assert short == [START_ID, vocabulary.word_to_id["a"], vocabulary.word_to_id["dog"], END_ID]
    # decode stops at END, skips PAD and START, accepts numpy arrays
    assert vocabulary.decode(np.array([START_ID, 4, END_ID, 5, PAD_ID])) == vocabulary.id_to_word[4]
    assert vocabulary.decode([PAD_ID, START_ID, 5, PAD_ID, 6]) == " ".join(vocabulary.id_to_word[5:7])
    with pytest.raises(IndexError):
        vocabulary.decode([START_ID, len(vocabulary) + 3])
    with pytest.raises(ValueError, match="max_length"):
        vocabulary.encode("a dog", max_length=1)


def test_encode_batch_pads_with_int32():
    vocabulary = Vocabulary.build(["a dog runs"] * 5 + ["a cat"] * 5, min_count=5)
    batch = vocabulary.encode_batch(["a dog runs", "a cat", ""])
    assert batch.dtype == np.int32 and batch.shape == (3, 5)
    assert batch[1].tolist() == [START_ID, vocabulary.word_to_id["a"], vocabulary.word_to_id["cat"],
                                 END_ID, PAD_ID]
    assert batch[2].tolist() == [START_ID, END_ID, PAD_ID, PAD_ID, PAD_ID]
    fixed = vocabulary.encode_batch(["a dog runs"], max_length=3)
    assert fixed.tolist() == [[START_ID, vocabulary.word_to_id["a"], END_ID]]
    assert vocabulary.encode_batch([], max_length=4).shape == (0, 4)


def test_coverage_and_threshold():
    captions = ["red circle"] * 5 + ["green square"] * 2
    vocabulary = Vocabulary.build(captions, min_count=5)
    assert len(vocabulary) == 4 + 2
    assert vocabulary.coverage(captions) == pytest.approx(10 / 14)
    assert "green" not in vocabulary and "red" in vocabulary
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(captions, min_count=0)


def test_save_load_json(tmp_path):
    vocabulary = Vocabulary.build(["Un café près du cœur."] * 6 + ["a dog"] * 7, min_count=5)
    path = vocabulary.save(tmp_path / "sub" / "vocabulary.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format_version"] == vocab.FORMAT_VERSION
    assert "cœur" in data["words"]
    loaded = Vocabulary.load(path)
    assert loaded == vocabulary and loaded.word_to_id == vocabulary.word_to_id
    assert loaded.counts == vocabulary.counts and loaded.min_count == 5
    data["format_version"] = vocab.FORMAT_VERSION + 1
    (tmp_path / "future.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="version"):
        Vocabulary.load(tmp_path / "future.json")
    (tmp_path / "other.json").write_text("{\"words\": []}", encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved Vocabulary"):
        Vocabulary.load(tmp_path / "other.json")


# A vocabulary.json exactly as `Vocabulary.save` has written it since format version 1.
SAVED_V1 = ('{"format": "helpers.vocab.Vocabulary", "format_version": 1, "min_count": 5, "special_tokens": '
            '["<pad>", "<start>", "<end>", "<unk>"], "words": ["a", "dog", "café", "cœur"], "counts": [12, 7, 6, 6]}\n')


def test_file_saved_by_earlier_code_loads_and_saves_the_same(tmp_path):
    path = tmp_path / "vocabulary.json"
    path.write_text(SAVED_V1, encoding="utf-8")
    loaded = Vocabulary.load(path)
    assert loaded.id_to_word == ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "café", "cœur"]
    assert loaded.word_to_id["café"] == 6 and loaded.counts["a"] == 12 and loaded.min_count == 5
    assert loaded == Vocabulary.from_dict(json.loads(SAVED_V1)) and loaded.to_dict() == json.loads(SAVED_V1)
    assert loaded.save(tmp_path / "again.json").read_text(encoding="utf-8") == SAVED_V1
    (tmp_path / "other.json").write_text(SAVED_V1.replace('"<unk>"', '"<oov>"'), encoding="utf-8")
    with pytest.raises(ValueError, match="special tokens"):
        Vocabulary.load(tmp_path / "other.json")
    (tmp_path / "truncated.json").write_text(SAVED_V1[:60], encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON.*Vocabulary.save"):
        Vocabulary.load(tmp_path / "truncated.json")

def test_constructor_rejects_bad_words():
    with pytest.raises(ValueError, match="repeated"):
        Vocabulary(["dog", "dog"])
    with pytest.raises(ValueError, match="reserved"):
        Vocabulary(["<unk>"])


def test_threshold_curve():
    train = vocab.count_words(["red circle"] * 5 + ["green square"] * 2 + ["blue star"])
    held_out = vocab.count_words(["red square", "blue moon"])
    curve = vocab.threshold_curve(train, thresholds=(1, 2, 5), eval_counts=held_out)
    assert curve["threshold"] == [1, 2, 5]
    assert curve["size"] == [4 + 6, 4 + 4, 4 + 2]
    assert len(Vocabulary.from_counts(train, min_count=2)) == curve["size"][1]
    assert curve["coverage"] == pytest.approx([3 / 4, 2 / 4, 1 / 4])
    assert vocab.threshold_curve(train, thresholds=(1,))["coverage"] == [1.0]


# --- languages ------------------------------------------------------------------------------------

def test_french_vocabulary_encodes_elision_and_decodes_text(tmp_path):
    captions = ["L'homme est sur l’échelle.", "Un homme près de l'eau, aujourd'hui."] * 5
    vocabulary = Vocabulary.build(captions, min_count=5, language="fr")
    assert vocabulary.language == "fra" and repr(vocabulary).endswith("language='fra')")
    assert vocabulary.id_to_word[4:7] == ["l'", "homme", "aujourd'hui"]
    ids = vocabulary.encode("L'homme près de l'océan.")
    assert vocabulary.decode_tokens(ids) == ["l'", "homme", "près", "de", "l'", "<unk>"]
    assert vocabulary.decode(vocabulary.encode("l'homme près de l'eau")) == "L'homme près de l'eau"
    assert vocabulary.coverage(["l'homme près de l'océan"]) == pytest.approx(5 / 6)
    path = vocabulary.save(tmp_path / "vocabulary.json")
    assert json.loads(path.read_text(encoding="utf-8"))["language"] == "fra"
    loaded = Vocabulary.load(path)
    assert loaded == vocabulary and loaded.language == "fra"
    english = Vocabulary(vocabulary.id_to_word[4:], counts=vocabulary.counts, min_count=5)
    assert english.id_to_word == vocabulary.id_to_word and english != vocabulary   # language differs


def test_german_vocabulary_keeps_noun_case():
    vocabulary = Vocabulary.build(["Ein Mann isst Essen.", "Zwei Kinder essen ein Eis."] * 5, min_count=5,
                                  language="deu")
    assert {"ein", "Mann", "Essen", "essen", "zwei"} <= set(vocabulary.word_to_id) and "Ein" not in vocabulary
    assert vocabulary.decode(vocabulary.encode("ein Mann isst Essen")) == "Ein Mann isst Essen"


def test_english_vocabulary_is_unchanged_by_language(tmp_path):
    captions = ["A man's dog isn't here."] * 5
    default, explicit = Vocabulary.build(captions), Vocabulary.build(captions, language="en")
    assert default == explicit and default.language == explicit.language == "eng"
    assert default.decode(default.encode(captions[0])) == "a man 's dog is n't here"   # words and spaces
    assert "language" not in json.loads(default.save(tmp_path / "v.json").read_text(encoding="utf-8"))
    assert Vocabulary.load(tmp_path / "v.json").language == "eng"
    assert Vocabulary.from_dict(json.loads(SAVED_V1)).language == "eng"   # files without it are English
    with pytest.raises(ValueError, match="not supported"):
        Vocabulary.build(captions, language="klingon")
    saved = json.loads(SAVED_V1) | {"language": "xx"}
    with pytest.raises(ValueError, match="'xx' is not supported"):
        Vocabulary.from_dict(saved)
