"""Re-runs of `tag-album` on a large album tree: the prediction cache at work.

    python -m bench.album_rerun            # 2,000 photos (peak memory also at 500)
    python -m bench.album_rerun --quick    # 200 photos (memory also at 100): checks the harness
    python -m bench.album_rerun --model pretrained --album examples/album   # real photos, real model

The album tree (generated in a temporary folder): 40 distinct JPEGs from the real COCO photos in
../shared (coco-mini-2017/val2017), resized to 0.3 ... 12 megapixels (geometric steps, 4:3,
quality 85), hard-linked into nested folders `YYYY/event_NN/IMG_NNNN.jpg` (50 photos per folder)
with an album.ini in each folder holding a title and the user's tags on some pictures. The cache
keys on path, size and modification time, and every photo is decoded on its own, so links cost
the model exactly what copies would.

The model (`--model`): `random`, MobileNetV2 224 px with random weights and COCO-sized heads
(`bench.album_speed`), tags only (tag-album's default: no beam search); or `pretrained`, the fused
predictor of `tag-album --model pretrained` (`helpers.predict.fused.PretrainedTagger`: YOLOX-Nano
and EfficientNet-Lite0, the detections stored in the cache too). The predictor is loaded once and
warmed up on two photos; times are those of `helpers.album.tagging.tag_album(..., recursive=True)`
(scan, cache, predict, plan, write album.ini):

1. **first run**: every photo predicted; photos/s.
2. **unchanged re-run**: nothing predicted, no photo decoded. Target: < 5 % of the first run.
   This is the fixed *scan cost* of a re-run (list folders, stat photos, cache lookups, choose
   keywords, rebuild and compare each album.ini).
3. **20 photos added** (to two folders): only those predicted. Target: about 20 x the first run's
   time per photo, plus the scan cost; both parts are reported.

Peak memory (`ru_maxrss`) of a process doing the first run, at two album sizes (the smaller one
in a fresh process): the part added by tagging (peak minus the memory after loading the model)
must stay flat in the number of photos (predictions go to the cache in chunks and are read back
one at a time).

`--album DIR` measures 1 and 2 on a real album instead (e.g. `examples/album`, whose photos have
people for the detector): DIR is copied into a temporary folder first (DIR is never written), and
each of `--rounds` rounds tags a fresh copy with a fresh cache, then re-runs it; the table gives
each round's first run and re-run side by side, and their ratio (the model is warmed up on the
album first, so the first runs are not slowed by tracing: the ratio is not flattered).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench
from bench.album_speed import SHARED_DIR, bench_bundle

PHOTOS_PER_FOLDER = 50
DISTINCT_PHOTOS = 40
MEGAPIXELS = (0.3, 12.0)
ADDED = 20


def _rss_mb() -> float:
    """Current resident memory of this process, MB (from /proc; Linux)."""
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: kB


def make_sources(folder: Path) -> list[Path]:
    """`DISTINCT_PHOTOS` JPEGs from real COCO photos, from 0.3 to 12 megapixels."""
    from PIL import Image

    originals = sorted((SHARED_DIR / "data" / "coco-mini-2017" / "val2017").glob("*.jpg"))
    if not originals:
        raise FileNotFoundError(f"no COCO photos in {SHARED_DIR}/data/coco-mini-2017/val2017")
    folder.mkdir(parents=True, exist_ok=True)
    low, high = MEGAPIXELS
    sources = []
    for index in range(DISTINCT_PHOTOS):
        megapixels = low * (high / low) ** (index / (DISTINCT_PHOTOS - 1))
        width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
        height = round(width * 3 / 4)
        with Image.open(originals[index % len(originals)]) as image:
            image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR).save(
                folder / f"source_{index:02d}.jpg", quality=85)
        sources.append(folder / f"source_{index:02d}.jpg")
    return sources


def make_tree(root: Path, sources: list[Path], count: int, first: int = 0) -> list[Path]:
    """`count` photos linked into `root/YYYY/event_NN/` (50 per folder), with album.ini files."""
    paths = []
    for index in range(first, first + count):
        folder_index = index // PHOTOS_PER_FOLDER
        folder = root / str(2000 + folder_index // 4) / f"event_{folder_index % 4:02d}"
        if not folder.is_dir():
            folder.mkdir(parents=True)
            (folder / "album.ini").write_text(
                f"# my notes\n[album]\ntitle = Event {folder_index}\ntags = family, trip\n\n"
                f"[IMG_{index + 1:05d}.jpg]\ntitle = The first one\ntags = favourite\n",
                encoding="utf-8")
        path = folder / f"IMG_{index + 1:05d}.jpg"
        source = sources[index % len(sources)]
        try:
            os.link(source, path)
        except OSError:
            path.write_bytes(source.read_bytes())
        paths.append(path)
    return paths


def add_photos(root: Path, sources: list[Path], count: int) -> list[Path]:
    """`count` new photos, half in each of the first two folders (existing albums)."""
    folders = sorted(path.parent for path in root.glob("*/*/album.ini"))[:2]
    paths = []
    for index in range(count):
        path = folders[index % 2] / f"NEW_{index + 1:03d}.jpg"
        os.link(sources[-1 - index % len(sources)], path)
        paths.append(path)
    return paths


MODELS = {"random": "mobilenet_v2 224px random weights, COCO-sized heads, tags only",
          "pretrained": "--model pretrained: YOLOX-Nano + EfficientNet-Lite0 + WordNet (PretrainedTagger)"}


def _predictor(temporary: Path, model: str = "random"):
    """The predictor `--model` names, with WordNet's keyword lookups done once."""
    from helpers.predict.predictors import Captioner, load_predictor
    from helpers.wordnet import keywords

    if model == "pretrained":
        predictor = load_predictor(model="pretrained")
    else:
        predictor = Captioner.from_bundle(bench_bundle(temporary))
    for name in predictor.synset_names:   # WordNet's first lookups: a one-time cost
        keywords.keyword(name, "eng")
    return predictor


