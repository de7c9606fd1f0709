"""What a model says about one photo (`Prediction`), and what every model offers (`Predictor`).

Every predictor of the project (a trained `helpers.predict.predictors.Captioner`, the pretrained
tagger, both combined) implements the `Predictor` protocol and returns one `Prediction` per photo;
the album tagger, the prediction cache, the command line and the widgets use only these two,
never a model.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Protocol, runtime_checkable

import numpy as np

DETECTION_MIN_SCORE = 0.3     # a detection counts (keyword, count) from this score on (set on train2017)

Detection = tuple[str, float, tuple[float, float, float, float]]
"""One object a detector found: `(COCO category, score in (0, 1], (x1, y1, x2, y2) in photo pixels)`."""


@dataclasses.dataclass
class Prediction:
    """What the model says about one photo.

    Attributes:
        path: the photo's path (or `"<array i>"` for an in-memory image).
        captions: `[(text, log_probability)]`, best first (`top_n` of them).
        synset_probabilities: every synset of the model -> probability in [0, 1].
        tags: `[(synset, keyword, probability)]`, most probable first (see `Captioner.predict`).
        attention: float32 `[steps, L]` attention of the best caption (attention decoder), else None.
        error: why the photo could not be read (then everything else is empty), else None.
        hypotheses: the `helpers.predict.decoding.Hypothesis` of every caption (token ids, scores,
            attention); empty for a prediction read back from a cache.
        grid_shape: `(h, w)` of the encoder grid, to draw `attention` over the photo (h * w = L).
        detections: the objects a COCO detector found (`Detection`s, best first); empty for a
            model without a detector.
    """

    path: str
    captions: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    synset_probabilities: dict[str, float] = dataclasses.field(default_factory=dict)
    tags: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    attention: np.ndarray | None = None
    error: str | None = None
    hypotheses: list = dataclasses.field(default_factory=list)
    grid_shape: tuple[int, int] | None = None
    detections: list[Detection] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def caption(self) -> str:
        """The best caption ("" for a failed photo)."""
        return self.captions[0][0] if self.captions else ""

    @property
    def confidence(self) -> float:
        """Probability of the best caption (0 for a failed photo)."""
        return float(np.exp(self.captions[0][1])) if self.captions else 0.0

    def counts(self, min_score: float = DETECTION_MIN_SCORE) -> dict[str, int]:
        """`{COCO category: detections with score >= min_score}`, most frequent first (default:
        the threshold of the fused keywords, `helpers.predict.fused`)."""
        counted: dict[str, int] = {}
        for category, score, _ in self.detections:
            if score >= min_score:
                counted[category] = counted.get(category, 0) + 1
        return dict(sorted(counted.items(), key=lambda item: -item[1]))

    def format(self, tags: bool = True) -> str:
        """im2txt-style text: the path, `0) a man sitting on a bench (p=0.000005)` lines, tags."""
        if self.error:
            return f"{self.path}\n  error: {self.error}"
        lines = [str(self.path)] + [f"  {format_caption(i, text, float(np.exp(lp)))}"
                                    for i, (text, lp) in enumerate(self.captions)]
        if tags and self.tags:
            lines.append("  tags: " + ", ".join(f"{word} ({p:.2f})" for _, word, p in self.tags))
        if counts := self.counts():
            lines.append("  objects: " + ", ".join(f"{n} {category}" for category, n in counts.items()))
        return "\n".join(lines)


def format_caption(index: int, text: str, probability: float) -> str:
    """`0) a man sitting on a bench (p=0.000005)`, as im2txt's run_inference prints."""
    return f"{index}) {text} (p={probability:f})"


Keyword = tuple[str, str, float]
"""`(synset name, keyword in the asked language, probability)`, as in `Prediction.tags`."""


@runtime_checkable
class Predictor(Protocol):
    """What every predictor offers: the album tagger, the prediction cache, the command line and
    the widgets use nothing else.

    Attributes:
        default_min_proba: the keyword threshold this model's rule is calibrated for, in [0, 1]
            (`select_keywords` and `predict` use it when `min_proba` is None).
        fingerprint: hex string that changes whenever the predictions could (weights, settings,
            keyword rule version); the prediction cache keys on it. "" for an unsaved model.
    """

    default_min_proba: float

    @property
    def fingerprint(self) -> str: ...

    def select_keywords(self, synset_probabilities: dict[str, float], nb_keywords: int | None = 5,
                        min_proba: float | None = None, lang: str = "eng") -> list[Keyword]:
        """This model's keyword rule over `synset_probabilities` (synset name -> probability):
        at most `nb_keywords` (None: no limit, 0: none) with probability >= `min_proba` (None:
        `default_min_proba`), in language `lang` (an Open Multilingual Wordnet code)."""
        ...

    def predict(self, images: Iterable, beam_width: int = 3, top_n: int = 1, nb_keywords: int | None = 5,
                min_proba: float | None = None, lang: str = "eng", batch_size: int = 32,
                progress: bool = True, captions: bool = True) -> list[Prediction]:
        """One `Prediction` per photo (paths or uint8 `[H, W, 3]` arrays), in order; a photo that
        cannot be read comes back with `error` set, the others are not affected. A model without
        a caption decoder accepts the decoding arguments and leaves `captions` empty."""
        ...
