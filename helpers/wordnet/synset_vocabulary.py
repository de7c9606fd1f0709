"""The `SynsetVocabulary`: the tags a model predicts, one index per WordNet synset.

Built from the training images' tag synsets (`helpers.wordnet.synsets.records_synsets`), optionally rolled
up along hypernyms, saved as versioned JSON (`helpers.data.versioned_json`) beside the model.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from helpers.data import versioned_json
from helpers.wordnet.synsets import with_hypernyms

FORMAT_NAME = "helpers.synsets.SynsetVocabulary"   # as earlier versions wrote it: files stay readable
FORMAT_VERSION = 1


class SynsetVocabulary(versioned_json.IndexedNames):
    """The tags a model predicts: synset names with an index each (multi-label targets).

    `len`, `in` and `==` work on the names; `save` and `load` write and read versioned JSON
    (`helpers.data.versioned_json.IndexedNames`).

    Attributes:
        names: synset names, index order (most images first, then alphabetical).
        image_counts: training images per synset.
        min_images: the threshold it was built with.
        hypernym_depth: roll-up depth used when building (0: none).
        num_images: images it was built from.
    """

    FORMAT_NAME = FORMAT_NAME
    FORMAT_VERSION = FORMAT_VERSION

    def __init__(self, names: Sequence[str], image_counts: Mapping[str, int] | None = None,
                 min_images: int = 1, hypernym_depth: int = 0, num_images: int = 0):
        """Raises `ValueError` if a synset name is repeated."""
        super().__init__(names, what="synsets")
        image_counts = image_counts or {}
        self.image_counts: dict[str, int] = {n: int(image_counts.get(n, 0)) for n in self._names}
        self.min_images = int(min_images)
        self.hypernym_depth = int(hypernym_depth)
        self.num_images = int(num_images)

    @classmethod
    def build(cls, per_image_synsets: Iterable[Iterable[str]], min_images: int = 5,
              hypernym_depth: int = 0, max_size: int | None = None,
              verbose: bool = False) -> "SynsetVocabulary":
        """Keep the synsets found on at least `min_images` images.

        Args:
            per_image_synsets: one set of synset names per training image (`image_synsets`).
            min_images: synsets on fewer images are dropped.
            hypernym_depth: roll each image's synsets up this many hypernym levels first
                (`with_hypernyms`; 0 = off).
            max_size: optional cap on the number of synsets (the most frequent are kept).
            verbose: print a one-line summary.
        """
        if min_images < 1:
            raise ValueError(f"min_images must be >= 1, got {min_images}")
        started = time.perf_counter()
        counts = collections.Counter()
        num_images = 0
        for synsets in per_image_synsets:
            num_images += 1
            counts.update(with_hypernyms(synsets, hypernym_depth) if hypernym_depth else set(synsets))
        kept = sorted(((n, c) for n, c in counts.items() if c >= min_images),
                      key=lambda item: (-item[1], item[0]))
        if max_size is not None:
            kept = kept[:max_size]
        vocabulary = cls([n for n, _ in kept], dict(kept), min_images, hypernym_depth, num_images)
        if verbose:
            print(f"synset vocabulary: {num_images:,} images, {len(counts):,} distinct synsets -> "
                  f"{len(vocabulary):,} tags (min_images={min_images}, hypernym_depth="
                  f"{hypernym_depth}) in {time.perf_counter() - started:.1f} s")
        return vocabulary

    @property
    def names(self) -> list[str]:
        """Synset names, index order (do not modify)."""
        return self._names

    def __repr__(self) -> str:
        return f"SynsetVocabulary({len(self)} synsets, min_images={self.min_images})"

    def index(self, name: str) -> int:
        """Index of a synset name. Raises `KeyError` if it is not in the vocabulary."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"synset {name!r} is not in this vocabulary of {len(self)} synsets") from None

    def encode(self, synsets: Iterable[str]) -> np.ndarray:
        """Multi-hot target: float32 `[num_synsets]`, 1.0 where the synset is present.

        Synsets outside the vocabulary are ignored.
        """
        target = np.zeros(len(self.names), dtype=np.float32)
        indices = [self._index[name] for name in synsets if name in self._index]
        target[indices] = 1.0
        return target

    def encode_batch(self, per_image_synsets: Iterable[Iterable[str]]) -> np.ndarray:
        """float32 `[num_images, num_synsets]` multi-hot targets."""
        rows = [self.encode(synsets) for synsets in per_image_synsets]
        return np.stack(rows) if rows else np.zeros((0, len(self)), dtype=np.float32)

    def decode(self, probabilities, top_k: int | None = None,
               min_proba: float | None = None) -> list[tuple[str, float]]:
        """Synsets of a prediction, most probable first.

        Args:
            probabilities: float `[num_synsets]` (one image), probabilities in [0, 1].
            top_k: keep at most this many.
            min_proba: keep those with probability >= this.

        Returns:
            `[(synset name, probability), ...]` sorted by decreasing probability.

        Raises:
            ValueError: if `probabilities` is not 1-D of length `len(self)`.
        """
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.shape != (len(self.names),):
            raise ValueError(f"expected probabilities of shape ({len(self.names)},), got "
                             f"{probabilities.shape}; decode one image at a time")
        order = np.argsort(-probabilities, kind="stable")
        if min_proba is not None:
            order = order[probabilities[order] >= min_proba]
        if top_k is not None:
            order = order[:top_k]
        return [(self.names[i], float(probabilities[i])) for i in order]

    # persistence (versioned JSON: `to_dict`, `from_dict`, `save`, `load`) ---------------------
    def _payload(self) -> dict:
        return {
            "min_images": self.min_images,
            "hypernym_depth": self.hypernym_depth,
            "num_images": self.num_images,
            "names": self._names,
            "image_counts": [self.image_counts[n] for n in self._names],
        }

    @classmethod
    def _from_payload(cls, payload: Mapping) -> "SynsetVocabulary":
        names = payload["names"]
        return cls(names, dict(zip(names, payload.get("image_counts", ()))), payload.get("min_images", 1),
                   payload.get("hypernym_depth", 0), payload.get("num_images", 0))