def _tag(predictor, root: Path, cache: Path, batch_size: int):
    from helpers.album import tagging as album

    start = time.perf_counter()
    summary = album.tag_album(predictor, album_dir=root, recursive=True, cache=cache,
                              batch_size=batch_size, progress=False, echo=None)
    seconds = time.perf_counter() - start
    if summary.errors:
        raise RuntimeError(f"tagging failed: {summary.report()}")
    return summary, seconds


def memory_only(count: int, batch_size: int, model: str = "random") -> dict:
    """A fresh process's first run on `count` photos: memory after loading the model, peak."""
    with tempfile.TemporaryDirectory(prefix="album_rerun_") as temporary:
        temporary = Path(temporary)
        sources = make_sources(temporary / "sources")
        make_tree(temporary / "Pictures", sources, count)
        predictor = _predictor(temporary, model)
        predictor.predict(sources[:2], batch_size=2, progress=False, captions=False)   # warm up
        loaded = _rss_mb()
        summary, seconds = _tag(predictor, temporary / "Pictures", temporary / "cache.sqlite",
                                batch_size)
        peak = _peak_rss_mb()
    return {"photos": count, "predicted": summary.predicted, "seconds": round(seconds, 1),
            "rss_after_model_mb": round(loaded), "peak_rss_mb": round(peak),
            "tagging_peak_above_model_mb": round(peak - loaded)}


