"""Beam search speed: batched beam search vs a per-image, per-step Python loop vs batched greedy.

    python -m bench.beam_speed            # 64 images, both decoders
    python -m bench.beam_speed --quick    # 16 images, the LSTM decoder only

Decoders of realistic size with random weights (time per step does not depend on the weights):
vocabulary 10,000, word embedding 256, LSTM 512; the attention decoder over a 7 x 7 x 1280 grid
(MobileNetV2 at 224 px) with attention size 256. Encoder features are random. Captions are at most
20 tokens; a random decoder rarely says <end>, so almost every caption runs to the maximum length
(the same work for all three methods).

Three measurements, same decoder, same features, all decoding every image:

* **batched beam search** (`helpers.decoding.beam_search`, width 3): all images and beams in one
  batch, one compiled step per time step.
* **per-image loop**: the textbook implementation: one image at a time, one eager
  `decoder.step` call per time step over that image's beams, Python bookkeeping (it gives the same
  captions; checked below). Target: batched >= 5x faster.
* **batched greedy** (`helpers.decoding.greedy_decode`): the cheapest decoding there is.
  Target: beam search (width 3) costs <= 2x greedy.

Beam and greedy are timed in interleaved rounds (best of 3 each). Beam search computes about 3x the
decoder rows of greedy decoding (one row per image at the first step, then one per beam), and a
CPU's time per step grows almost linearly with rows once they fill its vector units: the cost
ratio is therefore also printed for batches of 8 to 64 images.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.timing import interleaved_best

VOCABULARY_SIZE, EMBEDDING_DIM, HIDDEN_DIM, ATTENTION_DIM = 10_000, 256, 512, 256
GRID_CELLS, FEATURE_DIM = 49, 1280       # MobileNetV2 at 224 px: 7 x 7 x 1280
MAX_LENGTH = 20                          # generated tokens per caption, <end> included
BEAM_WIDTH = 3
BATCH_SIZE = 32                          # images per beam-search batch (as Captioner.predict)


def build_decoder(kind: str):
    """A randomly initialised decoder of `kind` ("lstm" or "attention") at the sizes above."""
    import keras

    from helpers import model
    from helpers.config import Config

    keras.utils.set_random_seed(0)
    config = Config(decoder=kind, embedding_dim=EMBEDDING_DIM, hidden_dim=HIDDEN_DIM,
                    attention_dim=ATTENTION_DIM)
    decoder = model.build_heads(config, VOCABULARY_SIZE, 80, GRID_CELLS, FEATURE_DIM).decoder
    # A random decoder is nearly uniform over 10,000 words, where float rounding alone decides
    # between near-equal words; scaling the output weights makes its choices clear-cut (same cost),
    # so the loop and the batched search can be checked to find the same captions.
    decoder.output_layer.kernel.assign(decoder.output_layer.kernel * 6.0)
    return decoder


def _time(function, repeats: int = 1) -> float:
    """Best wall time of `repeats` calls, seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _decoders_and_features(kind: str, images: int):
    decoder = build_decoder(kind)
    rng = np.random.default_rng(0)
    grid = rng.normal(size=(images, GRID_CELLS, FEATURE_DIM)).astype(np.float32)
    return decoder, grid.mean(axis=1), grid


def _batched(decoder, pooled, grid, batch_size: int):
    """`(beam, greedy)`: functions decoding every image in batches of `batch_size`."""
    from helpers import decoding

    batches = [(pooled[i:i + batch_size], grid[i:i + batch_size]) for i in range(0, len(pooled), batch_size)]

    def beam():
        return [h for p, g in batches for h in decoding.beam_search(
            decoder, p, g, beam_width=BEAM_WIDTH, max_length=MAX_LENGTH)]

    def greedy():
        return [h for p, g in batches for h in decoding.greedy_decode(decoder, p, g, max_length=MAX_LENGTH)]
    return beam, greedy


