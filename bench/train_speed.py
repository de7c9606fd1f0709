"""Decoder training speed (caption tokens per second) on cached features, against what the
machine's matrix multiplications allow, with oneDNN on/off and XLA on/off.

    python -m bench.train_speed            # 4 timed steps per round, 2 rounds (about 10 minutes)
    python -m bench.train_speed --quick    # 2 timed steps, 1 round (about 6 minutes)

Most of the time goes to tracing and XLA-compiling the 4 training steps in each of the 2
subprocesses.

Heads of realistic size with random inputs: vocabulary 10,000, word embedding 256, LSTM 512,
attention 256 over a 7 x 7 x 1280 grid (MobileNetV2 at 224 px), batch 64 captions of 14 tokens,
compiled exactly as `helpers.training.train.fit` compiles them (masked cross-entropy + tag BCE, Adam with
the warmup/cosine schedule, gradient clipping). Counted tokens are the non-padding targets.

**FLOPs per token** (`training_flops`) are counted from the layer shapes, 2 FLOPs per
multiply-add, matrix products only (element-wise work, softmax and the optimizer are left out),
forward + backward with backward = 2 x forward (a product `[m, k] @ [k, n]` needs two products of
the same size for the gradients of both operands), so training = 3 x forward. With E = 256,
H = 512, V = 10,000, L = 49 cells of D = 1,280 (+ 16 coordinates: D' = 1,296), A = 256,
P = 1,280 pooled, tagger 1,280 -> 512 -> 500, T = 14 positions per caption:

    lstm      per position: 2 (E 4H + H 4H + H V)                                   = 13.4 MFLOP
              per caption:  2 (P E + E 4H + H 4H) (image step) + tagger             =  5.6 MFLOP
    attention per position: 2 (H A + L A + L D' + H + (E + D') 4H + H 4H + (H + D') V) = 45.0 MFLOP
              per caption:  2 (L D' A + 2 D' H) + tagger                            = 37.0 MFLOP
    FLOPs per token = 3 x (per position + per caption / T), every position counted (padding too):
    41.4 MFLOP (lstm), 143.0 MFLOP (attention).

The **concept decoder** (`concepts`) at the sizes of a caption-text run (`CONCEPTS`: vocabulary
V = 4,050, batch 128 captions of T = 19 positions, attention over L = 11 concept cells of
D = 256, no tagger, no coordinates): per position as attention's with these L, D and V, per
caption 2 (L D A + 2 D H): 32.4 MFLOP per token.

The decoders' achieved FLOP/s (FLOPs per token x token positions per second) are compared with
the **measured matmul throughput** of the machine: a large float32 `tf.matmul`
(2,048 x 2,048 x 2,048) in a compiled function, timed in the same rounds as the training steps in
each setting; the faster setting's number is the machine's (Eigen and oneDNN differ, and a
fraction of one common number compares the settings). Target: achieved fraction >= 0.5. To show what the layer
shapes themselves allow, the same
products (forward and both gradients, at the shapes training runs them: recurrent products
per step over the 64 captions, the output projection over all 64 x 14 positions at once) are
also timed as bare `tf.matmul`s ("bare shapes").

Switches, each run side by side: **oneDNN** on vs off (`TF_ENABLE_ONEDNN_OPTS` is read when
TensorFlow is imported, so each setting runs in its own subprocess, alternately); **XLA**
(`jit_compile=True` vs False for the training step) inside each subprocess, in interleaved rounds.
Mixed precision only speeds up GPUs; there is no GPU here, so it is not measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

import bench

VOCABULARY_SIZE, EMBEDDING_DIM, HIDDEN_DIM, ATTENTION_DIM = 10_000, 256, 512, 256
GRID_CELLS, FEATURE_DIM, NUM_SYNSETS, TAGGER_HIDDEN = 49, 1280, 500, 512
COORDINATES = 16                    # sinusoidal (x, y) channels the attention decoder appends
BATCH_SIZE, CAPTION_LENGTH = 64, 14
# The concept decoder as `python -m helpers train --data-dir caption-text` trains it (helpers.config
# defaults; vocabulary and concept ids of the default corpus): a set of at most 10 concepts + <photo>.
CONCEPTS = {"vocabulary": 4_050, "concept_ids": 340, "cells": 11, "concept_dim": EMBEDDING_DIM,
            "batch": 128, "length": 19}
MATMUL_SIZE = 2048                  # the "large matmul" measuring the machine's throughput
DECODERS = ("lstm", "attention", "concepts")


def _matmul_shapes(decoder: str) -> tuple[list, list]:
    """`(per_position, per_caption)`: the `(m, k, n)` matrix products of one token position and
    of one caption (`m` = rows per product when the batch has one caption), see the docstring."""
    e, h, v, p = EMBEDDING_DIM, HIDDEN_DIM, VOCABULARY_SIZE, FEATURE_DIM
    tagger = [(1, p, TAGGER_HIDDEN), (1, TAGGER_HIDDEN, NUM_SYNSETS)]
    if decoder == "lstm":
        return ([(1, e, 4 * h), (1, h, 4 * h), (1, h, v)],
                [(1, p, e), (1, e, 4 * h), (1, h, 4 * h), *tagger])
    if decoder == "concepts":          # attention over the concept cells, no tagger, no coordinates
        cells, a, d, v = CONCEPTS["cells"], ATTENTION_DIM, CONCEPTS["concept_dim"], CONCEPTS["vocabulary"]
        return ([(1, h, a), (cells, a, 1), (1, cells, d), (1, h, 1), (1, e + d, 4 * h), (1, h, 4 * h),
                 (1, h + d, v)],
                [(cells, d, a), (1, d, h), (1, d, h)])
    cells, a, d = GRID_CELLS, ATTENTION_DIM, FEATURE_DIM + COORDINATES
    return ([(1, h, a), (cells, a, 1), (1, cells, d), (1, h, 1), (1, e + d, 4 * h), (1, h, 4 * h),
             (1, h + d, v)],
            [(cells, d, a), (1, d, h), (1, d, h), *tagger])


def sizes(decoder: str) -> tuple[int, int, int]:
    """`(vocabulary size, captions per batch, token positions per caption)` of a decoder's step."""
    if decoder == "concepts":
        return CONCEPTS["vocabulary"], CONCEPTS["batch"], CONCEPTS["length"]
    return VOCABULARY_SIZE, BATCH_SIZE, CAPTION_LENGTH