def _memory_in_subprocess(count: int, batch_size: int, model: str = "random") -> dict:
    output = subprocess.run(
        [sys.executable, "-m", "bench.album_rerun", "--memory-only", str(count),
         "--batch-size", str(batch_size), "--model", model],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(output.stdout.strip().splitlines()[-1])


def rerun_album(album: Path, model: str = "pretrained", rounds: int = 3, batch_size: int = 32) -> dict:
    """First run and unchanged re-run of `tag_album` on copies of a real album, side by side.

    Args:
        album: a folder of photos (with or without album.ini); only read (copied first).
        model: "pretrained" or "random" (`MODELS`).
        rounds: fresh copy and cache per round: `rounds` first runs, each followed by its re-run.
        batch_size: photos per model batch.

    Returns:
        Seconds of every round's first run and re-run, their medians, and the ratio of the medians.

    Raises:
        FileNotFoundError: `album` holds no photo. RuntimeError: a re-run predicted a photo again.
    """
    from helpers.data.images import is_image_file

    album = Path(album).expanduser().resolve()
    photos = sorted(path for path in album.rglob("*") if is_image_file(path)) if album.is_dir() else []
    if not photos:
        raise FileNotFoundError(f"no photos in {album}: give --album a folder of photos (e.g. examples/album)")
    with tempfile.TemporaryDirectory(prefix="album_rerun_") as temporary:
        temporary = Path(temporary)
        predictor = _predictor(temporary, model)
        # Warm up on the album itself: the first run's batch shapes are traced before it is timed.
        predictor.predict(photos, batch_size=batch_size, progress=False, captions=False)
        print(f"album {album} ({len(photos)} photos), copied to {temporary}; model: {MODELS[model]}",
              flush=True)
        print(f"{'round':>5} {'first run s':>12} {'re-run s':>9} {'re-run / first':>15} "
              f"{'predicted':>10} {'from cache':>11}", flush=True)
        firsts, agains = [], []
        for index in range(1, rounds + 1):
            copy = temporary / f"round_{index}" / album.name
            shutil.copytree(album, copy)
            cache = temporary / f"round_{index}" / "cache.sqlite"
            first, first_s = _tag(predictor, copy, cache, batch_size)
            again, again_s = _tag(predictor, copy, cache, batch_size)
            if again.predicted or first.predicted != len(photos):
                raise RuntimeError(f"the cache did not work: {first.predicted} of {len(photos)} photos "
                                   f"predicted on the first run, {again.predicted} again on the re-run")
            firsts.append(first_s)
            agains.append(again_s)
            print(f"{index:>5} {first_s:>12.3f} {again_s:>9.3f} {100 * again_s / first_s:>14.2f}% "
                  f"{f'{first.predicted} / {again.predicted}':>10} {again.cached:>11}", flush=True)
    first_s, again_s = statistics.median(firsts), statistics.median(agains)
    worst = max(again / first for first, again in zip(firsts, agains))
    print(f"{'median':>5} {first_s:>12.3f} {again_s:>9.3f} {100 * again_s / first_s:>14.2f}%  (target < 5 %; "
          f"worst round {100 * worst:.2f} %; {len(photos) / first_s:.1f} photos/s on the first run)", flush=True)
    return {"album": str(album), "photos": len(photos), "model": MODELS[model], "rounds": rounds,
            "first_run_s": [round(value, 3) for value in firsts],
            "unchanged_rerun_s": [round(value, 3) for value in agains],
            "first_run_median_s": round(first_s, 3), "unchanged_rerun_median_s": round(again_s, 3),
            "unchanged_rerun_vs_first": round(again_s / first_s, 4),          # target < 0.05
            "unchanged_rerun_vs_first_worst_round": round(worst, 4)}


def run(quick: bool = False, photos: int | None = None, batch_size: int = 32, model: str = "random",
        album: Path | None = None, rounds: int = 3) -> dict:
    """Measure and print; returns the numbers (seconds, photos/s, ratios, memory). With `album`:
    `rerun_album` on it instead of the generated tree."""
    if album is not None:
        return rerun_album(album, model, rounds, batch_size)
    count = photos or (200 if quick else 2000)
    small = max(count // 4, 50)
    with tempfile.TemporaryDirectory(prefix="album_rerun_") as temporary:
        temporary = Path(temporary)
        started = time.perf_counter()
        sources = make_sources(temporary / "sources")
        root = temporary / "Pictures"
        make_tree(root, sources, count)
        total_mb = sum(path.stat().st_size for path in sources) / len(sources) * count / 2**20
        print(f"album tree: {count} photos ({MEGAPIXELS[0]}-{MEGAPIXELS[1]} MP, about "
              f"{total_mb:,.0f} MB) in {count // PHOTOS_PER_FOLDER + 1} folders, made in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        predictor = _predictor(temporary, model)
        predictor.predict(sources[:2], batch_size=2, progress=False, captions=False)
        cache = temporary / "cache.sqlite"
        loaded = _rss_mb()
        first, first_s = _tag(predictor, root, cache, batch_size)
        peak = _peak_rss_mb()
        print(f"first run: {first.predicted} photos predicted in {first_s:.1f} s "
              f"= {count / first_s:.2f} photos/s", flush=True)
        again, again_s = _tag(predictor, root, cache, batch_size)
        print(f"unchanged re-run: {again.predicted} predicted, {again.cached} from the cache, "
              f"{again_s:.2f} s = {100 * again_s / first_s:.2f} % of the first run "
              "(target < 5 %)", flush=True)
        add_photos(root, sources, ADDED)
        added, added_s = _tag(predictor, root, cache, batch_size)
        per_photo = first_s / count
        print(f"after adding {ADDED} photos: {added.predicted} predicted in {added_s:.2f} s = "
              f"scan cost {again_s:.2f} s + {added_s - again_s:.2f} s for the new photos "
              f"({(added_s - again_s) / ADDED * 1000:.0f} ms each; first run "
              f"{per_photo * 1000:.0f} ms each)", flush=True)
        cache_mb = cache.stat().st_size / 2**20
    if again.predicted or added.predicted != ADDED:
        raise RuntimeError(f"the cache did not work: {again.predicted} predicted on an unchanged "
                           f"tree, {added.predicted} after adding {ADDED}")
    memory = [_memory_in_subprocess(small, batch_size, model),
              {"photos": count, "predicted": first.predicted, "seconds": round(first_s, 1),
               "rss_after_model_mb": round(loaded), "peak_rss_mb": round(peak),
               "tagging_peak_above_model_mb": round(peak - loaded)}]
    for item in memory:
        print(f"peak memory, first run on {item['photos']} photos: {item['peak_rss_mb']} MB "
              f"({item['rss_after_model_mb']} MB with the model loaded, +"
              f"{item['tagging_peak_above_model_mb']} MB while tagging)", flush=True)
    return {
        "photos": count,
        "model": MODELS[model],
        "first_run_s": round(first_s, 1),
        "first_run_photos_per_s": round(count / first_s, 2),
        "unchanged_rerun_s": round(again_s, 2),
        "unchanged_rerun_predicted": again.predicted,
        "unchanged_rerun_vs_first": round(again_s / first_s, 4),           # target < 0.05
        "added_photos": ADDED,
        "added_rerun_s": round(added_s, 2),
        "added_rerun_predicted": added.predicted,
        "scan_cost_s": round(again_s, 2),
        "added_photos_cost_s": round(added_s - again_s, 2),
        "added_photos_ms_each": round((added_s - again_s) / ADDED * 1000),
        "first_run_ms_each": round(per_photo * 1000),
        "cache_mb": round(cache_mb, 2),
        "memory": {f"photos_{item['photos']}": item for item in memory},
    }


def main(argv: list[str] | None = None) -> int:
    def run_or_measure_memory(quick, photos, batch_size, model, album, rounds, memory_only_photos):
        if memory_only_photos:    # the child of `_memory_in_subprocess`: one line of JSON
            print(json.dumps(memory_only(memory_only_photos, batch_size, model)))
            return None
        return run(quick=quick, photos=photos, batch_size=batch_size, model=model, album=album, rounds=rounds)

    return bench.command_line(__doc__, run_or_measure_memory, argv, prog="python -m bench.album_rerun",
                              quick="200 photos instead of 2,000", options=[
        bench.option("--photos", type=int, help="album size (default 2,000; --quick: 200)"),
        bench.option("--batch-size", type=int, default=32, help="photos per model batch (32)"),
        bench.option("--model", choices=sorted(MODELS), default="random",
                     help="random: MobileNetV2, random weights (default); pretrained: tag-album --model pretrained"),
        bench.option("--album", type=Path, metavar="DIR",
                     help="re-run a copy of this album (e.g. examples/album) instead of the generated tree"),
        bench.option("--rounds", type=int, default=3, help="--album: fresh copies tagged and re-run (3)"),
        bench.option("--memory-only", type=int, metavar="N", dest="memory_only_photos", help=argparse.SUPPRESS)])


if __name__ == "__main__":
    raise SystemExit(main())
