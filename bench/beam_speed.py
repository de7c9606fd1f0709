"""Beam search speed: batched beam search vs a per-image, per-step Python loop vs batched greedy.

    python -m bench.beam_speed            # 64 images, both decoders
    python -m bench.beam_speed --quick    # 32 images, the LSTM decoder only

Decoders of realistic size with random weights (time per step does not depend on the weights):
vocabulary 10,000, word embedding 256, LSTM 512; the attention decoder over a 7 x 7 x 1280 grid
(MobileNetV2 at 224 px) with attention size 256. Encoder features are random. Captions are at most
20 tokens; a random decoder rarely says <end>, so almost every caption runs to the maximum length
(the same work for all three methods).

Three measurements, same decoder, same features, all decoding every image:

* **batched beam search** (`helpers.predict.decoding.beam_search`, width 3): all images and beams in one
  batch, one compiled step per time step.
* **per-image loop**: the textbook implementation: one image at a time, one eager
  `decoder.step` call per time step over that image's beams, Python bookkeeping (it gives the same
  captions; checked below). Target: batched >= 5x faster.
* **batched greedy** (`helpers.predict.decoding.greedy_decode`): the cheapest decoding there is.
  Target: beam search (width 3) costs <= 2x greedy.

Two more measurements (issue 11) compare beam search with what its arithmetic allows:

* **time per decoder row, beam vs greedy at the same rows**: greedy decoding on `BEAM_WIDTH` x the
  images (batches of `BEAM_WIDTH * BATCH_SIZE`) runs the decoder on as many rows per step as beam
  search on 1 x the images; seconds / (rows x steps) of each. Target: beam <= 1.15 x greedy: the
  bookkeeping of the search (top-k, gathers, scatters) must cost little beside the decoder step.
* **beam step vs bare matmuls**: the matrix products one beam step must do (LSTM gates, attention
  projections, attention context, output projection to the vocabulary), with the same shapes,
  as plain `tf.matmul`s in a compiled loop of as many steps; the achieved multiply-add throughput
  of beam search (counted over the rows it really steps) / that of the bare matmuls.
  Target: >= 0.8.

Beam and greedy are timed in interleaved rounds (best of 3 each). Beam search computes about 3x the
decoder rows of greedy decoding (one row per image at the first step, then one per beam), and a
CPU's time per step grows almost linearly with rows once they fill its vector units: the cost
ratio is therefore also printed for batches of 8 to 64 images.
"""

from __future__ import annotations

import time

import numpy as np

import bench
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
    from helpers.predict import decoding

    batches = [(pooled[i:i + batch_size], grid[i:i + batch_size]) for i in range(0, len(pooled), batch_size)]

    def beam():
        return [h for p, g in batches for h in decoding.beam_search(
            decoder, p, g, beam_width=BEAM_WIDTH, max_length=MAX_LENGTH)]

    def greedy():
        return [h for p, g in batches for h in decoding.greedy_decode(decoder, p, g, max_length=MAX_LENGTH)]
    return beam, greedy


def step_flops(decoder, kind: str, rows: int, images: int) -> float:
    """Floating-point operations (2 per multiply-add) of the matrix products of one decoder step
    over `rows` hypotheses of `images` images (attention: the `BEAM_WIDTH` slots of each image
    take part, as `AttentionDecoder.step` attends over `[B, K]`)."""
    return 2.0 * sum(r * k * n for r, k, n in _step_matmul_shapes(decoder, kind, rows, images))


def _step_matmul_shapes(decoder, kind: str, rows: int, images: int) -> list[tuple[int, int, int]]:
    """`(m, k, n)` of every matrix product of one decoder step (`[m, k] @ [k, n]`)."""
    hidden, embedding = HIDDEN_DIM, EMBEDDING_DIM
    if kind == "lstm":
        return [(rows, embedding, 4 * hidden), (rows, hidden, 4 * hidden), (rows, hidden, VOCABULARY_SIZE)]
    slots = images * BEAM_WIDTH
    depth = decoder.feature_dim                                   # D' = grid depth + coordinates
    return [(slots, hidden, ATTENTION_DIM),                        # W_h h
            (slots * GRID_CELLS, ATTENTION_DIM, 1),                # v^T tanh(...)
            (slots, GRID_CELLS, depth),                            # alpha @ cells (per image)
            (slots, hidden, 1),                                    # gate
            (rows, embedding + depth, 4 * hidden), (rows, hidden, 4 * hidden),   # LSTM
            (rows, hidden + depth, VOCABULARY_SIZE)]               # output projection


