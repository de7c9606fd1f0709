"""Feature-extraction speed: the cached tf.data pipeline vs the encoder alone vs a per-image loop.

    python -m bench.features_speed            # the 159 real COCO val JPEGs of coco-mini-2017
    python -m bench.features_speed --quick    # 48 of them

MobileNetV2 at 224 px with `weights=None` (the time per image does not depend on the weights).
Three measurements over the same photos:

* **cached pipeline** (`helpers.training.features.extract_features`): parallel JPEG decoding overlapped
  with the encoder through `tf.data` prefetching, shards written to disk. Everything counted.
* **decoding alone**: the pipeline's own decode stage (`helpers.training.pipelines.image_dataset`: parallel
  JPEG decoding in draft mode + resizing), iterated without the encoder.
* **encoder alone**: the same encoder on already decoded, resized tensors in memory.
* **limit**: decoding alone + encoder alone, seconds per image added: on 2 cores decoding competes
  with the encoder for the same cores, so the pipeline cannot beat the sum of the two.
  Target: pipeline >= 0.85 x the limit's images/s (also printed: vs the encoder alone).
* **per-image loop**: what mps_autotags did: for each photo, load it, resize, `model.predict` on a
  batch of one. Target: pipeline >= 3 x this.

Photos come from `$SHARED_DIR/data/coco-mini-2017/val2017` (default `../shared`).
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import bench
from bench.timing import interleaved_best

IMAGE_SIZE = 224
BATCH_SIZE = 32
BACKBONE = "mobilenet_v2"


def _photos(quick: bool) -> list[Path]:
    project = Path(__file__).resolve().parent.parent
    shared = Path(os.environ.get("SHARED_DIR", project.parent / "shared"))
    folder = shared / "data" / "coco-mini-2017" / "val2017"
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no JPEGs in {folder}; set SHARED_DIR to the folder holding data/")
    return paths[:48] if quick else paths


def run(quick: bool = False) -> dict:
    """Measure the three ways; returns images/s of each and the two ratios."""
    from helpers.data.images import load_image
    from helpers.pretrained import encoders
    from helpers.training import features
    from helpers.training.pipelines import image_dataset

    paths = _photos(quick)
    ids = list(range(len(paths)))
    encoder = encoders.build_encoder(BACKBONE, weights=None, image_size=IMAGE_SIZE)
    encode = features.compiled_encoder(encoder)          # the function the pipeline uses
    warm = np.zeros((BATCH_SIZE, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
    encode(warm)

    # 1. encoder alone on decoded tensors; 2. the cached pipeline (decode + encode + write shards),
    # from files. Best of 3 rounds, taking turns (a slow spell of a shared machine hits both alike).
    pixels = np.stack([load_image(path, size=IMAGE_SIZE) for path in paths]).astype(np.float32)

    def encoder_alone_seconds() -> None:
        for start in range(0, len(paths), BATCH_SIZE):
            batch = pixels[start:start + BATCH_SIZE]
            if len(batch) < BATCH_SIZE:     # padded like the pipeline's last batch
                batch = np.concatenate([batch, np.zeros((BATCH_SIZE - len(batch), *batch.shape[1:]), np.float32)])
            encode(batch)["grid"].numpy()

    def decode_alone_seconds() -> None:
        for _pixels, _ok in image_dataset(paths, IMAGE_SIZE, BATCH_SIZE, {}).with_options(features.DATASET_OPTIONS):
            pass

    def pipeline_seconds(folder: Path) -> None:
        features.extract_features(encoder, paths, ids, folder, batch_size=BATCH_SIZE, shard_size=1024,
                                  description="pipeline")

    with tempfile.TemporaryDirectory() as folder:
        features.extract_features(encoder, paths[:BATCH_SIZE], ids[:BATCH_SIZE], Path(folder) / "warm",
                                  batch_size=BATCH_SIZE)
        rounds = itertools.count()
        seconds = interleaved_best({
            "decode_alone": decode_alone_seconds,
            "encoder_alone": encoder_alone_seconds,
            "pipeline": lambda: pipeline_seconds(Path(folder) / f"cache{next(rounds)}"),
        })
    encoder_alone = len(paths) / seconds["encoder_alone"]
    pipeline = len(paths) / seconds["pipeline"]
    decode_alone = len(paths) / seconds["decode_alone"]
    limit = len(paths) / (seconds["decode_alone"] + seconds["encoder_alone"])

    # 3. per-image load-and-predict loop (mps_autotags style)
    loop_paths = paths[: min(len(paths), 24 if quick else 48)]
    encoder.predict(pixels[:1], verbose=0)
    started = time.perf_counter()
    for path in loop_paths:
        image = load_image(path, size=IMAGE_SIZE).astype(np.float32)
        encoder.predict(image[None], verbose=0)
    per_image = len(loop_paths) / (time.perf_counter() - started)

    results = {
        "images": len(paths), "backbone": BACKBONE, "image_size": IMAGE_SIZE, "batch_size": BATCH_SIZE,
        "pipeline_images_per_s": round(pipeline, 2),
        "decode_alone_images_per_s": round(decode_alone, 2),
        "encoder_alone_images_per_s": round(encoder_alone, 2),
        "limit_images_per_s": round(limit, 2),
        "pipeline_vs_limit": round(pipeline / limit, 3),
        "per_image_loop_images_per_s": round(per_image, 2),
        "pipeline_vs_encoder_alone": round(pipeline / encoder_alone, 3),
        "pipeline_vs_per_image_loop": round(pipeline / per_image, 2),
        "targets": {"pipeline_vs_limit": ">= 0.85", "pipeline_vs_per_image_loop": ">= 3"},
        "pass": {"pipeline_vs_limit": pipeline / limit >= 0.85,
                 "pipeline_vs_per_image_loop": pipeline / per_image >= 3},
    }
    print(f"feature extraction ({BACKBONE} {IMAGE_SIZE} px, {len(paths)} real JPEGs): pipeline "
          f"{pipeline:.1f} img/s; limit {limit:.1f} img/s = decoding alone {decode_alone:.1f} img/s + "
          f"encoder alone {encoder_alone:.1f} img/s; pipeline / limit {pipeline / limit:.2f} (target >= 0.85; "
          f"vs encoder alone {pipeline / encoder_alone:.2f}), per-image loop {per_image:.1f} img/s "
          f"(pipeline {pipeline / per_image:.1f}x, target >= 3x)")
    return results


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__.split("\n")[0], run, argv, quick="48 photos instead of 159")


if __name__ == "__main__":
    raise SystemExit(main())