def measure(kind: str, images: int, loop_images: int) -> dict:
    """Images/s of the three methods for one decoder kind (see the module docstring)."""
    decoder, pooled, grid = _decoders_and_features(kind, images)
    batched_beam, batched_greedy = _batched(decoder, pooled, grid, BATCH_SIZE)

    def loop():
        from helpers import decoding

        return decoding.reference_beam_search(decoder, pooled[:loop_images], grid[:loop_images],
                                              BEAM_WIDTH, MAX_LENGTH)

    batched_beam(), batched_greedy()                     # warm-up: trace the compiled loops
    seconds = interleaved_best({"beam": batched_beam, "greedy": batched_greedy})
    beam_seconds, greedy_seconds = seconds["beam"], seconds["greedy"]
    loop_seconds = _time(loop) * images / loop_images    # extrapolated to all images

    # The loop and the batched search must find the same captions (same algorithm).
    batched_results = batched_beam()[:loop_images]
    loop_results = loop()
    same = sum(
        [h.tokens.tolist() for h in found] == [h.tokens.tolist() for h in expected]
        for found, expected in zip(batched_results, loop_results))
    steps = sum(max(h.length for h in hypotheses) for hypotheses in batched_results) / len(batched_results)
    return {
        "decoder": kind,
        "images": images,
        "batch_size": BATCH_SIZE,
        "mean_steps": round(steps, 1),
        "beam_images_per_s": round(images / beam_seconds, 2),
        "greedy_images_per_s": round(images / greedy_seconds, 2),
        "per_image_loop_images_per_s": round(images / loop_seconds, 2),
        "speedup_vs_per_image_loop": round(loop_seconds / beam_seconds, 2),      # target >= 5
        "beam_cost_vs_greedy": round(beam_seconds / greedy_seconds, 2),           # target <= 2
        # Decoder rows x steps: greedy 1 row per image and step; beam 1 at the first step, then K.
        "decoder_rows_beam_vs_greedy": round((1 + BEAM_WIDTH * (MAX_LENGTH - 1)) / MAX_LENGTH, 2),
        "loop_images_checked": loop_images,
        "loop_same_captions": same,
    }


def batch_sweep(kind: str, images: int, batch_sizes) -> dict:
    """Beam (width 3) cost / greedy cost at several batch sizes: `{batch_size: ratio}`.

    A CPU's time per decoder step grows almost linearly with the rows of the step once the rows
    fill its vector units; beam search has about `BEAM_WIDTH` times greedy's rows, so the ratio
    tends to `BEAM_WIDTH` for large batches and is lowest for small ones.
    """
    decoder, pooled, grid = _decoders_and_features(kind, images)
    ratios = {}
    for batch_size in batch_sizes:
        beam, greedy = _batched(decoder, pooled, grid, batch_size)
        beam(), greedy()
        seconds = interleaved_best({"beam": beam, "greedy": greedy})
        ratios[batch_size] = round(seconds["beam"] / seconds["greedy"], 2)
    return ratios


def run(quick: bool = False) -> dict:
    """Measure, print the ratios and return the numbers (`{"lstm": {...}, "attention": {...}}`)."""
    kinds = ["lstm"] if quick else ["lstm", "attention"]
    images = 16 if quick else 64
    loop_images = 4 if quick else 8
    sweep_sizes = (8, 16) if quick else (8, 16, 32, 64)
    results = {}
    for kind in kinds:
        started = time.perf_counter()
        numbers = measure(kind, images, loop_images)
        numbers["beam_cost_vs_greedy_by_batch_size"] = batch_sweep(kind, images, sweep_sizes)
        results[kind] = numbers
        print(f"{kind} decoder (vocabulary {VOCABULARY_SIZE}, embedding {EMBEDDING_DIM}, hidden {HIDDEN_DIM}), "
              f"{images} images in batches of {BATCH_SIZE}, beam width {BEAM_WIDTH}, up to {MAX_LENGTH} tokens "
              f"(mean {numbers['mean_steps']} steps):")
        print(f"  batched beam search {numbers['beam_images_per_s']:.1f} images/s, "
              f"batched greedy {numbers['greedy_images_per_s']:.1f} images/s, "
              f"per-image loop {numbers['per_image_loop_images_per_s']:.2f} images/s")
        print(f"  batched beam vs per-image loop: {numbers['speedup_vs_per_image_loop']:.1f}x faster "
              f"(target >= 5); beam cost vs greedy: {numbers['beam_cost_vs_greedy']:.2f}x (target <= 2) "
              f"for {numbers['decoder_rows_beam_vs_greedy']:.2f}x the decoder rows; same captions as the "
              f"loop on {numbers['loop_same_captions']}/{numbers['loop_images_checked']} images")
        sweep = ", ".join(f"{size}: {ratio:.2f}x" for size, ratio in numbers["beam_cost_vs_greedy_by_batch_size"].items())
        print(f"  beam cost vs greedy by batch size: {sweep} ({time.perf_counter() - started:.0f} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.beam_speed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="16 images, LSTM decoder only")
    args = parser.parse_args(argv)
    print(json.dumps(run(quick=args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