def training_flops(decoder: str) -> dict:
    """FLOPs of training on one token position (forward + backward = 3 x forward), see the
    module docstring: `{"forward_per_position", "forward_per_caption", "per_token"}`."""
    per_position, per_caption = (2.0 * sum(m * k * n for m, k, n in shapes)
                                 for shapes in _matmul_shapes(decoder))
    return {"forward_per_position": per_position, "forward_per_caption": per_caption,
            "per_token": 3.0 * (per_position + per_caption / sizes(decoder)[2])}


def _batch(rng, decoder: str = "lstm"):
    """A random batch of `decoder`'s sizes: `(inputs, targets)` as `fit` reads them."""
    vocabulary, batch, length = sizes(decoder)
    tokens = rng.integers(4, vocabulary, size=(batch, length + 1)).astype(np.int32)
    tokens[:, 0] = 1
    lengths = rng.integers(8, length + 2, size=batch)
    for row, end in zip(tokens, lengths):
        row[end:] = 0
    if decoder == "concepts":                  # (concept id, confidence, count), <photo> first
        from helpers.wordnet.concepts import PHOTO_CONCEPT_ID

        cells = CONCEPTS["cells"]
        grid = np.zeros((batch, cells, 3), np.float32)
        grid[:, 0] = (PHOTO_CONCEPT_ID, 1.0, 0)
        for row, count in zip(grid, rng.integers(1, cells, size=batch)):
            row[1:1 + count, 0] = rng.choice(np.arange(PHOTO_CONCEPT_ID + 1, CONCEPTS["concept_ids"]), count,
                                             replace=False)
            row[1:1 + count, 1] = rng.random(count)
            row[1:1 + count, 2] = rng.integers(1, 4, count)
        return ({"pooled": np.zeros((batch, 1), np.float32), "grid": grid, "tokens": tokens[:, :-1]},
                {"caption": tokens[:, 1:]})
    inputs = {"pooled": rng.normal(size=(batch, FEATURE_DIM)).astype(np.float32),
              "grid": rng.normal(size=(batch, GRID_CELLS, FEATURE_DIM)).astype(np.float16),
              "tokens": tokens[:, :-1]}
    targets = {"caption": tokens[:, 1:], "tags": (rng.random((batch, NUM_SYNSETS)) < 0.01).astype(np.float32)}
    return inputs, targets


