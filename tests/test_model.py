"""Tests of helpers/model.py: encoder registry, decoders (teacher forcing == step by step,
attention weights), synset classifier, bundles (round trip and mismatch detection)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from helpers import model
from helpers.config import Config
from helpers.synsets import SynsetVocabulary
from helpers.vocab import END_ID, START_ID, Vocabulary

RNG = np.random.default_rng(0)


def _features(batch=3, cells=16, depth=24):
    pooled = RNG.normal(size=(batch, depth)).astype(np.float32)
    grid = RNG.normal(size=(batch, cells, depth)).astype(np.float32)
    return pooled, grid


def _tokens(batch=3, length=7, vocabulary_size=20):
    tokens = RNG.integers(4, vocabulary_size, size=(batch, length)).astype(np.int32)
    tokens[:, 0] = START_ID
    tokens[0, 4:] = 0       # a padded caption
    tokens[0, 3] = END_ID
    return tokens


def _tiny_config(decoder):
    return Config(decoder=decoder, embedding_dim=8, hidden_dim=16, attention_dim=8,
                  tagger_hidden_dim=8, dropout=0.2)


@pytest.mark.parametrize("name, size, cells, depth, pooled_dim", [
    ("sample_cnn", 128, 64, 128, 256), ("sample_cnn", 64, 16, 128, 256), ("mobilenet_v2", 64, 4, 1280, 1280)])
def test_encoder_maps_pixels_to_pooled_and_grid(name, size, cells, depth, pooled_dim):
    encoder = model.build_encoder(name, weights=None, image_size=size)
    images = RNG.uniform(0, 255, size=(2, size, size, 3)).astype(np.float32)
    features = encoder(images)
    assert features["pooled"].shape == (2, pooled_dim)
    assert features["grid"].shape == (2, cells, depth)
    assert model.encoder_output_shapes(encoder) == (cells, depth, pooled_dim)
    spec = model.ENCODERS[name]
    if size == spec.image_size:
        assert spec.grid_cells == cells and spec.pooled_dim == pooled_dim
    # pooled summarises the grid: average (ImageNet backbones) or average and max (sample_cnn)
    grid = np.asarray(features["grid"])
    expected = (np.concatenate([grid.mean(axis=1), grid.max(axis=1)], axis=-1) if spec.pooling == "avgmax"
                else grid.mean(axis=1))
    np.testing.assert_allclose(features["pooled"], expected, rtol=1e-4, atol=1e-5)
    assert not encoder.trainable_weights   # frozen by default


def test_registry_lists_the_usual_backbones():
    assert {"xception", "vgg16", "resnet50", "inception_v3", "efficientnet_b0", "mobilenet_v2",
            "sample_cnn"} <= set(model.ENCODERS)
    with pytest.raises(ValueError, match="unknown backbone"):
        model.build_encoder("alexnet", weights=None)


def test_unavailable_weights_raise_a_clear_error(tmp_path):
    with pytest.raises(model.WeightsUnavailableError, match="does not exist"):
        model.build_encoder("sample_cnn", weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(model.WeightsUnavailableError, match="weights=None"):
        model.build_encoder("sample_cnn", weights="imagenet")


def test_encoder_weights_file_round_trip(tmp_path):
    encoder = model.build_encoder("sample_cnn", weights=None, image_size=32)
    path = tmp_path / "encoder.weights.h5"
    encoder.save_weights(path)
    again = model.build_encoder("sample_cnn", weights=str(path), image_size=32)
    images = RNG.uniform(0, 255, size=(1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(encoder(images)["grid"], again(images)["grid"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("decoder_name", ["lstm", "attention"])
def test_teacher_forcing_equals_step_by_step(decoder_name):
    heads = model.build_heads(_tiny_config(decoder_name), vocabulary_size=20, num_synsets=5, cells=16, depth=24)
    pooled, grid = _features()
    tokens = _tokens()
    logits = heads.decoder((pooled, grid, tokens), training=False).numpy()
    assert logits.shape == (3, 7, 20)
    state = heads.decoder.initial_state(pooled, grid)
    for t in range(tokens.shape[1]):
        step_logits, state, attention = heads.decoder.step(tf.constant(tokens[:, t]), state, pooled, grid)
        # rows are compared only where the caption is not padding (row 0 stops at t=3)
        rows = tokens[:, t] != 0
        np.testing.assert_allclose(step_logits.numpy()[rows], logits[rows, t], rtol=1e-4, atol=1e-5)
        if decoder_name == "attention":
            assert attention.shape == (3, 16)
        else:
            assert attention is None


def test_step_works_inside_tf_function():
    heads = model.build_heads(_tiny_config("attention"), vocabulary_size=20, num_synsets=5, cells=16, depth=24)
    pooled, grid = _features()
    step = tf.function(heads.decoder.step)
    state = heads.decoder.initial_state(pooled, grid)
    logits, state, attention = step(tf.fill([3], START_ID), state, pooled, grid)
    eager_logits, _, _ = heads.decoder.step(tf.fill([3], START_ID), heads.decoder.initial_state(pooled, grid),
                                            pooled, grid)
    np.testing.assert_allclose(logits, eager_logits, rtol=1e-5, atol=1e-6)


def test_attention_weights_sum_to_one_over_the_grid():
    heads = model.build_heads(_tiny_config("attention"), vocabulary_size=20, num_synsets=5, cells=16, depth=24)
    pooled, grid = _features()
    logits, attention = heads.decoder((pooled, grid, _tokens()), return_attention=True)
    assert logits.shape == (3, 7, 20)
    assert attention.shape == (3, 7, 16)            # [batch, steps, grid cells]
    np.testing.assert_allclose(attention.numpy().sum(axis=-1), 1.0, rtol=1e-5)
    assert (attention.numpy() >= 0).all()


def test_caption_tagger_outputs_and_classifier_probabilities():
    heads = model.build_heads(_tiny_config("lstm"), vocabulary_size=20, num_synsets=5, cells=16, depth=24)
    pooled, grid = _features()
    outputs = heads({"pooled": pooled, "grid": grid, "tokens": _tokens()})
    assert outputs["caption"].shape == (3, 7, 20)
    tags = outputs["tags"].numpy()
    assert tags.shape == (3, 5) and ((tags > 0) & (tags < 1)).all()


@pytest.mark.parametrize("layer", [
    model.ShowAndTellDecoder(20, 8, 16, 0.1),
    model.AttentionDecoder(20, 8, 16, 8, 0.1, gate=False),
    model.SynsetClassifier(5, 8, 0.1),
])
def test_layers_round_trip_through_get_config(layer):
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


def test_greedy_decode_stops_and_pads():
    heads = model.build_heads(_tiny_config("attention"), vocabulary_size=20, num_synsets=5, cells=16, depth=24)
    pooled, grid = _features()
    ids = heads.decoder.greedy_decode(pooled, grid, max_length=6)
    assert ids.shape[0] == 3 and ids.shape[1] == 6 and ids.dtype == np.int32
    for row in ids:
        ends = np.flatnonzero(row == END_ID)
        if ends.size:
            assert (row[ends[0] + 1:] == 0).all()


def _bundle(tmp_path, decoder="attention"):
    config = Config(backbone="sample_cnn", weights=None, image_size=32, decoder=decoder, embedding_dim=8,
                    hidden_dim=16, attention_dim=8, tagger_hidden_dim=8)
    vocabulary = Vocabulary.build(["a red circle", "a green square", "a red square"], min_count=1)
    synsets = SynsetVocabulary(["circle.n.01", "square.n.01", "red.n.01"])
    encoder = model.build_encoder("sample_cnn", weights=None, image_size=32)
    heads = model.build_heads(config, len(vocabulary), len(synsets), *model.encoder_output_shapes(encoder))
    path = model.save_bundle(tmp_path / "bundle", config, vocabulary, synsets, encoder, heads)
    return path, encoder, heads


def test_bundle_round_trip(tmp_path):
    path, encoder, heads = _bundle(tmp_path)
    assert sorted(p.name for p in path.iterdir()) == ["bundle.json", "config.json", "encoder.weights.h5",
                                                       "heads.weights.h5", "synsets.json", "vocabulary.json"]
    bundle = model.load_bundle(path)
    images = RNG.integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8)
    pooled, grid = bundle.encode(images)
    expected = encoder(images.astype(np.float32))
    np.testing.assert_allclose(pooled, expected["pooled"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bundle.tag_probabilities(pooled), heads.tagger(expected["pooled"]), rtol=1e-5)
    tokens = np.array([[START_ID, 4, 5]], np.int32)
    np.testing.assert_allclose(bundle.decoder((pooled[:1], grid[:1], tokens)),
                               heads.decoder((expected["pooled"][:1], expected["grid"][:1], tokens)), rtol=1e-4, atol=1e-5)
    # other image sizes are resized to the encoder's input
    assert bundle.encode(RNG.integers(0, 256, size=(1, 50, 40, 3)))[1].shape == grid[:1].shape


def test_bundle_with_another_vocabulary_fails_to_load(tmp_path):
    path, _, _ = _bundle(tmp_path)
    Vocabulary.build(["a red circle and a tiny green hexagon"], min_count=1).save(path / "vocabulary.json")
    with pytest.raises(model.BundleMismatchError, match="vocabulary has 11 words but the decoder was built for 9"):
        model.load_bundle(path)


def test_bundle_with_another_synset_list_or_backbone_fails_to_load(tmp_path):
    path, _, _ = _bundle(tmp_path)
    SynsetVocabulary(["circle.n.01"]).save(path / "synsets.json")
    with pytest.raises(model.BundleMismatchError, match="synset vocabulary has 1 synsets"):
        model.load_bundle(path)
    path, _, _ = _bundle(tmp_path / "other")
    config = json.loads((path / "config.json").read_text())
    config["image_size"] = 64
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(model.BundleMismatchError, match="at 64 px"):
        model.load_bundle(path)


def test_bundle_with_weights_of_another_run_fails_to_load(tmp_path):
    path, _, _ = _bundle(tmp_path / "a", decoder="attention")
    other, _, _ = _bundle(tmp_path / "b", decoder="lstm")
    (path / "heads.weights.h5").write_bytes((other / "heads.weights.h5").read_bytes())
    with pytest.raises(model.BundleMismatchError, match="heads.weights.h5"):
        model.load_bundle(path)
