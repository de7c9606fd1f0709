"""Captions for real photos with no paired training: the pretrained tagger's concepts -> a concept decoder.

    photo -> `helpers.predict.fused.PretrainedTagger` (COCO detector + ImageNet hierarchy)
          -> `concepts`: detected categories with counts and scores, the hierarchy's keyword
             synsets (`helpers.wordnet.concepts.predicted_concepts`), each mapped to its nearest
             concept in the decoder's vocabulary (itself or a hypernym)
          -> encoded set `[L, 3]` -> `helpers.model.ConceptDecoder` -> beam search
             (`helpers.predict.decoding.beam_search`, the same as for image decoders)
          -> caption with its probability

`ConceptCaptioner` implements `helpers.predict.prediction.Predictor`: keywords, detections and
the cache key are the tagger's (plus the decoder's files), captions the decoder's. Beam search
runs once per `CAPTION_BATCH` photos, on all their concept sets at once (a step of the loop
costs about the same for 32 rows as for 256).

**Consensus re-ranking** (Devlin et al. 2015, "Language models for image captioning: the quirks
and what works"; Mao et al. 2015, m-RNN): when the bundle has `consensus.npz` (written by
training), beam search keeps `CONSENSUS_CANDIDATES` captions and the one most like the training
captions of the `CONSENSUS_NEIGHBOURS` training images whose concepts best match the photo's comes
first (`ConsensusIndex`), those repeating a bigram or a content word last. Measured by `python -m bench.real_captions`:
CIDEr 0.602 (beam 3) -> 0.731 on the 159 coco-mini photos, with the same decoder (another
training run: 0.572 -> 0.703, and 0.695 with the rule below). Ranking the candidates that repeat
a content word ("a bathroom with a toilet and toilet") with those that repeat a bigram: 0.736 ->
0.742 (train2017 0.842 -> 0.840, val2017 0.701 -> 0.719).

**No invented objects** (object hallucination, Rohrbach et al. 2018, whose CHAIR measure counts
the COCO categories a caption names that the photo does not show): the decoder learnt from
captions, where people are nearly everywhere, and from the tagger's measured noise, which misses
some of them; given mountains or a rocket alone it writes "a man in a blue shirt is standing on
a beach", given a bowl "a black and white dog is running in the grass". An English candidate
that names one of the 80 COCO categories the tagger did not find (`invented_concepts`,
`HALLUCINATION_CHECKED`) comes after those that do not; when all of them do, `caption_texts`
puts first the template caption of what was found ("a geological formation", "a container").
Checking all 80 categories instead of the person alone: CIDEr 0.718 -> 0.728 on coco-mini
(train2017 0.821 -> 0.831, val2017 0.690 -> 0.701). The synset mapper reads English: French and
German captions are checked with a `ConceptLexicon` learnt from the decoder's own training pairs
(which words name which category), and their template is written in their language
(Multi30K test, side by side: German CIDEr 0.339 -> 0.353, French 0.448 -> 0.450).

**The main subject named** (English): a set's most confident concept, at least
`SUBJECT_MIN_CONFIDENCE`, is its main subject; the candidates that name it come first, and a set
none of whose candidates does is searched again from its name ("a traffic light"), whose best
caption comes first when the decoder finds it at most `SUBJECT_MAX_LOSS` less likely per token
(`subjects_first`, `subjects_searched`). coco-mini CIDEr 0.706 -> 0.714 (train2017 0.811 -> 0.800,
val2017 0.669 -> 0.701), the subject named in 118 -> 133 of the 150 photos that have one.

Captions in the album's language: a decoder per language (`languages`: "fra", "deu", trained on
Multi30K), chosen by `predict(lang=...)` with the keywords; a language without one gets the main
(English) decoder's captions, and the captioner says so once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import sys
import weakref
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from helpers.data.versioned_json import read_versioned_json
from helpers.model import ConceptDecoder, resolve_step_dtype
from helpers.predict.decoding import Hypothesis, beam_search, check_lengths, end_stuck, score_captions
from helpers.predict.prediction import DETECTION_MIN_SCORE, Keyword, Prediction
from helpers.text.inflection import REPAIR_ORDER, REPAIRED_LANGUAGES, InflectionRepair, lemma_ids, packed_ngrams
from helpers.text.languages import (
    NEUTRAL_LANGUAGES,
    gendered_words,
    neutral_possessives,
    neutral_rewrites,
    neutral_subject,
    neutral_words,
)
from helpers.text.vocab import PAD_ID, UNK_ID
from helpers.wordnet.concepts import PAD_CONCEPT_ID, Concept, caption_concepts, predicted_concepts, unsupported_concepts
from helpers.wordnet.hierarchy import ancestors
from helpers.wordnet.keywords import available_languages
from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS
from helpers.wordnet.synsets import stopwords

CONCEPT_KEYWORDS = 5       # hierarchy keywords (English, the tagger's own rule) that become concepts
CAPTION_BATCH = 256        # concept sets per beam search: its cost is mostly per step, not per row
CONSENSUS_FILE = "consensus.npz"    # in a concept decoder's run and bundle: `ConsensusIndex.save`
LEGACY_CONSENSUS_FILE = "consensus.json"   # what runs trained before it have (still read)
# Beam hypotheses re-ranked by consensus (the beam width, at least). Chosen on the 80 coco-mini
# train2017 photos (`bench.real_captions`' calibration split): CIDEr 0.745, 0.749, 0.764, 0.771 and
# 0.762 for 3, 4, 5, 6 and 8 candidates; 6 costs 0.73x the beam time of 8.
CONSENSUS_CANDIDATES = 6
# No hypothesis repeats one of its trigrams (`beam_search(block_ngram=3)`): German captions read
# "Ein Mann in einem blauen Hemd und einem blauen Hemd" with every candidate of the beam.
BLOCK_NGRAM = 3
# A set all of whose candidates repeat a word or a bigram is searched again with a beam this wide
# (those sets only): the German decoder wrote the mariachis "Eine Gruppe von Männern und Frauen
# bestehende Gruppe von Personen bestehende Gruppe ist in einem Park" with all 6 candidates, while
# a beam of 16 also holds "Eine Gruppe von Männern spielt auf einer Bühne". Chosen on Multi30K val
# (never the test), CIDEr without / 12 / 16 / 24: German 0.391 / 0.396 / 0.395 / 0.398, French
# 0.448 / 0.448 / 0.452 / 0.453, English (24) 0.431 -> 0.431; coco-mini (24) 0.724 -> 0.727.
# A value no larger than the first beam's width turns the second search off.
WIDER_BEAM = 24
CONSENSUS_NEIGHBOURS = 20  # training images whose captions are the consensus
CONSENSUS_ORDERS = (1, 2, 3, 4)     # n-gram orders of the similarity
# What a caption may not invent (`invented_concepts`): the things whose absence the detector
# vouches for, its 80 COCO categories.
HALLUCINATION_CHECKED = frozenset(COCO_CATEGORY_SYNSETS.values())
# A caption word names a concept (`ConceptLexicon`) when it is on at least LEXICON_MIN_IMAGES training
# images and removes at least LEXICON_MIN_CERTAINTY of the doubt about it: "chien" and "Hund" name the dog.
LEXICON_MIN_IMAGES = 10
LEXICON_MIN_CERTAINTY = 0.8
# A word aligned with the English word of a concept most images show (the person, P = 0.86 on
# Multi30K), where little doubt is left to remove, names it with a certainty of 0.5. Not the others:
# their aligned words would bring word senses the images do not confirm ("dos", aligned with
# "backpack" from "sac à dos"), and French Multi30K CIDEr fell 0.451 -> 0.443 with them.
LEXICON_ALIGNED_MIN_PRIOR = 0.5
LEXICON_ALIGNED_MIN_CERTAINTY = 0.5
# A set's most confident concept, at least this confident, is its main subject, which its English
# caption names when the decoder writes it with a log-probability per token at most SUBJECT_MAX_LOSS
# (nats) below its first caption's (`_naming_the_subject`). Chosen on the 80 coco-mini train2017
# photos, where CIDEr and the captions naming their subject (of 75) were 0.811 and 61 without;
# 0.800 / 67, 0.800 / 68 and 0.799 / 69 with 0.45, 0.6 and 0.8; the held-out val2017: 0.669 / 60
# without, 0.701 / 68 with 0.6.
SUBJECT_MIN_CONFIDENCE = 0.5
SUBJECT_MAX_LOSS = 0.6
# A photo's concepts at least this confident are its main subjects for the template rule: an English
# first caption that names none of them (none of the decoder's candidates did, nor its search from
# the subject's name) gives first place to the template (`caption_texts`): "an espresso, a cup and a
# dining table", not "a close up of a plate of food on a table with a cup of wine". Chosen on
# train2017, CIDEr / subjects named (of 75, `subject_concept`): 0.800 / 67 without; 0.787 / 72
# with 0.5; 0.786 / 73 with 0.7; 0.791 / 74 with 0.8; 0.803 / 73 with 0.85; 0.804 / 70 with 0.9;
# 0.800 / 67 with 0.95. Held-out val2017: 0.701 / 66 without, 0.718 / 68 with 0.9.
SUBJECT_TEMPLATE_MIN_CONFIDENCE = 0.9
CAPTION_RULE_VERSION = 13  # bump when re-ranking, the fallback or the concepts change: cached
                           # captions are not reused (2: captions that invent a person come last,
                           # then the template; 3: any of the 80 COCO categories; 4: French and
                           # German checked too; 5: French and German template articles by gender,
                           # German nouns only; 6: words aligned with the English side name
                           # concepts; 7: repeated words, captions cut at the maximum length;
                           # 8: keyword concepts descend to `specific_synset`; 9: `WIDER_BEAM`;
                           # 10: agreement repaired, `InflectionRepair`; repeated words by form;
                           # 11: no caption states a sex, `neutral_hypotheses`, `neutral_subject`;
                           # 12: English captions name the main subject, `_naming_the_subject`;
                           # 13: the template where they still do not, `SUBJECT_TEMPLATE_MIN_CONFIDENCE`)


class ConceptCaptioner:
    """The pretrained tagger with a concept decoder: keywords *and* captions for real photos.

    A decoder given as its bundle folder is loaded, with its consensus index, at its first
    caption: a run with keywords only loads none, and one in English none of the other
    languages' (each costs about a second: its weights, 2.3 MB of training captions).

    Args:
        tagger: a `helpers.predict.fused.PretrainedTagger`.
        bundle: a concept decoder: its `helpers.bundle.Bundle` (`bundle.is_concept_decoder`) or
            bundle folder.
        max_length: generated tokens per caption at most, <end> included (default: the run's
            `max_caption_length - 1`).
        length_normalization: alpha of the GNMT length penalty used to rank captions.
        languages: `{language code: Bundle or bundle folder}`, decoders of other languages.
        gendered: keep the words that state a person's sex as the decoder writes them ("a man");
            by default no caption states one, in any language (`caption_concept_sets(gendered=)`).

    Raises:
        ValueError: a bundle is not a concept decoder's.
        FileNotFoundError: a bundle folder has no config.json.
    """

    def __init__(self, tagger, bundle, max_length: int | None = None, length_normalization: float = 0.0,
                 languages: dict | None = None, gendered: bool = False):
        configs = [_config_of(each) for each in (bundle, *(languages or {}).values())]
        for each, config in zip((bundle, *(languages or {}).values()), configs):
            if config.decoder != "concepts":
                raise ValueError(f"{getattr(each, 'path', each)} is a {config.decoder} decoder over photos, not a "
                                 f"concept decoder; load it with helpers.predict.predictors.Captioner")
        self.tagger = tagger
        self.main_language = configs[0].language
        # language -> Bundle, or its folder until its first caption
        self._decoders = {self.main_language: bundle, **(languages or {})}
        self._consensus: dict[str, ConsensusIndex | None] = {}
        self._said: set[str] = set()
        self._file_digests: dict[str, str] = {}      # language -> sha256 of its bundle's files
        self._warm: set[tuple[str, int]] = set()      # (language, beam width) of `warm_up`s done
        self.max_length = int(max_length or configs[0].max_caption_length - 1)
        self.length_normalization = float(length_normalization)
        self.gendered = bool(gendered)
        self.default_min_proba = tagger.default_min_proba
        self.synset_names = tagger.synset_names

    @property
    def caption_languages(self) -> tuple[str, ...]:
        """ISO 639-3 codes of the languages this captioner has a decoder for."""
        return tuple(self._decoders)

    @property
    def loaded_languages(self) -> tuple[str, ...]:
        """The languages whose decoders are loaded (a decoder given as a folder is loaded at its
        first caption)."""
        return tuple(language for language in self._decoders if language in self._consensus)

    @property
    def bundle(self):
        """The main decoder's `helpers.bundle.Bundle` (loaded now if it was not)."""
        return self.language_bundle(self.main_language)

    def language_bundle(self, language: str):
        """The `Bundle` of the decoder in `language` (one of `caption_languages`), loaded at the
        first call with its consensus index.

        Raises:
            KeyError: no decoder in `language`.
            FileNotFoundError, helpers.bundle.BundleMismatchError: as `helpers.bundle.load_bundle`.
        """
        from helpers.bundle import Bundle, load_bundle

        decoder = self._decoders[language]
        if not isinstance(decoder, Bundle):
            decoder = self._decoders[language] = load_bundle(decoder)
        if language not in self._consensus:
            self._consensus[language] = load_consensus(decoder)
        return decoder

    def consensus(self, language: str) -> "ConsensusIndex | None":
        """The consensus index of the decoder in `language` (`load_consensus`), None without one."""
        self.language_bundle(language)
        return self._consensus[language]

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the tagger's fingerprint and every decoder's part of `fingerprint_for`:
        changes when any of them does. Loads no decoder."""
        parts = [self.tagger.fingerprint, *(self._decoder_fingerprint(language) for language in sorted(self._decoders))]
        return hashlib.sha256("+".join(parts).encode()).hexdigest()

    def fingerprint_for(self, captions: bool, lang: str = "eng") -> str:
        """The fingerprint of one kind of run, what the prediction cache keys it on
        (`helpers.predict.photo_cache.model_fingerprint`).

        Keywords alone are the tagger's predictions, so their fingerprint is the tagger's
        (`PretrainedTagger.fingerprint`): retraining a decoder keeps them, and no decoder file is
        read (the three decoders' files are about 210 MB: 0.46 s to hash). Captions in `lang` add
        the files and settings of the decoder that writes them (`decoder_for`), and only its own:
        captions in French stay cached when the German decoder changes. Loads no decoder.
        """
        if not captions:
            return self.tagger.fingerprint
        language = lang if lang in self._decoders else self.main_language
        return hashlib.sha256(f"{self.tagger.fingerprint}+{self._decoder_fingerprint(language)}".encode()).hexdigest()

    def _decoder_fingerprint(self, language: str) -> str:
        """sha256 (hex) of the bundle files of the decoder in `language` (read once) and the
        decoding settings, the steps' matmul precision included (bfloat16 steps may pick other
        words than float32 ones: `AttentionDecoder.step_dtype`)."""
        decoder = self._decoders[language]
        if language not in self._file_digests:
            digest = hashlib.sha256(language.encode())
            folder = getattr(decoder, "path", decoder)
            if folder is not None:
                for name in sorted(p.name for p in Path(folder).iterdir() if p.is_file()):
                    digest.update(name.encode() + b"\0" + (Path(folder) / name).read_bytes())
            self._file_digests[language] = digest.hexdigest()
        loaded = getattr(decoder, "decoder", None)
        precision = (loaded.resolved_step_dtype() if loaded is not None
                     else resolve_step_dtype(ConceptDecoder.DEFAULT_STEP_DTYPE))
        return hashlib.sha256(
            f"{self._file_digests[language]};concepts;max_length={self.max_length};alpha={self.length_normalization};"
            f"rule={CAPTION_RULE_VERSION};steps={precision};gendered={self.gendered}".encode()).hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int | None = 5, min_proba: float | None = None,
                        lang: str = "eng") -> list[Keyword]:
        """The tagger's keyword rule (`PretrainedTagger.select_keywords`)."""
        return self.tagger.select_keywords(synset_probabilities, nb_keywords, min_proba, lang)

    def concepts(self, prediction: Prediction, keywords: list[Keyword] | None = None) -> list[Concept]:
        """The concepts of a photo's prediction, as the decoder reads them: detected categories
        (count, best score) and `CONCEPT_KEYWORDS` English keyword synsets of the tagger's rule
        (`keywords` when already selected with that rule)."""
        if keywords is None:
            keywords = self.tagger.select_keywords(prediction.synset_probabilities, CONCEPT_KEYWORDS, None, "eng")
        return predicted_concepts(prediction.detections, [(synset, p) for synset, _, p in keywords],
                                  DETECTION_MIN_SCORE, prediction.synset_probabilities)

    def decoder_for(self, lang: str = "eng"):
        """The bundle that writes captions in `lang`: its own decoder, else the main one (said once)."""
        if lang in self._decoders:
            return self.language_bundle(lang)
        main = self.main_language
        if lang not in self._said:
            self._said.add(lang)
            print(f"no caption decoder in {lang} (train one: python -m helpers train --run concepts-{lang} "
                  f"--data-dir caption-text --language {lang}): captions in {main}", file=sys.stderr)
        return self.bundle

    def keyword_language(self, lang: str) -> str:
        """The language of the keywords that go with captions in `lang`: `lang` itself when its
        wordnet is installed, else English (German: a caption decoder, but no Open Multilingual
        Wordnet here), said once."""
        if lang in available_languages():
            return lang
        if f"keywords-{lang}" not in self._said:
            self._said.add(f"keywords-{lang}")
            print(f"no Open Multilingual Wordnet in {lang} here: keywords in English, captions in {lang}",
                  file=sys.stderr)
        return "eng"

    def caption_concepts(self, concept_sets: list[list[Concept]], beam_width: int = 3,
                         top_n: int = 1, lang: str = "eng") -> list[list[Hypothesis]]:
        """Beam-search captions of concept sets in `lang` (`caption_concept_sets` with this
        captioner's settings and `decoder_for(lang)`); decode them with that bundle's vocabulary."""
        bundle = self.decoder_for(lang)
        return caption_concept_sets(bundle, concept_sets, beam_width, top_n, self.max_length,
                                    self.length_normalization, self.consensus(bundle.vocabulary.language),
                                    gendered=self.gendered)

    def caption_texts(self, concept_sets: list[list[Concept]], beams: list[list[Hypothesis]],
                      lang: str = "eng") -> list[list[tuple[str, float]]]:
        """`caption_texts` of `caption_concepts(concept_sets, lang=lang)`'s beams, with that
        language's decoder (its vocabulary and `ConceptLexicon`)."""
        bundle = self.decoder_for(lang)
        language = bundle.vocabulary.language
        return caption_texts(bundle.vocabulary, concept_sets, beams, concept_lexicon(bundle, self.consensus(language)),
                             main_subjects(bundle, concept_sets) if language == "eng" else None)

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 1, nb_keywords: int | None = 5,
                min_proba: float | None = None, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = True) -> list[Prediction]:
        """Keywords, detections and captions of photos (`Predictor.predict`): the tagger's
        prediction, then one beam search over the concept sets of every readable photo.

        Raises:
            ValueError: bad `beam_width`, `top_n` or `min_proba`.
        """
        check_lengths(self.max_length, beam_width)
        if not 1 <= top_n <= beam_width:
            raise ValueError(f"top_n must be between 1 and beam_width={beam_width}, got {top_n}")
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            # the decoder loads and compiles its search while the photos are tagged (`warm_up`)
            loading = pool.submit(self.warm_up, lang, beam_width) if captions else None
            predictions = self.tagger.predict(images, nb_keywords=nb_keywords, min_proba=min_proba,
                                              lang=self.keyword_language(lang),
                                              batch_size=batch_size, progress=progress)
            if loading is not None:
                loading.result()
        if not captions:
            return predictions
        # the keywords are the concepts' own when they were chosen by the same rule
        same_rule = nb_keywords == CONCEPT_KEYWORDS and min_proba is None and self.keyword_language(lang) == "eng"
        return self.add_captions(predictions, beam_width, top_n, lang, keywords_chosen=same_rule)

    def warm_up(self, lang: str = "eng", beam_width: int = 3) -> None:
        """Load the decoder that writes captions in `lang` (`decoder_for`) and caption one
        concept set with it, a person, discarding the caption: its beam search is traced and
        compiled (`helpers.predict.beam.call_for_any_size`: the same graph then serves any
        album) and what re-ranking needs is built. `predict` does it in a thread while the photos
        are tagged: on examples/album the whole `tag-album --captions` took 10.72 s before
        (tags alone 9.10 s), the decoder's cold start (its load, 1.2 s, then 0.6 s at the first
        caption) mostly after the tagging. Once per language and beam width: then it does nothing."""
        if (lang, beam_width) not in self._warm:
            self.caption_concepts([[Concept("person.n.01", 1.0, 1)]], beam_width, 1, lang)
            self._warm.add((lang, beam_width))

    def add_captions(self, predictions: list[Prediction], beam_width: int = 3, top_n: int = 1, lang: str = "eng",
                     keywords_chosen: bool = False) -> list[Prediction]:
        """Captions for photos already tagged, from their concepts alone: no photo is read, so
        predictions read back from the prediction cache (`helpers.predict.photo_cache`) are
        captioned in another language, or for the first time, without tagging them again.

        Each readable prediction gets `hypotheses` and `captions` in `lang` (replacing any it
        had); unreadable ones are left as they are. The concept sets go to the decoder
        `CAPTION_BATCH` at a time.

        Args:
            predictions: the tagger's (`PretrainedTagger.predict`), changed in place.
            beam_width, top_n, lang: as `predict`.
            keywords_chosen: their `tags` were chosen by the concepts' own rule
                (`CONCEPT_KEYWORDS` English keywords at the default threshold): reused.

        Returns:
            `predictions`.

        Raises:
            ValueError: bad `beam_width` or `top_n`.
        """
        check_lengths(self.max_length, beam_width)
        if not 1 <= top_n <= beam_width:
            raise ValueError(f"top_n must be between 1 and beam_width={beam_width}, got {top_n}")
        readable = [p for p in predictions if p.ok]
        for start in range(0, len(readable), CAPTION_BATCH):
            batch = readable[start:start + CAPTION_BATCH]
            concept_sets = [self.concepts(p, p.tags if keywords_chosen else None) for p in batch]
            beams = self.caption_concepts(concept_sets, beam_width, top_n, lang)
            for prediction, hypotheses, captions in zip(batch, beams, self.caption_texts(concept_sets, beams, lang)):
                prediction.hypotheses, prediction.captions = hypotheses, captions
        return predictions


