"""Caption input pipeline speed (examples/s) and memory vs the data in RAM and the LSTM's needs.

    python -m bench.pipeline_speed            # shards of 512 rows (about 4 minutes, 2.1 GB of disk)
    python -m bench.pipeline_speed --quick    # shards of 128 rows (about 1.5 minutes, 0.5 GB)

Writes a synthetic 32-shard feature cache in the on-disk format of `helpers.training.features` (its own
shard writer; MobileNetV2 sizes: pooled 1280 float32, grid 7 x 7 x 1280 float16) to a temporary
folder, and 4- and 8-shard caches made of its first shards, with 5 captions of 8-16 words per
image (10-18 ids), a 10,000-word vocabulary and 500 synsets (5 per image), batches of 64.
Measured, side by side (`bench.timing.interleaved_best`, one epoch of the 8-shard cache per
call, fastest of the rounds, after a warm-up epoch):

* **pipeline**: `helpers.training.pipelines.caption_dataset` reading the cache from disk (shard files in
  the page cache, as in training after the first epoch). Everything counted, epoch start included.
* **in memory**: the same examples from arrays already in RAM, a batched `tf.gather` chain
  (indices -> batch -> parallel gather -> prefetch): the limit for data in RAM, no bucketing.
  Target: pipeline >= 0.5 x this. Both are also given per second of this process's CPU time,
  steadier than wall-clock time on a shared machine.

Then, timed once: **generator (replaced)**, the `from_generator` pipeline `caption_dataset` was
before issue 11, kept here only as the baseline it replaced (`_generator_caption_dataset`), over
the 4-shard cache; and what the training step consumes: `train_on_batch` of LSTM heads at COCO
sizes (vocabulary 10,000, embedding 256, hidden 512, as in `bench.train_speed`), in examples/s.
Target: pipeline >= 50 x this. Last, each in a fresh Python subprocess, the peak resident memory
(`VmHWM`) of reading one epoch from the 4-shard and the 32-shard cache: it must not grow with
the cache (the pipeline holds at most 4 shards). MB are 1e6 bytes.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import bench

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POOLED_DIM, GRID_CELLS, FEATURE_DIM = 1280, 49, 1280     # MobileNetV2 at 224 px
VOCABULARY_SIZE, NUM_SYNSETS, SYNSETS_PER_IMAGE = 10_000, 500, 5
CAPTIONS_PER_IMAGE, MIN_WORDS, MAX_WORDS = 5, 8, 16       # words per caption (+ <start>, <end>)
BATCH_SIZE, MAX_LENGTH = 64, 24                           # helpers.config defaults
WORDS = [f"w{n}" for n in range(VOCABULARY_SIZE - 4)]     # + the 4 special tokens
SYNSETS = [f"synset{n}.n.01" for n in range(NUM_SYNSETS)]


class Record:
    """What `caption_dataset` reads of a `helpers.data.coco.ImageRecord`."""

    def __init__(self, image_id: int, captions: list[str]):
        self.image_id, self.captions = image_id, captions


def synthetic_split(image_ids) -> dict:
    """Records, vocabularies and tags of images; the same for the same ids in every process."""
    from helpers.text.vocab import Vocabulary
    from helpers.wordnet.synset_vocabulary import SynsetVocabulary

    records, image_synsets = [], {}
    for image_id in image_ids:
        rng = np.random.default_rng([1, image_id])
        lengths = rng.integers(MIN_WORDS, MAX_WORDS + 1, size=CAPTIONS_PER_IMAGE)
        words = rng.integers(len(WORDS), size=(CAPTIONS_PER_IMAGE, MAX_WORDS))
        records.append(Record(image_id, [" ".join(WORDS[w] for w in row[:n]) for row, n in zip(words, lengths)]))
        image_synsets[image_id] = [SYNSETS[s] for s in rng.choice(NUM_SYNSETS, SYNSETS_PER_IMAGE, replace=False)]
    return {"records": records, "vocabulary": Vocabulary(WORDS),
            "synset_vocabulary": SynsetVocabulary(SYNSETS), "image_synsets": image_synsets}


def write_cache(folder: Path, num_shards: int, shard_rows: int, source: Path | None = None):
    """A complete `helpers.training.features` cache of `num_shards` shards of `shard_rows` images (ids
    0, 1, ...), written with its shard writer; returns its `FeatureCache`. The features are random
    (one block reused by every shard: their values do not change the speed), so shard i is the
    same file in every such cache: the shards `source` (another such cache) has are linked."""
    from helpers.training import features

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"ok": np.ones(shard_rows, bool),
              "pooled": rng.normal(size=(shard_rows, POOLED_DIM)).astype(np.float32),
              "grid": rng.normal(size=(shard_rows, GRID_CELLS, FEATURE_DIM)).astype(np.float16)}
    image_ids = list(range(num_shards * shard_rows))
    for shard in range(num_shards):
        name = features._shard_name(shard)
        if source is not None and (source / name).is_file():
            os.link(source / name, folder / name)
            continue
        rows = [(index, 0) for index in range(shard * shard_rows, (shard + 1) * shard_rows)]
        features._write_shard(folder, shard, rows, image_ids, arrays, shard_rows)
    manifest = {"format": features.FORMAT_NAME, "version": features.FORMAT_VERSION, "encoder": "synthetic",
                "image_size": 224, "grid_cells": GRID_CELLS, "feature_dim": FEATURE_DIM, "pooled_dim": POOLED_DIM,
                "shard_size": shard_rows, "augment_variants": 0, "augment_flip": False, "seed": 0,
                "image_ids": image_ids, "num_rows": len(image_ids), "num_shards": num_shards,
                "shards": {str(n): {"file": features._shard_name(n), "rows": shard_rows} for n in range(num_shards)},
                "failures": {}, "complete": True}
    features._write_atomically(folder / features.MANIFEST, lambda file: file.write(json.dumps(manifest).encode()))
    return features.FeatureCache(folder)


def in_memory_dataset(cache, split: dict, seed: int = 0):
    """The limit for data already in RAM: all rows and captions as tensors, a permutation of the
    (row, caption) pairs, batched, then one parallel `tf.gather` per batch."""
    import tensorflow as tf

    arrays = cache.load()
    row_of = {int(image_id): row for row, image_id in enumerate(arrays["image_ids"])}
    vocabulary, synset_vocabulary = split["vocabulary"], split["synset_vocabulary"]
    rows, captions = [], []
    for record in split["records"]:
        for caption in record.captions:
            rows.append(row_of[record.image_id])
            captions.append(caption)
    pooled, grid = tf.constant(arrays["pooled"]), tf.constant(arrays["grid"])
    tokens = tf.constant(vocabulary.encode_batch(captions, MAX_LENGTH))            # [C, max_length]
    tags = tf.constant(synset_vocabulary.encode_batch(
        [split["image_synsets"][int(image_id)] for image_id in arrays["image_ids"]]))
    order = np.random.default_rng(seed).permutation(len(rows))
    pairs = np.stack([np.asarray(rows)[order], order], axis=1).astype(np.int64)     # [C, 2] (row, caption)

    def gather_batch(pair):
        caption = tf.gather(tokens, pair[:, 1])
        return ({"pooled": tf.gather(pooled, pair[:, 0]), "grid": tf.gather(grid, pair[:, 0]),
                 "tokens": caption[:, :-1]},
                {"caption": caption[:, 1:], "tags": tf.gather(tags, pair[:, 0])})

    return (tf.data.Dataset.from_tensor_slices(pairs)
            .batch(BATCH_SIZE)
            .map(gather_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


# --- The baseline being replaced: caption_dataset before issue 11 (a Python generator). -------

def _generator_caption_dataset(cache, records, vocabulary, synset_vocabulary, image_synsets,
                               batch_size, max_length, shuffle=True, seed=0):
    """The replaced `helpers.training.pipelines.caption_dataset`, one example per generator step."""
    import tensorflow as tf

    from helpers.training.pipelines import BUCKET_BOUNDARIES

    captions = {record.image_id: [vocabulary.encode(c, max_length) for c in record.captions]
                for record in records}
    targets = {record.image_id: synset_vocabulary.encode(image_synsets[record.image_id]).astype(np.float32)
               for record in records}
    cells, depth, num_synsets = cache.grid_cells, cache.feature_dim, len(synset_vocabulary)
    passes = [0]

    def examples():
        rng = np.random.default_rng([seed, passes[0]])
        passes[0] += 1
        order = rng.permutation(cache.num_shards) if shuffle else range(cache.num_shards)
        for shard_index in order:
            shard = cache.shard(int(shard_index))
            rows = rng.permutation(len(shard["image_ids"])) if shuffle else range(len(shard["image_ids"]))
            for row in rows:
                image_id = int(shard["image_ids"][row])
                if not shard["ok"][row] or image_id not in captions:
                    continue
                for tokens in captions[image_id]:
                    yield shard["pooled"][row], shard["grid"][row], np.asarray(tokens, np.int32), targets[image_id]

    signature = (tf.TensorSpec((cache.pooled_dim,), tf.float32), tf.TensorSpec((cells, depth), tf.float16),
                 tf.TensorSpec((None,), tf.int32), tf.TensorSpec((num_synsets,), tf.float32))
    dataset = tf.data.Dataset.from_generator(examples, output_signature=signature)
    if shuffle:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=False)
    boundaries = [b for b in BUCKET_BOUNDARIES if b < max_length] + [max_length + 1]
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda pooled, grid, tokens, tags: tf.shape(tokens)[0],
        bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))
    counts = [0] * (len(boundaries) + 1)
    for token_lists in captions.values():
        for tokens in token_lists:
            counts[bisect.bisect_right(boundaries, len(tokens))] += 1
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(
        sum(math.ceil(count / batch_size) for count in counts)))

    def split(pooled, grid, tokens, tags):
        return ({"pooled": pooled, "grid": grid, "tokens": tokens[:, :-1]},
                {"caption": tokens[:, 1:], "tags": tags})

    return dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------------------

def count_examples(dataset) -> int:
    """Read one epoch; examples (captions) read."""
    return sum(int(inputs["tokens"].shape[0]) for inputs, _ in dataset)


def lstm_examples_per_second(steps: int) -> float:
    """Examples/s of `train_on_batch` of LSTM heads at COCO sizes (the `bench.train_speed` setup)."""
    from bench import train_speed
    from helpers import model
    from helpers.config import Config
    from helpers.training import train

    config = Config(decoder="lstm", embedding_dim=train_speed.EMBEDDING_DIM, hidden_dim=train_speed.HIDDEN_DIM,
                    attention_dim=train_speed.ATTENTION_DIM, tagger_hidden_dim=512)
    heads = model.build_heads(config, VOCABULARY_SIZE, train_speed.NUM_SYNSETS, GRID_CELLS, FEATURE_DIM)
    train.compile_heads(heads, config, steps=100)
    rng = np.random.default_rng(0)
    batches = [train_speed._batch(rng) for _ in range(2)]
    for inputs, targets in batches:                         # trace and warm up
        heads.train_on_batch(inputs, targets)
    started = time.perf_counter()
    for step in range(steps):
        heads.train_on_batch(*batches[step % len(batches)])
    return steps * train_speed.BATCH_SIZE / (time.perf_counter() - started)


_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])

from bench import pipeline_speed
from bench.timing import peak_kib
from helpers.training import features
from helpers.training import pipelines
cache = features.FeatureCache(sys.argv[1])
split = pipeline_speed.synthetic_split(cache.image_ids)
dataset = pipelines.caption_dataset(cache, **split, batch_size=pipeline_speed.BATCH_SIZE,
                                    max_length=pipeline_speed.MAX_LENGTH, shuffle=True, seed=0)
baseline = peak_kib()
start = time.perf_counter()
examples = pipeline_speed.count_examples(dataset)
print(json.dumps({"examples": examples, "seconds": time.perf_counter() - start,
                  "baseline_kib": baseline, "peak_kib": peak_kib()}))
"""


