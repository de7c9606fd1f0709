"""Tests of helpers/training/train.py: run preparation, bucketed datasets, resume after a kill, bundles,
MirroredStrategy on two logical CPU devices (in a subprocess)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, tiny_config

from helpers.bundle import load_bundle
from helpers.config import Config
from helpers.predict import decoding
from helpers.text.vocab import Vocabulary
from helpers.training import train

PROJECT_ROOT = Path(__file__).resolve().parent.parent

def test_prepare_writes_vocabularies_encoder_and_features(prepared):
    run_dir = prepared.run_dir
    for name in ("config.json", "vocabulary.json", "synsets.json", "encoder.weights.h5"):
        assert (run_dir / name).is_file(), name
    assert Config.load(run_dir / "config.json") == prepared.config
    assert "red" in prepared.vocabulary and "circle" in prepared.vocabulary
    # tags of the sample: its colours and shapes
    assert {"circle.n.01", "red.n.01"} <= set(prepared.synset_vocabulary.names)
    assert prepared.train_cache.num_rows == 24 and prepared.val_cache.num_rows == 8
    assert prepared.train_cache.grid_cells == 4 and prepared.train_cache.feature_dim == 128
    first = prepared.train_records[0]
    assert set(prepared.image_synsets[first.image_id]) & {"circle.n.01", "square.n.01", "triangle.n.01",
                                                          "rectangle.n.01", "ellipse.n.01", "hexagon.n.01"}


def test_prepare_again_reuses_everything(prepared):
    vocabulary_file = prepared.run_dir / "vocabulary.json"
    modified = vocabulary_file.stat().st_mtime_ns
    again = train.prepare(prepared.config, prepared.run_dir, verbose=0)
    assert again.vocabulary == prepared.vocabulary and vocabulary_file.stat().st_mtime_ns == modified
    np.testing.assert_array_equal(again.train_cache.load()["pooled"], prepared.train_cache.load()["pooled"])


class _StopAfterFirstEpoch(Exception):
    pass


class _Stop(train.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise _StopAfterFirstEpoch()


class _Probe(train.keras.callbacks.Callback):
    """Records the optimizer step and the epochs this call trained."""

    def __init__(self):
        super().__init__()
        self.start_step, self.epochs = None, []

    def on_train_begin(self, logs=None):
        self.start_step = int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_killed_run_resumes_at_its_next_epoch(prepared, tmp_path):
    config = prepared.config
    run_dir = tmp_path / "run"
    shutil.copytree(prepared.run_dir, run_dir)       # vocabularies, encoder and features reused
    with pytest.raises(_StopAfterFirstEpoch):
        train.train_run(config, run_dir, callbacks=[_Stop()], live_plot=False, verbose=0)
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert state["epochs_done"] == 1 and state["optimizer_step"] > 0
    vocabulary = (run_dir / "vocabulary.json").read_text()
    synsets = (run_dir / "synsets.json").read_text()
    assert not (run_dir / "bundle").exists()

    probe = _Probe()
    result = train.train_run(config, run_dir, callbacks=[probe], live_plot=False, verbose=0)
    assert probe.epochs == [1]                                 # only the second epoch ran
    assert probe.start_step == state["optimizer_step"]        # optimizer state restored
    assert (run_dir / "vocabulary.json").read_text() == vocabulary
    assert (run_dir / "synsets.json").read_text() == synsets
    history = train.read_history(run_dir)
    assert history["epoch"].tolist() == [0, 1] and np.isfinite(history["val_loss"]).all()
    for name in ("best.weights.h5", "last.weights.h5"):
        assert (run_dir / "checkpoints" / name).is_file()
    assert any((run_dir / "logs").rglob("*tfevents*")) or not train.tensorboard_available()

    bundle = load_bundle(result.bundle_dir)
    assert bundle.vocabulary == Vocabulary.load(run_dir / "vocabulary.json")
    pooled, grid = bundle.encode(np.zeros((2, 32, 32, 3), np.uint8))
    assert decoding.greedy_token_ids(bundle.decoder, pooled, grid, 5).shape[0] == 2


def test_a_stopped_and_resumed_run_equals_an_uninterrupted_one(prepared, tmp_path):
    """The data order of epoch e is a function of (seed, e): a run stopped after its first epoch
    and resumed gives the history of a run that was never stopped, dropout masks included (they
    are drawn from (seed, epoch) too)."""
    config = dataclasses.replace(prepared.config, epochs=3, caption_samples=0)
    assert config.dropout > 0
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    for run_dir in (whole, stopped):
        shutil.copytree(prepared.run_dir, run_dir)   # features reused; only the heads' settings change
        config.save(run_dir / "config.json")
    train.train_run(config, whole, live_plot=False, verbose=0)
    with pytest.raises(_StopAfterFirstEpoch):
        train.train_run(config, stopped, callbacks=[_Stop()], live_plot=False, verbose=0)
    train.train_run(config, stopped, live_plot=False, verbose=0)
    expected, found = train.read_history(whole), train.read_history(stopped)
    assert found["epoch"].tolist() == [0, 1, 2]
    for column in ("loss", "caption_loss", "tags_loss", "val_loss"):
        np.testing.assert_allclose(found[column], expected[column], rtol=1e-6, err_msg=column)


def test_losses_fall_on_the_sample(sample_dir, tmp_path):
    config = tiny_config(sample_dir, decoder="lstm", max_train_images=64, epochs=3, learning_rate=1e-2,
                         encoder_epochs=0, caption_samples=0)
    result = train.train_run(config, tmp_path / "run", live_plot=False, verbose=0)
    losses, val_losses = result.history["loss"], result.history["val_loss"]
    assert losses[-1] < losses[0] and val_losses[-1] < val_losses[0]


def test_caption_loss_and_perplexity_equal_keras_sparse_cross_entropy(shared_data):
    """The XLA-compiled masked cross-entropy gives Keras' `ignore_class=0` loss and its gradient
    on real captions (padded rows included), and perplexity is exp of it."""
    import keras
    import tensorflow as tf

    coco = shared_data / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json"
    captions = [c["caption"] for c in json.loads(coco.read_text())["annotations"][:400]]
    vocabulary = Vocabulary.build(captions, min_count=2)
    tokens = vocabulary.encode_batch(captions[:16], max_length=18)[:, 1:]      # targets, <pad>-padded
    assert (tokens == 0).any() and (tokens != 0).any()
    logits = tf.constant(np.random.default_rng(1).normal(0, 4, (*tokens.shape, len(vocabulary))), tf.float32)
    reference = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    losses = {}
    for name, loss in (("ours", train.MaskedCaptionCrossEntropy()), ("keras", reference)):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(tokens, logits)
        losses[name] = (float(value), tape.gradient(value, logits).numpy())
    assert losses["ours"][0] == pytest.approx(losses["keras"][0], rel=1e-5)
    np.testing.assert_allclose(losses["ours"][1], losses["keras"][1], atol=1e-7)
    assert np.abs(losses["ours"][1][tokens == 0]).max() == 0.0                 # <pad> gets no gradient
    perplexity = train.Perplexity()
    perplexity.update_state(tokens, logits)
    assert float(perplexity.result()) == pytest.approx(np.exp(losses["keras"][0]), rel=1e-4)
    assert float(train.MaskedCaptionCrossEntropy()(np.zeros((2, 3), np.int32), logits[:2, :3])) == 0.0


def test_fused_adam_updates_as_keras_adam():
    """Three steps of the real heads with a warmup schedule and clipping: the same weights and
    moments as `keras.optimizers.Adam`, the embedding's sparse gradient included."""
    import keras
    import tensorflow as tf

    from helpers import model

    config = Config(decoder="lstm", embedding_dim=16, hidden_dim=32, tagger_hidden_dim=16)
    rng = np.random.default_rng(0)
    tokens = tf.constant(rng.integers(1, 50, (8, 6)), tf.int32)
    pooled = tf.constant(rng.normal(size=(8, 24)), tf.float32)
    weights = {}
    for optimizer_class in (keras.optimizers.Adam, train.FusedAdam):
        keras.utils.set_random_seed(0)
        heads = model.build_heads(config, 50, 10, cells=4, depth=24)
        variables = heads.decoder.trainable_variables
        initial = [v.numpy() for v in variables]
        schedule = keras.optimizers.schedules.CosineDecay(0.0, 10, warmup_target=1e-2, warmup_steps=2)
        optimizer = optimizer_class(schedule, global_clipnorm=1.0)
        for _ in range(3):
            with tf.GradientTape() as tape:
                logits = heads({"pooled": pooled, "grid": tf.zeros((8, 4, 24)), "tokens": tokens})["caption"]
                loss = train.MaskedCaptionCrossEntropy()(tf.roll(tokens, -1, axis=1), logits)
            gradients = tape.gradient(loss, variables)
            assert any(isinstance(g, tf.IndexedSlices) for g in gradients)
            optimizer.apply(gradients, variables)
        assert all(np.abs(v.numpy() - w).max() > 1e-4 for v, w in zip(variables, initial))   # all trained
        weights[optimizer_class.__name__] = [v.numpy() for v in variables + optimizer.variables]
    # float32 rounding differs by CPU: on 2 AMD Zen 3 cores (AVX2) one value of 800, a weight of
    # 2.8e-5, differed by 1.0e-7; a wrong update (bias correction, the sparse rows) moves them all
    for keras_adam, fused in zip(weights["Adam"], weights["FusedAdam"], strict=True):
        np.testing.assert_allclose(fused, keras_adam, rtol=1e-5, atol=5e-7)


