"""Caption and tag photos with a trained bundle (`Captioner`), alone or with a pretrained tagger.

    photos (paths or uint8 arrays)
        -> helpers.data.images (decoded in a thread pool while the model works on the previous batch)
        -> encoder: pooled [B, P], grid [B, L, D]    -> tagger: synset probabilities [B, S]
        -> beam search (`helpers.predict.decoding`)           -> captions with log-probabilities
    = one `helpers.predict.prediction.Prediction` per photo (a photo that cannot be read gets `error`
    and the rest go on).

The predictors:

- `Captioner`: a trained bundle (captions and its own synset classifier);
- `helpers.predict.imagenet.ImageNetTagger` and `helpers.predict.fused.PretrainedTagger`: no
  training (the ImageNet hierarchy; with the COCO detector);
- `CombinedPredictor`: a trained run and a pretrained tagger at once: the run's captions, and for
  every synset the higher of the two probabilities.

`load_predictor(run=..., model="pretrained")` picks one. All implement
`helpers.predict.prediction.Predictor`, which the album tagger, the prediction cache, the command
line and the widgets use without knowing the model.

Command line: `python -m helpers caption --run runs/<name> IMAGE...`.
"""

from __future__ import annotations

import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from helpers.bundle import load_bundle
from helpers.config import CAPTION_LANGUAGES, CONCEPT_RUN, PRETRAINED_MODELS, Config, resolve_bundle_dir
from helpers.data import images as image_io
from helpers.predict.batches import Finish, pixels_of_array, predict_in_batches
from helpers.predict.concept_captions import ConceptCaptioner
from helpers.predict.decoding import Hypothesis, beam_search, check_lengths, end_stuck
from helpers.predict.fused import PretrainedTagger
from helpers.predict.prediction import Keyword, Prediction, Predictor
from helpers.wordnet.keywords import top_k_keywords


