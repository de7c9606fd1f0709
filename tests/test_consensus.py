"""Consensus re-ranking (`helpers.predict.concept_captions.ConsensusIndex`): neighbours by concept
overlap, the n-gram similarity of a candidate to their captions, and the index on disk, on real
COCO captions and their concepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.predict.concept_captions import ConsensusIndex
from helpers.text.vocab import UNK_ID

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
COCO_4800 = SHARED / "data" / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json"


@pytest.fixture(scope="module")
def coco():
    """300 COCO val2014 images: their captions, concepts, vocabularies and consensus index."""
    if not COCO_4800.is_file():
        pytest.skip("needs ../shared COCO captions")
    from helpers.data.caption_text import load_caption_text
    from helpers.text.vocab import Vocabulary
    from helpers.wordnet.concepts import ConceptVocabulary, image_concepts
    from helpers.wordnet.synsets import SynsetMapper

    records = load_caption_text([COCO_4800])[:300]
    mapper = SynsetMapper()
    concept_sets = [image_concepts(r.captions, mapper) for r in records]
    vocabulary = Vocabulary.build((c for r in records for c in r.captions), min_count=2)
    concepts = ConceptVocabulary.from_concept_sets(concept_sets, min_images=2)
    index = ConsensusIndex.from_training(concept_sets, [r.captions for r in records], concepts, vocabulary)
    return records, concept_sets, vocabulary, index


def test_an_images_own_concepts_find_images_with_the_same_concepts_first(coco):
    records, _, _, index = coco
    for image in (0, 17, 123, 250):
        query = index.concept_sets[image]
        assert query, "these images name at least one concept"
        nearest = index.nearest_images(query)
        assert len(nearest) == index.neighbours and image in nearest
        ids = {i for i, _ in query}
        first = {i for i, _ in index.concept_sets[nearest[0]]}
        assert first == ids                      # Jaccard 1 first (the image itself or a twin)


def test_counts_break_ties_between_images_with_the_same_concepts(coco):
    _, _, _, index = coco
    counted = next(i for i, pairs in enumerate(index.concept_sets) if any(n >= 2 for _, n in pairs))
    query = index.concept_sets[counted]
    as_one = [(i, 1) for i, _ in query]          # the same concepts, every count 1
    def agreeing(image, pairs):
        return len({(i, min(n, 3)) for i, n in pairs} & {(i, min(n, 3)) for i, n in index.concept_sets[image]})
    for wanted, nearest in ((query, index.nearest_images(query)), (as_one, index.nearest_images(as_one))):
        same_ids = [image for image in nearest
                    if {i for i, _ in index.concept_sets[image]} == {i for i, _ in wanted}]
        agreement = [agreeing(image, wanted) for image in same_ids]
        assert agreement == sorted(agreement, reverse=True)     # among equal Jaccard, counts agree first


def test_two_dogs_prefer_the_images_of_two_dogs():
    # images: {dog x1, frisbee}, {dog x2, frisbee}, {dog}; ids 2 = dog, 3 = frisbee
    sets = [[(2, 1), (3, 1)], [(2, 2), (3, 1)], [(2, 1)]]
    index = ConsensusIndex(sets, [[[5]], [[6]], [[7]]], vocabulary_size=20, neighbours=3)
    assert index.nearest_images([(2, 2), (3, 1)]).tolist() == [1, 0, 2]
    assert index.nearest_images([(2, 1), (3, 1)]).tolist() == [0, 1, 2]
    assert index.nearest_images([(2, 5)]).tolist() == [2, 0, 1]     # Jaccard first: {dog} alone is nearest


def test_an_images_captions_outscore_those_of_an_image_with_other_concepts(coco):
    records, _, vocabulary, index = coco
    own, other = [], []
    for image in range(0, 300, 10):
        query = index.concept_sets[image]
        ids, nearest = {i for i, _ in query}, set(index.nearest_images(query).tolist())
        far = next(j % 300 for j in range(image + 150, image + 450)          # shares no concept with it
                   if j % 300 not in nearest and not ids & {i for i, _ in index.concept_sets[j % 300]})
        for captions, scores in ((records[image].captions, own), (records[far].captions, other)):
            each = index.scores(query, [vocabulary.encode(c)[1:-1] for c in captions])
            assert np.all((each >= 0) & (each <= 1))
            scores.append(each.mean())
    own, other = np.array(own), np.array(other)
    assert np.mean(own > other) >= 0.9 and own.mean() > 1.4 * other.mean()     # measured: 30/30, 0.074 vs 0.044


def test_similarity_is_the_mean_ngram_f_measure_and_unk_matches_nothing():
    # one training image with one caption "5 6 7 8"; the query finds it
    index = ConsensusIndex([[(2, 1)]], [[[5, 6, 7, 8]]], vocabulary_size=20, neighbours=1)
    np.testing.assert_allclose(index.scores([(2, 1)], [[5, 6, 7, 8]]), [1.0])
    np.testing.assert_allclose(index.scores([(2, 1)], [[9, 10, 11]]), [0.0])
    # "5 6": unigrams 2*2/(2+4), bigrams 2*1/(1+3), no trigram or 4-gram
    np.testing.assert_allclose(index.scores([(2, 1)], [[5, 6]]), [(4 / 6 + 2 / 4) / 4])
    unknown = ConsensusIndex([[(2, 1)]], [[[5, UNK_ID, 7]]], vocabulary_size=20, neighbours=1)
    # the reference's <unk> is not the candidate's: unigrams 2*2/(3+3), nothing longer matches
    np.testing.assert_allclose(unknown.scores([(2, 1)], [[5, UNK_ID, 7]]), [(4 / 6) / 4])


def test_the_index_round_trips_through_its_file_reads_the_json_of_earlier_versions_and_rejects_others(
        coco, tmp_path):
    from helpers.data.versioned_json import write_versioned_json

    records, _, vocabulary, index = coco
    path = index.save(tmp_path / "consensus.npz")
    # version 2 wrote JSON: the same index, read by the same `load`
    legacy = write_versioned_json(tmp_path / "consensus.json", ConsensusIndex.FORMAT_NAME, 2, {
        "vocabulary_size": index.vocabulary_size, "neighbours": index.neighbours,
        "concept_sets": index.concept_sets, "captions": index.captions, "aligned": {}})
    candidates = [vocabulary.encode(c)[1:-1] for c in records[5].captions]
    for again in (ConsensusIndex.load(path), ConsensusIndex.load(legacy)):
        assert again.captions == index.captions and again.concept_sets == index.concept_sets
        for n in (1, 4):
            np.testing.assert_array_equal(again.ngram_counts(n)[1], index.ngram_counts(n)[1])
        for image in (5, 42):
            np.testing.assert_array_equal(again.nearest_images(index.concept_sets[image]),
                                          index.nearest_images(index.concept_sets[image]))
            np.testing.assert_array_equal(again.scores(index.concept_sets[image], candidates),
                                          index.scores(index.concept_sets[image], candidates))
    vocabulary.save(tmp_path / "vocabulary.json")
    with pytest.raises(ValueError):
        ConsensusIndex.load(tmp_path / "vocabulary.json")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match="retrain the run"):
        ConsensusIndex.load(truncated)
    # an object array (a pickle) is never read: no file we read can run code
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array(ConsensusIndex.FORMAT_NAME), format_version=np.array(3),
             tokens=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="retrain the run"):
        ConsensusIndex.load(pickled)
    with pytest.raises(ValueError, match="concept sets"):
        ConsensusIndex([[(2, 1)]], [], vocabulary_size=20)


def test_repeated_bigrams_are_found_in_real_captions(coco):
    from helpers.predict.concept_captions import repeats_a_bigram

    _, _, vocabulary, _ = coco
    assert repeats_a_bigram(vocabulary.encode("a cat is sitting on top of a cat")[1:-1])
    assert not repeats_a_bigram(vocabulary.encode("a cat sitting on top of a desk")[1:-1])
    assert not repeats_a_bigram(vocabulary.encode("a man watching a woman")[1:-1])   # a word twice, no bigram
    assert not repeats_a_bigram([]) and not repeats_a_bigram([5])


@pytest.mark.parametrize("language, repeated, once", [
    ("eng", "a man in a red shirt and a blue shirt", "a man and a woman sitting on a bench in the park"),
    ("fra", "un homme avec un chapeau et un chapeau", "un homme et une femme sont assis sur l'herbe"),
    ("deu", "ein Mann in einem weißen Hemd und einem blauen Hemd", "ein Mann und eine Frau sitzen auf einer Bank"),
    # one word in two of its forms ("assises", "assis"; "Stühlen", "Stuhl") is named twice too
    ("fra", "des personnes sont assises sur un banc et un homme assis", "un homme est assis sur un banc"),
    ("deu", "ein Mann sitzt auf Stühlen auf einem Stuhl", "ein Mann sitzt auf einem Stuhl"),
])
def test_a_content_word_named_twice_is_found_and_stopwords_are_not(language, repeated, once):
    """Vocabularies of Multi30K's training descriptions: "shirt", "chapeau", "Hemd" twice is a
    repetition, "a", "un", "l'", "einem" twice is not."""
    root = SHARED / "data" / "multi30k-task1"
    if not (root / "train.de.gz").is_file():
        pytest.skip("needs ../shared Multi30K")
    from helpers.data.multi30k import load_multi30k
    from helpers.predict.concept_captions import content_word_ids, repeats_a_word
    from helpers.text.vocab import Vocabulary

    records = load_multi30k(root, "train", (language,))[:3000]
    vocabulary = Vocabulary.build((r.sentences[language] for r in records), min_count=2, language=language)
    content = content_word_ids(vocabulary)
    assert content.shape == (len(vocabulary.id_to_word),) and content.dtype == np.int32
    assert content[vocabulary.word_to_id["<end>"]] == content[UNK_ID] == -1
    assert not content.flags.writeable
    assert repeats_a_word(vocabulary.encode(repeated)[1:-1], content)
    assert not repeats_a_word(vocabulary.encode(once)[1:-1], content)
    assert not repeats_a_word([], content)


# --- what a caption may not invent ------------------------------------------------------------
def test_a_caption_that_names_a_person_nobody_detected_invents_one():
    from helpers.predict.concept_captions import invented_concepts
    from helpers.wordnet.concepts import Concept, unsupported_concepts
    from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS

    mountains = [Concept("geological_formation.n.01", 0.86)]
    assert invented_concepts("a man in a blue shirt is standing on a beach", mountains) == {"person.n.01"}
    assert invented_concepts("a group of people standing in front of a building", mountains) == {"person.n.01"}
    assert invented_concepts("a view of a mountain range", mountains) == frozenset()
    assert invented_concepts("a man riding a horse", [Concept("person.n.01", 0.9), Concept("horse.n.01", 0.6)]) \
        == frozenset()
    # any COCO category counts (CHAIR's objects): a dog for a bowl
    bowl = [Concept("container.n.01", 0.33)]
    assert invented_concepts("a black and white dog is running in the grass", bowl) == {"dog.n.01"}
    assert invented_concepts("a dog running in the grass", [Concept("sporting_dog.n.01", 0.8)]) == frozenset()
    # support runs both ways along the hierarchy, and only the checked synsets are reported
    coco = COCO_CATEGORY_SYNSETS.values()
    assert unsupported_concepts({"cat.n.01"}, {"domestic_cat.n.01"}, coco) == frozenset()
    assert unsupported_concepts({"cat.n.01", "desk.n.01"}, {"dog.n.01"}, coco) == {"cat.n.01"}
    assert unsupported_concepts({"cat.n.01"}, {"dog.n.01"}, {"person.n.01"}) == frozenset()


def test_an_english_caption_that_invents_a_person_gives_way_to_the_template(coco):
    from helpers.predict.concept_captions import caption_texts, template_caption
    from helpers.predict.decoding import Hypothesis
    from helpers.text.vocab import Vocabulary
    from helpers.wordnet.concepts import Concept

    _, _, vocabulary, _ = coco

    def hypothesis(text, log_probability):
        tokens = np.array(vocabulary.encode(text)[1:-1], np.int32)
        return Hypothesis(tokens, log_probability, log_probability, True)

    beam = [hypothesis("a man in a blue shirt is standing on a beach", -6.0),
            hypothesis("a man standing on a hill", -7.0)]
    concepts = [Concept("geological_formation.n.01", 0.86), Concept("drum.n.01", 0.42)]
    [captions] = caption_texts(vocabulary, [concepts], [beam])
    assert captions[0] == ("a geological formation and a drum", pytest.approx(np.log(0.86 * 0.42)))
    assert captions[1][0] == "a man in a blue shirt is standing on a beach" and len(captions) == 2
    # a caption the photo supports is kept, and the template is English only
    people = [Concept("person.n.01", 0.9, 5)]
    assert caption_texts(vocabulary, [people], [beam])[0][0] == ("a man in a blue shirt is standing on a beach", -6.0)
    french = Vocabulary.build(["un homme sur une plage"], min_count=1, language="fra")
    tokens = np.array(french.encode("un homme sur une plage")[1:-1], np.int32)
    [[only]] = caption_texts(french, [concepts], [[Hypothesis(tokens, -3.0, -3.0, True)]])
    assert only == ("Un homme sur une plage", -3.0)
    assert template_caption([Concept("person.n.01", 0.9), Concept("dog.n.01", 0.8, 2),
                             Concept("frisbee.n.01", 0.7), Concept("cat.n.01", 0.6)]) == \
        "a person, two dogs and a frisbee"
    assert template_caption([Concept("dining_table.n.01", 0.5, 3)]) == "three dining tables"
    assert template_caption([]) == "a photo"


def test_an_english_caption_that_names_no_main_subject_gives_way_to_the_template(coco):
    from helpers.predict.concept_captions import caption_texts
    from helpers.predict.decoding import Hypothesis
    from helpers.wordnet.concepts import Concept

    _, _, vocabulary, _ = coco

    def hypothesis(text, log_probability):
        tokens = np.array(vocabulary.encode(text)[1:-1], np.int32)
        return Hypothesis(tokens, log_probability, log_probability, True)

    # examples/album/coffee.jpg's concepts and its caption before the rule: food and a table, no coffee
    coffee = [Concept("espresso.n.01", 0.95), Concept("cup.n.01", 0.89), Concept("dining_table.n.01", 0.74)]
    beam = [hypothesis("a plate of food on a table with a cup", -9.0), hypothesis("a cup on a table", -8.0)]
    [captions] = caption_texts(vocabulary, [coffee], [beam], subjects=[("espresso.n.01",)])
    assert captions[0] == ("an espresso, a cup and a dining table", pytest.approx(np.log(0.95 * 0.89 * 0.74)))
    assert [text for text, _ in captions[1:]] == ["a plate of food on a table with a cup"]
    assert caption_texts(vocabulary, [coffee], [beam])[0][0][0] == "a plate of food on a table with a cup"
    # a caption that names one of the main subjects, or a kind of one ("a man": a person), is kept
    cameraman = [Concept("tripod.n.01", 0.94), Concept("person.n.01", 0.93)]
    beam = [hypothesis("a man in a blue shirt is standing on a sidewalk", -7.0)]
    kept = caption_texts(vocabulary, [cameraman], [beam], subjects=[("tripod.n.01", "person.n.01")])
    assert kept[0][0][0] == "a man in a blue shirt is standing on a sidewalk"
    assert caption_texts(vocabulary, [cameraman], [beam], subjects=[("tripod.n.01",)])[0][0][0] == \
        "a tripod and a person"


MULTI30K = SHARED / "data" / "multi30k-task1"


@pytest.fixture(scope="module", params=["fra", "deu"])
def lexicon(request):
    """The `ConceptLexicon` of 6,000 Multi30K training descriptions in French or German, their
    concepts taken from the parallel English sentences (as a French or German decoder is trained)."""
    if not (MULTI30K / "train.fr.gz").is_file():
        pytest.skip("needs ../shared Multi30K")
    from helpers.data.multi30k import load_multi30k
    from helpers.predict.concept_captions import ConceptLexicon
    from helpers.text.vocab import Vocabulary
    from helpers.wordnet.concepts import ConceptVocabulary, image_concepts
    from helpers.wordnet.synsets import SynsetMapper

    language = request.param
    records = load_multi30k(MULTI30K, "train", ("eng", language))[:6000]
    mapper = SynsetMapper()
    concept_sets = [image_concepts([r.sentences["eng"]], mapper) for r in records]
    vocabulary = Vocabulary.build((r.sentences[language] for r in records), min_count=3, language=language)
    concepts = ConceptVocabulary.from_concept_sets(concept_sets, min_images=3)
    index = ConsensusIndex.from_training(concept_sets, [[r.sentences[language]] for r in records], concepts, vocabulary,
                                         _aligned(records, language, mapper))
    return language, vocabulary, ConceptLexicon(index, concepts, vocabulary)


def _aligned(records, language, mapper):
    """`ConsensusIndex.aligned` as training builds it (`helpers.training.concept_data`)."""
    from helpers.text.alignment import aligned_words

    return {word: (english, dice, mapper.map_word(english)) for word, (english, dice)
            in aligned_words((([r.sentences["eng"]], [r.sentences[language]]) for r in records), language).items()}


@pytest.mark.skipif(not (MULTI30K / "train.de.gz").is_file(), reason="needs ../shared Multi30K")
def test_aligned_words_name_people_and_the_concepts_templates_need():
    # on all 29,000 German descriptions: where 86 % of the images show a person, "Person" goes
    # with one on only 95 % of them (the English side says "a climber", "someone"), too few for
    # the co-occurrence rule; its English word says it is one. And what to call a container.
    from helpers.data.multi30k import load_multi30k
    from helpers.predict.concept_captions import ConceptLexicon
    from helpers.text.vocab import Vocabulary
    from helpers.wordnet.concepts import Concept, ConceptVocabulary, image_concepts
    from helpers.wordnet.synsets import SynsetMapper

    records = load_multi30k(MULTI30K, "train", ("eng", "deu"))
    mapper = SynsetMapper()
    concept_sets = [image_concepts([r.sentences["eng"]], mapper) for r in records]
    vocabulary = Vocabulary.build((r.sentences["deu"] for r in records), min_count=5, language="deu")
    concepts = ConceptVocabulary.from_concept_sets(concept_sets, min_images=5)
    captions = [[r.sentences["deu"]] for r in records]
    plain = ConceptLexicon(ConsensusIndex.from_training(concept_sets, captions, concepts, vocabulary),
                           concepts, vocabulary)
    found = ConceptLexicon(ConsensusIndex.from_training(concept_sets, captions, concepts, vocabulary,
                                                        _aligned(records, "deu", mapper)), concepts, vocabulary)
    people = [vocabulary.word_to_id[word] for word in ("Person", "Frauen")]
    assert plain.concepts_named(people) == frozenset()
    assert found.concepts_named(people) == {"person.n.01"}
    tokens = np.array(vocabulary.encode("Eine Person steht vor einer Wand")[1:-1], np.int32)
    assert found.invented(tokens, [Concept("bowl.n.03", 0.6)]) == {"person.n.01"}
    assert found.template([Concept("container.n.01", 0.5)]) == "Ein Behälter"
    assert found.template([Concept("weapon.n.01", 0.5)]) == "Eine Waffe"
    assert plain.template([Concept("container.n.01", 0.5)]) is None
    # a name of several words is translated by its last one only when that one is above it: a
    # dining table is a table, a Boston bull is a dog
    assert found.translation("boston_bull.n.01") is None
    assert found.translation("dining_table.n.01") == "Tisch"
    assert found.name(Concept("boston_bull.n.01", 0.8))[0] not in ("Bulle", "Bullen")


def test_the_lexicon_learns_which_french_and_german_words_name_a_coco_category(lexicon):
    language, vocabulary, found = lexicon
    words = {"fra": {"homme": "person.n.01", "femme": "person.n.01", "chien": "dog.n.01", "chiens": "dog.n.01",
                     "vélo": "bicycle.n.01"},
             "deu": {"Mann": "person.n.01", "Frau": "person.n.01", "Hund": "dog.n.01", "Hunde": "dog.n.01",
                     "Fahrrad": "bicycle.n.01"}}[language]
    for word, synset in words.items():
        assert found.concepts_named([vocabulary.word_to_id[word]]) == {synset}, word
    # function words and colours name nothing
    for word in {"fra": ("un", "sur", "rouge"), "deu": ("ein", "auf", "roten")}[language]:
        assert found.concepts_named([vocabulary.word_to_id[word]]) == frozenset(), word


def test_a_french_or_german_caption_that_invents_a_person_gives_way_to_a_template_in_its_language(lexicon):
    from helpers.predict.concept_captions import caption_texts
    from helpers.predict.decoding import Hypothesis
    from helpers.wordnet.concepts import Concept

    language, vocabulary, found = lexicon
    text = {"fra": "un homme marche dans la rue", "deu": "ein Mann geht auf der Straße"}[language]
    tokens = np.array(vocabulary.encode(text)[1:-1], np.int32)
    cat_and_dogs = [Concept("domestic_cat.n.01", 0.9), Concept("dog.n.01", 0.8, 2), Concept("formation.n.01", 0.5)]
    assert found.invented(tokens, cat_and_dogs) == {"person.n.01"}
    assert found.invented(tokens, [Concept("person.n.01", 0.9, 2)]) == frozenset()
    # the concepts that have a word, the template's order; French names the formation from its wordnet
    template = {"fra": "Un chat, deux chiens et formation", "deu": "Eine Katze und zwei Hunde"}[language]
    assert found.template(cat_and_dogs) == template
    [captions] = caption_texts(vocabulary, [cat_and_dogs], [[Hypothesis(tokens, -3.0, -3.0, True)]], found)
    assert captions[0] == (template, pytest.approx(np.log(0.9 * 0.8 * 0.5)))
    # a caption the photo supports stays first; a concept without a word gives no template
    [captions] = caption_texts(vocabulary, [[Concept("person.n.01", 0.9)]], [[Hypothesis(tokens, -3.0, -3.0, True)]],
                               found)
    assert captions[0][1] == -3.0
    formation = found.template([Concept("formation.n.01", 0.5), Concept("cat.n.01", 0.4),
                                Concept("domestic_cat.n.01", 0.3)])
    assert formation == {"fra": "Formation et un chat", "deu": "Eine Katze"}[language]      # one cat, not two
    assert found.template([Concept("formation.n.01", 0.5)]) == {"fra": "Formation", "deu": None}[language]


def test_a_template_word_takes_the_article_of_the_gender_its_determiners_show(lexicon):
    from helpers.wordnet.concepts import Concept

    language, vocabulary, found = lexicon
    # shown by definite articles and declined determiners, not only by "un"/"ein" right before
    # it: "de la nourriture", "la boue"; "am Tisch", "einer großen Trommel", "das Hemd"
    genders = {"fra": {"nourriture": "une", "boue": "une", "chien": "un", "table": "une"},
               "deu": {"Trommel": "eine", "Tisch": "ein", "Jacke": "eine", "Hemd": "ein", "Weste": "eine",
                       "Katze": "eine"}}[language]
    assert {word: found.article.get(word) for word in genders} == genders
    # German articles go with nouns only; a German concept word is a noun
    if language == "deu":
        assert all(word[:1].isupper() for word in found.article)
        assert all(word[:1].isupper() for word in found.word.values())
    assert found.template([Concept("chair.n.01", 0.8), Concept("table.n.02", 0.7)]) == {
        "fra": "Une chaise et une table", "deu": "Ein Stuhl und ein Tisch"}[language]


def test_several_of_a_concept_without_a_plural_are_written_as_one(lexicon):
    from helpers.wordnet.concepts import Concept

    language, vocabulary, found = lexicon
    sheep = Concept("sheep.n.01", 0.9, 3)
    word, plural = found.name(sheep)
    assert ("sheep.n.01", True) not in found.word and not plural     # too rare here for a plural
    # no "Trois mouton": the number needs the plural
    assert found.template([sheep]) is None or not found.template([sheep]).startswith(("Trois", "Drei"))
    assert found.name(Concept("dog.n.01", 0.9, 3)) == ({"fra": "chiens", "deu": "Hunde"}[language], True)
    # several people: the word aligned with "people", not "homme", the word most said of photos of two
    assert found.word["person.n.01", True] == {"fra": "homme", "deu": "Mann"}[language]
    assert found.name(Concept("person.n.01", 0.9, 5)) == ({"fra": "personnes", "deu": "Personen"}[language], True)
    five = {"fra": "Cinq personnes", "deu": "Fünf Personen"}[language]
    assert found.template([Concept("person.n.01", 0.9, 5)]) == five


def test_neutral_hypotheses_rewrite_the_words_and_keep_each_attention_row_with_its_word(coco):
    from helpers.predict.concept_captions import neutral_hypotheses
    from helpers.predict.decoding import Hypothesis
    from helpers.text.vocab import Vocabulary

    _, _, vocabulary, _ = coco                  # the vocabulary of real COCO captions
    texts = ["a man and a woman riding their bikes", "a woman holding her umbrella", "a dog on a beach"]
    beams = []
    for text in texts:
        tokens = np.array(vocabulary.encode(text)[1:-1], np.int32)
        attention = np.arange(len(tokens) + 1, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
        beams.append([Hypothesis(tokens, -5.0, -5.0, True, attention)])
    rewritten = neutral_hypotheses(vocabulary, beams, order=np.array([1, 0, 2, 1]))
    assert [vocabulary.decode(hypotheses[0].tokens) for hypotheses in rewritten] == [
        "a person holding their umbrella", "two people riding their bikes", "a dog on a beach",
        "a person holding their umbrella"]
    pair = rewritten[1][0]                      # "a man and a woman" -> "two people": rows of "a", "man"
    assert pair.attention[:, 0].tolist() == [0, 1, 5, 6, 7, 8] and pair.log_probability == -5.0
    assert rewritten[2][0] is beams[2][0]       # nothing to rewrite: the same hypothesis
    french = Vocabulary.build(["un homme sur une plage"], min_count=1, language="fra")
    tokens = np.array(french.encode("un homme sur une plage")[1:-1], np.int32)
    [[same]] = neutral_hypotheses(french, [[Hypothesis(tokens, -3.0, -3.0, True)]])
    assert french.decode(same.tokens) == "Un homme sur une plage"      # French keeps its words
