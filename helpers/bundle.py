"""A trained model with everything needed to use it: a bundle folder.

A bundle (`save_bundle` / `load_bundle`) is a folder with the weights (`.weights.h5`, no pickle),
`config.json`, `vocabulary.json`, `synsets.json` and `bundle.json` (the sizes the weights were
built for, checked on loading, so files from different runs are never combined silently).

A concept decoder's bundle (`config.decoder == "concepts"`) has no encoder: its `synsets.json`
is the `ConceptVocabulary` its input is encoded with, and it needs no photos.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers.config import Config
from helpers.model import CaptionDecoder, CaptionTagger, SynsetClassifier, build_heads
from helpers.pretrained.encoders import build_encoder, encoder_output_shapes, encoder_spec
from helpers.text.vocab import Vocabulary
from helpers.wordnet.concepts import ConceptVocabulary
from helpers.wordnet.synset_vocabulary import SynsetVocabulary

BUNDLE_FORMAT = "helpers.model.bundle"   # the value written by earlier versions: bundles stay readable
BUNDLE_VERSION = 1


class BundleMismatchError(ValueError):
    """A bundle's files (weights, vocabularies, config) do not belong together."""


@dataclasses.dataclass
class Bundle:
    """A trained model with everything needed to use it (see `load_bundle`).

    Attributes:
        config: the run's `Config`.
        vocabulary: `helpers.text.vocab.Vocabulary` of the decoder.
        synset_vocabulary: `helpers.wordnet.synset_vocabulary.SynsetVocabulary` of the classifier
            (a concept decoder: its `ConceptVocabulary`).
        encoder: images -> {"pooled", "grid"} (`build_encoder`); None for a concept decoder.
        heads: the `CaptionTagger` (decoder + tagger).
        tagger: `heads.tagger`; decoder: `heads.decoder`.
        path: the bundle folder.
    """

    config: Config
    vocabulary: object
    synset_vocabulary: object
    encoder: keras.Model | None
    heads: CaptionTagger
    path: Path | None = None

    @property
    def is_concept_decoder(self) -> bool:
        """Whether the decoder writes captions from concept sets (no encoder)."""
        return self.config.decoder == "concepts"

    @property
    def tagger(self) -> SynsetClassifier:
        return self.heads.tagger

    @property
    def decoder(self) -> CaptionDecoder:
        return self.heads.decoder

    @property
    def image_size(self) -> int:
        return int(self.encoder.input.shape[1])

    def encode(self, images) -> tuple[tf.Tensor, tf.Tensor]:
        """Encoder features of a batch.

        Args:
            images: uint8 or float `[B, H, W, 3]`, pixels in [0, 255]; resized to the encoder's
                input size when H, W differ from it.

        Returns:
            `(pooled float32 [B, P], grid float32 [B, L, D])`.
        """
        images = tf.cast(tf.convert_to_tensor(images), tf.float32)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be [batch, height, width, 3], got shape {images.shape}")
        size = self.image_size
        if images.shape[1] != size or images.shape[2] != size:
            images = tf.image.resize(images, (size, size))
        features = self.encoder(images, training=False)
        return features["pooled"], features["grid"]

    def tag_probabilities(self, pooled) -> np.ndarray:
        """Synset probabilities float32 `[B, S]` of pooled features `[B, P]`."""
        return np.asarray(self.tagger(tf.convert_to_tensor(pooled, tf.float32), training=False))


