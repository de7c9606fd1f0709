"""Decoder training speed (caption tokens per second) on cached features.

    python -m bench.train_speed            # both decoders, 20 steps each
    python -m bench.train_speed --quick    # 5 steps each

Heads of realistic size with random inputs: vocabulary 10,000, word embedding 256, LSTM 512,
attention 256 over a 7 x 7 x 1280 grid (MobileNetV2 at 224 px), batch 64 captions of 14 tokens,
compiled exactly as `helpers.train.fit` compiles them (masked cross-entropy + tag BCE, Adam with
the warmup/cosine schedule, gradient clipping). Counted tokens are the non-padding targets.
For reference, the README quotes about 2,300-3,000 tokens/s for the LSTM decoder on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

VOCABULARY_SIZE, EMBEDDING_DIM, HIDDEN_DIM, ATTENTION_DIM = 10_000, 256, 512, 256
GRID_CELLS, FEATURE_DIM, NUM_SYNSETS = 49, 1280, 500
BATCH_SIZE, CAPTION_LENGTH = 64, 14


def _batch(rng):
    tokens = rng.integers(4, VOCABULARY_SIZE, size=(BATCH_SIZE, CAPTION_LENGTH + 1)).astype(np.int32)
    tokens[:, 0] = 1
    lengths = rng.integers(8, CAPTION_LENGTH + 2, size=BATCH_SIZE)
    for row, length in zip(tokens, lengths):
        row[length:] = 0
    inputs = {"pooled": rng.normal(size=(BATCH_SIZE, FEATURE_DIM)).astype(np.float32),
              "grid": rng.normal(size=(BATCH_SIZE, GRID_CELLS, FEATURE_DIM)).astype(np.float16),
              "tokens": tokens[:, :-1]}
    targets = {"caption": tokens[:, 1:], "tags": (rng.random((BATCH_SIZE, NUM_SYNSETS)) < 0.01).astype(np.float32)}
    return inputs, targets


def run(quick: bool = False) -> dict:
    """Train each decoder for a few steps; returns tokens/s (and steps/s) per decoder."""
    from helpers import model, train
    from helpers.config import Config

    steps = 5 if quick else 20
    rng = np.random.default_rng(0)
    batches = [_batch(rng) for _ in range(4)]
    results = {"batch_size": BATCH_SIZE, "caption_length": CAPTION_LENGTH, "vocabulary_size": VOCABULARY_SIZE}
    for decoder in ("lstm", "attention"):
        config = Config(decoder=decoder, embedding_dim=EMBEDDING_DIM, hidden_dim=HIDDEN_DIM,
                        attention_dim=ATTENTION_DIM, tagger_hidden_dim=512)
        heads = model.build_heads(config, VOCABULARY_SIZE, NUM_SYNSETS, GRID_CELLS, FEATURE_DIM)
        train.compile_heads(heads, config, steps=100)
        for inputs, targets in batches[:2]:                    # trace and warm up
            heads.train_on_batch(inputs, targets)
        tokens = 0
        started = time.perf_counter()
        for step in range(steps):
            inputs, targets = batches[step % len(batches)]
            heads.train_on_batch(inputs, targets)
            tokens += int((targets["caption"] != 0).sum())
        seconds = time.perf_counter() - started
        results[f"{decoder}_tokens_per_s"] = round(tokens / seconds, 1)
        results[f"{decoder}_steps_per_s"] = round(steps / seconds, 3)
        print(f"{decoder:>9} decoder training: {tokens / seconds:,.0f} tokens/s ({steps / seconds:.2f} steps/s "
              f"of {BATCH_SIZE} captions)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 steps per decoder instead of 20")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()
