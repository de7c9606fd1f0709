"""Peak memory of reading Visual Genome objects.json: streaming (helpers.data.vgenome) vs json.load.

    python -m bench.vgenome_memory            # a 200+ MB objects.json (about a minute)
    python -m bench.vgenome_memory --quick    # about 20 MB

Writes a synthetic file in the official layout (`[{"image_id", "objects": [{"synsets", "h",
"object_id", "names", "w", "y", "x"}, ...]}, ...]`, 10-60 objects per image as in VG v1.2) to a
temporary folder, then, each in a fresh Python subprocess, counts objects per image (a) by
streaming with `helpers.data.vgenome.object_counts` and (b) with `json.load`. Each child reports its
peak resident memory (`VmHWM` of `/proc/self/status`) and the same memory right
after its imports, so the reported "work" memory is what reading the file added.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

import bench

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NAMES = ["man", "shirt", "tree", "window", "building", "sign", "car", "street", "hand", "head",
         "table", "plate", "sky", "cloud", "grass", "wall", "light", "door", "chair", "bike"]

_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench.timing import peak_kib
from helpers.data import vgenome

baseline = peak_kib()
path, method = Path(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
if method == "stream":
    counts = vgenome.object_counts(path)
else:
    with path.open("rb") as file:
        data = json.load(file)
    counts = {entry["image_id"]: len(entry["objects"]) for entry in data}
seconds = time.perf_counter() - start
peak = peak_kib()
print(json.dumps({"images": len(counts), "objects": sum(counts.values()), "seconds": seconds,
                  "baseline_kib": baseline, "peak_kib": peak}))
"""


def write_objects_json(path: Path, target_mb: float, seed: int = 0) -> dict:
    """Write a Visual Genome-layout objects.json of at least `target_mb` megabytes (1e6 bytes)."""
    rng = np.random.default_rng(seed)
    images = objects = 0
    object_id = 1
    with path.open("w", encoding="utf-8") as file:
        file.write("[")
        while file.tell() < target_mb * 1e6:
            count = int(rng.integers(10, 61))
            names = rng.integers(len(NAMES), size=count)
            boxes = rng.integers(1, 500, size=(count, 4))
            entry = {"image_id": images + 1, "objects": [
                {"synsets": [f"{NAMES[n]}.n.01"], "h": int(b[0]), "object_id": object_id + i,
                 "names": [NAMES[n]], "w": int(b[1]), "y": int(b[2]), "x": int(b[3])}
                for i, (n, b) in enumerate(zip(names, boxes))]}
            file.write(("," if images else "") + json.dumps(entry))
            images += 1
            objects += count
            object_id += count
        file.write("]")
    return {"images": images, "objects": objects, "file_mb": path.stat().st_size / 1e6}


def _measure(path: Path, method: str) -> dict:
    from bench.timing import run_child

    return run_child(_CHILD, str(path), method, str(PROJECT_ROOT))


def run(quick: bool = False) -> dict:
    """Generate the file, measure both readers, print and return the numbers (MB = 1e6 bytes)."""
    target_mb = 20 if quick else 210
    with tempfile.TemporaryDirectory(prefix="vg_bench_") as folder:
        path = Path(folder) / "objects.json"
        start = time.perf_counter()
        made = write_objects_json(path, target_mb)
        print(f"wrote {path.name}: {made['file_mb']:.0f} MB, {made['images']} images, "
              f"{made['objects']} objects ({time.perf_counter() - start:.1f} s)", flush=True)
        stream = _measure(path, "stream")
        loaded = _measure(path, "json.load")
    if (stream["images"], stream["objects"]) != (loaded["images"], loaded["objects"]):
        raise RuntimeError(f"readers disagree: stream {stream}, json.load {loaded}")
    kib = 1024 / 1e6
    result = {
        "file_mb": round(made["file_mb"], 1),
        "images": made["images"],
        "objects": made["objects"],
        "stream_peak_mb": round(stream["peak_kib"] * kib, 1),
        "json_load_peak_mb": round(loaded["peak_kib"] * kib, 1),
        "stream_added_mb": round((stream["peak_kib"] - stream["baseline_kib"]) * kib, 1),
        "json_load_added_mb": round((loaded["peak_kib"] - loaded["baseline_kib"]) * kib, 1),
        "stream_seconds": round(stream["seconds"], 2),
        "json_load_seconds": round(loaded["seconds"], 2),
    }
    result["peak_ratio_json_load_over_stream"] = round(
        result["json_load_peak_mb"] / result["stream_peak_mb"], 1)
    result["added_ratio_json_load_over_stream"] = round(
        result["json_load_added_mb"] / max(result["stream_added_mb"], 0.1), 1)
    print(f"streaming: peak {result['stream_peak_mb']} MB (+{result['stream_added_mb']} MB over "
          f"imports), {result['stream_seconds']} s | json.load: peak "
          f"{result['json_load_peak_mb']} MB (+{result['json_load_added_mb']} MB), "
          f"{result['json_load_seconds']} s | peak ratio "
          f"{result['peak_ratio_json_load_over_stream']}x", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    return bench.command_line(__doc__.split("\n\n")[0], run, argv, quick="about 20 MB instead of 200+ MB",
                              print_result=False)


if __name__ == "__main__":
    raise SystemExit(main())