def _config_of(bundle):
    """The `helpers.config.Config` of a `Bundle`, or read from a bundle folder's config.json."""
    from helpers.config import Config

    config = getattr(bundle, "config", None)
    return config if config is not None else Config.load(Path(bundle) / "config.json")


def caption_texts(vocabulary, concept_sets: list[list[Concept]], beams: list[list[Hypothesis]],
                  lexicon: "ConceptLexicon | None" = None,
                  subjects: "Sequence[Sequence[str]] | None" = None) -> list[list[tuple[str, float]]]:
    """The captions of `caption_concept_sets`' hypotheses as `(text, natural-log probability)`,
    best first, with the template fallback: a caption that still invents an object (every
    candidate of the beam did) gives first place to a template of what the tagger found, whose
    probability is the product of its concepts' confidences (`invention_check`: in English
    `invented_concepts` and `template_caption`; in another language, the decoder's `lexicon`;
    without one, nothing is checked). A check that has no template for the photo keeps the
    decoder's caption first.

    Args:
        vocabulary: the decoder bundle's word `Vocabulary` (its language decides the fallback).
        concept_sets: per photo, the concepts the hypotheses were searched from.
        beams: per photo, its hypotheses best first (`caption_concept_sets`).
        lexicon: the decoder's `ConceptLexicon` (`concept_lexicon`), for a language other than English.
        subjects: English only: per photo, the synsets of its main subjects as the decoder reads
            them (`main_subjects`: its concepts of at least `SUBJECT_TEMPLATE_MIN_CONFIDENCE`), or
            None. A first caption that names none of them (`names_concept`: neither the
            decoder's candidates nor its search from the subject's name did,
            `_naming_the_subject`) gives first place to the template too: "an espresso, a cup and
            a dining table", not "a close up of a plate of food on a table with a cup of wine".
    """
    check = invention_check(vocabulary, lexicon)
    subjects = [()] * len(beams) if subjects is None or vocabulary.language != "eng" else subjects
    texts = []
    for concepts, hypotheses, main in zip(concept_sets, beams, subjects):
        captions = [(vocabulary.decode(h.tokens), float(h.log_probability)) for h in hypotheses]
        template = None
        if captions and check is not None and (check.invented(hypotheses[0].tokens, concepts) or (
                main and not any(names_concept(captions[0][0], synset) for synset in main))):
            template = check.template(concepts)
        if template is not None:
            named = concepts[:TEMPLATE_CONCEPTS]
            log_probability = float(sum(np.log(max(c.confidence, 1e-9)) for c in named))
            captions = [(template, log_probability), *captions[:-1]]
        texts.append(captions)
    return texts


