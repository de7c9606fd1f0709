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

Captions in the album's language: a decoder per language (`languages`: "fra", "deu", trained on
Multi30K), chosen by `predict(lang=...)` with the keywords; a language without one gets the main
(English) decoder's captions, and the captioner says so once.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from helpers.predict.decoding import Hypothesis, beam_search, check_lengths
from helpers.predict.prediction import DETECTION_MIN_SCORE, Keyword, Prediction
from helpers.wordnet.concepts import Concept, predicted_concepts
from helpers.wordnet.keywords import available_languages

CONCEPT_KEYWORDS = 5       # hierarchy keywords (English, the tagger's own rule) that become concepts
CAPTION_BATCH = 256        # concept sets per beam search: its cost is mostly per step, not per row


class ConceptCaptioner:
    """The pretrained tagger with a concept decoder: keywords *and* captions for real photos.

    Args:
        tagger: a `helpers.predict.fused.PretrainedTagger`.
        bundle: a concept decoder's `helpers.bundle.Bundle` (`bundle.is_concept_decoder`).
        max_length: generated tokens per caption at most, <end> included (default: the run's
            `max_caption_length - 1`).
        length_normalization: alpha of the GNMT length penalty used to rank captions.

    Raises:
        ValueError: the bundle is not a concept decoder's.
    """

    def __init__(self, tagger, bundle, max_length: int | None = None, length_normalization: float = 0.0,
                 languages: dict | None = None):
        for each in (bundle, *(languages or {}).values()):
            if not each.is_concept_decoder:
                raise ValueError(f"{each.path} is a {each.config.decoder} decoder over photos, not a concept "
                                 f"decoder; load it with helpers.predict.predictors.Captioner")
        self.tagger, self.bundle = tagger, bundle
        self.bundles = {bundle.vocabulary.language: bundle, **(languages or {})}   # language -> decoder
        self._said: set[str] = set()
        self.max_length = int(max_length or bundle.config.max_caption_length - 1)
        self.length_normalization = float(length_normalization)
        self.default_min_proba = tagger.default_min_proba
        self.synset_names = tagger.synset_names

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the tagger's fingerprint, the decoder bundle's files and the decoding settings."""
        digest = hashlib.sha256(self.tagger.fingerprint.encode())
        for language, bundle in sorted(self.bundles.items()):
            digest.update(language.encode())
            if bundle.path is not None:
                for name in sorted(p.name for p in Path(bundle.path).iterdir() if p.is_file()):
                    digest.update(name.encode() + b"\0" + (Path(bundle.path) / name).read_bytes())
        digest.update(f"concepts;max_length={self.max_length};alpha={self.length_normalization}".encode())
        return digest.hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int | None = 5, min_proba: float | None = None,
                        lang: str = "eng") -> list[Keyword]:
        """The tagger's keyword rule (`PretrainedTagger.select_keywords`)."""
        return self.tagger.select_keywords(synset_probabilities, nb_keywords, min_proba, lang)

    def concepts(self, prediction: Prediction) -> list[Concept]:
        """The concepts of a photo's prediction, as the decoder reads them: detected categories
        (count, best score) and `CONCEPT_KEYWORDS` English keyword synsets of the tagger's rule."""
        keywords = self.tagger.select_keywords(prediction.synset_probabilities, CONCEPT_KEYWORDS, None, "eng")
        return predicted_concepts(prediction.detections, [(synset, p) for synset, _, p in keywords],
                                  DETECTION_MIN_SCORE)

    def decoder_for(self, lang: str = "eng"):
        """The bundle that writes captions in `lang`: its own decoder, else the main one (said once)."""
        if lang in self.bundles:
            return self.bundles[lang]
        main = self.bundle.vocabulary.language
        if lang not in self._said:
            self._said.add(lang)
            print(f"no caption decoder in {lang} (train one: python -m helpers train --run concepts-{lang} "
                  f"--data-dir caption-text --language {lang}): captions in {main}", file=sys.stderr)
        return self.bundle

    def caption_concepts(self, concept_sets: list[list[Concept]], beam_width: int = 3,
                         top_n: int = 1, lang: str = "eng") -> list[list[Hypothesis]]:
        """Beam-search captions of concept sets in `lang` (`caption_concept_sets` with this
        captioner's settings and `decoder_for(lang)`); decode them with that bundle's vocabulary."""
        return caption_concept_sets(self.decoder_for(lang), concept_sets, beam_width, top_n, self.max_length,
                                    self.length_normalization)

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
        keyword_lang = lang
        if lang not in available_languages():   # German: captions, but no wordnet for its keywords here
            keyword_lang = "eng"
            if f"keywords-{lang}" not in self._said:
                self._said.add(f"keywords-{lang}")
                print(f"no Open Multilingual Wordnet in {lang} here: keywords in English, captions in {lang}",
                      file=sys.stderr)
        predictions = self.tagger.predict(images, nb_keywords=nb_keywords, min_proba=min_proba, lang=keyword_lang,
                                          batch_size=batch_size, progress=progress)
        if not captions:
            return predictions
        readable = [p for p in predictions if p.ok]
        vocabulary = self.decoder_for(lang).vocabulary if readable else None
        for start in range(0, len(readable), CAPTION_BATCH):
            batch = readable[start:start + CAPTION_BATCH]
            beams = self.caption_concepts([self.concepts(p) for p in batch], beam_width, top_n, lang)
            for prediction, hypotheses in zip(batch, beams):
                prediction.hypotheses = hypotheses
                prediction.captions = [(vocabulary.decode(h.tokens), h.log_probability) for h in hypotheses]
        return predictions


def caption_concept_sets(bundle, concept_sets: list[list[Concept]], beam_width: int = 3, top_n: int = 1,
                         max_length: int | None = None, length_normalization: float = 0.0) -> list[list[Hypothesis]]:
    """Captions of concept sets by a concept decoder's bundle, all sets in one beam search.

    Args:
        bundle: a concept decoder's `helpers.bundle.Bundle`.
        concept_sets: per photo, its `Concept`s (any synsets: each maps to its nearest vocabulary
            concept, itself or a hypernym; those with none are left out).
        beam_width, top_n, length_normalization: as `helpers.predict.decoding.beam_search`.
        max_length: generated tokens at most (default: the run's `max_caption_length - 1`).

    Returns:
        Per set, its hypotheses best first (`Hypothesis.tokens` decode with `bundle.vocabulary`).
    """
    if not concept_sets:
        return []
    vocabulary, config = bundle.synset_vocabulary, bundle.config
    grid = np.stack([vocabulary.encode(concepts, config.max_concepts) for concepts in concept_sets])
    return beam_search(bundle.decoder, np.zeros((len(grid), 1), np.float32), grid, beam_width=beam_width,
                       max_length=max_length or config.max_caption_length - 1,
                       length_normalization=length_normalization, top_n=top_n)