def _bare_products(decoder: str):
    """A compiled function running the training products of one batch as bare `tf.matmul`s:
    every product forward and its two gradient products, at training's shapes (the recurrent
    products once per position over the batch, the output projection over all positions)."""
    import tensorflow as tf

    per_position, per_caption = _matmul_shapes(decoder)
    vocabulary, rows, length = sizes(decoder)
    products = []          # (m, k, n, repeats)
    for m, k, n in per_position:
        if n == vocabulary:                             # one product over all positions
            products.append((m * rows * length, k, n, 1))
        else:
            products.append((m * rows, k, n, length))
    products += [(m * rows, k, n, 1) for m, k, n in per_caption]
    rng = np.random.default_rng(0)
    operands = [(tf.constant(rng.normal(size=(m, k)).astype(np.float32)),
                 tf.constant(rng.normal(size=(k, n)).astype(np.float32)), repeats)
                for m, k, n, repeats in products]

    @tf.function
    def run():
        total = tf.constant(0.0)
        for left, right, repeats in operands:
            for _ in range(repeats):
                out = tf.matmul(left + total * 0.0, right)                       # forward
                grad_left = tf.matmul(out, right, transpose_b=True)             # d left
                grad_right = tf.matmul(left, out, transpose_a=True)             # d right
                total = total + out[0, 0] + grad_left[0, 0] + grad_right[0, 0]
        return total

    flops = sum(6.0 * m * k * n * repeats for m, k, n, repeats in products)
    return run, flops


def _worker(steps: int, rounds: int) -> dict:
    """Measure in this process (oneDNN as the environment set it): the matmul throughput, and
    tokens/s of both decoders with XLA off and on, in interleaved rounds (best round kept)."""
    import tensorflow as tf

    from helpers import model
    from helpers.config import Config
    from helpers.training import train

    rng = np.random.default_rng(0)
    batches = {decoder: [_batch(rng, decoder) for _ in range(4)] for decoder in DECODERS}
    size = MATMUL_SIZE
    left = tf.random.normal([size, size], seed=1)
    right = tf.random.normal([size, size], seed=2)
    big_matmul = tf.function(lambda: tf.matmul(left, right)[0, 0])
    big_matmul()

    runs = {"matmul": (lambda: big_matmul().numpy(), 1)}
    for decoder in DECODERS:
        bare, _ = _bare_products(decoder)
        bare()
        runs[f"{decoder}_bare_shapes"] = (lambda bare=bare: bare().numpy(), 1)
        for xla in (False, True):
            config = Config(decoder=decoder, embedding_dim=EMBEDDING_DIM, hidden_dim=HIDDEN_DIM,
                            attention_dim=ATTENTION_DIM, tagger_hidden_dim=TAGGER_HIDDEN)
            if decoder == "concepts":
                heads = model.build_heads(config, CONCEPTS["vocabulary"], CONCEPTS["concept_ids"],
                                          CONCEPTS["cells"], 3)
            else:
                heads = model.build_heads(config, VOCABULARY_SIZE, NUM_SYNSETS, GRID_CELLS, FEATURE_DIM)
            train.compile_heads(heads, config, steps=100)
            heads.jit_compile = xla
            started = time.perf_counter()
            for inputs, targets in batches[decoder][:2]:             # trace (and XLA-compile) and warm up
                heads.train_on_batch(inputs, targets)
            print(f"  {decoder} xla={xla}: traced in {time.perf_counter() - started:.0f} s", flush=True)

            def train_steps(heads=heads, batches=batches[decoder]):
                for step in range(steps):
                    inputs, targets = batches[step % len(batches)]
                    heads.train_on_batch(inputs, targets)
            runs[f"{decoder}_{'xla' if xla else 'no_xla'}"] = (train_steps, steps)

    best = {name: float("inf") for name in runs}
    for _ in range(rounds):                                  # interleaved, as bench.timing does
        for name, (function, _count) in runs.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    results = {"matmul_gflop_per_s": 2.0 * size ** 3 / best["matmul"] / 1e9}
    for decoder in DECODERS:
        tokens = sum(int((batches[decoder][step % 4][1]["caption"] != 0).sum()) for step in range(steps))
        positions = steps * sizes(decoder)[1] * sizes(decoder)[2]
        _, bare_flops = _bare_products(decoder)
        results[f"{decoder}_bare_shapes_gflop_per_s"] = bare_flops / best[f"{decoder}_bare_shapes"] / 1e9
        for variant in ("no_xla", "xla"):
            seconds = best[f"{decoder}_{variant}"]
            results[f"{decoder}_{variant}_tokens_per_s"] = tokens / seconds
            results[f"{decoder}_{variant}_positions_per_s"] = positions / seconds
    return results


