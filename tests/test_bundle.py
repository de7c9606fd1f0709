"""helpers.bundle: a trained model's folder, saved and loaded with its consistency checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import model
from helpers.bundle import BundleMismatchError, load_bundle, save_bundle
from helpers.config import Config
from helpers.pretrained import encoders
from helpers.text.vocab import START_ID, Vocabulary
from helpers.wordnet.synset_vocabulary import SynsetVocabulary

RNG = np.random.default_rng(0)


def _bundle(tmp_path, decoder="attention"):
    config = Config(backbone="sample_cnn", weights=None, image_size=32, decoder=decoder, embedding_dim=8,
                    hidden_dim=16, attention_dim=8, tagger_hidden_dim=8)
    vocabulary = Vocabulary.build(["a red circle", "a green square", "a red square"], min_count=1)
    synsets = SynsetVocabulary(["circle.n.01", "square.n.01", "red.n.01"])
    encoder = encoders.build_encoder("sample_cnn", weights=None, image_size=32)
    heads = model.build_heads(config, len(vocabulary), len(synsets), *encoders.encoder_output_shapes(encoder))
    path = save_bundle(tmp_path / "bundle", config, vocabulary, synsets, encoder, heads)
    return path, encoder, heads


def test_bundle_round_trip(tmp_path):
    path, encoder, heads = _bundle(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["bundle.json", "config.json", "encoder.weights.h5",
                                                       "heads.weights.h5", "synsets.json", "vocabulary.json"]
    bundle = load_bundle(path)
    images = RNG.integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8)
    pooled, grid = bundle.encode(images)
    expected = encoder(images.astype(np.float32))
    np.testing.assert_allclose(pooled, expected["pooled"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bundle.tag_probabilities(pooled), heads.tagger(expected["pooled"]), rtol=1e-5)
    tokens = np.array([[START_ID, 4, 5]], np.int32)
    np.testing.assert_allclose(bundle.decoder((pooled[:1], grid[:1], tokens)),
                               heads.decoder((expected["pooled"][:1], expected["grid"][:1], tokens)),
                               rtol=1e-4, atol=1e-5)
    # other image sizes are resized to the encoder's input
    assert bundle.encode(RNG.integers(0, 256, size=(1, 50, 40, 3)))[1].shape == grid[:1].shape


def test_bundle_with_another_vocabulary_fails_to_load(tmp_path):
    path, _, _ = _bundle(tmp_path)
    Vocabulary.build(["a red circle and a tiny green hexagon"], min_count=1).save(path / "vocabulary.json")
    with pytest.raises(BundleMismatchError, match="vocabulary has 11 words but the decoder was built for 9"):
        load_bundle(path)


def test_bundle_with_another_synset_list_or_backbone_fails_to_load(tmp_path):
    path, _, _ = _bundle(tmp_path)
    SynsetVocabulary(["circle.n.01"]).save(path / "synsets.json")
    with pytest.raises(BundleMismatchError, match="synset vocabulary has 1 synsets"):
        load_bundle(path)
    path, _, _ = _bundle(tmp_path / "other")
    config = json.loads((path / "config.json").read_text())
    config["image_size"] = 64
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleMismatchError, match="at 64 px"):
        load_bundle(path)


def test_bundle_with_weights_of_another_run_fails_to_load(tmp_path):
    path, _, _ = _bundle(tmp_path / "a", decoder="attention")
    other, _, _ = _bundle(tmp_path / "b", decoder="lstm")
    (path / "heads.weights.h5").write_bytes((other / "heads.weights.h5").read_bytes())
    with pytest.raises(BundleMismatchError, match="heads.weights.h5"):
        load_bundle(path)