class Captioner:
    """A trained bundle ready to caption and tag photos.

    Its keywords are its classifier's most probable synsets (`default_min_proba` 0: the top
    `nb_keywords`).

    Vocabularies and settings come from the bundle only (`helpers.bundle.load_bundle`).

    Args:
        bundle: a `helpers.bundle.Bundle`.
        max_length: maximum generated tokens per caption, <end> included
            (default: the run's `max_caption_length - 1`, i.e. without <start>).
        length_normalization: alpha of the GNMT length penalty used to rank captions.
        workers: photo-decoding threads (default `helpers.data.images.default_workers()`).
    """

    default_min_proba = 0.0

    def __init__(self, bundle, max_length: int | None = None, length_normalization: float = 0.0,
                 workers: int | None = None):
        self.bundle = bundle
        self.vocabulary = bundle.vocabulary
        self.synset_names = list(bundle.synset_vocabulary.names)
        self.max_length = int(max_length or max(1, bundle.config.max_caption_length - 1))
        self.length_normalization = float(length_normalization)
        self.workers = workers
        self.image_size = int(bundle.image_size)
        grid_cells = int(bundle.encoder.output["grid"].shape[1])
        side = int(round(grid_cells ** 0.5))
        self.grid_shape = (side, side) if side * side == grid_cells else (1, grid_cells)
        encoder, tagger = bundle.encoder, bundle.tagger

        @tf.function(reduce_retracing=True, autograph=False)
        def features(pixels):
            """uint8 [B, S, S, 3] -> pooled [B, P], grid [B, L, D], tag probabilities [B, S]."""
            outputs = encoder(tf.cast(pixels, tf.float32), training=False)
            return outputs["pooled"], outputs["grid"], tagger(outputs["pooled"], training=False)

        self._features = features

    @classmethod
    def from_bundle(cls, path, **kwargs) -> "Captioner":
        """Load `path` (a run folder with `bundle/`, or the bundle folder itself)."""
        return cls(load_bundle(resolve_bundle_dir(path)), **kwargs)

    @property
    def config(self):
        return self.bundle.config

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the bundle's files: two captioners with the same fingerprint give the
        same predictions (the prediction cache keys on it); "" for a bundle never saved."""
        if self.bundle.path is None:
            return ""
        digest = hashlib.sha256()
        for name in sorted(p.name for p in Path(self.bundle.path).iterdir() if p.is_file()):
            digest.update(name.encode() + b"\0" + (Path(self.bundle.path) / name).read_bytes())
        digest.update(f"max_length={self.max_length};alpha={self.length_normalization};cut=ended".encode())
        return digest.hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int | None = 5, min_proba: float | None = None,
                        lang: str = "eng") -> list[Keyword]:
        """This model's keyword rule (`Predictor.select_keywords`): its classifier's most probable
        synsets, `helpers.wordnet.keywords.top_k_keywords`."""
        if nb_keywords == 0:
            return []
        limit = len(synset_probabilities) if nb_keywords is None else int(nb_keywords)
        threshold = self.default_min_proba if min_proba is None else min_proba
        return top_k_keywords(synset_probabilities, limit, threshold, lang)

    # -- prediction ---------------------------------------------------------------------------
    def predict_batch(self, pixels: np.ndarray, beam_width: int = 3, top_n: int = 3,
                      captions: bool = True) -> tuple[np.ndarray, list[list[Hypothesis]]]:
        """Tag probabilities float32 `[B, S]` and beam-search hypotheses of uint8 `[B, S, S, 3]`
        pixels (empty hypothesis lists without `captions`: the encoder and tagger only)."""
        pooled, grid, probabilities = self._features(tf.convert_to_tensor(pixels))
        if not captions:
            return probabilities.numpy(), [[] for _ in range(len(pixels))]
        return probabilities.numpy(), self._captions(pooled, grid, beam_width, top_n)

    def _captions(self, pooled, grid, beam_width: int, top_n: int) -> list[list[Hypothesis]]:
        """Beam search with this captioner's decoder, maximum length and length normalisation;
        captions cut at the maximum length come after finished ones, or are ended where none
        finished (`helpers.predict.decoding.end_stuck`)."""
        beams = beam_search(self.bundle.decoder, pooled, grid, beam_width=beam_width, max_length=self.max_length,
                            length_normalization=self.length_normalization, top_n=top_n)
        return end_stuck(self.bundle.decoder, pooled, grid, beams, self.length_normalization)

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 3, nb_keywords: int | None = 5,
                min_proba: float | None = None, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = True) -> list["Prediction"]:
        """Caption and tag photos.

        Args:
            images: photo paths (str / Path) and/or uint8 arrays `[H, W, 3]`, in any mix.
            beam_width: beam search width (1: greedy).
            top_n: captions per photo (<= beam_width).
            nb_keywords: tags per photo (None: every synset passing `min_proba`; 0: no tags, the
                probabilities are still in `synset_probabilities`).
            min_proba: minimum probability of a tag, in [0, 1] (None: `default_min_proba`).
            lang: keyword language, an Open Multilingual Wordnet code ("eng", "fra", "spa", ...).
            batch_size: photos per model batch.
            progress: show a progress bar.
            captions: run the caption decoder; False skips beam search (tags only, most of the
                model's time saved) and leaves `captions` empty.

        Returns:
            One `Prediction` per input, in order; a photo that cannot be read comes back with
            `error` set (the others are not affected).

        Raises:
            ValueError: bad `beam_width`, `top_n`, `batch_size` or `min_proba`.
        """
        check_lengths(self.max_length, beam_width)
        if not 1 <= top_n <= beam_width:
            raise ValueError(f"top_n must be between 1 and beam_width={beam_width}, got {top_n}")
        if min_proba is not None and not 0.0 <= min_proba <= 1.0:
            raise ValueError(f"min_proba is a probability in [0, 1], got {min_proba}")
        # Beam search of a batch runs in a background thread while the next batch is encoded:
        # TensorFlow releases the GIL, and the encoder alone does not keep every core busy.
        captioning = ThreadPoolExecutor(1, "beam-search") if captions else None

        def run_batch(pixels: list[np.ndarray]) -> Finish:
            pooled, grid, probabilities = self._features(tf.convert_to_tensor(np.stack(pixels)))
            probabilities = probabilities.numpy()
            future = captioning.submit(self._captions, pooled, grid, beam_width, top_n) if captioning else None
            return lambda: [self._prediction(row, beams, nb_keywords, min_proba, lang) for row, beams in
                            zip(probabilities, future.result() if future else [[]] * len(probabilities))]

        try:
            return predict_in_batches(
                images, run_batch, batch_size=batch_size, workers=self.workers, progress=progress,
                description="captioning" if captions else "tagging",
                load=functools.partial(image_io.load_image, size=self.image_size),
                from_array=functools.partial(pixels_of_array, size=self.image_size))
        finally:
            if captioning is not None:
                captioning.shutdown(wait=True, cancel_futures=True)

    def _prediction(self, row: np.ndarray, beams: list[Hypothesis], nb_keywords, min_proba, lang) -> Prediction:
        """One photo's `Prediction` from its tag probabilities float32 `[S]` and hypotheses."""
        synset_probabilities = dict(zip(self.synset_names, map(float, row)))
        return Prediction(
            path="", captions=[(self.vocabulary.decode(h.tokens), h.log_probability) for h in beams],
            synset_probabilities=synset_probabilities,
            tags=self.select_keywords(synset_probabilities, nb_keywords, min_proba, lang),
            attention=beams[0].attention if beams else None, hypotheses=beams, grid_shape=self.grid_shape)


class CombinedPredictor:
    """A trained run and the ImageNet hierarchy together: the run's captions, and for every synset
    the higher of its two probabilities (the run's classifier, the hierarchy's sum over ImageNet
    classes), keywords chosen by the hierarchy's rule. Both models see every photo.

    Args:
        captioner: a `Captioner`; tagger: a pretrained tagger (`helpers.predict.fused.PretrainedTagger`
            or `helpers.predict.imagenet.ImageNetTagger`), whose keyword rule and detections are kept.
    """

    def __init__(self, captioner: Captioner, tagger: Predictor):
        self.captioner, self.tagger = captioner, tagger
        self.default_min_proba = tagger.default_min_proba
        self.synset_names = list(dict.fromkeys(tagger.synset_names + captioner.synset_names))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.captioner.fingerprint}+{self.tagger.fingerprint}".encode()).hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int | None = 5, min_proba: float | None = None,
                        lang: str = "eng") -> list[Keyword]:
        """The tagger's rule (`ImageNetTagger.select_keywords`) over the merged probabilities."""
        return self.tagger.select_keywords(synset_probabilities, nb_keywords, min_proba, lang)

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 1, nb_keywords: int | None = 5,
                min_proba: float | None = None, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = True) -> list[Prediction]:
        """As `Captioner.predict`; `synset_probabilities` is the per-synset maximum of both models."""
        images = list(images)
        captioned = self.captioner.predict(images, beam_width, top_n, 0, None, lang, batch_size,
                                           progress, captions)
        tagged = self.tagger.predict(images, nb_keywords=0, batch_size=batch_size, progress=progress)
        for prediction, imagenet in zip(captioned, tagged):
            if not prediction.ok:
                continue
            merged = dict(imagenet.synset_probabilities)
            for synset, probability in prediction.synset_probabilities.items():
                merged[synset] = max(probability, merged.get(synset, 0.0))
            prediction.synset_probabilities = merged
            prediction.detections = imagenet.detections
            prediction.tags = self.select_keywords(merged, nb_keywords, min_proba, lang)
        return captioned


