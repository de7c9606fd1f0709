"""Album tagging speed on camera-size photos: end to end vs its limit vs an mps_autotags-style loop.

    python -m bench.album_speed            # 64 photos of 12 megapixels (4 batches of 16)
    python -m bench.album_speed --quick    # 16 photos (2 batches of 8)

The album: real COCO photos (../shared/data/coco-mini-2017/val2017) upscaled to 4000 x 3000
(12 megapixels, what a phone or camera writes) and saved as JPEG (quality 90) in a temporary
folder, with an album.ini. 64 photos make 4 model batches: decoding the first batch and
captioning the last overlap nothing, a fixed cost per album that a 2-batch album would exaggerate.

Three measurements, side by side, with the same model and the same photos:

* **end to end**: `helpers.album.tagging.tag_album(..., captions=True)`: scan, decode (JPEG draft mode in
  a thread pool, overlapping the model), encode, tag, caption (beam search, width 3), write
  album.ini (atomic, with backup). Photos per second.
* **limit**: the work that cannot be avoided, each part measured alone and their times per photo
  added: draft decoding alone (`helpers.data.images.load_images`, same threads) + the encoder alone on
  pre-decoded tensors (the same batches). Target for tags only: end to end >= 0.85 of this limit's
  speed. With captions the limit also adds **beam search alone** (width 3, one caption per photo,
  as `tag_album` asks) on the encoded features of the same batches: target end to end with
  captions >= 0.85 of draft decoding + encoder + beam search, each measured alone in the same run.
  (Tagging and writing are extra work that end to end must fit in.)
* **mps_autotags-style loop**: what mps_autotags did: one photo at a time, full-size decode then
  resize (`keras.utils.load_img(target_size=...)`), the model called on a batch of one, then the
  file written once. Target: end to end >= 3x faster.

The model: MobileNetV2 at 224 px with `weights=None` (no download here), the attention decoder and
the tag classifier built with random weights at the sizes of a COCO model (vocabulary of the real
COCO captions in ../shared, min count 5; the 80 COCO category synsets). Random weights cost the same
time per decoding step as trained ones, but a random decoder never says <end>: its captions are
therefore capped at the mean length of the real COCO captions (+ <end>, about 12 tokens), the
number of beam-search steps a trained model takes on average. If `run_dir` holds a trained
MobileNetV2 bundle, that bundle is used as it is.
"""

from __future__ import annotations

import configparser
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import bench
from bench.timing import interleaved_best
from helpers.album import tagging as album
from helpers.data import images

SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
CAMERA_SIZE = (4000, 3000)   # pixels, 12 megapixels


def make_camera_album(folder: Path, count: int, source_dir: Path) -> list[Path]:
    """Write `count` 12-megapixel JPEGs upscaled from the photos of `source_dir` (+ album.ini)."""
    from PIL import Image

    sources = sorted(source_dir.glob("*.jpg"))
    if not sources:
        raise FileNotFoundError(f"no JPEG photos in {source_dir} (needs ../shared/data)")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        with Image.open(source) as image:
            camera = image.convert("RGB").resize(CAMERA_SIZE, Image.Resampling.BILINEAR)
        path = folder / f"IMG_{index + 1:04d}.jpg"
        camera.save(path, quality=90)
        paths.append(path)
    (folder / "album.ini").write_text("# benchmark album\n[album]\ntitle = Bench\n",
                                      encoding="utf-8")
    return paths


def bench_bundle(out_dir: Path, run_dir: Path | None = None) -> Path:
    """The bundle to time: `run_dir`'s when it is MobileNetV2, else a random-weight MobileNetV2
    224 px bundle at COCO sizes (see the module docstring). Returns the bundle folder."""
    from helpers import model
    from helpers.bundle import save_bundle
    from helpers.config import Config
    from helpers.pretrained import encoders
    from helpers.text.vocab import Vocabulary
    from helpers.wordnet.synset_vocabulary import SynsetVocabulary
    from helpers.wordnet.synsets import COCO_CATEGORY_SYNSETS

    if run_dir is not None and (Path(run_dir) / "bundle" / "bundle.json").is_file():
        manifest = json.loads((Path(run_dir) / "bundle" / "bundle.json").read_text())
        if manifest["backbone"] == "mobilenet_v2":
            return Path(run_dir) / "bundle"
    annotations = SHARED_DIR / "data" / "coco-val2014-captions-4800"
    caption_file = next(iter(sorted(annotations.glob("*.json"))), None)
    if caption_file is None:
        raise FileNotFoundError(f"no COCO caption file in {annotations}")
    captions = [item["caption"] for item in json.loads(caption_file.read_text())["annotations"]]
    vocabulary = Vocabulary.build(captions, min_count=5)
    synset_vocabulary = SynsetVocabulary(sorted(set(COCO_CATEGORY_SYNSETS.values())))
    config = Config(backbone="mobilenet_v2", weights=None, image_size=224, decoder="attention")
    encoder = encoders.build_encoder("mobilenet_v2", weights=None, image_size=224)
    cells, depth, pooled_dim = encoders.encoder_output_shapes(encoder)
    heads = model.build_heads(config, len(vocabulary), len(synset_vocabulary), cells, depth,
                              pooled_dim)
    return save_bundle(out_dir / "bundle", config, vocabulary, synset_vocabulary, encoder,
                             heads)