def _run_worker(onednn: bool, steps: int, rounds: int) -> dict:
    """`_worker` in a subprocess with `TF_ENABLE_ONEDNN_OPTS` set before TensorFlow is imported."""
    environment = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0"}
    command = [sys.executable, "-m", "bench.train_speed", "--worker", str(steps), str(rounds)]
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"train_speed worker (oneDNN {'on' if onednn else 'off'}) failed:\n"
                           f"{finished.stderr[-3000:]}")
    for line in finished.stdout.splitlines():
        if line.startswith("  "):
            print(f"  oneDNN {'on' if onednn else 'off'}:{line}", flush=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    """Measure everything (see the module docstring) and return the numbers and ratios."""
    steps, rounds, passes = (2, 1, 1) if quick else (4, 2, 1)
    measured = {True: [], False: []}
    for _ in range(passes):                   # oneDNN off, on (, off, on): each setting's best kept
        for onednn in (False, True):
            measured[onednn].append(_run_worker(onednn, steps, rounds))
    best = {onednn: {key: max(result[key] for result in results) for key in results[0]}
            for onednn, results in measured.items()}
    default_onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "") != "0"   # helpers turns it on
    results: dict = {
        "batch_size": BATCH_SIZE, "caption_length": CAPTION_LENGTH, "vocabulary_size": VOCABULARY_SIZE,
        "concepts": CONCEPTS,
        "steps_per_round": steps, "rounds": rounds,
        "mixed_precision": "not measured: it only speeds up GPUs, and this machine has none",
    }
    # The machine's matmul throughput: the faster of the two settings' large matmuls (each
    # setting's fractions are of this one number, so they compare across settings).
    machine = max(best[onednn]["matmul_gflop_per_s"] for onednn in (False, True))
    results["machine_matmul_gflop_per_s"] = round(machine, 1)
    for onednn in (False, True):
        numbers = best[onednn]
        name = "onednn_on" if onednn else "onednn_off"
        results[name] = {"matmul_gflop_per_s": round(numbers["matmul_gflop_per_s"], 1)}
        for decoder in DECODERS:
            flops = training_flops(decoder)
            section = {"flops_per_token_mflop": round(flops["per_token"] / 1e6, 2),
                       "bare_shapes_gflop_per_s": round(numbers[f"{decoder}_bare_shapes_gflop_per_s"], 1),
                       "bare_shapes_fraction": round(numbers[f"{decoder}_bare_shapes_gflop_per_s"] / machine, 3)}
            for variant in ("no_xla", "xla"):
                achieved = flops["per_token"] * numbers[f"{decoder}_{variant}_positions_per_s"]
                section[f"{variant}_tokens_per_s"] = round(numbers[f"{decoder}_{variant}_tokens_per_s"], 1)
                section[f"{variant}_gflop_per_s"] = round(achieved / 1e9, 1)
                section[f"{variant}_fraction"] = round(achieved / 1e9 / machine, 3)
            results[name][decoder] = section
    default = results["onednn_on" if default_onednn else "onednn_off"]
    for decoder in DECODERS:          # the default setting (no XLA), as before the switches
        tokens_per_s = default[decoder]["no_xla_tokens_per_s"]
        results[f"{decoder}_tokens_per_s"] = tokens_per_s
        results[f"{decoder}_steps_per_s"] = round(
            best[default_onednn][f"{decoder}_no_xla_positions_per_s"] / (sizes(decoder)[1] * sizes(decoder)[2]), 3)
    # The target, for each decoder, in each oneDNN setting without XLA (TensorFlow's default here:
    # see `default_onednn`).
    keys = [f"{name}.{decoder}.no_xla_fraction" for name in ("onednn_off", "onednn_on") for decoder in DECODERS]
    results["targets"] = {key: ">= 0.5" for key in keys}
    results["pass"] = {key: results[key.split(".")[0]][key.split(".")[1]]["no_xla_fraction"] >= 0.5
                       for key in keys}
    results["default_onednn"] = "on" if default_onednn else "off"

    print(f"machine matmul throughput {machine:.0f} GFLOP/s (the faster setting's large matmul)")
    for name in ("onednn_off", "onednn_on"):
        print(f"{name.replace('_', ' ')}: large matmul {results[name]['matmul_gflop_per_s']:.0f} GFLOP/s")
        for decoder in DECODERS:
            section = results[name][decoder]
            print(f"  {decoder:>9}: {section['flops_per_token_mflop']:.1f} MFLOP/token; tokens/s "
                  f"{section['no_xla_tokens_per_s']:,.0f} without XLA "
                  f"({section['no_xla_fraction']:.2f} of the machine's matmul throughput, target >= 0.5), "
                  f"{section['xla_tokens_per_s']:,.0f} with XLA ({section['xla_fraction']:.2f}); "
                  f"bare matmuls of its shapes reach {section['bare_shapes_fraction']:.2f}")
    print(f"mixed precision: {results['mixed_precision']}")
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 3 and argv[0] == "--worker":       # one oneDNN setting (see run)
        print(json.dumps(_worker(int(argv[1]), int(argv[2]))))
        return 0
    return bench.command_line(__doc__.split("\n")[0], run, argv, quick="3 steps per round, 2 rounds, one pass")


if __name__ == "__main__":
    raise SystemExit(main())
