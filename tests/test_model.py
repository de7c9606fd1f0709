"""helpers.model: decoders (teacher forcing == step by step through the decoding protocol,
attention weights) and the synset classifier."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from helpers import model
from helpers.config import Config
from helpers.text.vocab import END_ID, START_ID

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


@pytest.mark.parametrize("decoder_name", ["lstm", "attention"])
def test_teacher_forcing_equals_step_by_step(decoder_name):
    heads = model.build_heads(_tiny_config(decoder_name), vocabulary_size=20, num_synsets=5, cells=16, depth=24)
    pooled, grid = _features()
    tokens = _tokens()
    logits = heads.decoder((pooled, grid, tokens), training=False).numpy()
    assert logits.shape == (3, 7, 20)
    context = heads.decoder.prepare(pooled, grid)
    state = heads.decoder.initial_state(context)
    for t in range(tokens.shape[1]):
        step_logits, state, attention = heads.decoder.step(tf.constant(tokens[:, t]), state, context)
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
    context = heads.decoder.prepare(pooled, grid)
    state = heads.decoder.initial_state(context)
    logits, state, attention = step(tf.fill([3], START_ID), state, context)
    eager_logits, _, _ = heads.decoder.step(tf.fill([3], START_ID), heads.decoder.initial_state(context),
                                            context)
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