def concept_decoder_bundle(run=None) -> Path | None:
    """The bundle folder of a concept decoder: `run` when it is one, else (run None) the default
    run `runs/concepts` when it has been trained; None otherwise."""
    try:
        folder = resolve_bundle_dir(CONCEPT_RUN if run is None else run)
    except FileNotFoundError:
        return None
    config = folder / "config.json"
    return folder if config.is_file() and Config.load(config).decoder == "concepts" else None


def load_predictor(run=None, model: str | None = None, concepts=None, **kwargs) -> Predictor:
    """The predictor for a trained run (`Captioner`), the pretrained models (`model="pretrained"`:
    `helpers.predict.fused.PretrainedTagger`, a COCO detector and the ImageNet hierarchy, no
    training), or both (`CombinedPredictor`).

    The pretrained models write captions too when a concept decoder is there
    (`ConceptCaptioner`): `concepts` names its run, by default `runs/concepts` (trained by
    `python -m helpers train --run concepts --data-dir caption-text` or `make demo`); a `run`
    that is a concept decoder means the same. Decoders in other languages are the runs beside it
    named `<run>-fra`, `<run>-deu` (`CAPTION_LANGUAGES`). `gendered=True` lets its
    captions say "man" or "woman" (`ConceptCaptioner`; by default "person", in every language).

    Raises:
        ValueError: neither `run` nor `model`, or an unknown `model`.
        FileNotFoundError: `run` (or `concepts`) has no bundle (says how to train one).
        helpers.pretrained.detector.DetectorUnavailableError: no detector file (says where to put one).
    """
    if model not in (None, *PRETRAINED_MODELS):
        raise ValueError(f"unknown model {model!r}; the pretrained model is 'pretrained'")
    if run is None and model is None:
        raise ValueError("give a trained run (run=NAME) or model='pretrained' (no training)")
    if run is not None and concept_decoder_bundle(run) is not None:
        run, concepts, model = None, run, PRETRAINED_MODELS[0]
    gendered = bool(kwargs.pop("gendered", False))      # the concept decoder's; a photo run's words are its own
    captioner = Captioner.from_bundle(run, **kwargs) if run is not None else None
    if model is None:
        return captioner
    tagger = PretrainedTagger(workers=kwargs.get("workers"))
    if captioner is not None:
        return CombinedPredictor(captioner, tagger)
    if concepts is not None and concept_decoder_bundle(concepts) is None:
        raise FileNotFoundError(f"{concepts} is not a trained concept decoder; train one with "
                                f"python -m helpers train --run {concepts} --data-dir caption-text")
    folder = concept_decoder_bundle(concepts)
    if folder is None:
        return tagger
    name = CONCEPT_RUN if concepts is None else str(concepts).rstrip("/")
    # each decoder is loaded at its first caption (`ConceptCaptioner`): keywords alone load none
    languages = {language: other for language in CAPTION_LANGUAGES
                 if (other := concept_decoder_bundle(f"{name}-{language}")) is not None}
    return ConceptCaptioner(tagger, folder, kwargs.get("max_length"), kwargs.get("length_normalization", 0.0),
                            languages, gendered=gendered)