def save_bundle(directory, config: Config, vocabulary, synset_vocabulary, encoder: keras.Model,
                heads: CaptionTagger) -> Path:
    """Write a bundle folder: encoder.weights.h5, heads.weights.h5, config.json,
    vocabulary.json, synsets.json and bundle.json (sizes, checked by `load_bundle`).

    Returns:
        The bundle folder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if encoder is None:                                    # a concept decoder: concept sets [L, 3]
        cells, depth, pooled_dim, image_size = config.max_concepts, 3, 1, 0
    else:
        cells, depth, pooled_dim = encoder_output_shapes(encoder)
        image_size = int(encoder.input.shape[1])
        encoder.save_weights(directory / "encoder.weights.h5")
    heads.save_weights(directory / "heads.weights.h5")
    config.save(directory / "config.json")
    vocabulary.save(directory / "vocabulary.json")
    synset_vocabulary.save(directory / "synsets.json")
    manifest = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
        "backbone": config.backbone, "image_size": image_size,
        "decoder": config.decoder, "vocabulary_size": len(vocabulary),
        "num_synsets": len(synset_vocabulary), "grid_cells": cells, "feature_dim": depth,
        "pooled_dim": pooled_dim,
    }
    (directory / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return directory


def load_bundle(directory) -> Bundle:
    """Load a bundle written by `save_bundle`.

    Raises:
        FileNotFoundError: a bundle file is missing (names it).
        BundleMismatchError: the files do not belong together (vocabulary size vs the decoder,
            synset count vs the classifier, backbone / image size vs the config, weights that do
            not fit); the message says which and what to do.
    """
    directory = Path(directory)
    names = ["bundle.json", "config.json", "vocabulary.json", "synsets.json", "heads.weights.h5"]
    concepts = (directory / "config.json").is_file() and Config.load(directory / "config.json").decoder == "concepts"
    if not concepts:
        names.append("encoder.weights.h5")
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"bundle {directory} lacks {missing}; write it with "
                                f"helpers.bundle.save_bundle (train a run: python -m helpers train)")
    manifest = json.loads((directory / "bundle.json").read_text(encoding="utf-8"))
    config = Config.load(directory / "config.json")
    vocabulary = Vocabulary.load(directory / "vocabulary.json")
    synset_vocabulary = (ConceptVocabulary if concepts else SynsetVocabulary).load(directory / "synsets.json")
    advice = "this bundle's files come from different runs — retrain or copy the matching files"
    if len(vocabulary) != manifest["vocabulary_size"]:
        raise BundleMismatchError(
            f"vocabulary has {len(vocabulary)} words but the decoder was built for "
            f"{manifest['vocabulary_size']}; {advice} (vocabulary.json)")
    if len(synset_vocabulary) != manifest["num_synsets"]:
        raise BundleMismatchError(
            f"synset vocabulary has {len(synset_vocabulary)} synsets but the classifier was built "
            f"for {manifest['num_synsets']}; {advice} (synsets.json)")
    if concepts:
        heads = build_heads(config, len(vocabulary), synset_vocabulary.num_ids, config.max_concepts, 3, 1)
        _load_weights(heads, directory / "heads.weights.h5", advice)
        return Bundle(config, vocabulary, synset_vocabulary, None, heads, directory)
    image_size = config.image_size or encoder_spec(config.backbone).image_size
    if (config.backbone, image_size, config.decoder) != (manifest["backbone"], manifest["image_size"],
                                                         manifest["decoder"]):
        raise BundleMismatchError(
            f"config.json says {config.backbone} at {image_size} px with a {config.decoder} decoder "
            f"but the weights are {manifest['backbone']} at {manifest['image_size']} px with a "
            f"{manifest['decoder']} decoder; {advice} (config.json)")
    encoder = build_encoder(config.backbone, weights=None, image_size=image_size)
    heads = build_heads(config, len(vocabulary), len(synset_vocabulary), *encoder_output_shapes(encoder))
    for model, file in ((encoder, "encoder.weights.h5"), (heads, "heads.weights.h5")):
        _load_weights(model, directory / file, advice)
    return Bundle(config, vocabulary, synset_vocabulary, encoder, heads, directory)


def _load_weights(model: keras.Model, path: Path, advice: str) -> None:
    try:
        model.load_weights(path)
    except (ValueError, KeyError) as error:
        raise BundleMismatchError(f"{path.name} does not fit the model described by config.json, "
                                  f"vocabulary.json and synsets.json ({error}); {advice}") from error
