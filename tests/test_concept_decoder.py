"""The concept decoder: a set (order and padding do not matter), the decoding protocol, and a
caption-text run trained, saved, loaded and used on a real photo by `--model pretrained`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from helpers import model
from helpers.config import Config
from helpers.predict import decoding
from helpers.predict.beam import NEVER_GENERATED
from helpers.text.vocab import END_ID, START_ID, UNK_ID
from helpers.wordnet.concepts import PHOTO_CONCEPT_ID

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared"
COCO_4800 = SHARED / "data" / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json"
FLICKR8K = SHARED / "data" / "flickr8k-text" / "Flickr8k.token.txt"
COCO_MINI = SHARED / "data" / "coco-mini-2017"


def _heads(num_concepts=12, cells=6):
    config = Config(decoder="concepts", embedding_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0)
    return model.build_heads(config, vocabulary_size=20, num_synsets=num_concepts, cells=cells, depth=3)


def _sets(rows, cells):
    """float32 [B, cells, 3] from lists of (id, confidence, count), <photo> first, padded."""
    grid = np.zeros((len(rows), cells, 3), np.float32)
    for b, concepts in enumerate(rows):
        grid[b, 0] = (PHOTO_CONCEPT_ID, 1.0, 0.0)
        grid[b, 1:1 + len(concepts)] = concepts
    return grid


TOKENS = np.array([[START_ID, 5, 9, 7, END_ID], [START_ID, 4, 4, 6, 8]], np.int32)
SETS = [[(3, 0.9, 1), (7, 0.5, 2)], [(11, 0.4, 3)]]


def test_padding_and_order_do_not_change_the_captions():
    heads = _heads(cells=6)
    pooled = np.zeros((2, 1), np.float32)
    logits = heads.decoder((pooled, _sets(SETS, 6), TOKENS)).numpy()
    wider = heads.decoder((pooled, _sets(SETS, 9), TOKENS)).numpy()             # more padding rows
    swapped = heads.decoder((pooled, _sets([SETS[0][::-1], SETS[1]], 6), TOKENS)).numpy()
    np.testing.assert_allclose(wider, logits, atol=1e-5)
    np.testing.assert_allclose(swapped, logits, atol=1e-5)
    other = heads.decoder((pooled, _sets([[(3, 0.9, 1), (7, 0.5, 3)], SETS[1]], 6), TOKENS)).numpy()
    assert np.abs(other[0] - logits[0]).max() > 1e-4                            # the count is read


def test_attention_never_goes_to_padding_and_decoding_matches_teacher_forcing():
    heads = _heads(cells=6)
    grid = _sets(SETS, 6)
    pooled = np.zeros((2, 1), np.float32)
    hypotheses = decoding.greedy_decode(heads.decoder, pooled, grid, max_length=6)
    for hypothesis, concepts in zip(hypotheses, SETS):
        attention = hypothesis.attention
        np.testing.assert_allclose(attention.sum(axis=1), 1.0, atol=1e-5)
        assert np.abs(attention[:, 1 + len(concepts):]).max() < 1e-6
    tokens = np.array([[START_ID, *hypotheses[0].tokens]], np.int32)
    forced = heads.decoder((pooled[:1], grid[:1], tokens)).numpy()[0]      # [T, V]: the word after each
    forced[:, list(NEVER_GENERATED)] = -np.inf                              # <pad>, <start>, <unk>
    assert list(forced.argmax(axis=-1)[:len(hypotheses[0].tokens)]) == list(hypotheses[0].tokens)
    beams = decoding.beam_search(heads.decoder, pooled, grid, beam_width=3, max_length=6)
    reference = decoding.reference_beam_search(heads.decoder, pooled, grid, beam_width=3, max_length=6)
    for fast, slow in zip(beams, reference):
        assert [list(h.tokens) for h in fast] == [list(h.tokens) for h in slow[:3]]


def test_a_prefix_begins_every_caption_of_its_photo_and_leaves_the_others_alone():
    heads = _heads(cells=6)
    grid = _sets(SETS, 6)
    pooled = np.zeros((2, 1), np.float32)
    free = decoding.beam_search(heads.decoder, pooled, grid, beam_width=3, max_length=6)
    forced = decoding.beam_search(heads.decoder, pooled, grid, beam_width=3, max_length=6, prefixes=[[9, 5], []])
    assert forced[0] and all(list(h.tokens[:2]) == [9, 5] for h in forced[0])
    assert [list(h.tokens) for h in forced[1]] == [list(h.tokens) for h in free[1]]     # no prefix: the same
    # each caption's log-probability is the decoder's for all its words, the prefix's included
    [rescored] = decoding.score_captions(heads.decoder, pooled[:1], grid[:1], [list(forced[0][0].tokens)],
                                         [forced[0][0].finished], True)
    logits = heads.decoder((pooled[:1], grid[:1], np.array([[START_ID, 9, 5]], np.int32))).numpy()[0]
    prefix = sum(float(tf.nn.log_softmax(logits[i])[word]) for i, word in enumerate((9, 5)))
    assert prefix < -1 and rescored.log_probability == pytest.approx(forced[0][0].log_probability,
                                                                     abs=0.01)   # bfloat16 steps
    with pytest.raises(ValueError, match="1 prefixes for 2 images"):
        decoding.beam_search(heads.decoder, pooled, grid, beam_width=3, max_length=6, prefixes=[[9]])


@pytest.mark.parametrize("step_dtype", ["float32", "bfloat16"])
def test_decoding_steps_in_each_precision_match_teacher_forcing(step_dtype):
    decoder = _heads(cells=6).decoder
    decoder.step_dtype = step_dtype
    grid, pooled = _sets(SETS, 6), np.zeros((2, 1), np.float32)
    forced = decoder((pooled, grid, TOKENS)).numpy()                      # (2, T, V), float32 throughout
    context = decoder.prepare(pooled, grid)
    assert [tf.as_dtype(kernel.dtype).name for kernel in context.kernels] == [step_dtype] * 2
    # the context's products come from the cells' (FACTORED_CONTEXT): kernels without its rows
    hidden, vocabulary = decoder.hidden_dim, decoder.vocabulary_size
    assert context.kernels[0].shape == (decoder.embedding_dim + hidden, 4 * hidden)
    assert context.kernels[1].shape == (hidden, vocabulary)
    assert context.cell_gates.shape == (2, 6, 4 * hidden) and context.cell_logits.shape == (2, 6, vocabulary)
    state = decoder.initial_state(context)
    errors = []
    for t in range(TOKENS.shape[1]):
        logits, state, alpha = decoder.step(TOKENS[:, t], state, context)
        errors.append(np.abs(logits.numpy() - forced[:, t]).max())
        np.testing.assert_allclose(alpha.numpy().sum(axis=1), 1.0, atol=1e-5)
    # float32: the same numbers up to rounding; bfloat16 rounds the products' inputs to 8 bits
    assert max(errors) < (1e-5 if step_dtype == "float32" else 2e-2)
    if step_dtype == "bfloat16":
        assert max(errors) > 1e-6
    # rows of a beam: hypothesis 1 of image 0 and hypotheses 0, 1 of image 1 (width 2)
    start = decoder.initial_state(context)
    rows = np.array([1, 2, 3], np.int32)
    images = rows // 2
    logits, _, _ = decoder.step(np.full(3, START_ID, np.int32), [part.numpy()[images] for part in start],
                                context, rows, 2)
    np.testing.assert_allclose(logits.numpy(), forced[images, 0], atol=1e-5 if step_dtype == "float32" else 2e-2)


def test_one_compiled_search_serves_every_number_of_photos_and_of_concepts():
    from helpers.predict.beam import compiled_search

    decoder = _heads(cells=6).decoder
    pooled = np.zeros((2, 1), np.float32)
    first = decoding.beam_search(decoder, pooled, _sets(SETS, 6), beam_width=3, max_length=6)
    for rows, cells in ((SETS[:1], 3), (SETS * 3, 9), (SETS, 6)):
        beams = decoding.beam_search(decoder, np.zeros((len(rows), 1), np.float32), _sets(rows, cells),
                                     beam_width=3, max_length=6)
        assert [h.tokens.tolist() for h in beams[0]] == [h.tokens.tolist() for h in first[0]]    # padding
    assert compiled_search(decoder, 3).experimental_get_tracing_count() == 1       # traced once


def test_step_dtype_is_checked_and_each_dtype_has_its_compiled_search():
    from helpers.predict.beam import compiled_search

    decoder = _heads(cells=6).decoder
    assert decoder.step_dtype == "auto"
    assert decoder.resolved_step_dtype() == ("bfloat16" if model.native_bfloat16() else "float32")
    decoder.step_dtype = "float16"
    with pytest.raises(ValueError, match="step_dtype"):
        decoder.resolved_step_dtype()
    decoder.step_dtype = "float32"
    exact = compiled_search(decoder, 3)
    decoder.step_dtype = "bfloat16"
    assert compiled_search(decoder, 3) is not exact
    decoder.step_dtype = "float32"
    assert compiled_search(decoder, 3) is exact


def test_each_caption_language_has_its_default_vocabulary_and_epochs_and_changes_win():
    from helpers.config import Config

    english, french, german = (Config.for_dataset("caption-text", language=code) for code in ("eng", "fra", "deu"))
    assert (english.epochs, english.min_word_count) == (3, 10)
    assert (french.epochs, french.min_word_count) == (8, 5) == (german.epochs, german.min_word_count)
    assert Config.for_dataset("caption-text", language="deu", epochs=2).epochs == 2
    assert Config.for_dataset("caption-text").language == "eng"


@pytest.mark.skipif(not (FLICKR8K.is_file() and COCO_MINI.is_dir()), reason="needs ../shared caption text")
def test_caption_text_run_trains_saves_loads_and_captions_a_real_photo(tmp_path, monkeypatch):
    from helpers.bundle import load_bundle
    from helpers.predict.predictors import load_predictor
    from helpers.training import train

    monkeypatch.setenv("PHOTO_CAPTIONS_EXCLUDE", str(COCO_MINI))
    config = Config.for_dataset("caption-text", caption_text=f"{COCO_4800},{FLICKR8K}", max_train_images=400,
                                max_val_images=40, epochs=1, embedding_dim=32, hidden_dim=48, attention_dim=16,
                                batch_size=64, caption_samples=1)
    result = train.train_run(config, tmp_path / "concepts", live_plot=False, verbose=0)
    history = (tmp_path / "concepts" / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "val_perplexity" in history[0]
    bundle = load_bundle(result.bundle_dir)
    assert bundle.is_concept_decoder and bundle.encoder is None
    assert bundle.synset_vocabulary.num_ids == bundle.decoder.num_concepts
    assert not (result.bundle_dir / "encoder.weights.h5").exists()

    predictor = load_predictor(run=tmp_path / "concepts")       # a concept run means --model pretrained
    photo = PROJECT / "examples" / "album" / "mariachi_band.jpg"
    fingerprint = predictor.fingerprint
    predictor.predict([photo], captions=False, progress=False)
    assert predictor.caption_languages == ("eng",) and predictor.loaded_languages == ()   # keywords: no decoder
    [prediction] = predictor.predict([photo], beam_width=2, progress=False)
    assert predictor.loaded_languages == ("eng",)
    # the cache key is the same whether the decoder was loaded or not
    from helpers.predict.concept_captions import ConceptCaptioner
    assert ConceptCaptioner(predictor.tagger, predictor.bundle).fingerprint == fingerprint
    # keywords are the tagger's whatever the decoder; captions change with the decoder's files
    import shutil
    changed = shutil.copytree(result.bundle_dir, tmp_path / "changed")
    with open(changed / "vocabulary.json", "a") as file:         # any file of the bundle
        file.write(" ")
    other = ConceptCaptioner(predictor.tagger, changed)
    assert other.fingerprint_for(False) == predictor.fingerprint_for(False) == predictor.tagger.fingerprint
    assert other.fingerprint_for(True) != predictor.fingerprint_for(True) != predictor.tagger.fingerprint
    assert other.fingerprint != fingerprint and other.loaded_languages == ()
    assert predictor.fingerprint_for(True, "fra") == predictor.fingerprint_for(True)   # English captions
    # --gendered-captions reaches the captioner, and its captions are cached apart
    from helpers import cli

    args = cli.build_parser().parse_args(["caption", "--run", str(tmp_path / "concepts"), "--gendered-captions",
                                          str(photo)])
    guessing = cli.load_predictor(args)
    assert guessing.gendered and not predictor.gendered
    assert guessing.fingerprint_for(True) != predictor.fingerprint_for(True)
    assert guessing.fingerprint_for(False) == predictor.fingerprint_for(False)      # keywords: the same
    # captions of a photo tagged before come from its cached prediction: the tagger does not run
    from helpers.predict import photo_cache

    with photo_cache.PredictionCache(tmp_path / "cache.sqlite") as cache:
        photo_cache.predict(predictor, [photo], cache, progress=False)                 # keywords only
        tagging = predictor.tagger.predict
        tagged = []
        monkeypatch.setattr(predictor.tagger, "predict", lambda *a, **k: tagged.append(a) or tagging(*a, **k))
        cached, counts = photo_cache.predict(predictor, [photo], cache, beam_width=2, captions=True, progress=False)
        assert (counts["predicted"], counts["captioned"]) == (0, 1) and not tagged
        assert cached[photo].captions == prediction.captions
    assert prediction.ok and prediction.caption and prediction.captions[0][1] < 0
    assert any(c.synset == "person.n.01" and c.count >= 2 for c in predictor.concepts(prediction))
    assert prediction.tags                                      # the tagger's keywords are kept
    # predict's default keywords are the concepts' rule: it reuses them
    assert predictor.concepts(prediction, prediction.tags) == predictor.concepts(prediction)

    # consensus re-ranking: the training captions travel with the bundle
    from helpers.predict.concept_captions import CONSENSUS_CANDIDATES, ConsensusIndex, load_consensus
    from helpers.wordnet.concepts import Concept

    index = predictor.consensus("eng")
    assert isinstance(index, ConsensusIndex) and index.vocabulary_size == len(bundle.vocabulary)
    assert len(index.concept_sets) == 400 and (result.bundle_dir / "consensus.npz").is_file()
    [hypotheses] = predictor.caption_concepts([predictor.concepts(prediction)], beam_width=CONSENSUS_CANDIDATES,
                                              top_n=CONSENSUS_CANDIDATES)
    assert list(prediction.hypotheses[0].tokens) == list(hypotheses[0].tokens)     # beam 2 is widened to 8
    assert not any(UNK_ID in h.tokens for h in hypotheses)           # <unk> is never generated

    # only the sets all of whose candidates repeat themselves are searched again, with a wider beam
    assert_wider_search_where_every_candidate_repeats(bundle, index, monkeypatch, [
        [Concept(synset, 1.0, count)] for synset in ("person.n.01", "dog.n.01", "pizza.n.01") for count in (1, 3)])
    ConsensusIndex([[(2, 1)]], [[[5]]], vocabulary_size=len(bundle.vocabulary) + 1).save(
        result.bundle_dir / "consensus.npz")
    with pytest.raises(ValueError, match="retrain the run"):
        load_consensus(load_bundle(result.bundle_dir))


@pytest.mark.skipif(not (PROJECT / "runs" / "concepts" / "bundle").is_dir(),
                    reason="needs the English decoder: python -m helpers train --run concepts --data-dir caption-text")
def test_the_english_decoder_says_person_where_it_would_guess_man_or_woman():
    """The full English decoder (COCO and Flickr8k text) names a lone person "man" (the
    astronaut of examples/album, a woman, was "a man in a red shirt"); by default it says "person"."""
    from helpers.bundle import load_bundle
    from helpers.predict.concept_captions import load_consensus
    from helpers.wordnet.concepts import Concept

    bundle = load_bundle(PROJECT / "runs" / "concepts" / "bundle")
    astronaut = [Concept("person.n.01", 0.92, 1), Concept("vehicle.n.01", 0.27, 1)]
    sets = [astronaut, *([Concept("person.n.01", 1.0, count)] for count in (1, 2, 5)),
            [Concept("person.n.01", 0.9, 1), Concept("dog.n.01", 0.8, 1)]]
    neutral = assert_neutral_captions(bundle, load_consensus(bundle), sets)
    assert bundle.vocabulary.decode(neutral[0][0].tokens).startswith("a person ")


def assert_neutral_captions(bundle, index, sets) -> list:
    """By default `caption_concept_sets` gives captions with no word that states a sex; with
    `gendered=True`, the decoder's own words, which do (a decoder trained on COCO and Flickr8k
    text names a person "man" first); where the decoder wrote none of the words left out of the
    default search (`gendered_word_ids`), the default captions are its words rewritten
    (`neutral_hypotheses`). Returns the default captions."""
    from helpers.predict.concept_captions import caption_concept_sets, gendered_word_ids, neutral_hypotheses
    from helpers.text.languages import is_gendered_word

    words = bundle.vocabulary.id_to_word
    free = caption_concept_sets(bundle, sets, top_n=3, beam_width=3, consensus=index, gendered=True)
    neutral = caption_concept_sets(bundle, sets, top_n=3, beam_width=3, consensus=index)
    assert any(is_gendered_word(words[t]) for hypotheses in free for h in hypotheses for t in h.tokens)
    for hypotheses in neutral:
        for h in hypotheses:
            assert not any(is_gendered_word(words[t]) for t in h.tokens), [words[t] for t in h.tokens]
            assert len(h.attention) == len(h.tokens) + h.finished
    banned = set(gendered_word_ids(bundle.vocabulary))
    rewritten = neutral_hypotheses(bundle.vocabulary, free)
    same = [not banned.intersection(t for h in hypotheses for t in h.tokens) for hypotheses in free]
    assert any(same)
    for row in np.flatnonzero(same):
        # the scores move a little (the left-out words' probability is spread over the others),
        # so the order may too: the same captions
        captions = [sorted(tuple(h.tokens) for h in hypotheses) for hypotheses in (neutral[row], rewritten[row])]
        assert captions[0] == captions[1]
    return neutral


def assert_wider_search_where_every_candidate_repeats(bundle, index, monkeypatch, sets) -> list[int]:
    """`caption_concept_sets` searches again, with `WIDER_BEAM`, exactly the sets all of whose
    candidates repeat a word or a bigram, and each of those gets a caption of the wider search
    (or a prefix of one, ended by `end_unfinished`). Returns the indices of those sets."""
    from helpers.predict import concept_captions
    from helpers.predict.concept_captions import (
        CONSENSUS_CANDIDATES,
        WIDER_BEAM,
        caption_concept_sets,
        content_word_ids,
        repeats_a_bigram,
        repeats_a_word,
    )
    from helpers.predict.decoding import beam_search

    content_words = content_word_ids(bundle.vocabulary)
    grid = np.stack([bundle.synset_vocabulary.encode(c, bundle.config.max_concepts) for c in sets])
    max_length = bundle.config.max_caption_length - 1
    narrow, wide = (beam_search(bundle.decoder, np.zeros((len(sets), 1), np.float32), grid, beam_width=width,
                                max_length=max_length, block_ngram=3) for width in (CONSENSUS_CANDIDATES, WIDER_BEAM))
    repeating = [i for i, hypotheses in enumerate(narrow)
                 if all(repeats_a_bigram(h.tokens) or repeats_a_word(h.tokens, content_words) for h in hypotheses)]
    searches = []

    def recorded_beam_search(decoder, pooled, grid, **settings):       # the real search, its calls noted
        searches.append((len(grid), settings["beam_width"]))
        return beam_search(decoder, pooled, grid, **settings)

    monkeypatch.setattr(concept_captions, "beam_search", recorded_beam_search)
    # no main subject (`_naming_the_subject`, whose rows would join the first search)
    monkeypatch.setattr(concept_captions, "SUBJECT_MIN_CONFIDENCE", 1.01)
    chosen = caption_concept_sets(bundle, sets, consensus=index, gendered=True)     # the words of the search
    monkeypatch.setattr(concept_captions, "beam_search", beam_search)
    assert searches == [(len(sets), CONSENSUS_CANDIDATES)] + ([(len(repeating), WIDER_BEAM)] if repeating else [])
    for i in repeating:
        tokens = list(chosen[i][0].tokens)
        assert any(list(h.tokens[:len(tokens)]) == tokens for h in wide[i])
    return repeating


@pytest.mark.skipif(not (PROJECT / "runs" / "concepts-deu" / "bundle").is_dir(),
                    reason="needs the German decoder: python -m helpers train --run concepts-deu "
                           "--data-dir caption-text --language deu")
def test_the_german_decoders_mariachis_get_a_wider_search_and_a_caption_that_says_things_once(monkeypatch):
    from helpers.bundle import load_bundle
    from helpers.predict.concept_captions import (
        caption_concept_sets,
        content_word_ids,
        load_consensus,
        repeats_a_word,
    )
    from helpers.wordnet.concepts import Concept

    german = load_bundle(PROJECT / "runs" / "concepts-deu" / "bundle")
    # the concepts the tagger gives examples/album/mariachi_band.jpg: eight people and a device
    mariachis = [Concept("person.n.01", 0.72, 8), Concept("device.n.01", 0.39, 1)]
    assert assert_wider_search_where_every_candidate_repeats(german, load_consensus(german), monkeypatch,
                                                             [mariachis, [Concept("dog.n.01", 0.9, 2)]]) == [0]
    [[caption]] = caption_concept_sets(german, [mariachis], consensus=load_consensus(german))
    assert not repeats_a_word(caption.tokens, content_word_ids(german.vocabulary)), german.vocabulary.decode(
        caption.tokens)


MULTI30K = SHARED / "data" / "multi30k-task1"


@pytest.mark.parametrize(("language", "subject", "guess"), [("fra", "Une personne", "Un homme"),
                                                          ("deu", "Eine Person", "Ein Mann")])
def test_the_french_and_german_decoders_write_a_person_then_agree_with_it(language, subject, guess):
    """The real French and German decoders begin the astronaut's caption (a woman) with "Un homme"
    / "Ein Mann" when allowed to guess; by default they write it again from "Une personne" /
    "Eine Person", no caption states a sex, and German possessives agree ("ihrem", not "seinem")."""
    if not (PROJECT / "runs" / f"concepts-{language}" / "bundle").is_dir():
        pytest.skip(f"needs the decoder: python -m helpers train --run concepts-{language} "
                    f"--data-dir caption-text --language {language}")
    from helpers.bundle import load_bundle
    from helpers.predict.concept_captions import caption_concept_sets, load_consensus
    from helpers.text.languages import is_gendered_word, tokenize
    from helpers.wordnet.concepts import Concept

    bundle = load_bundle(PROJECT / "runs" / f"concepts-{language}" / "bundle")
    index = load_consensus(bundle)
    astronaut = [Concept("person.n.01", 0.92, 1), Concept("vehicle.n.01", 0.27, 1)]
    cyclist = [Concept("person.n.01", 0.9, 1), Concept("bicycle.n.01", 0.8, 1)]
    two = [Concept("person.n.01", 0.9, 2)]
    decode = bundle.vocabulary.decode
    guessed = caption_concept_sets(bundle, [astronaut], consensus=index, gendered=True)
    assert decode(guessed[0][0].tokens).startswith(guess + " ")
    neutral = caption_concept_sets(bundle, [astronaut, cyclist, two], consensus=index, top_n=3)
    assert decode(neutral[0][0].tokens).startswith(subject + " ")
    for hypotheses in neutral:
        assert hypotheses
        for h in hypotheses:
            words = tokenize(decode(h.tokens), language)
            assert not any(is_gendered_word(word, language) for word in words), words
            assert not {"sein", "seine", "seinem", "seinen", "seiner"} & set(words), words
            assert len(h.attention) == len(h.tokens) + h.finished and h.log_probability < 0


@pytest.mark.skipif(not MULTI30K.is_dir(), reason="needs ../shared Multi30K")
def test_hypotheses_are_repaired_in_place_rescored_and_a_repeat_dropped():
    """`_repair_inflections` with the agreement learnt from Multi30K's French training text and
    a concept decoder over its vocabulary (weights untrained: the bookkeeping is what is tested)."""
    from helpers.data.multi30k import load_multi30k
    from helpers.predict.concept_captions import _repair_inflections
    from helpers.text.inflection import InflectionRepair
    from helpers.text.vocab import Vocabulary

    captions = [item.sentences["fra"] for item in load_multi30k(MULTI30K, "train", ("fra",))]
    vocabulary = Vocabulary.build(captions, min_count=5, language="fra")
    repair = InflectionRepair.from_captions(vocabulary, [vocabulary.encode(c)[1:-1] for c in captions])
    config = Config(decoder="concepts", embedding_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0)
    decoder = model.build_heads(config, vocabulary_size=len(vocabulary), num_synsets=12, cells=6, depth=3).decoder
    grid = _sets(SETS, 6)
    pooled = np.zeros((2, 1), np.float32)
    texts = [["un groupe de personnes sont assis sur un banc", "un homme est assis sur un banc",
              "un groupe de personnes sont assises sur un banc"],
             ["deux chiens courent dans la neige"]]
    beams = [decoding.score_captions(decoder, pooled[[b] * len(row)], grid[[b] * len(row)],
                                     [vocabulary.encode(t)[1:-1] for t in row], [True] * len(row), True)
             for b, row in enumerate(texts)]
    repaired = _repair_inflections(decoder, grid, beams, repair, 0.0)
    # the first becomes the third, which is then a repeat: dropped; the others are the same objects
    assert [[vocabulary.decode(h.tokens) for h in row] for row in repaired] == [
        ["Un groupe de personnes sont assises sur un banc", "Un homme est assis sur un banc"],
        ["Deux chiens courent dans la neige"]]
    assert repaired[0][1] is beams[0][1] and repaired[1][0] is beams[1][0]
    assert repaired[0][0].log_probability == pytest.approx(beams[0][2].log_probability, abs=1e-5)
    np.testing.assert_allclose(repaired[0][0].attention, beams[0][2].attention, atol=1e-6)
    assert _repair_inflections(decoder, grid, repaired, repair, 0.0) is repaired      # nothing left


@pytest.mark.skipif(not (PROJECT / "runs" / "concepts-fra" / "bundle").is_dir(),
                    reason="needs the French decoder: python -m helpers train --run concepts-fra "
                           "--data-dir caption-text --language fra")
def test_the_french_decoders_musicians_are_seated_in_the_feminine_plural():
    """The real French decoder writes "Un groupe de personnes sont assis" for both groups of
    musicians of examples/album with every candidate; the participle must agree with "personnes"."""
    from helpers.bundle import load_bundle
    from helpers.predict.concept_captions import ConceptCaptioner
    from helpers.predict.fused import PretrainedTagger

    english = load_bundle(PROJECT / "runs" / "concepts" / "bundle")
    french = load_bundle(PROJECT / "runs" / "concepts-fra" / "bundle")
    captioner = ConceptCaptioner(PretrainedTagger(), english, languages={"fra": french})
    photos = [PROJECT / "examples" / "album" / name for name in ("mariachi_band.jpg", "folk_musicians_on_stage.jpg")]
    for prediction in captioner.predict(photos, lang="fra", progress=False):
        words = prediction.caption.split()
        assert words[:5] == ["Un", "groupe", "de", "personnes", "sont"] and words[5] in ("assises", "debout"), \
            prediction.caption
        assert "assis" not in words[5:], prediction.caption


@pytest.mark.skipif(not (MULTI30K.is_dir() and COCO_MINI.is_dir()), reason="needs ../shared Multi30K")
def test_french_run_writes_french_and_a_language_without_decoder_falls_back_once(tmp_path, monkeypatch, capsys):
    from helpers.bundle import load_bundle
    from helpers.data.caption_text import FLICKR_ID_OFFSET, load_parallel_caption_text
    from helpers.predict.concept_captions import ConceptCaptioner
    from helpers.predict.fused import PretrainedTagger
    from helpers.training import train

    records, english = load_parallel_caption_text([MULTI30K], "fra")
    assert len(records) == 29000 and all(r.image_id > FLICKR_ID_OFFSET for r in records)
    first = next(r for r in records if r.captions == ["Deux jeunes hommes blancs sont dehors près de buissons."])
    assert english[first.image_id] == ["Two young, White males are outside near many bushes."]   # line 1 of both

    config = Config.for_dataset("caption-text", language="fra", max_train_images=300, max_val_images=30, epochs=1,
                                embedding_dim=32, hidden_dim=48, attention_dim=16, batch_size=64, caption_samples=0)
    french = load_bundle(train.train_run(config, tmp_path / "concepts-fra", live_plot=False, verbose=0).bundle_dir)
    assert french.vocabulary.language == "fra"
    captioner = ConceptCaptioner(PretrainedTagger(), french, languages={"fra": french})
    photo = PROJECT / "examples" / "album" / "mariachi_band.jpg"
    capsys.readouterr()
    [prediction] = captioner.predict([photo], lang="fra", beam_width=2, progress=False)
    assert prediction.captions and prediction.caption == french.vocabulary.decode(prediction.hypotheses[0].tokens)
    sentence = "Un homme, assis près de l'eau."            # punctuation is not a token
    assert french.vocabulary.decode(french.vocabulary.encode(sentence)) == "Un homme assis près de l'eau"
    for _ in range(2):
        captioner.predict([photo], lang="spa", beam_width=2, progress=False)
    said = capsys.readouterr().err
    assert said.count("no caption decoder in spa") == 1 and "captions in fra" in said


@pytest.mark.skipif(not (MULTI30K.is_dir() and COCO_MINI.is_dir()), reason="needs ../shared Multi30K")
def test_tag_album_in_german_writes_german_descriptions_and_english_keywords(tmp_path, monkeypatch, capsys):
    import shutil

    from test_album_ini import read_like_myphotoshare

    from helpers import cli
    from helpers.bundle import load_bundle
    from helpers.predict.concept_captions import ConceptCaptioner
    from helpers.predict.fused import PretrainedTagger
    from helpers.training import train
    from helpers.wordnet.keywords import available_languages

    assert "deu" not in available_languages()      # Open Multilingual Wordnet 1.4 has no German
    config = Config.for_dataset("caption-text", language="deu", max_train_images=300, max_val_images=30, epochs=1,
                                embedding_dim=32, hidden_dim=48, attention_dim=16, batch_size=64, caption_samples=0)
    german = load_bundle(train.train_run(config, tmp_path / "concepts-deu", live_plot=False, verbose=0).bundle_dir)
    captioner = ConceptCaptioner(PretrainedTagger(), german)
    assert captioner.caption_languages == ("deu",)
    album_dir = tmp_path / "album"
    album_dir.mkdir()
    for name in ("mariachi_band.jpg", "dogs_at_door.jpg"):
        shutil.copyfile(PROJECT / "examples" / "album" / name, album_dir / name)
    (album_dir / "album.ini").write_text("[DEFAULT]\ntitle = Urlaub\n", encoding="utf-8")
    capsys.readouterr()
    argv = ["tag-album", "--model", "pretrained", "--album-dir", str(album_dir), "--lang", "deu", "--captions",
            "--no-cache"]
    args = cli.build_parser().parse_args(argv)
    assert cli.tag_album_command(args, lambda _: captioner) == 0
    said = capsys.readouterr()
    assert (said.out + said.err).count("no Open Multilingual Wordnet in deu") == 1
    ini = read_like_myphotoshare(album_dir / "album.ini")
    description = ini.get("mariachi_band.jpg", "description")
    assert description and UNK_ID not in german.vocabulary.encode(description)    # the German decoder's words
    assert {"people", "person"} & {t.strip() for t in ini.get("mariachi_band.jpg", "tags").split(",")}
    args = cli.build_parser().parse_args(["tag-album", "--model", "pretrained", "--album-dir", str(album_dir),
                                          "--lang", "deu", "--no-cache"])
    assert cli.tag_album_command(args, lambda _: captioner) == 2      # keywords alone in German: refused
    assert "keyword language 'deu' is not installed" in capsys.readouterr().out


def test_a_caption_names_a_concept_by_itself_or_a_kind_of_it_and_the_subject_is_the_most_confident():
    from helpers.predict.concept_captions import SUBJECT_MIN_CONFIDENCE, names_concept, subject_concept
    from helpers.wordnet.concepts import Concept

    assert names_concept("a man riding a bike down a street", "person.n.01")
    assert names_concept("a puppy laying on the grass", "dog.n.01")
    assert names_concept("a traffic light on a street", "traffic_light.n.01")
    assert not names_concept("a person riding a bike on a street", "traffic_light.n.01")
    # a word above the concept is not its name ("food" for the coffee), nor a compound with its word
    assert not names_concept("a close up of a plate of food on a table", "coffee.n.01")
    assert not names_concept("a coffee table in a living room", "coffee.n.01")
    light, bike = Concept("traffic_light.n.01", 0.82, 1), Concept("bicycle.n.01", 0.76, 1)
    assert subject_concept([bike, light]) == light
    assert subject_concept([Concept("weapon.n.01", SUBJECT_MIN_CONFIDENCE - 0.01, 1)]) is None
    assert subject_concept([]) is None


def test_the_caption_that_names_the_subject_comes_first_unless_the_decoder_finds_it_much_less_likely():
    """`_naming_the_subject` on hypotheses of real captions of coco-mini photos (their words, the
    per-token log-probabilities the English decoder gave them)."""
    from helpers.predict.concept_captions import SUBJECT_MAX_LOSS, _subject_prefix, subjects_first, subjects_searched
    from helpers.text.vocab import Vocabulary
    from helpers.wordnet.concepts import Concept

    texts = ["a person riding a bike on a street", "a traffic light on a street", "a traffic light next to a dog",
             "a pizza sitting on top of a table", "a wine glass of pizza on a table", "a bike parked on a street"]
    vocabulary = Vocabulary(sorted({word for text in texts for word in text.split()}))

    def hypothesis(text, per_token):
        tokens = vocabulary.encode(text)[1:-1]              # without <start> and <end>
        return decoding.Hypothesis(np.asarray(tokens, np.int32), per_token * (len(tokens) + 1), 0.0, True, None)

    def texts_of(ranked):
        return [[vocabulary.decode(h.tokens) for h in hypotheses] for hypotheses in ranked]

    light = [Concept("traffic_light.n.01", 0.82, 1), Concept("bicycle.n.01", 0.76, 1)]
    pizza = [Concept("wineglass.n.01", 0.89, 1), Concept("dining_table.n.01", 0.79, 1), Concept("pizza.n.01", 0.71, 1)]
    assert [vocabulary.id_to_word[t] for t in _subject_prefix(vocabulary, light)] == ["a", "traffic", "light"]
    assert _subject_prefix(vocabulary, [Concept("umbrella.n.01", 0.9, 1)]) is None     # no such word: not searched
    free, second = hypothesis(texts[0], -1.157), hypothesis("a traffic light next to a bike", -1.5)
    low = [Concept("traffic_light.n.01", 0.4, 1)]                       # no main subject
    ranked, prefixes = subjects_first(vocabulary, [light, light, low, pizza], [[free], [free, second], [free], [free]])
    assert texts_of(ranked) == [[texts[0]], ["a traffic light next to a bike", texts[0]], [texts[0]], [texts[0]]]
    assert sorted(prefixes) == [0, 3]                     # the sets whose candidates all leave the subject out
    near, far, inventing = (hypothesis(texts[1], -1.157 - SUBJECT_MAX_LOSS + 0.03),
                            hypothesis(texts[1], -1.157 - SUBJECT_MAX_LOSS - 0.03), hypothesis(texts[2], -1.2))
    searched = subjects_searched(vocabulary, [light] * 3 + [pizza], [[free]] * 3 + [[hypothesis(texts[3], -0.9)]],
                                 {0: [near], 1: [far], 2: [inventing], 3: [hypothesis(texts[4], -2.2)]})
    assert texts_of(searched) == [[texts[1], texts[0]], [texts[0]], [texts[0]],
                                  [texts[3]]]   # the pizza's subject, the wine glass, is 1.3 less likely per token



@pytest.mark.skipif(not (PROJECT / "runs" / "concepts" / "bundle").is_dir(),
                    reason="needs the English decoder: python -m helpers train --run concepts --data-dir caption-text")
def test_the_english_decoder_names_the_person_it_would_leave_out():
    """coco-mini val2017 000000229358 (a person at a bathroom sink): the English decoder's
    candidates all say "a bathroom with a sink and a mirror"; the caption searched from "a person"
    is 0.44 less likely per token, and comes first."""
    from helpers.bundle import load_bundle
    from helpers.predict.concept_captions import caption_concept_sets, load_consensus, names_concept
    from helpers.wordnet.concepts import Concept

    bundle = load_bundle(PROJECT / "runs" / "concepts" / "bundle")
    bathroom = [Concept("person.n.01", 0.8, 1), Concept("sink.n.01", 0.64, 1), Concept("medicine_chest.n.01", 0.53, 1)]
    [[first]] = caption_concept_sets(bundle, [bathroom], consensus=load_consensus(bundle))
    caption = bundle.vocabulary.decode(first.tokens)
    assert names_concept(caption, "person.n.01") and "sink" in caption, caption


@pytest.mark.skipif(not (PROJECT / "runs" / "concepts" / "bundle").is_dir(),
                    reason="needs the English decoder: python -m helpers train --run concepts --data-dir caption-text")
def test_main_subjects_are_the_confident_concepts_as_the_decoder_reads_them():
    from helpers.bundle import load_bundle
    from helpers.predict.concept_captions import SUBJECT_TEMPLATE_MIN_CONFIDENCE, main_subjects
    from helpers.wordnet.concepts import Concept

    bundle = load_bundle(PROJECT / "runs" / "concepts" / "bundle")
    coffee = [Concept("espresso.n.01", 0.95), Concept("cup.n.01", 0.89)]          # examples/album/coffee.jpg
    cameraman = [Concept("tripod.n.01", 0.94), Concept("person.n.01", 0.93)]
    nuthatch = [Concept("nuthatch.n.01", 0.95)]
    assert SUBJECT_TEMPLATE_MIN_CONFIDENCE == 0.9
    # the decoder's concept vocabulary has the coffee, not the espresso; the bird, not the nuthatch
    assert main_subjects(bundle, [coffee, cameraman, nuthatch, [Concept("oscine.n.01", 0.6)], []]) == \
        [("coffee.n.01",), ("support.n.10", "person.n.01"), ("bird.n.01",), (), ()]
    assert main_subjects(bundle, [coffee], min_confidence=0.5) == [("coffee.n.01", "cup.n.01")]