def test_unknown_strategy_and_multi_worker_without_tf_config(monkeypatch):
    with pytest.raises(ValueError, match="unknown strategy"):
        train.get_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        train.get_strategy("multi_worker")


def test_mirrored_strategy_on_two_logical_cpus_and_its_resume(sample_dir, tmp_path):
    """MirroredStrategy over two logical CPUs trains, and a second call with more epochs resumes
    from the backup at the next epoch (each call in its own process, as after a stop)."""
    def script(epochs: int) -> str:
        return textwrap.dedent(f"""
            import tensorflow as tf
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
            from helpers.training import train
            from helpers.config import Config
            config = Config(data_dir={str(sample_dir)!r},
                            **{dict(TINY, decoder="lstm", epochs=epochs, encoder_epochs=0, caption_samples=0)!r})
            strategy = train.get_strategy("mirrored")
            print("replicas", strategy.num_replicas_in_sync)
            result = train.train_run(config, {str(tmp_path / 'run')!r}, strategy=strategy, live_plot=False, verbose=0)
            print("epochs", len(result.history.get("loss", [])), "loss", result.history["loss"][-1])
        """)

    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    for epochs in (1, 2):
        completed = subprocess.run([sys.executable, "-c", script(epochs)], cwd=PROJECT_ROOT, env=env,
                                   capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert "replicas 2" in completed.stdout
        assert "epochs 1 loss" in completed.stdout         # the second call trains epoch 2 only
        assert np.isfinite(float(completed.stdout.split("loss")[-1]))
    assert train.read_history(tmp_path / "run")["epoch"].tolist() == [0, 1]
    assert (tmp_path / "run" / "bundle" / "heads.weights.h5").is_file()


def test_cli_prepare_and_train(sample_dir, tmp_path):
    from helpers.__main__ import main

    run = str(tmp_path / "cli-run")
    common = ["--run", run, "--data-dir", str(sample_dir), "--backbone", "sample_cnn", "--weights", "none",
              "--image-size", "32", "--max-train-images", "16", "--max-val-images", "4", "--min-word-count", "1",
              "--embedding-dim", "8", "--hidden-dim", "16", "--encoder-epochs", "0", "--decoder", "lstm"]
    assert main(["prepare", *common]) == 0
    config = Config.load(Path(run) / "config.json")
    assert config.weights is None and config.image_size == 32 and config.max_train_images == 16
    assert main(["train", "--run", run, "--epochs", "1"]) == 0
    assert (Path(run) / "bundle" / "bundle.json").is_file()
    assert Config.load(Path(run) / "config.json").epochs == 1