def _epoch_memory(cache_dir: Path) -> dict:
    """Peak memory of one epoch of `caption_dataset` over a cache, in a fresh process."""
    from bench.timing import run_child

    return run_child(_CHILD, str(cache_dir), str(PROJECT_ROOT))


def run(quick: bool = False) -> dict:
    """Write the caches, measure, print and return examples/s, ratios and peak memory (MB)."""
    from bench.timing import interleaved_best
    from helpers.training import pipelines

    shard_rows = 128 if quick else 512
    repeats, steps = (3, 3) if quick else (5, 10)
    shard_bytes = shard_rows * (POOLED_DIM * 4 + GRID_CELLS * FEATURE_DIM * 2)
    result = {"shard_rows": shard_rows, "shard_mb": round(shard_bytes / 1e6, 1),
              "batch_size": BATCH_SIZE, "captions_per_image": CAPTIONS_PER_IMAGE}
    options = {"batch_size": BATCH_SIZE, "max_length": MAX_LENGTH, "shuffle": True, "seed": 0}
    with tempfile.TemporaryDirectory(prefix="pipeline_bench_") as folder:
        folder = Path(folder)
        started = time.perf_counter()
        write_cache(folder / "cache32", 32, shard_rows)
        caches = {shards: write_cache(folder / f"cache{shards}", shards, shard_rows, source=folder / "cache32")
                  for shards in (4, 8)}
        print(f"wrote a 32-shard cache ({32 * result['shard_mb']:.0f} MB, {32 * shard_rows} images x "
              f"{CAPTIONS_PER_IMAGE} captions) and 4- and 8-shard ones (its first shards) in "
              f"{time.perf_counter() - started:.1f} s", flush=True)

        cache = caches[8]                                 # speed: 8 shards, the in-memory copy fits
        split = synthetic_split(cache.image_ids)
        datasets = {"pipeline": pipelines.caption_dataset(cache, **split, **options),
                    "in_memory": in_memory_dataset(cache, split)}
        examples = {name: count_examples(dataset) for name, dataset in datasets.items()}   # warm-up pass
        if examples["pipeline"] != examples["in_memory"]:
            raise RuntimeError(f"the pipelines read different numbers of examples: {examples}")
        cpu_seconds = {name: float("inf") for name in datasets}   # this process's CPU time (shared machine)

        def epoch(name):
            started = os.times()
            count_examples(datasets[name])
            ended = os.times()
            cpu_seconds[name] = min(cpu_seconds[name], ended.user + ended.system - started.user - started.system)

        seconds = interleaved_best({name: (lambda name=name: epoch(name)) for name in datasets}, repeats=repeats)
        result["speed_examples_per_epoch"] = examples["pipeline"]
        for name, best in seconds.items():
            result[f"{name}_examples_per_s"] = round(examples[name] / best, 1)
            result[f"{name}_examples_per_cpu_s"] = round(examples[name] / cpu_seconds[name], 1)
        datasets.clear()                                  # the in-memory arrays go
        # The replaced generator is slow: one epoch of the 4-shard cache, timed once.
        small_split = synthetic_split(caches[4].image_ids)
        generator = _generator_caption_dataset(caches[4], **small_split, **options)
        started = time.perf_counter()
        count = count_examples(generator)
        result["generator_examples_per_s"] = round(count / (time.perf_counter() - started), 1)
        result["lstm_train_examples_per_s"] = round(lstm_examples_per_second(steps), 1)
        rate = result["pipeline_examples_per_s"]
        result["pipeline_over_in_memory"] = round(rate / result["in_memory_examples_per_s"], 2)
        result["pipeline_over_in_memory_cpu"] = round(
            result["pipeline_examples_per_cpu_s"] / result["in_memory_examples_per_cpu_s"], 2)
        result["pipeline_over_lstm_train"] = round(rate / result["lstm_train_examples_per_s"], 1)
        result["pipeline_over_generator"] = round(rate / result["generator_examples_per_s"], 1)
        print(f"examples/s: pipeline {rate:,.0f} | in memory {result['in_memory_examples_per_s']:,.0f} | "
              f"generator (replaced) {result['generator_examples_per_s']:,.0f} | LSTM training step "
              f"{result['lstm_train_examples_per_s']:,.0f}", flush=True)
        print(f"pipeline / in memory {result['pipeline_over_in_memory']} (target >= 0.5; per CPU second "
              f"{result['pipeline_over_in_memory_cpu']}), pipeline / LSTM "
              f"{result['pipeline_over_lstm_train']}x (target >= 50x), pipeline / generator "
              f"{result['pipeline_over_generator']}x", flush=True)

        kib = 1024 / 1e6
        for shards in (4, 32):
            memory = _epoch_memory(folder / f"cache{shards}")
            result[f"peak_mb_{shards}_shards"] = round(memory["peak_kib"] * kib, 1)
            result[f"added_mb_{shards}_shards"] = round((memory["peak_kib"] - memory["baseline_kib"]) * kib, 1)
            result[f"epoch_examples_per_s_{shards}_shards"] = round(memory["examples"] / memory["seconds"], 1)
    result["peak_ratio_32_over_4_shards"] = round(result["peak_mb_32_shards"] / result["peak_mb_4_shards"], 2)
    print(f"peak memory of one epoch: 4 shards {result['peak_mb_4_shards']} MB "
          f"(+{result['added_mb_4_shards']} MB while reading), 32 shards {result['peak_mb_32_shards']} MB "
          f"(+{result['added_mb_32_shards']} MB): ratio {result['peak_ratio_32_over_4_shards']} "
          f"for 8x the cache", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__.split("\n")[0], run, argv, quick="shards of 128 rows instead of 512")


if __name__ == "__main__":
    raise SystemExit(main())
