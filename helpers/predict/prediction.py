"""What a model says about one photo: `Prediction` (captions, synset probabilities, keywords).

Every predictor of the project (a trained `helpers.predict.predictors.Captioner`, the pretrained ImageNet
tagger) returns one `Prediction` per photo; the album tagger, the prediction cache and the widgets
read only this class, never a model.
"""

from __future__ import annotations

import dataclasses

import numpy as np


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
    """

    path: str
    captions: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    synset_probabilities: dict[str, float] = dataclasses.field(default_factory=dict)
    tags: list[tuple[str, str, float]] = dataclasses.field(default_factory=list)
    attention: np.ndarray | None = None
    error: str | None = None
    hypotheses: list = dataclasses.field(default_factory=list)
    grid_shape: tuple[int, int] | None = None

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

    def format(self, tags: bool = True) -> str:
        """im2txt-style text: the path, `0) a man sitting on a bench (p=0.000005)` lines, tags."""
        if self.error:
            return f"{self.path}\n  error: {self.error}"
        lines = [str(self.path)] + [f"  {format_caption(i, text, float(np.exp(lp)))}"
                                    for i, (text, lp) in enumerate(self.captions)]
        if tags and self.tags:
            lines.append("  tags: " + ", ".join(f"{word} ({p:.2f})" for _, word, p in self.tags))
        return "\n".join(lines)


def format_caption(index: int, text: str, probability: float) -> str:
    """`0) a man sitting on a bench (p=0.000005)`, as im2txt's run_inference prints."""
    return f"{index}) {text} (p={probability:f})"