def bare_matmul_seconds(shapes, steps: int):
    """A function timing `steps` rounds of plain `tf.matmul`s of `shapes` in one compiled loop
    (each round depends on the previous one, like decoding steps)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    lefts = [tf.constant(rng.normal(size=(m, k)).astype(np.float32) * 0.01) for m, k, _ in shapes]
    rights = [tf.constant(rng.normal(size=(k, n)).astype(np.float32) * 0.01) for _, k, n in shapes]

    @tf.function
    def loop():
        def body(t, carry):
            corners = [tf.matmul(left + carry * 0.0, right)[0, 0] for left, right in zip(lefts, rights)]
            return t + 1, tf.reduce_sum(tf.stack(corners))
        return tf.while_loop(lambda t, _: t < steps, body, (tf.constant(0), tf.constant(0.0)))[1]

    loop()
    return lambda: loop().numpy()


def measure(kind: str, images: int, loop_images: int) -> dict:
    """Images/s of the three methods for one decoder kind (see the module docstring)."""
    decoder, pooled, grid = _decoders_and_features(kind, images)
    batched_beam, batched_greedy = _batched(decoder, pooled, grid, BATCH_SIZE)

    def loop():
        from helpers.predict import decoding

        return decoding.reference_beam_search(decoder, pooled[:loop_images], grid[:loop_images],
                                              BEAM_WIDTH, MAX_LENGTH)

    # Greedy on BEAM_WIDTH x the images, in batches of BEAM_WIDTH x BATCH_SIZE: as many decoder
    # rows per step as beam search (the same features repeated: the same work per row).
    many_pooled, many_grid = (np.concatenate([x] * BEAM_WIDTH) for x in (pooled, grid))
    _, greedy_same_rows = _batched(decoder, many_pooled, many_grid, BEAM_WIDTH * BATCH_SIZE)
    # The bare matmuls of one beam step (BEAM_WIDTH rows per image), as many steps as beam search.
    bare = bare_matmul_seconds(_step_matmul_shapes(decoder, kind, BEAM_WIDTH * BATCH_SIZE, BATCH_SIZE),
                               MAX_LENGTH * (images // BATCH_SIZE))

    batched_beam(), batched_greedy(), greedy_same_rows()  # warm-up: trace the compiled loops
    seconds = interleaved_best({"beam": batched_beam, "greedy": batched_greedy,
                                "greedy_same_rows": greedy_same_rows, "bare_matmuls": bare})
    beam_seconds, greedy_seconds = seconds["beam"], seconds["greedy"]
    loop_seconds = _time(loop) * images / loop_images    # extrapolated to all images

    # The loop and the batched search must find the same captions (same algorithm).
    batched_results = batched_beam()[:loop_images]
    loop_results = loop()
    same = sum(
        [h.tokens.tolist() for h in found] == [h.tokens.tolist() for h in expected]
        for found, expected in zip(batched_results, loop_results))
    steps = sum(max(h.length for h in hypotheses) for hypotheses in batched_results) / len(batched_results)
    # Decoder row-steps actually computed (a random decoder never says <end>, so every image runs
    # MAX_LENGTH steps: beam 1 row at the first step then BEAM_WIDTH; greedy 1 row per step).
    beam_row_steps = images * (1 + BEAM_WIDTH * (MAX_LENGTH - 1))
    greedy_row_steps = BEAM_WIDTH * images * MAX_LENGTH
    per_row = (beam_seconds / beam_row_steps) / (seconds["greedy_same_rows"] / greedy_row_steps)
    # Multiply-add throughput: beam search's (its real rows: 1 per image at the first step) vs bare.
    beam_flops = (images // BATCH_SIZE) * (
        step_flops(decoder, kind, BATCH_SIZE, BATCH_SIZE)
        + (MAX_LENGTH - 1) * step_flops(decoder, kind, BEAM_WIDTH * BATCH_SIZE, BATCH_SIZE))
    bare_flops = (images // BATCH_SIZE) * MAX_LENGTH * step_flops(decoder, kind, BEAM_WIDTH * BATCH_SIZE, BATCH_SIZE)
    beam_gflops, bare_gflops = beam_flops / beam_seconds / 1e9, bare_flops / seconds["bare_matmuls"] / 1e9
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
        "greedy_same_rows_images_per_s": round(BEAM_WIDTH * images / seconds["greedy_same_rows"], 2),
        "beam_vs_greedy_time_per_row": round(per_row, 3),                        # target <= 1.15
        "beam_step_gflop_per_s": round(beam_gflops, 2),
        "bare_matmul_gflop_per_s": round(bare_gflops, 2),
        "beam_vs_bare_matmul_throughput": round(beam_gflops / bare_gflops, 3),   # target >= 0.8
        "targets": {"speedup_vs_per_image_loop": ">= 5", "beam_cost_vs_greedy": "<= 2",
                    "beam_vs_greedy_time_per_row": "<= 1.15", "beam_vs_bare_matmul_throughput": ">= 0.8"},
        "pass": {"speedup_vs_per_image_loop": loop_seconds / beam_seconds >= 5,
                 "beam_cost_vs_greedy": beam_seconds / greedy_seconds <= 2,
                 "beam_vs_greedy_time_per_row": per_row <= 1.15,
                 "beam_vs_bare_matmul_throughput": beam_gflops / bare_gflops >= 0.8},
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
    images = 32 if quick else 64   # whole batches of BATCH_SIZE
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
        print(f"  time per decoder row, beam vs greedy at the same rows: "
              f"{numbers['beam_vs_greedy_time_per_row']:.2f}x (target <= 1.15); beam step "
              f"{numbers['beam_step_gflop_per_s']:.1f} GFLOP/s vs bare matmuls of the same shapes "
              f"{numbers['bare_matmul_gflop_per_s']:.1f} = {numbers['beam_vs_bare_matmul_throughput']:.2f} "
              f"(target >= 0.8)")
        by_batch = numbers["beam_cost_vs_greedy_by_batch_size"]
        sweep = ", ".join(f"{size}: {ratio:.2f}x" for size, ratio in by_batch.items())
        print(f"  beam cost vs greedy by batch size: {sweep} ({time.perf_counter() - started:.0f} s)")
    return results


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__, run, argv, prog="python -m bench.beam_speed",
                              quick="32 images, LSTM decoder only")


if __name__ == "__main__":
    raise SystemExit(main())
