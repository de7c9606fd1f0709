"""helpers.pretrained.encoders: the backbone registry and `build_encoder`."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.pretrained import encoders

RNG = np.random.default_rng(0)

@pytest.mark.parametrize("name, size, cells, depth, pooled_dim", [
    ("sample_cnn", 128, 64, 128, 256), ("sample_cnn", 64, 16, 128, 256), ("mobilenet_v2", 64, 4, 1280, 1280)])
def test_encoder_maps_pixels_to_pooled_and_grid(name, size, cells, depth, pooled_dim):
    encoder = encoders.build_encoder(name, weights=None, image_size=size)
    images = RNG.uniform(0, 255, size=(2, size, size, 3)).astype(np.float32)
    features = encoder(images)
    assert features["pooled"].shape == (2, pooled_dim)
    assert features["grid"].shape == (2, cells, depth)
    assert encoders.encoder_output_shapes(encoder) == (cells, depth, pooled_dim)
    spec = encoders.ENCODERS[name]
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
            "sample_cnn"} <= set(encoders.ENCODERS)
    with pytest.raises(ValueError, match="unknown backbone"):
        encoders.build_encoder("alexnet", weights=None)


def test_unavailable_weights_raise_a_clear_error(tmp_path):
    with pytest.raises(encoders.WeightsUnavailableError, match="does not exist"):
        encoders.build_encoder("sample_cnn", weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(encoders.WeightsUnavailableError, match="weights=None"):
        encoders.build_encoder("sample_cnn", weights="imagenet")


def test_encoder_weights_file_round_trip(tmp_path):
    encoder = encoders.build_encoder("sample_cnn", weights=None, image_size=32)
    path = tmp_path / "encoder.weights.h5"
    encoder.save_weights(path)
    again = encoders.build_encoder("sample_cnn", weights=str(path), image_size=32)
    images = RNG.uniform(0, 255, size=(1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(encoder(images)["grid"], again(images)["grid"], rtol=1e-5, atol=1e-6)
