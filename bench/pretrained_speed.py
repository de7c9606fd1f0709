"""No-training tagging speed with the COCO detector: `--model pretrained` against its limit and
against the ImageNet-only tagger it replaces.

    python -m bench.pretrained_speed            # 64 photos of 12 megapixels, batches of 16
    python -m bench.pretrained_speed --quick    # 16 photos, batches of 8

The photos are `bench.imagenet_speed`'s: real COCO photos upscaled to 4000 x 3000, JPEG quality 90.
Measured side by side, best of 3 interleaved rounds (`bench.timing.interleaved_best`):

* **fused end to end**: `helpers.predict.fused.PretrainedTagger.predict` with keywords (French).
* **ImageNet only**: `helpers.predict.imagenet.ImageNetTagger.predict`, the previous default.
* **limit**, each part alone on the same photos, per photo added: the shared decode
  (`load_photo` + the classifier's centre crop, same threads), the classifier alone on the
  pre-made crops (same batches), the detector alone (letterbox + YOLOX-Nano + decoding) on the
  pre-decoded photos, with onnxruntime's default of one thread per core (its fastest alone; the
  fused predictor gives it one thread, `helpers.predict.fused.DETECTOR_THREADS`, as it runs beside
  the classifier). Targets: end to end >= 0.85 of the limit's speed (the detector runs in the
  decoding threads while TensorFlow classifies, so on 2 cores the end to end may beat the sum);
  <= 1.5x ImageNet only.
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
    """Measure and print; returns milliseconds per photo and the two ratios."""
    import tensorflow as tf

    from helpers.predict.batches import pixels_of_array
    from helpers.predict.fused import PretrainedTagger
    from helpers.predict.imagenet import ImageNetTagger
    from helpers.pretrained.detector import load_detector, load_photo

    count, batch = (16, 8) if quick else (64, 16)
    with tempfile.TemporaryDirectory(prefix="pretrained_speed_") as temporary:
        paths = make_camera_album(Path(temporary) / "album", count,
                                  SHARED_DIR / "data" / "coco-mini-2017" / "val2017")
        fused, imagenet = PretrainedTagger(), ImageNetTagger()
        detector = load_detector(fused.detector.path)
        size = fused.image_size

        def decode(path):
            photo = load_photo(path)
            return photo, pixels_of_array(photo, size, crop="center")

        decoded = [item for _, item in images.load_images(paths, loader=decode)]
        photos = [photo for photo, _ in decoded]
        crops = np.stack([crop for _, crop in decoded])
        batches = [tf.convert_to_tensor(crops[i:i + batch]) for i in range(0, count, batch)]

        def fused_end_to_end():
            assert all(p.ok for p in fused.predict(paths, lang="fra", batch_size=batch, progress=False))

        def imagenet_only():
            assert all(p.ok for p in imagenet.predict(paths, lang="fra", batch_size=batch, progress=False))

        def decode_alone():
            for _ in images.load_images(paths, loader=decode):
                pass

        def classifier_alone():
            for pixels in batches:
                fused._class_probabilities(pixels).numpy()

        def detector_alone():
            for photo in photos:
                detector.detect(photo)

        for warm_up in (fused_end_to_end, imagenet_only, classifier_alone, detector_alone):
            warm_up()
        seconds = interleaved_best({"fused": fused_end_to_end, "imagenet_only": imagenet_only,
                                    "decode": decode_alone, "classifier": classifier_alone,
                                    "detector": detector_alone})
    ms = {name: 1000 * value / count for name, value in seconds.items()}
    limit = ms["decode"] + ms["classifier"] + ms["detector"]
    result = {
        "photos": count, "photo_size": f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}", "batch": batch,
        "ms_per_photo": {name: round(value, 1) for name, value in ms.items()},
        "limit_ms_per_photo": round(limit, 1),
        "ratio_to_limit": round(limit / ms["fused"], 3),
        "fused_vs_imagenet_only": round(ms["fused"] / ms["imagenet_only"], 2),
        "targets": {"ratio_to_limit": ">= 0.85", "fused_vs_imagenet_only": "<= 1.5"},
    }
    print(f"--model pretrained on {count} photos of {result['photo_size']}: {ms['fused']:.1f} ms/photo; "
          f"limit {ms['decode']:.1f} (decode) + {ms['classifier']:.1f} (classifier) + {ms['detector']:.1f} "
          f"(detector) = {limit:.1f} ms/photo -> {result['ratio_to_limit']:.2f} of the limit (target 0.85); "
          f"ImageNet only {ms['imagenet_only']:.1f} ms/photo -> {result['fused_vs_imagenet_only']:.2f}x "
          f"(target <= 1.5)")
    return result


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__.split("\n")[0], run, argv, quick="16 photos instead of 64", print_result=False)


if __name__ == "__main__":
    raise SystemExit(main())