TEMPLATE_CONCEPTS = 3      # concepts a template caption names at most
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}


def concept_name(synset: str) -> str:
    """The English name of a concept: its COCO category name ("dining table"), else its synset's
    first lemma, WordNet's head word ("geological formation", not its synonym "formation")."""
    from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS

    coco = {value: key for key, value in COCO_CATEGORY_SYNSETS.items()}
    return coco.get(synset) or synset.rsplit(".", 2)[0].replace("_", " ")


def _plural(name: str) -> str:
    if name == "person":
        return "people"
    if name.endswith(("s", "sh", "ch", "x")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def template_caption(concepts: list[Concept]) -> str:
    """An English caption that lists the `TEMPLATE_CONCEPTS` most confident concepts with their
    counts: "a person, two dogs and a frisbee" ("a photo" for none). Says only what the tagger
    found, so it is the fallback of a decoder that invents (`caption_texts`)."""
    parts = []
    for concept in concepts[:TEMPLATE_CONCEPTS]:
        name = concept_name(concept.synset)
        if concept.count >= 2:
            parts.append(f"{_NUMBERS.get(concept.count, 'many')} {_plural(name)}")
        else:
            parts.append(f"{'an' if name[0] in 'aeiou' else 'a'} {name}")
    if not parts:
        return "a photo"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def caption_concept_sets(bundle, concept_sets: list[list[Concept]], beam_width: int = 3, top_n: int = 1,
                         max_length: int | None = None, length_normalization: float = 0.0,
                         consensus: "ConsensusIndex | None" = None, candidates: int = CONSENSUS_CANDIDATES,
                         block_ngram: int = BLOCK_NGRAM, gendered: bool = False) -> list[list[Hypothesis]]:
    """Captions of concept sets by a concept decoder's bundle, all distinct sets in one beam search.

    Args:
        bundle: a concept decoder's `helpers.bundle.Bundle`.
        concept_sets: per photo, its `Concept`s (any synsets: each maps to its nearest vocabulary
            concept, itself or a hypernym; those with none are left out).
        beam_width, top_n, length_normalization: as `helpers.predict.decoding.beam_search`.
        max_length: generated tokens at most (default: the run's `max_caption_length - 1`).
        consensus: the bundle's `ConsensusIndex` (`load_consensus(bundle)`), or None: plain beam
            search. With one, the beam is at least `candidates` wide and its hypotheses are
            ordered by `ConsensusIndex.scores`, after three rules: those that invent an object
            (English: `invented_concepts`; another language: `ConceptLexicon.invented`) come
            after the others, then those cut at the maximum length, then those that repeat a
            bigram or a content word (`repeats_a_bigram`, `repeats_a_word`). A set all of whose
            candidates repeat is searched again with a beam of `WIDER_BEAM`, all of it re-ranked.
            Before the re-ranking, every hypothesis' inflections are repaired from the index's
            training captions (`helpers.text.inflection.InflectionRepair`) and the changed ones
            rescored by the decoder; a repaired caption already in its beam is dropped. In
            English, then, the candidates that name the set's main subject come first, and a set
            none of whose candidates does is searched again from its name ("a traffic light";
            `_naming_the_subject`, `SUBJECT_MAX_LOSS`).
        candidates: hypotheses re-ranked by consensus (`CONSENSUS_CANDIDATES`).
        block_ngram: n-gram blocking of the beam search (`BLOCK_NGRAM`; 0: none).
        gendered: keep the words that state a person's sex as the decoder writes them. By
            default English captions are rewritten without them (`neutral_hypotheses`: "a man"
            -> "a person", "his" -> "their"; the rare ones with no rewrite, "bride", are left out
            of the search: `gendered_word_ids`): the concepts say "person", never a sex, so each
            such word was a guess from the training text ("a man" for 33 of the 35 coco-mini
            photos given a sex; "a man in a red shirt" for a woman astronaut). In French and
            German a set whose first caption's subject states one is searched again from a
            neutral subject (`helpers.text.languages.neutral_subject`: "Un homme" -> "Une
            personne"; `beam_search(prefixes=)`, all such words left out), its German
            possessives made to agree; then the captions that still state one are dropped unless
            all of the set's do, so a set may get fewer than `top_n` (see
            `helpers.text.languages`, section "words that state a sex").

    Returns:
        Per set, its `top_n` hypotheses best first (`Hypothesis.tokens` decode with `bundle.vocabulary`).
        Where none of a set's hypotheses finished (all cut at the maximum length), each ends
        where its ending is most probable; elsewhere a cut one comes after the finished ones
        (`helpers.predict.decoding.end_stuck`).
    """
    if not concept_sets:
        return []
    vocabulary, config = bundle.synset_vocabulary, bundle.config
    encoded = np.stack([vocabulary.encode(concepts, config.max_concepts) for concepts in concept_sets])
    # photos of one scene (a burst, a series) often have the same concepts: search each set once
    grid, inverse = np.unique(encoded, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    # padding cells (after each set's concepts) get no attention: those no set uses are left out,
    # which changes no caption (examples/album's 14 sets use 5 cells of 10: 51.5 -> 50.3 ms)
    grid = grid[:, :max(1, int((grid[..., 0] != PAD_CONCEPT_ID).sum(axis=1).max()))]
    width = beam_width if consensus is None else max(beam_width, candidates)
    max_length = max_length or config.max_caption_length - 1
    language = bundle.vocabulary.language
    rewritten = not gendered and language in NEUTRAL_LANGUAGES       # English: word for word
    subject_rewritten = not gendered and not rewritten               # French, German: the subject
    pairs = [encoded[:, [0, 2]] for encoded in grid]
    # English: each caption names its set's main subject (`_naming_the_subject`); the sets none of
    # whose candidates does are searched again from its name. Both searches with prefixes (none in
    # the first): one compiled search, the one `warm_up` traced.
    covering = consensus is not None and language == "eng"
    search = functools.partial(_searched_and_ranked, bundle, consensus=consensus, width=width,
                               top_n=width if subject_rewritten or covering else top_n, max_length=max_length,
                               length_normalization=length_normalization, block_ngram=block_ngram,
                               banned=gendered_word_ids(bundle.vocabulary) if rewritten else ())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        # the neighbours need only the concepts: found while the beam searches (NumPy and
        # TensorFlow release the GIL; the search leaves a core idle in its smaller steps)
        neighbours = None if consensus is None else pool.submit(consensus.nearest_images_batch, pairs)
        ranked = search(grid, pairs, neighbours, prefixes=[[]] * len(grid) if covering else None)
    if covering:
        ranked = _naming_the_subject(bundle, grid, pairs, neighbours.result(), ranked, search)
        ranked = [hypotheses[:top_n] for hypotheses in ranked]
    if gendered:
        return [list(ranked[i]) for i in inverse]
    if rewritten:
        return neutral_hypotheses(bundle.vocabulary, ranked, inverse)
    # French and German: a caption whose subject states a sex is written again from a neutral one
    words, word_to_id = bundle.vocabulary.id_to_word, bundle.vocabulary.word_to_id
    banned = gendered_word_ids(bundle.vocabulary)
    # (a decoder whose vocabulary lacks the neutral words, "personne", keeps its captions)
    subjects = {row: subject for row, hypotheses in enumerate(ranked)
                if hypotheses and (subject := neutral_subject([words[t] for t in hypotheses[0].tokens], language))
                and all(word in word_to_id for word in subject)}
    if subjects:
        rows = sorted(subjects)
        prefixes = [[word_to_id[word] for word in subjects[row]] for row in rows]
        again = search(grid[rows], [pairs[row] for row in rows],
                       None if neighbours is None else [neighbours.result()[row] for row in rows],
                       banned=banned, prefixes=prefixes)
        for row, hypotheses in zip(rows, again):
            if hypotheses:
                ranked[row] = hypotheses
    # captions that still state a sex are dropped, unless all of a set's do (a first caption whose
    # sex word has no rewrite here, "Une chanteuse", gives way to the next that states none)
    banned_set = set(banned)
    ranked = [([h for h in hypotheses if not banned_set.intersection(int(t) for t in h.tokens)] or hypotheses)[:top_n]
              for hypotheses in ranked]
    return [list(ranked[i]) for i in inverse]


def _searched_and_ranked(bundle, grid, pairs, neighbours, *, consensus, width, top_n, max_length,
                         length_normalization, block_ngram, banned=(), prefixes=None) -> list[list[Hypothesis]]:
    """The beam search of `caption_concept_sets` over `grid`'s distinct sets and, with a
    consensus index, its re-ranking: per set, its `top_n` hypotheses best first. `neighbours`:
    the index's `nearest_images_batch(pairs)`, a list or a future of one. With `prefixes`, each
    set's captions begin with its words (`beam_search(prefixes=)`, their log-probability included)."""
    decoder = bundle.decoder
    repair = None if consensus is None else inflection_repair(bundle, consensus)

    def searched(grid, beam_width, top_n, prefixes):
        beams = beam_search(decoder, np.zeros((len(grid), 1), np.float32), grid, beam_width=beam_width,
                            max_length=max_length, length_normalization=length_normalization, top_n=top_n,
                            block_ngram=block_ngram, banned_words=banned, prefixes=prefixes)
        beams = _end_stuck(decoder, grid, beams, length_normalization)

        forced = prefixes is not None and any(prefixes)      # (English's first search: all empty)

        def rewrite(row, tokens) -> list[int]:    # German possessives after the prefix, then agreement
            tokens = [int(t) for t in tokens]
            if forced and prefixes[row]:
                tokens = _agreeing_possessives(bundle.vocabulary, tokens, len(prefixes[row]))
            return tokens if repair is None else repair.repaired(tokens)

        if not forced and repair is None:
            return beams
        return _rewritten(decoder, grid, beams, rewrite, length_normalization)

    beams = searched(grid, width, top_n if consensus is None else width, prefixes)
    if consensus is None:
        return beams
    content_words = content_word_ids(bundle.vocabulary)

    def repeat_flags(hypotheses) -> list[bool]:
        return [repeats_a_bigram(h.tokens) or repeats_a_word(h.tokens, content_words) for h in hypotheses]

    repeats_of = [repeat_flags(hypotheses) for hypotheses in beams]
    repeating = [row for row, flags in enumerate(repeats_of) if all(flags)]
    if repeating and WIDER_BEAM > width:
        wider = searched(grid[repeating], WIDER_BEAM, WIDER_BEAM,
                         None if prefixes is None else [prefixes[row] for row in repeating])
        for row, hypotheses in zip(repeating, wider):
            beams[row], repeats_of[row] = hypotheses, repeat_flags(hypotheses)
    reranked = []
    all_scores = consensus.scores_batch(pairs, [[h.tokens for h in hypotheses] for hypotheses in beams],
                                        neighbours=neighbours if isinstance(neighbours, list) else neighbours.result())
    check = invention_check(bundle.vocabulary, concept_lexicon(bundle, consensus))
    for row, (hypotheses, scores, repeats) in enumerate(zip(beams, all_scores, repeats_of)):
        concepts = bundle.synset_vocabulary.decode(grid[row])
        invents = [check is not None and bool(check.invented(h.tokens, concepts)) for h in hypotheses]
        # a caption that invents an object after those that do not, a cut one after finished ones;
        # "a cat on top of a cat" after the captions that say each thing once; ties: the beam's order
        order = sorted(range(len(hypotheses)),
                       key=lambda i: (invents[i], not hypotheses[i].finished, repeats[i], -scores[i], i))
        reranked.append([hypotheses[i] for i in order[:top_n]])
    return reranked


def main_subjects(bundle, concept_sets: list[list[Concept]],
                  min_confidence: float = SUBJECT_TEMPLATE_MIN_CONFIDENCE) -> list[tuple[str, ...]]:
    """Per concept set, its main subjects for the template rule of `caption_texts`: the synsets of
    its concepts at least `min_confidence`, as a concept decoder's bundle reads them (mapped to its
    concept vocabulary: a nuthatch is its "bird"), most confident first; empty where none is.
    Several, since a caption that names any of them names what the photo is of: "a person in a
    blue shirt ..." for a person (0.93) behind a tripod (0.94)."""
    vocabulary, max_concepts = bundle.synset_vocabulary, bundle.config.max_concepts
    mapped = [vocabulary.decode(vocabulary.encode(concepts, max_concepts)) for concepts in concept_sets]
    return [tuple(c.synset for c in sorted(concepts, key=lambda c: -c.confidence) if c.confidence >= min_confidence)
            for concepts in mapped]


def subject_concept(concepts: list[Concept], min_confidence: float | None = None) -> Concept | None:
    """A concept set's main subject: its most confident concept when that is at least
    `min_confidence` (by default `SUBJECT_MIN_CONFIDENCE`; None otherwise, or for an empty set)."""
    min_confidence = SUBJECT_MIN_CONFIDENCE if min_confidence is None else min_confidence
    best = max(concepts, key=lambda c: c.confidence, default=None)
    return best if best is not None and best.confidence >= min_confidence else None


def names_concept(caption: str, synset: str) -> bool:
    """Whether an English caption names a concept: one of the synsets it mentions
    (`caption_concepts`) is the concept or one of its kinds ("a puppy" for the dog, "a man" for
    the person); a more general word does not ("food" for the coffee). The concepts a decoder
    reads are those of its vocabulary, so a nuthatch is its "bird", which "a bird" names."""
    return any(s == synset or synset in ancestors(s) for s in _mentioned(caption))


def _subject_prefix(vocabulary, concepts: list[Concept]) -> list[int] | None:
    """The word ids of the template of a concept set's main subject (`subject_concept`,
    `template_caption`: "a traffic light", "two trucks"), None when it has none or the decoder
    lacks one of its words."""
    subject = subject_concept(concepts)
    words = [] if subject is None else template_caption([subject]).split()
    if not words or any(word not in vocabulary.word_to_id for word in words):
        return None
    return [vocabulary.word_to_id[word] for word in words]


def _naming_the_subject(bundle, grid, pairs, neighbours, ranked, search) -> list[list[Hypothesis]]:
    """English `ranked` candidates (per set of `grid`, best first) with those that name the set's
    main subject first (`subjects_first`); the sets none of whose candidates names it are searched
    again from its name (`beam_search(prefixes=)`, by `search`: `_searched_and_ranked` with the
    first search's settings), and the best caption of that search may come first
    (`subjects_searched`). `neighbours`: the consensus index's for `pairs`."""
    concept_sets = [bundle.synset_vocabulary.decode(cells) for cells in grid]
    ranked, prefixes = subjects_first(bundle.vocabulary, concept_sets, ranked)
    if not prefixes:
        return ranked
    rows = sorted(prefixes)
    searched = search(grid[rows], [pairs[row] for row in rows], [neighbours[row] for row in rows],
                      prefixes=[prefixes[row] for row in rows])
    return subjects_searched(bundle.vocabulary, concept_sets, ranked, dict(zip(rows, searched)))


def subjects_first(vocabulary, concept_sets: list[list[Concept]], ranked: list[list[Hypothesis]]):
    """`(ranked, prefixes)`: per concept set, its English hypotheses with those that name its main
    subject (`subject_concept`, `names_concept`) first, the others in their order; and for each
    set none of whose hypotheses names it, by index, the word ids of its subject's name to search
    from (`_subject_prefix`; none where the decoder lacks one of its words)."""
    result, prefixes = [], {}
    for row, (concepts, hypotheses) in enumerate(zip(concept_sets, ranked)):
        subject = subject_concept(concepts)
        naming = [subject is not None and names_concept(vocabulary.decode(h.tokens), subject.synset)
                  for h in hypotheses]
        result.append([hypotheses[i] for i in sorted(range(len(hypotheses)), key=lambda i: not naming[i])])
        if subject is not None and hypotheses and not any(naming):
            prefix = _subject_prefix(vocabulary, concepts)
            if prefix is not None:
                prefixes[row] = prefix
    return result, prefixes


def subjects_searched(vocabulary, concept_sets: list[list[Concept]], ranked: list[list[Hypothesis]],
                      searched: dict[int, list[Hypothesis]]) -> list[list[Hypothesis]]:
    """`ranked` with, for each set searched again from its subject's name (`searched`, by index),
    the best caption of that search first if it names the subject, invents nothing
    (`invented_concepts`) and its log-probability per token is at most `SUBJECT_MAX_LOSS` below
    the set's first candidate's: "a traffic light on a street" for "a person riding a bike on a
    street" (0.57 lower), not "a wine glass of pizza on a table" for "a pizza sitting on top of a
    table" (1.28)."""
    result = [list(hypotheses) for hypotheses in ranked]
    for row, hypotheses in searched.items():
        subject = subject_concept(concept_sets[row])
        if not hypotheses or not result[row] or subject is None:
            continue
        first = hypotheses[0]
        caption = vocabulary.decode(first.tokens)
        if (names_concept(caption, subject.synset) and not invented_concepts(caption, concept_sets[row])
                and _per_word(result[row][0]) - _per_word(first) <= SUBJECT_MAX_LOSS):
            result[row] = [first, *result[row]]
    return result


def _per_word(hypothesis: Hypothesis) -> float:
    """A hypothesis' natural-log probability per token, its end token included when finished."""
    return float(hypothesis.log_probability) / (len(hypothesis.tokens) + int(hypothesis.finished))


def _agreeing_possessives(vocabulary, tokens: list[int], prefix_length: int) -> list[int]:
    """A caption's word ids, written after a neutral subject of `prefix_length` words
    (`neutral_subject`), with German possessives that agree with it: "Eine Person fährt mit
    seinem Fahrrad" -> "ihrem" (`neutral_possessives`); other languages' unchanged."""
    words = [vocabulary.id_to_word[t] for t in tokens]
    new = neutral_possessives(words, prefix_length, vocabulary.language)
    if new == words or any(word not in vocabulary.word_to_id for word in new):
        return tokens
    return [vocabulary.word_to_id[word] for word in new]


def neutral_hypotheses(vocabulary, beams: list[list[Hypothesis]], order=None) -> list[list[Hypothesis]]:
    """The hypotheses with their words that state a sex rewritten (`helpers.text.languages.
    neutral_words`: "a man riding his bike" -> "a person riding their bike"; English only, others
    are returned as they are), each attention row following its word. Their log-probability and
    score stay the decoder's for the words it wrote.

    Args:
        vocabulary: the decoder's word `Vocabulary`.
        beams: per concept set, its hypotheses.
        order: int array: the result is `[beams[i] for i in order]` (default: all, in order).
    """
    rewrites = _neutral_rewrites(vocabulary.language, tuple(vocabulary.id_to_word))
    order = range(len(beams)) if order is None else order
    if not rewrites:
        return [list(beams[i]) for i in order]
    word_to_id = vocabulary.word_to_id

    def rewritten(hypothesis: Hypothesis) -> Hypothesis:
        words = [vocabulary.id_to_word[int(token)] for token in hypothesis.tokens]
        if not any(word in rewrites for word in words):
            return hypothesis
        new, source = neutral_words(words, rewrites)
        attention = hypothesis.attention
        if attention is not None:        # [steps, L]: a row per token, then <end>'s when finished
            rows = source + list(range(len(words), len(attention)))
            attention = attention[rows]
        return dataclasses.replace(hypothesis, tokens=np.asarray([word_to_id[w] for w in new], np.int32),
                                   attention=attention)

    done = [[rewritten(h) for h in hypotheses] for hypotheses in beams]
    return [list(done[i]) for i in order]


@functools.lru_cache(maxsize=8)
def _neutral_rewrites(language: str, words: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return neutral_rewrites(words, language)


def _repair_inflections(decoder, grid, beams, repair: InflectionRepair | None, length_normalization):
    """Every hypothesis with its inflections repaired (`InflectionRepair.repaired`: "un groupe
    de personnes sont assis" -> "assises"), by `_rewritten`. `beams` unchanged without a repair."""
    if repair is None:
        return beams
    return _rewritten(decoder, grid, beams, lambda row, tokens: repair.repaired(tokens), length_normalization)


def _rewritten(decoder, grid, beams, rewrite, length_normalization):
    """Every hypothesis whose word ids `rewrite(row, tokens) -> list[int]` changes (an agreement
    repaired, a German possessive after a neutral subject), in its place, with its log-probability
    and attention under the decoder (`helpers.predict.decoding.score_captions`, one pass for all
    the changed ones); one that becomes a caption already earlier in its beam is dropped. `beams`
    itself when nothing changes."""
    changed = [(row, i, tokens) for row, hypotheses in enumerate(beams) for i, h in enumerate(hypotheses)
               if (tokens := rewrite(row, h.tokens)) != [int(t) for t in h.tokens]]
    if not changed:
        return beams
    rows = [row for row, _, _ in changed]
    first = beams[rows[0]][changed[0][1]]
    scored = score_captions(decoder, np.zeros((len(rows), 1), np.float32), grid[rows], [t for _, _, t in changed],
                            [beams[row][i].finished for row, i, _ in changed], first.attention is not None,
                            length_normalization)
    result = [list(hypotheses) for hypotheses in beams]
    for (row, i, _), hypothesis in zip(changed, scored):
        result[row][i] = hypothesis
    distinct = []
    for hypotheses in result:
        seen: set[tuple[int, ...]] = set()
        distinct.append([h for h in hypotheses
                         if (key := tuple(int(t) for t in h.tokens)) not in seen and not seen.add(key)])
    return distinct


def _end_stuck(decoder, grid, beams, length_normalization):
    """`helpers.predict.decoding.end_stuck` for concept sets (the pooled input is unused)."""
    return end_stuck(decoder, np.zeros((len(grid), 1), np.float32), grid, beams, length_normalization)


def invented_concepts(caption: str, concepts: list[Concept]) -> frozenset[str]:
    """The `HALLUCINATION_CHECKED` synsets an English caption names that the photo's concepts do
    not support (`helpers.wordnet.concepts.unsupported_concepts`): "a man in a blue shirt" for a
    photo of mountains where the detector found nobody."""
    return unsupported_concepts(_mentioned(caption), [c.synset for c in concepts], HALLUCINATION_CHECKED)


class EnglishCheck:
    """The English rules against invented objects, for word-id captions of `vocabulary`:
    `invented` is `invented_concepts` of the decoded text, `template` is `template_caption`
    (the same interface as `ConceptLexicon`, which gives them to other languages)."""

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary

    def invented(self, tokens, concepts: list[Concept]) -> frozenset[str]:
        return invented_concepts(self.vocabulary.decode(tokens), concepts)

    @staticmethod
    def template(concepts: list[Concept]) -> str:
        return template_caption(concepts)


def invention_check(vocabulary, lexicon: "ConceptLexicon | None" = None) -> "EnglishCheck | ConceptLexicon | None":
    """What checks a decoder's captions against invented objects and writes its template:
    `EnglishCheck` for English (the synset mapper reads it), the decoder's `lexicon` for another
    language, None (no check) for another language without one."""
    return EnglishCheck(vocabulary) if vocabulary.language == "eng" else lexicon


@functools.lru_cache(maxsize=8192)
def _mentioned(caption: str) -> frozenset[str]:
    """The synsets an English caption names (`caption_concepts`), memoised: the beams of an
    album's photos repeat the same sentences ("a man in a blue shirt is standing on a beach")."""
    return frozenset(caption_concepts(caption, _caption_mapper()))


@functools.cache
def _caption_mapper():
    from helpers.wordnet.synsets import SynsetMapper

    return SynsetMapper()


def repeats_a_bigram(tokens) -> bool:
    """Whether a word-id sequence holds some bigram twice ("a cat is sitting on top of a cat",
    "einem blauen Hemd und einem blauen Hemd"): the repetition a beam of an LSTM decoder falls
    into (blocked outright during decoding by Paulus et al. 2018 for trigrams; here such a
    candidate is only ranked after those without one)."""
    tokens = [int(t) for t in tokens]
    bigrams = list(zip(tokens, tokens[1:]))
    return len(set(bigrams)) < len(bigrams)


def content_word_ids(vocabulary) -> np.ndarray:
    """int32 [vocabulary size]: for a content word of `vocabulary` (alphabetic, not one of its
    language's stopwords, `helpers.wordnet.synsets.stopwords`; French "l'" is "l"), the id of its
    word whatever its agreement ending (`helpers.text.inflection.lemma_ids`: "assis" and
    "assises" one word); -1 for the special tokens, punctuation, numbers and stopwords. Computed
    once per language and word list (it stems every word), read-only."""
    return _content_word_ids(vocabulary.language, tuple(vocabulary.id_to_word))


@functools.lru_cache(maxsize=8)
def _content_word_ids(language: str, words: tuple[str, ...]) -> np.ndarray:
    stop = stopwords(language)
    content = np.array([not word.startswith("<") and word.strip("'").isalpha() and word.strip("'").lower() not in stop
                        for word in words], bool)
    ids = np.where(content, lemma_ids(language, words), -1).astype(np.int32)
    ids.flags.writeable = False
    return ids


def gendered_word_ids(vocabulary) -> tuple[int, ...]:
    """The ids of `vocabulary`'s words that state a person's sex and have no neutral rewrite in
    it (`helpers.text.languages.gendered_words`: English "bride", "mother"), which the concept
    decoder's beam search does not generate by default. Computed once per language and word list."""
    return _gendered_word_ids(vocabulary.language, tuple(vocabulary.id_to_word))


@functools.lru_cache(maxsize=8)
def _gendered_word_ids(language: str, words: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(gendered_words(words, language))


def repeats_a_word(tokens, content_words: np.ndarray) -> bool:
    """Whether a word-id sequence names a content word twice, in any of its forms ("a bathroom
    with a toilet and toilet", "in einem weißen Hemd und einem blauen Hemd", "sont assises sur un
    ordinateur portable et un homme assis"), `content_words` as `content_word_ids`: such a
    candidate is ranked after those without one (on coco-mini, CIDEr 0.736 -> 0.742, the held-out
    val2017 photos 0.701 -> 0.719; see the module docstring)."""
    words = [int(content_words[int(t)]) for t in tokens if content_words[int(t)] >= 0]
    return len(set(words)) < len(words)


def load_consensus(bundle) -> "ConsensusIndex | None":
    """The `ConsensusIndex` of a concept decoder's bundle (`CONSENSUS_FILE`, or the JSON of a
    bundle saved before it: `LEGACY_CONSENSUS_FILE`), or None when it has none (trained before
    re-ranking existed, or saved without it).

    Raises:
        ValueError: the file does not belong to the bundle's vocabulary, or is not a consensus index.
    """
    if bundle.path is None:
        return None
    path = next((Path(bundle.path) / name for name in (CONSENSUS_FILE, LEGACY_CONSENSUS_FILE)
                 if (Path(bundle.path) / name).is_file()), None)
    if path is None:
        return None
    index = ConsensusIndex.load(path)
    if index.vocabulary_size != len(bundle.vocabulary):
        raise ValueError(f"{path} was written for a vocabulary of {index.vocabulary_size} words, the bundle's "
                         f"has {len(bundle.vocabulary)}: retrain the run, or delete the file")
    return index


class ConsensusIndex:
    """The training captions a concept decoder's candidates are re-ranked against (consensus
    re-ranking, Devlin et al. 2015; Mao et al. 2015).

    For a photo's concept set q, its neighbours are the `neighbours` training images with the
    largest Jaccard index |q & s| / |q | s| between their sets of concept ids; ties go to the
    image with more concepts whose count agrees (bucketed as 1, 2, 3 and more), so that "two
    dogs" prefers captions of two dogs, then to fewer concepts, then to training order. (Counts
    inside the Jaccard index instead: CIDEr 0.692 against 0.726 on the 159 coco-mini photos.)
    A candidate's score is its mean similarity to their captions, the similarity
    of two token sequences being the mean over n in `CONSENSUS_ORDERS` of the n-gram F-measure
    2 |A_n & B_n| / (|A_n| + |B_n|) (multiset n-grams, clipped counts; 0 where either has none).
    An <unk> of a reference matches nothing.

    Args:
        concept_sets: per training image, its `(concept id, count)` pairs
            (`ConceptVocabulary.concept_id`; ids 0 and 1 are ignored).
        captions: per training image, its captions as word ids without <start> and <end>.
        vocabulary_size: the word vocabulary's size (ids are below it).
        neighbours: training images per photo.

    Raises:
        ValueError: `concept_sets` and `captions` differ in length, or `vocabulary_size` >= 2**15
            (n-grams are packed in int64 keys).
    """

    FORMAT_NAME = "helpers.concepts.ConsensusIndex"
    FORMAT_VERSION = 3          # 2: `aligned` (JSON); 3: NumPy arrays with the n-gram tables (`save`)

    def __init__(self, concept_sets, captions, vocabulary_size: int, neighbours: int = CONSENSUS_NEIGHBOURS,
                 aligned: dict | None = None):
        if len(concept_sets) != len(captions):
            raise ValueError(f"{len(concept_sets)} concept sets for {len(captions)} images' captions")
        per_image = np.array([len(image) for image in captions], np.int64)
        lengths = np.array([len(caption) for image in captions for caption in image], np.int64)
        tokens = np.fromiter((int(t) for image in captions for caption in image for t in caption), np.int64,
                             int(lengths.sum()))
        self._setup(concept_sets, per_image, lengths, tokens, vocabulary_size, neighbours, aligned)

    def _setup(self, concept_sets, per_image, lengths, tokens, vocabulary_size, neighbours, aligned,
               tables: dict | None = None, normalised: bool = False) -> None:
        """Everything but the captions' nested lists (`captions`, built when first read) from the
        flat arrays: `per_image` int64 `[images]` captions per image, `lengths` int64 `[captions]`
        words per caption, `tokens` int64 `[words]` all of them; `tables`: `_ngram_tables` when
        read from a file, else computed; `normalised`: the concept sets are as `save` wrote them."""
        import scipy.sparse

        if not 0 < vocabulary_size < 2 ** 15:
            raise ValueError(f"vocabulary_size must be in [1, 32768), got {vocabulary_size}")
        if tokens.size and not 0 <= int(tokens.min()) <= int(tokens.max()) < vocabulary_size:
            raise ValueError(f"word ids must be in [0, {vocabulary_size})")
        if normalised:            # as `save` wrote them: sorted distinct (id, count) pairs, ids > 1
            self.concept_sets = [[(i, n) for i, n in pairs] for pairs in concept_sets]
        else:
            self.concept_sets = [sorted({(int(i), int(n)) for i, n in pairs if int(i) > 1}) for pairs in concept_sets]
        self.vocabulary_size, self.neighbours = int(vocabulary_size), int(neighbours)
        self.aligned = {str(word): (str(english), float(dice), synset)
                        for word, (english, dice, synset) in (aligned or {}).items()}
        sizes = np.fromiter(map(len, self.concept_sets), np.int64, len(self.concept_sets))
        pairs = np.array([pair for each in self.concept_sets for pair in each], np.int64).reshape(-1, 2)
        if pairs.size and (pairs[:, 0].min() < 2 or pairs[:, 1].min() < 0):
            raise ValueError("concept ids must be > 1 and counts >= 0")
        owner = np.repeat(np.arange(len(sizes)), sizes)

        def incidence(elements):     # [images, elements], 1 where the image has it; and the set sizes
            matrix = scipy.sparse.csr_matrix((np.ones(len(elements), np.float32), (owner, elements)),
                                             shape=(len(sizes), int(elements.max(initial=1)) + 1))
            matrix.sum_duplicates()
            matrix.data[:] = 1
            return matrix.tocsc(), np.diff(matrix.indptr).astype(np.int64)

        self._incidence, self._sizes = incidence(pairs[:, 0])
        self._counted, _ = incidence(4 * pairs[:, 0] + np.clip(pairs[:, 1], 1, 3))    # `_element`
        self._first_caption = np.concatenate([[0], np.cumsum(per_image)])      # image i: its caption rows
        self._lengths, self._tokens = lengths, tokens
        self._orders = self._ngram_tables(tokens, lengths) if tables is None else tables

    def _ngram_tables(self, tokens, lengths) -> dict:
        """Per order n: `(distinct int64 [N] sorted n-gram keys, counts float32 CSR [captions, N],
        float32 [captions] n-grams per caption)`; a reference's <unk> becomes <pad>, which no
        candidate holds, so that it matches nothing."""
        import scipy.sparse

        tokens = np.where(tokens == UNK_ID, PAD_ID, tokens)
        owner = np.repeat(np.arange(len(lengths)), lengths)              # caption of each token
        end = np.concatenate([[0], np.cumsum(lengths)])[1:][owner]        # where that caption ends
        tables = {}
        for n in CONSENSUS_ORDERS:
            starts = np.flatnonzero(np.arange(len(tokens)) + n <= end)   # n-grams inside one caption
            keys = np.zeros(len(starts), np.int64)
            for offset in range(n):
                keys = keys * self.vocabulary_size + tokens[starts + offset]
            distinct, column = np.unique(keys, return_inverse=True)
            counts = scipy.sparse.csr_matrix((np.ones(len(keys), np.float32), (owner[starts], column)),
                                             shape=(len(lengths), len(distinct)))
            counts.sum_duplicates()
            tables[n] = (distinct, counts, np.maximum(lengths - n + 1, 0).astype(np.float32))
        return tables

    @functools.cached_property
    def captions(self) -> list[list[list[int]]]:
        """Per training image, its captions as word ids (without <start> and <end>)."""
        flat = np.split(self._tokens, np.cumsum(self._lengths)[:-1]) if len(self._lengths) else []
        rows = [caption.tolist() for caption in flat]
        return [rows[first:last] for first, last in zip(self._first_caption[:-1], self._first_caption[1:])]

    def ngram_counts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`(keys int64 [N], counts int64 [N])`: the distinct n-grams of the training captions
        (n in `CONSENSUS_ORDERS`; keys as `helpers.text.inflection.ngram_keys`, sorted) and how
        often each occurs, over all captions."""
        distinct, counts, _ = self._orders[n]
        return distinct, np.asarray(counts.sum(axis=0), np.float64).ravel().round().astype(np.int64)

    def _keys(self, tokens, n: int) -> np.ndarray:
        """int64 keys of the n-grams of `tokens` (one per position), ids packed base `vocabulary_size`."""
        return packed_ngrams(tokens, n, self.vocabulary_size)

    @staticmethod
    def _element(concept_id: int, count: int) -> int:
        """The set element of a concept and its count: `4 * id + bucket`, bucket 1, 2 or 3 (3 and more)."""
        return 4 * int(concept_id) + min(max(int(count), 1), 3)

    def nearest_images(self, concepts) -> np.ndarray:
        """int64 `[<= neighbours]`: the training images nearest to a concept set, nearest first.

        Args:
            concepts: `(concept id, count)` rows, e.g. an encoded set `[L, 3]`'s columns 0 and 2
                (ids <= 1 are ignored).
        """
        return self.nearest_images_batch([concepts])[0]

    def nearest_images_batch(self, concept_sets) -> list[np.ndarray]:
        """`nearest_images` of several concept sets, in one sparse product per criterion."""
        import scipy.sparse

        queries = [[(int(i), int(n)) for i, n in concepts if int(i) > 1] for concepts in concept_sets]

        def shared(matrix, element_sets):       # float32 [sets, images]: elements each image shares
            rows, columns = [], []
            for row, elements in enumerate(element_sets):
                known = sorted(e for e in elements if e < matrix.shape[1])
                rows += [row] * len(known)
                columns += known
            query = scipy.sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, columns)),
                                            shape=(len(element_sets), matrix.shape[1]))
            return (query @ matrix.T).toarray()

        ids = [{i for i, _ in query} for query in queries]
        common = shared(self._incidence, ids)
        agreeing = shared(self._counted, [{self._element(i, n) for i, n in query} for query in queries])
        union = self._sizes[None, :] + np.array([len(each) for each in ids])[:, None] - common
        jaccard = np.divide(common, union, out=np.zeros(common.shape), where=union > 0)
        k = min(self.neighbours, jaccard.shape[1])
        if k == 0:
            return [np.zeros(0, np.int64) for _ in queries]
        # per set, the images at least as near as its k-th nearest, then the exact order among
        # them (all sets at once: sorted by set first), then its first k
        # (a full sort, not np.partition: with the few distinct Jaccard values of real sets,
        # introselect took 16 ms for 14 sets of 12,491 images, sorting 1.5 ms)
        threshold = np.sort(jaccard, axis=1)[:, -k]                                # (sets,)
        rows, near = np.nonzero(jaccard >= threshold[:, None])
        order = np.lexsort((near, self._sizes[near], -agreeing[rows, near], -jaccard[rows, near], rows))
        rows, near = rows[order], near[order].astype(np.int64)
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)                   # within its set
        return np.split(near[rank < k], np.cumsum(np.bincount(rows[rank < k], minlength=len(queries)))[:-1])

    def scores(self, concepts, candidates) -> np.ndarray:
        """float64 `[len(candidates)]`: each candidate's mean similarity (in [0, 1]) to the
        captions of the nearest training images of `concepts` (class docstring).

        Args:
            concepts: the photo's `(concept id, count)` rows (`nearest_images`).
            candidates: word-id sequences without <start> and <end>.
        """
        return self.scores_batch([concepts], [candidates])[0]

    def scores_batch(self, concept_sets, candidate_lists, neighbours=None) -> list[np.ndarray]:
        """`scores` of several photos' candidates; the n-grams of all of them are matched
        against those of their neighbours' captions at once (sorted joins, no Python loop over
        candidates or n-grams). `neighbours`: `nearest_images_batch(concept_sets)` when it is
        already known."""
        per_photo = [len(candidates) for candidates in candidate_lists]
        total = np.zeros(sum(per_photo))
        if not total.size:
            return [np.zeros(n) for n in per_photo]
        if neighbours is None:
            neighbours = self.nearest_images_batch(concept_sets)
        # the reference captions: photo p's are its neighbours' captions, numbered 0.. within p
        references = [np.concatenate([np.arange(self._first_caption[i], self._first_caption[i + 1]) for i in images]
                                     + [np.zeros(0, np.int64)]).astype(np.int64) for images in neighbours]
        reference_photo = np.repeat(np.arange(len(references)), [len(r) for r in references])
        reference_rows = np.concatenate(references)
        reference_counts = np.array([len(r) for r in references], np.int64)
        reference_first = np.concatenate([[0], np.cumsum(reference_counts)])[:-1]     # per photo
        candidate_photo = np.repeat(np.arange(len(per_photo)), per_photo)
        flat = [np.asarray(tokens, np.int64) for candidates in candidate_lists for tokens in candidates]
        for n in CONSENSUS_ORDERS:
            distinct, counts, lengths = self._orders[n]
            # the references' n-grams: (photo, column) -> (reference, count); sorted by that key
            starts, ends = counts.indptr[reference_rows], counts.indptr[reference_rows + 1]
            sizes = ends - starts
            entries = np.repeat(ends - np.cumsum(sizes), sizes) + np.arange(sizes.sum())
            owner = np.repeat(np.arange(len(reference_rows)), sizes)              # global reference
            width = max(len(distinct), 1)
            reference_key = reference_photo[owner] * width + counts.indices[entries]
            order = np.argsort(reference_key, kind="stable")
            reference_key, owner = reference_key[order], owner[order]
            reference_count = counts.data[entries][order]
            # the candidates' n-grams known to the references' vocabulary of n-grams, with counts
            grams = [self._keys(tokens, n) for tokens in flat]
            keys = np.concatenate(grams + [np.zeros(0, np.int64)])
            gram_owner = np.repeat(np.arange(len(flat)), [len(g) for g in grams])
            column = np.searchsorted(distinct, keys)
            known = column < len(distinct)
            known[known] = distinct[column[known]] == keys[known]
            pair, count = np.unique(gram_owner[known] * width + column[known], return_counts=True)
            candidate, column = pair // width, pair % width
            key = candidate_photo[candidate] * width + column
            low = np.searchsorted(reference_key, key, "left")
            high = np.searchsorted(reference_key, key, "right")
            matches = high - low                                   # references holding each n-gram
            which = np.repeat(high - np.cumsum(matches), matches) + np.arange(matches.sum())
            pair_candidate = np.repeat(candidate, matches)
            clipped = np.minimum(np.repeat(count, matches), reference_count[which])
            local = owner[which] - reference_first[candidate_photo[pair_candidate]]   # within its photo
            most = int(reference_counts.max())
            overlap = np.bincount(pair_candidate * most + local, weights=clipped,
                                  minlength=len(flat) * most).reshape(len(flat), most)
            candidate_lengths = np.array([max(len(tokens) - n + 1, 0) for tokens in flat], np.float64)
            # F-measure against every reference of the candidate's photo (padded to `most`), mean over them
            reference_lengths = np.zeros((len(references), most))
            reference_lengths[reference_photo, np.arange(len(reference_rows)) - reference_first[reference_photo]] = (
                lengths[reference_rows])
            present = (np.arange(most)[None, :] < reference_counts[:, None])[candidate_photo]     # (candidates, most)
            denominator = candidate_lengths[:, None] + reference_lengths[candidate_photo]
            similarity = np.where(present & (denominator > 0), 2 * overlap / np.maximum(denominator, 1), 0)
            total += similarity.sum(axis=1) / np.maximum(reference_counts[candidate_photo], 1)
        total /= len(CONSENSUS_ORDERS)
        return np.split(total, np.cumsum(per_photo)[:-1])

    @classmethod
    def from_training(cls, concept_sets, captions, concept_vocabulary, vocabulary,
                      aligned: dict | None = None) -> "ConsensusIndex":
        """The index of training images: `concept_sets[i]` their `Concept`s (mapped with
        `concept_vocabulary.concept_id`), `captions[i]` their caption texts (encoded with
        `vocabulary`, unknown words as <unk>); for captions in another language than English,
        `aligned`: `{word: (English word, Dice, its synset or None)}`
        (`helpers.text.alignment.aligned_words` of the parallel training captions)."""
        pairs = [[(concept_vocabulary.concept_id(c.synset), c.count) for c in concepts] for concepts in concept_sets]
        encoded = [[vocabulary.encode(caption)[1:-1] for caption in image] for image in captions]
        return cls([[(i, n) for i, n in each if i is not None] for each in pairs], encoded, len(vocabulary),
                   aligned=aligned)

    def save(self, path) -> Path:
        """Write the index (atomically) as NumPy arrays in one `.npz` file
        (`CONSENSUS_FILE`): the training images' concept sets and captions, flat, and the
        n-gram tables of `CONSENSUS_ORDERS` built from them, so that `load` builds nothing
        (0.6 s for the 62,473 English captions from JSON; `load` also reads version 1 and 2
        JSON files). No object arrays: `load` reads it with `allow_pickle=False`."""
        import io

        from helpers.data.versioned_json import replace_atomically

        concept_sizes = np.array([len(pairs) for pairs in self.concept_sets], np.int64)
        pairs = np.array([pair for each in self.concept_sets for pair in each], np.int64).reshape(-1, 2)
        arrays = {"format": np.array(self.FORMAT_NAME), "format_version": np.array(self.FORMAT_VERSION),
                  "vocabulary_size": np.array(self.vocabulary_size), "neighbours": np.array(self.neighbours),
                  "concept_sizes": concept_sizes, "concept_pairs": pairs,
                  "captions_per_image": np.diff(self._first_caption), "caption_lengths": self._lengths,
                  "tokens": self._tokens.astype(np.int16),
                  "aligned": np.array(json.dumps({w: list(e) for w, e in self.aligned.items()}, ensure_ascii=False))}
        for n, (distinct, counts, _) in self._orders.items():
            if counts.nnz and counts.data.max() > np.iinfo(np.uint16).max:
                raise ValueError("an n-gram occurs more than 65,535 times in one caption")
            arrays.update({f"ngrams{n}_keys": distinct, f"ngrams{n}_indptr": counts.indptr.astype(np.int64),
                           f"ngrams{n}_columns": counts.indices.astype(np.int32),
                           f"ngrams{n}_counts": counts.data.astype(np.uint16)})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(Path(os.path.realpath(path)), buffer.getvalue())     # through a symbolic link
        return path

    @classmethod
    def load(cls, path) -> "ConsensusIndex":
        """Read a file written by `save` (NumPy arrays read with `allow_pickle=False`), or by an
        earlier version as JSON: reading either runs no code.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a consensus index, a newer version, or inconsistent arrays.
        """
        import zipfile

        import scipy.sparse

        path = Path(path)
        with open(path, "rb") as file:
            is_npz = file.read(2) == b"PK"
        if not is_npz:          # versions 1 and 2: JSON
            data = read_versioned_json(path, cls.FORMAT_NAME, cls.FORMAT_VERSION, "ConsensusIndex")
            return cls(data["concept_sets"], data["captions"], data["vocabulary_size"], data["neighbours"],
                       aligned=data.get("aligned"))          # version 1: none
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path} cannot be read as a consensus index ({error}); retrain the run") from error
        name, version = str(arrays.get("format", "")), int(arrays.get("format_version", -1))
        if name != cls.FORMAT_NAME:
            raise ValueError(f"{path} is not a ConsensusIndex (format {name!r})")
        if version > cls.FORMAT_VERSION:
            raise ValueError(f"{path} is a ConsensusIndex of version {version}, newer than this code reads "
                             f"({cls.FORMAT_VERSION}): update the project")
        try:
            sizes, pairs = arrays["concept_sizes"], arrays["concept_pairs"]
            per_image = arrays["captions_per_image"].astype(np.int64)
            lengths = arrays["caption_lengths"].astype(np.int64)
            tokens = arrays["tokens"].astype(np.int64)
            if (sizes.sum() != len(pairs) or per_image.sum() != len(lengths) or lengths.sum() != len(tokens)
                    or len(per_image) != len(sizes) or min(sizes.min(initial=0), lengths.min(initial=0)) < 0):
                raise ValueError("the arrays' sizes disagree")
            index = cls.__new__(cls)
            vocabulary_size = int(arrays["vocabulary_size"])
            tables = {}
            for n in CONSENSUS_ORDERS:
                keys, indptr = arrays[f"ngrams{n}_keys"], arrays[f"ngrams{n}_indptr"]
                columns, counts = arrays[f"ngrams{n}_columns"], arrays[f"ngrams{n}_counts"]
                if len(indptr) != len(lengths) + 1 or indptr[-1] != len(columns) != len(counts) or (
                        columns.size and columns.max() >= len(keys)):
                    raise ValueError(f"the {n}-gram table disagrees with the captions")
                table = scipy.sparse.csr_matrix((counts.astype(np.float32), columns, indptr),
                                                shape=(len(lengths), len(keys)))
                tables[n] = (keys.astype(np.int64), table, np.maximum(lengths - n + 1, 0).astype(np.float32))
            flat_pairs, bounds = pairs.tolist(), np.concatenate([[0], np.cumsum(sizes)]).tolist()
            concept_sets = [flat_pairs[first:last] for first, last in zip(bounds[:-1], bounds[1:])]
            index._setup(concept_sets, per_image, lengths, tokens, vocabulary_size, int(arrays["neighbours"]),
                         json.loads(str(arrays["aligned"])), tables, normalised=True)
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a valid consensus index ({error}); retrain the run") from error
        return index


# Words of the templates in other languages (`ConceptLexicon.template`): the indefinite articles, the
# numbers, "several" (more than ten) and "and"; and `determiners`: the singular determiners that
# show a noun's gender, each with the indefinite article of that gender (nominative), for
# `ConceptLexicon.article`. Determiners that do not show it are left out: French "l'", "les",
# "des"; German "der" (masculine, or feminine dative), "die" (feminine, or any plural), "den".
# `capitalised_nouns`, for a language whose nouns are capitalised: how to find a determiner's noun.
TEMPLATE_WORDS: dict[str, dict] = {
    "fra": {"articles": ("un", "une"), "and": "et", "many": "plusieurs",
            "numbers": {2: "deux", 3: "trois", 4: "quatre", 5: "cinq", 6: "six", 7: "sept", 8: "huit",
                        9: "neuf", 10: "dix"},
            "determiners": {"un": "un", "le": "un", "du": "un", "au": "un", "une": "une", "la": "une"}},
    "deu": {"articles": ("ein", "eine"), "and": "und", "many": "mehrere",
            "numbers": {2: "zwei", 3: "drei", 4: "vier", 5: "fünf", 6: "sechs", 7: "sieben", 8: "acht",
                        9: "neun", 10: "zehn"},
            "determiners": {"ein": "ein", "einen": "ein", "einem": "ein", "eines": "ein", "das": "ein",
                            "dem": "ein", "des": "ein", "eine": "eine", "einer": "eine"},
            # nouns are capitalised: a concept's word is one (not "orangefarbenen" for oranges), and
            # a determiner's noun is the first one after at most 2 declined adjectives ("einer
            # großen Trommel"); without it, a determiner's noun is the next word
            "capitalised_nouns": {"adjectives_skipped": 2, "adjective_endings": ("e", "en", "em", "er", "es")}},
}


class ConceptLexicon:
    """Which words of a concept decoder's language name which of the `HALLUCINATION_CHECKED`
    concepts, learnt from its own training pairs: the caption text and the concept sets of its
    `ConsensusIndex` (for French and German, the concepts of each description's parallel English
    sentence). No dictionary and no translation.

    A training image has a checked concept c when its set holds c or a concept below it ("water
    bottle" is a bottle). A word w *names* c when it is on at least `LEXICON_MIN_IMAGES` training
    images and removes most of the doubt about c: `(P(c | w) - P(c)) / (1 - P(c)) >=
    LEXICON_MIN_CERTAINTY`, the rarest such c when there are several. On Multi30K, where 83 % of
    the descriptions show a person: "homme" (P = 0.99), "femme" and "Mann" name the person, "chien"
    and "Hund" the dog, "vélo" the bicycle and not its rider; "trottoir" (P(person) = 0.95, a
    certainty of 0.71) names nothing. A word that always goes with a person names one too
    ("chemise", a shirt): a caption that holds it speaks of someone. For a concept most images
    show (`LEXICON_ALIGNED_MIN_PRIOR`: the person), so does a word aligned with one of its English
    words (`ConsensusIndex.aligned`, `helpers.text.alignment`) when the images agree with a
    certainty of `LEXICON_ALIGNED_MIN_CERTAINTY`: "Person" goes with a person on only 95 % of the
    German descriptions (the English side says "a climber", "someone"), fewer than "Bürgersteig"
    does, but it is aligned with "person".

    It gives the English rules of `caption_concept_sets` and `caption_texts` to other languages:
    `invented` is `invented_concepts` (a French caption "Un homme ..." for a photo of mountains
    invents a person), and `template` is `template_caption` ("Un chat et deux chiens").

    Args:
        index: the decoder's `ConsensusIndex`.
        concept_vocabulary: the decoder's `ConceptVocabulary`.
        vocabulary: the decoder's word `Vocabulary` (its language chooses `TEMPLATE_WORDS`).
    """

    def __init__(self, index: "ConsensusIndex", concept_vocabulary, vocabulary):
        import scipy.sparse

        from helpers.wordnet.hierarchy import ancestors

        self.concept_vocabulary, self.vocabulary = concept_vocabulary, vocabulary
        synsets = [concept_vocabulary.synset(i) for i in range(2, concept_vocabulary.num_ids)]
        column = {synset: j for j, synset in enumerate(synsets)}
        checked = np.array([synset in HALLUCINATION_CHECKED for synset in synsets])
        # concept id -> the vocabulary's concepts it is or is below ("water bottle": a bottle)
        under = {i: [column[a] for a in {synset, *ancestors(synset)} if a in column]
                 for i, synset in enumerate(synsets, start=2)}
        images = len(index.captions)

        def incidence(sets, width):       # float32 [images, width], 1 where image i has element j
            rows = np.repeat(np.arange(images), [len(each) for each in sets])
            columns = np.array([j for each in sets for j in each], np.int64)
            return scipy.sparse.csr_matrix((np.ones(len(columns), np.float32), (rows, columns)),
                                           shape=(images, width))

        def concept_columns(pairs, below=True, several=False):
            return sorted({j for i, n in pairs if not several or n >= 2
                           for j in (under.get(i, ()) if below else [i - 2])})

        words = incidence([sorted({t for caption in image for t in caption}) for image in index.captions],
                          index.vocabulary_size)
        on_images = np.asarray(words.sum(axis=0)).ravel()                                   # (V,)

        def sure_and_rarest(concepts, allowed):
            """bool (V, C): the concept each word names (the rarest it is sure of, among `allowed`),
            float (V, C) the images each word shares with each concept, and its certainty."""
            together = (words.T @ concepts).toarray()                                       # (V, C)
            prior = np.asarray(concepts.sum(axis=0)).ravel() / max(images, 1)               # (C,) P(c)
            certainty = (together / np.maximum(on_images, 1)[:, None] - prior) / np.maximum(1 - prior, 1e-9)
            sure = (on_images[:, None] >= LEXICON_MIN_IMAGES) & (certainty >= LEXICON_MIN_CERTAINTY) & allowed
            sure[:4] = False                                                                # <pad> ... <unk>
            best = np.argmin(np.where(sure, prior[None, :], np.inf), axis=1)
            return sure & (np.arange(len(synsets))[None, :] == best[:, None]), together, (certainty, prior)

        # the check: a COCO category or anything below it ("chemise", a shirt with a person in it,
        # names a person; "bouteille" counts the water bottles as bottles)
        named, _, (certainty, prior) = sure_and_rarest(
            incidence([concept_columns(p) for p in index.concept_sets], len(synsets)), checked[None, :])
        self.named = {int(w): synsets[int(np.argmax(named[w]))] for w in np.flatnonzero(named.any(axis=1))}
        # a word aligned with an English word of a checked concept most images show names it when
        # the images agree, with less certainty ("Person", "Frauen": P(person | word) is only 0.95
        # and 0.97 where 86 % of the images show one)
        self.aligned = index.aligned
        self.translations: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
        self._english_forms: dict[str, set[str]] = collections.defaultdict(set)    # lemma -> forms aligned
        for word, (english, dice, synset) in index.aligned.items():
            self.translations[english].append((dice, word))
            self._english_forms[_english_lemma(english)].add(english)
            concept, word_id = _checked_concept(synset), vocabulary.word_to_id.get(word)
            if (concept in column and word_id is not None and word_id not in self.named
                    and prior[column[concept]] >= LEXICON_ALIGNED_MIN_PRIOR
                    and certainty[word_id, column[concept]] >= LEXICON_ALIGNED_MIN_CERTAINTY):
                self.named[word_id] = concept
        # a concept's word, for one of it and for several: of the words that name that very concept
        # (not one below it: "Strand", a beach, is not the word of a geological formation), the
        # one on most images with one (several) of it ("Katze", "Hunde")
        names, together, _ = sure_and_rarest(incidence([concept_columns(p, False) for p in index.concept_sets],
                                                    len(synsets)), np.ones((1, len(synsets)), bool))
        with_several = (words.T @ incidence([concept_columns(p, False, True) for p in index.concept_sets],
                                            len(synsets))).toarray()
        self.word = {}
        self.words = TEMPLATE_WORDS.get(vocabulary.language)
        self._nouns = (self.words or {}).get("capitalised_nouns")
        if self._nouns:                        # a concept's word is a noun
            names &= np.array([word[:1].isupper() for word in vocabulary.id_to_word])[:, None]
        for j in np.flatnonzero(names.any(axis=0)):
            candidates = np.flatnonzero(names[:, j])
            for plural, counts in ((False, together[:, j] - with_several[:, j]), (True, with_several[:, j])):
                if counts[candidates].max() > 0:
                    best = int(candidates[np.argmax(counts[candidates])])
                    self.word[synsets[j], plural] = vocabulary.id_to_word[best]
        # each word's indefinite article: the one of the gender its determiners show most often
        self.article = {}
        if self.words is not None:
            determiners = {vocabulary.word_to_id[d]: article for d, article in self.words["determiners"].items()
                           if d in vocabulary.word_to_id}
            votes = collections.Counter(
                (noun, determiners[caption[i]]) for image in index.captions for caption in image
                for i in range(len(caption) - 1) if caption[i] in determiners
                for noun in [self._noun_after(caption, i, determiners)] if noun is not None)
            for (word, article), count in votes.most_common():
                if count >= 2:          # once may be a slip of the text: "un herbe"
                    self.article.setdefault(vocabulary.id_to_word[word], article)

    def _noun_after(self, caption, i: int, determiners) -> int | None:
        """The word a determiner at `caption[i]` goes with: the next word; in a language whose
        nouns are capitalised (`TEMPLATE_WORDS`, German), the next noun after at most a few
        declined adjectives ("einer großen Trommel"), None when there is no such noun."""
        if not self._nouns:
            return int(caption[i + 1])
        for word_id in caption[i + 1:i + 2 + self._nouns["adjectives_skipped"]]:
            word = self.vocabulary.id_to_word[int(word_id)]
            if word[:1].isupper():
                return int(word_id)
            if int(word_id) in determiners or not word.endswith(self._nouns["adjective_endings"]):
                return None
        return None

    def concepts_named(self, tokens) -> frozenset[str]:
        """The synset names of the checked concepts a caption (word ids) names."""
        return frozenset(self.named[int(t)] for t in tokens if int(t) in self.named)

    def invented(self, tokens, concepts: list[Concept]) -> frozenset[str]:
        """`invented_concepts` for a caption of word ids: the checked concepts it names that the
        photo's `concepts` do not support (`unsupported_concepts`)."""
        return unsupported_concepts(self.concepts_named(tokens), [c.synset for c in concepts], HALLUCINATION_CHECKED)

    def name(self, concept: Concept) -> tuple[str | None, bool]:
        """A concept's word here (None: none) and whether it is a plural.

        One of it: its keyword in the Open Multilingual Wordnet of the language when that is
        installed and the training captions use it (French: "formation", "arme";
        `helpers.wordnet.keywords.keyword`), else the word aligned with its English name
        (`translation`: German "Behälter", "Waffe"), else the lexicon's word for its concept in the
        decoder's vocabulary (itself or its nearest hypernym there): what the training captions
        of that concept say most often, which can be one kind of it (German "Strand", a beach,
        for a geological formation); else the wordnet's keyword all the same ("expresso"; not
        "tracheobionta", the only French lemma of a vascular plant, when the lexicon says
        "herbe"). Several of it: the lexicon's plural ("chiens") when it has one; otherwise the
        singular, which the template then writes as one ("un mouton", not "trois mouton").
        """
        known = self.concept_vocabulary.concept_id(concept.synset)        # itself or its nearest hypernym
        synset = None if known is None else self.concept_vocabulary.synset(known)
        if concept.count >= 2:
            plural = self.translation(concept.synset, plural=True) or self.word.get((synset, True))
            if plural is not None and not self._singular(plural):
                return plural, True
        wordnet_word = None
        if self.vocabulary.language in available_languages():
            from helpers.wordnet.keywords import keyword

            wordnet_word = keyword(concept.synset, self.vocabulary.language)
            if wordnet_word in self.vocabulary.word_to_id:
                return wordnet_word, False
        translated = self.translation(concept.synset)
        if translated is not None:
            return translated, False
        return self.word.get((synset, False)) or wordnet_word, False

    def translation(self, synset: str, plural: bool = False) -> str | None:
        """The word of the decoder's vocabulary best aligned (`ConsensusIndex.aligned`) with the
        English name of `synset` (`concept_name`: "container" -> "Behälter", "weapon" -> "Waffe"),
        else with the last word of a name of several when a sense of that word is above it
        ("dining table" -> "Tisch"; "boston bull", a dog, is no "taureau"); with `plural`, with their
        English plurals ("people" -> "personnes"). A singular word aligned with "sheep" is not
        its plural, nor the reverse. None: no such word."""
        from nltk.corpus import wordnet

        from helpers.wordnet.hierarchy import ancestors

        name = concept_name(synset)
        head = name.split()[-1]
        names = [name]
        if head != name and {s.name() for s in wordnet.synsets(head, wordnet.NOUN)} & ancestors(synset):
            names.append(head)
        for english in names:
            for _, word in sorted(self.translations.get(_plural(english) if plural else english, ()), reverse=True):
                if word in self.vocabulary.word_to_id and self._singular(word) != plural:
                    return word
        return None

    def _singular(self, word: str) -> bool | None:
        """Whether `word` is aligned with a singular English noun ("homme": "man", whose plural
        "men" is aligned too), a plural one ("hommes": "men"), or either (None: "moutons",
        "sheep"; or not aligned). By WordNet's morphy of the English words."""
        english = self.aligned.get(word, (None,))[0]
        if english is None:
            return None
        if english == _plural("person"):          # WordNet's lemma "people" (a people) is no plural
            return False
        lemma = _english_lemma(english)
        if lemma != english:
            return False
        return True if self._english_forms[lemma] - {english} else None

    def template(self, concepts: list[Concept]) -> str | None:
        """`template_caption` in the decoder's language: the `TEMPLATE_CONCEPTS` most confident
        concepts that have a `name` here, with the indefinite article of their gender or their
        number: "Un chat et deux chiens". A word's gender is the one its singular determiners
        (`TEMPLATE_WORDS`: "la formation", "einer Trommel") show most often in the training
        captions ("Eine Katze und zwei Hunde"); a word whose gender is shown fewer than twice
        takes no article. None when the language has no `TEMPLATE_WORDS` or no concept
        has a name (the decoder's own caption then stays first)."""
        from helpers.text.languages import detokenize

        if self.words is None:
            return None
        parts, seen = [], set()
        for concept in concepts:
            word, plural = self.name(concept)
            if word is None or word in seen:
                continue
            seen.add(word)
            first = (self.words["numbers"].get(concept.count, self.words["many"]) if plural
                     else self.article.get(word))
            parts.append(([first] if first else []) + [word])
            if len(parts) == TEMPLATE_CONCEPTS:
                break
        if not parts:
            return None
        tokens = list(parts[0])
        for i, part in enumerate(parts[1:], start=1):
            tokens += ["," if i < len(parts) - 1 else self.words["and"], *part]
        return detokenize(tokens, self.vocabulary.language)


@functools.lru_cache(maxsize=None)
def _english_lemma(word: str) -> str:
    """WordNet's noun lemma of an English word ("men" -> "man"), the word itself when it has none."""
    from nltk.corpus import wordnet

    return wordnet.morphy(word, wordnet.NOUN) or word


def _checked_concept(synset: str | None) -> str | None:
    """The `HALLUCINATION_CHECKED` concept a synset is or is a kind of (the most specific one:
    "woman" -> person), or None."""
    from helpers.wordnet.hierarchy import ancestors

    if synset is None:
        return None
    lineage = [a for a in (synset, *ancestors(synset)) if a in HALLUCINATION_CHECKED]
    return max(lineage, key=lambda a: len(ancestors(a)), default=None)


_LEXICONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_REPAIRS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def inflection_repair(bundle, consensus: "ConsensusIndex | None") -> InflectionRepair | None:
    """The `helpers.text.inflection.InflectionRepair` of a concept decoder, learnt from the
    training captions of its consensus index (built once per index, cached), or None: no index, or
    a language the repair leaves alone (`REPAIRED_LANGUAGES`: English)."""
    if consensus is None or bundle.vocabulary.language not in REPAIRED_LANGUAGES:
        return None
    if consensus not in _REPAIRS:
        ngrams = {n: consensus.ngram_counts(n) for n in (2, REPAIR_ORDER)}
        _REPAIRS[consensus] = InflectionRepair(bundle.vocabulary, ngrams,
                                               fixed_words=stopwords(bundle.vocabulary.language))
    return _REPAIRS[consensus]


def concept_lexicon(bundle, consensus: "ConsensusIndex | None") -> ConceptLexicon | None:
    """The `ConceptLexicon` of a concept decoder in a language other than English (built once per
    consensus index, cached), or None: English (the synset mapper reads it) or no index."""
    if consensus is None or bundle.vocabulary.language == "eng":
        return None
    if consensus not in _LEXICONS:
        _LEXICONS[consensus] = ConceptLexicon(consensus, bundle.synset_vocabulary, bundle.vocabulary)
    return _LEXICONS[consensus]