def mean_caption_tokens() -> int:
    """Mean tokens per caption of the real COCO captions in ../shared, rounded (about 11)."""
    from helpers.text.vocab import tokenize

    caption_file = next(iter(sorted((SHARED_DIR / "data" / "coco-val2014-captions-4800").glob(
        "*.json"))))
    captions = [item["caption"] for item in json.loads(caption_file.read_text())["annotations"]]
    return round(sum(len(tokenize(caption)) for caption in captions) / len(captions))


def run(quick: bool = False, run_dir: str | os.PathLike | None = None) -> dict:
    """Measure and print; returns the numbers (milliseconds per photo, photos/s, ratios)."""
    import keras
    import tensorflow as tf

    from helpers.predict.predictors import Captioner
    from helpers.wordnet import keywords

    count, batch, repeats = (16, 8, 2) if quick else (64, 16, 3)
    with tempfile.TemporaryDirectory(prefix="album_speed_") as temporary:
        temporary = Path(temporary)
        folder = temporary / "album"
        started = time.perf_counter()
        paths = make_camera_album(folder, count, SHARED_DIR / "data" / "coco-mini-2017" / "val2017")
        print(f"wrote {count} photos of {CAMERA_SIZE[0]} x {CAMERA_SIZE[1]} in "
              f"{time.perf_counter() - started:.1f} s")
        bundle_dir = bench_bundle(temporary, run_dir)
        if bundle_dir.parent == temporary:  # random decoder: captions as long as trained ones
            caption_length = mean_caption_tokens() + 1  # + <end>
            captioner = Captioner.from_bundle(bundle_dir, max_length=caption_length)
        else:
            captioner = Captioner.from_bundle(bundle_dir)
        size = captioner.image_size
        per_photo = 1000.0 / count  # seconds for the album -> milliseconds per photo

        # One-time costs, not per photo (like loading the model): WordNet and its keyword
        # lookups, and tracing the tf.functions for the batch shapes used below.
        start = time.perf_counter()
        for name in captioner.synset_names:
            keywords.keyword(name, "eng")
        wordnet_seconds = time.perf_counter() - start
        for width in (batch, 1):
            captioner.predict(paths[:width], beam_width=3, top_n=1, nb_keywords=5,
                              batch_size=width, progress=False)
            captioner.predict(paths[:width], nb_keywords=0, batch_size=width, progress=False,
                              captions=False)

        # -- the limit: draft decoding alone + the encoder alone on pre-decoded tensors -----------
        pixels = np.stack([images.load_image(path, size=size) for path in paths])
        encoder = tf.function(lambda x: captioner.bundle.encoder(tf.cast(x, tf.float32),
                                                                 training=False)["pooled"])
        chunks = [tf.constant(pixels[i:i + batch]) for i in range(0, count, batch)]
        encoder(chunks[0])
        # Encoded features of the same batches, for beam search alone (what tag_album captions).
        features = [captioner._features(chunk)[:2] for chunk in chunks]

        def beam_alone():
            for pooled, grid in features:
                captioner._captions(pooled, grid, 3, 1)
        beam_alone()

        # -- end to end: scan, decode, encode, tag, (caption), write album.ini ---------------------
        def fresh_album_ini():
            (folder / "album.ini").write_text("# benchmark album\n[album]\ntitle = Bench\n",
                                              encoding="utf-8")

        def tag(captions):
            summary = album.tag_album(captioner, album_dir=folder, captions=captions,
                                      batch_size=batch, progress=False, echo=None)
            if summary.pictures_tagged != count or not summary.files_written:
                raise RuntimeError(f"the album was not fully tagged: {summary.report()}")

        # -- mps_autotags-style loops: full decode + resize, the model on one photo at a time ------
        def mps_style(captions):
            config = configparser.ConfigParser(allow_no_value=True)
            config.read(folder / "album.ini", encoding="utf-8")
            for path in paths:
                image = np.asarray(keras.utils.load_img(path, target_size=(size, size)))
                if captions:
                    probabilities = captioner.predict(
                        [image], beam_width=3, top_n=1, nb_keywords=0, batch_size=1,
                        progress=False)[0].synset_probabilities
                else:
                    row = captioner.predict_batch(image[None], captions=False)[0][0]
                    probabilities = dict(zip(captioner.synset_names, map(float, row)))
                words = [word for _, word, _ in keywords.top_k_keywords(probabilities, 5)]
                if not config.has_section(path.name):
                    config.add_section(path.name)
                config.set(path.name, "auto_tags", ",".join(words).replace("%", "%%"))
            with open(folder / "album.ini", "w", encoding="utf-8") as file:
                config.write(file)

        seconds = interleaved_best({
            "decode_threads": (lambda: list(images.load_images(paths, size=size)), None),
            "decode_serial": (lambda: [images.load_image(path, size=size) for path in paths],
                              None),
            "encode": (lambda: [encoder(chunk).numpy() for chunk in chunks], None),
            "beam_alone": (beam_alone, None),
            "end_to_end": (lambda: tag(True), fresh_album_ini),
            "tags_only": (lambda: tag(False), fresh_album_ini),
            "mps_captions": (lambda: mps_style(True), fresh_album_ini),
            "mps_tags": (lambda: mps_style(False), fresh_album_ini),
        }, repeats)
        decode_threads, decode_serial, encode, beam, end_to_end, tags_only, mps_captions, mps_tags = (
            per_photo * seconds[name] for name in ("decode_threads", "decode_serial", "encode",
                                                   "beam_alone", "end_to_end", "tags_only",
                                                   "mps_captions", "mps_tags"))
        limit = decode_threads + encode
        limit_captions = limit + beam

    results = {
        "photos": count,
        "batch_size": batch,
        "photo_size": f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]}",
        "model": f"{captioner.config.backbone} {size}px, {captioner.config.decoder} decoder, "
                 f"vocabulary {len(captioner.vocabulary)}, {len(captioner.synset_names)} synsets",
        "caption_max_tokens": captioner.max_length,
        "wordnet_first_lookups_s": round(wordnet_seconds, 1),
        "decode_draft_threads_ms_per_photo": round(decode_threads, 1),
        "decode_draft_serial_ms_per_photo": round(decode_serial, 1),
        "encoder_alone_ms_per_photo": round(encode, 1),
        "beam_search_alone_ms_per_photo": round(beam, 1),
        "limit_ms_per_photo": round(limit, 1),
        "limit_with_captions_ms_per_photo": round(limit_captions, 1),
        "end_to_end_ms_per_photo": round(end_to_end, 1),
        "end_to_end_tags_only_ms_per_photo": round(tags_only, 1),
        "mps_style_ms_per_photo": round(mps_captions, 1),
        "mps_style_tags_only_ms_per_photo": round(mps_tags, 1),
        "limit_photos_per_s": round(1000 / limit, 2),
        "end_to_end_photos_per_s": round(1000 / end_to_end, 2),
        "end_to_end_tags_only_photos_per_s": round(1000 / tags_only, 2),
        "end_to_end_vs_limit": round(limit / end_to_end, 3),
        "end_to_end_vs_limit_with_captions": round(limit_captions / end_to_end, 3),  # target >= 0.85
        "tags_only_vs_limit": round(limit / tags_only, 3),                 # target >= 0.85
        "speedup_vs_mps_style": round(mps_captions / end_to_end, 2),       # target >= 3
        "tags_only_speedup_vs_mps_style": round(mps_tags / tags_only, 2),  # target >= 3
        "targets": {"end_to_end_vs_limit_with_captions": ">= 0.85", "tags_only_vs_limit": ">= 0.85",
                    "speedup_vs_mps_style": ">= 3", "tags_only_speedup_vs_mps_style": ">= 3"},
        "pass": {"end_to_end_vs_limit_with_captions": limit_captions / end_to_end >= 0.85,
                 "tags_only_vs_limit": limit / tags_only >= 0.85,
                 "speedup_vs_mps_style": mps_captions / end_to_end >= 3,
                 "tags_only_speedup_vs_mps_style": mps_tags / tags_only >= 3},
    }
    print(f"album tagging, {count} photos of 12 MP, {results['model']}, best of {repeats} "
          f"interleaved rounds:")
    print(f"  limit = draft decode {decode_threads:.0f} ms + encoder {encode:.0f} ms per photo"
          f" = {results['limit_photos_per_s']:.2f} photos/s")
    print(f"  limit with captions = + beam search alone {beam:.0f} ms per photo = "
          f"{1000 / limit_captions:.2f} photos/s")
    print(f"  end to end with captions: {results['end_to_end_photos_per_s']:.2f} photos/s = "
          f"{results['end_to_end_vs_limit_with_captions']:.2f} of the limit with captions (target >= 0.85; "
          f"{results['end_to_end_vs_limit']:.2f} of decode + encoder alone), "
          f"{results['speedup_vs_mps_style']:.1f}x the mps_autotags-style loop (target >= 3)")
    print(f"  end to end, tags only (tag-album's default): "
          f"{results['end_to_end_tags_only_photos_per_s']:.2f} photos/s = "
          f"{results['tags_only_vs_limit']:.2f} of the limit, "
          f"{results['tags_only_speedup_vs_mps_style']:.1f}x the mps_autotags-style loop")
    return results


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__, run, argv, prog="python -m bench.album_speed", quick="16 photos instead of 64",
                              options=[bench.option("--run", dest="run_dir", metavar="RUN",
                                                    help="a run folder whose MobileNetV2 bundle to time")])


if __name__ == "__main__":
    raise SystemExit(main())
