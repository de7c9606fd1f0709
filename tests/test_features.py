"""Tests of helpers/training/features.py: the sharded, resumable feature cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.data.images import load_image
from helpers.pretrained import encoders
from helpers.training import features

SIZE = 32   # small images keep the encoder fast


@pytest.fixture(scope="module")
def encoder():
    return encoders.build_encoder("sample_cnn", weights=None, image_size=SIZE)


@pytest.fixture(scope="module")
def photos(sample_dir):
    paths = sorted((sample_dir / "val2017").glob("*.jpg"))[:10]
    return paths, [int(path.stem) for path in paths]


def test_cache_holds_the_encoder_features_of_every_image(tmp_path, encoder, photos):
    paths, ids = photos
    cache = features.extract_features(encoder, paths, ids, tmp_path / "cache", batch_size=3, shard_size=4)
    assert cache.num_shards == 3 and cache.num_rows == 10 and cache.image_ids == ids
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "manifest.json", "shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    shard = cache.shard(2)
    assert shard["image_ids"].tolist() == ids[8:]
    assert shard["grid"].dtype == np.float16 and shard["grid"].shape == (2, 4, 128)
    # the cached features are the encoder's output on the decoded photos
    pixels = np.stack([load_image(path, size=SIZE) for path in paths[8:]]).astype(np.float32)
    expected = encoder(pixels)
    np.testing.assert_allclose(shard["pooled"], expected["pooled"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(shard["grid"], expected["grid"], rtol=2e-3, atol=2e-3)
    pooled, grid = cache.features([ids[9], ids[0]])
    np.testing.assert_allclose(pooled[0], shard["pooled"][1])
    everything = cache.load()
    assert everything["pooled"].shape == (10, 256) and everything["ok"].all()
    # read straight into 64-byte-aligned memory, the same arrays as np.load's
    with np.load(tmp_path / "cache" / "shard-00001.npz") as stored:
        read = cache.shard(1)
        assert sorted(read) == sorted(stored.files)
        for name in stored.files:
            assert read[name].dtype == stored[name].dtype and read[name].ctypes.data % 64 == 0, name
            np.testing.assert_array_equal(read[name], stored[name], err_msg=name)


def test_an_unreadable_shard_is_refused_with_its_name(tmp_path, encoder, photos):
    paths, ids = photos
    cache = features.extract_features(encoder, paths, ids, tmp_path / "cache", batch_size=3, shard_size=4)
    shard_file = tmp_path / "cache" / "shard-00000.npz"
    data = shard_file.read_bytes()
    shard_file.write_bytes(data[: len(data) // 2])                       # truncated
    with pytest.raises(features.FeatureCacheError, match="shard-00000.npz is unreadable"):
        cache.shard(0)
    np.savez(shard_file, image_ids=np.array([{"a": 1}], dtype=object))  # a pickled object
    with pytest.raises(features.FeatureCacheError, match="not a plain C-ordered array"):
        cache.shard(0)


def test_interrupted_extraction_resumes_without_recomputing_finished_shards(tmp_path, encoder, photos):
    paths, ids = photos
    cache_dir = tmp_path / "cache"

    def stop_after_first(shard):
        raise KeyboardInterrupt(f"stopped after shard {shard}")

    with pytest.raises(KeyboardInterrupt):
        features.extract_features(encoder, paths, ids, cache_dir, batch_size=2, shard_size=4,
                                  on_shard_written=stop_after_first)
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    assert list(manifest["shards"]) == ["0"] and not manifest["complete"]
    with pytest.raises(features.FeatureCacheError, match="incomplete"):
        features.FeatureCache(cache_dir)
    first_shard = cache_dir / "shard-00000.npz"
    modified = first_shard.stat().st_mtime_ns
    # a half-written shard left by the interruption is never taken as complete
    (cache_dir / "shard-00001.npz.tmp").write_bytes(b"partial")
    (cache_dir / "shard-00001.npz").write_bytes(b"renamed but not in the manifest")

    written = []
    cache = features.extract_features(encoder, paths, ids, cache_dir, batch_size=2, shard_size=4,
                                      on_shard_written=written.append)
    assert written == [1, 2]
    assert first_shard.stat().st_mtime_ns == modified
    assert cache.image_ids == ids and cache.load()["image_ids"].tolist() == ids
    again = features.extract_features(encoder, paths, ids, cache_dir, batch_size=2, shard_size=4,
                                      on_shard_written=written.append)
    assert written == [1, 2] and again.num_rows == 10    # complete: nothing recomputed


def test_cache_of_another_encoder_is_rebuilt(tmp_path, encoder, photos):
    paths, ids = photos
    features.extract_features(encoder, paths[:4], ids[:4], tmp_path / "cache", shard_size=4)
    other = encoders.build_encoder("sample_cnn", weights=None, image_size=SIZE)   # other random weights
    cache = features.extract_features(other, paths[:4], ids[:4], tmp_path / "cache", shard_size=4)
    pixels = np.stack([load_image(path, size=SIZE) for path in paths[:4]]).astype(np.float32)
    np.testing.assert_allclose(cache.load()["pooled"], other(pixels)["pooled"], rtol=1e-4, atol=1e-4)


def test_unreadable_photo_is_recorded_not_fatal(tmp_path, encoder, photos):
    paths, ids = photos
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    cache = features.extract_features(encoder, [paths[0], broken], [ids[0], 999], tmp_path / "cache")
    assert list(cache.failures) == [str(broken)]
    rows = cache.load()
    assert rows["image_ids"].tolist() == [ids[0]]


def test_augmented_variants_are_extra_rows(tmp_path, encoder, photos):
    paths, ids = photos
    cache = features.extract_features(encoder, paths[:3], ids[:3], tmp_path / "cache", shard_size=4,
                                      augment_variants=2)
    rows = cache.load()
    assert cache.num_rows == 9 and rows["variants"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert rows["image_ids"].tolist() == ids[:3] * 3
    assert not np.allclose(rows["grid"][0], rows["grid"][3])       # a transformed copy
    assert cache.load(variants=False)["image_ids"].tolist() == ids[:3]


def test_real_coco_photos(tmp_path, shared_data):
    paths = sorted((shared_data / "coco-mini-2017" / "val2017").glob("*.jpg"))[:6]
    encoder = encoders.build_encoder("mobilenet_v2", weights=None, image_size=64)
    cache = features.extract_features(encoder, paths, [int(p.stem) for p in paths], tmp_path / "cache",
                                      batch_size=4, shard_size=4)
    rows = cache.load()
    assert rows["grid"].shape == (6, 4, 1280) and np.isfinite(rows["pooled"]).all()
