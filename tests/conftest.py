"""Shared test fixtures: where the real data in ../shared lives, and NLTK pointed at it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("SHARED_DIR", PROJECT_ROOT.parent / "shared"))
SHARED_DATA = SHARED_DIR / "data"

# NLTK reads NLTK_DATA when it is imported: point it at the offline copy before any test does.
if (SHARED_DIR / "nltk_data").is_dir():
    os.environ.setdefault("NLTK_DATA", str(SHARED_DIR / "nltk_data"))
if (SHARED_DIR / "models" / "yolox-nano" / "yolox_nano.onnx").is_file():   # the COCO detector, as in CI
    os.environ.setdefault("PHOTO_CAPTIONS_DETECTOR", str(SHARED_DIR / "models" / "yolox-nano" / "yolox_nano.onnx"))
_CAPTION_TEXT = [SHARED_DATA / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json",
                 SHARED_DATA / "flickr8k-text" / "Flickr8k.token.txt"]
if all(path.is_file() for path in _CAPTION_TEXT):   # the concept decoder's caption text, as in CI
    os.environ.setdefault("PHOTO_CAPTIONS_TEXT", ",".join(str(path) for path in _CAPTION_TEXT))
if (SHARED_DATA / "coco-mini-2017").is_dir():        # the benchmark photos: never trained on
    os.environ.setdefault("PHOTO_CAPTIONS_EXCLUDE", str(SHARED_DATA / "coco-mini-2017"))
if (SHARED_DATA / "multi30k-task1" / "train.fr.gz").is_file():   # French and German caption text
    os.environ.setdefault("PHOTO_CAPTIONS_MULTI30K", str(SHARED_DATA / "multi30k-task1"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seed (Python, NumPy, TensorFlow), so a failure on randomly
    initialised weights is reproducible; the assertions themselves hold for any seed."""
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need it are skipped on a machine without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The embedded sample dataset, generated once per test session (small but complete)."""
    from helpers.data import sample

    out = tmp_path_factory.mktemp("sample")
    sample.make_sample(out, seed=0)
    return out


# Small but real training run: a model trained on part of the sample, for the
# inference, metrics and album tests. About a minute on 2 CPU cores.
TRAINED_RUN_CONFIG = dict(
    backbone="sample_cnn", weights=None, decoder="attention", max_train_images=600, max_val_images=60,
    min_word_count=1, min_synset_images=3, embedding_dim=64, hidden_dim=128, attention_dim=64,
    tagger_hidden_dim=64, dropout=0.1, batch_size=64, epochs=3, learning_rate=3e-3,
    encoder_epochs=3, encoder_learning_rate=5e-3, caption_samples=0, early_stopping_patience=3,
)


@pytest.fixture(scope="session")
def trained_run(sample_dir, tmp_path_factory) -> Path:
    """A run folder trained on the sample (`<run>/bundle` loads with `helpers.bundle.load_bundle`).

    Small and quick, not accurate: tests may check shapes, types and plumbing, not caption quality.
    """
    from helpers.config import Config
    from helpers.training import train

    run_dir = tmp_path_factory.mktemp("trained_run")
    config = Config(data_dir=str(sample_dir), **TRAINED_RUN_CONFIG)
    train.train_run(config, run_dir, live_plot=False, verbose=0)
    return run_dir


# Tiny runs for the training and pipeline tests.
TINY = dict(backbone="sample_cnn", weights=None, image_size=32, decoder="attention", max_train_images=24,
            max_val_images=8, min_word_count=1, min_synset_images=1, embedding_dim=8, hidden_dim=16,
            attention_dim=8, tagger_hidden_dim=8, batch_size=16, epochs=2, encoder_epochs=1,
            encoder_batch_size=8, caption_samples=1, feature_shard_size=16)


def tiny_config(sample_dir, **changes):
    """A `Config` of a run small enough to prepare and train in seconds on the sample."""
    from helpers.config import Config

    return Config(data_dir=str(sample_dir), **{**TINY, **changes})


@pytest.fixture(scope="module")
def prepared(sample_dir, tmp_path_factory):
    """A tiny run prepared on the sample (vocabularies, encoder trained 1 epoch, features)."""
    from helpers.training import train

    return train.prepare(tiny_config(sample_dir), tmp_path_factory.mktemp("run"), verbose=0)
