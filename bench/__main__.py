"""Run every benchmark side by side and write one report (Markdown + JSON).

    python -m bench            # full sizes (tens of minutes on 2 cores)
    python -m bench --quick    # small sizes, a few minutes: checks the harness, numbers are noisier

Each benchmark module exposes `run(quick: bool) -> dict` of measured numbers (and ratios against
its baselines); this entry point describes the machine, runs them one after the other in one
process, and writes `bench/results/report.{md,json}`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

BENCHMARKS = (
    ("vocab_speed", "Vocabulary and synset building (captions/s)"),
    ("vgenome_memory", "Visual Genome streaming vs json.load (peak memory)"),
    ("features_speed", "Feature extraction (images/s)"),
    ("train_speed", "Decoder training (tokens/s)"),
    ("pipeline_speed", "Caption input pipeline vs in-memory gather (examples/s, RSS)"),
    ("beam_speed", "Beam search vs greedy vs per-image loop (images/s)"),
    ("album_speed", "Album tagging end to end (photos/s)"),
    ("real_photos", "Keywords on real photos: ImageNet hierarchy vs raw classes (precision)"),
    ("imagenet_speed", "No-training tagging, ImageNet classes + WordNet (photos/s)"),
    ("real_photos_detector", "Keywords on real photos with the COCO detector: fused vs its parts (precision, people)"),
    ("pretrained_speed", "No-training tagging with the COCO detector vs its limit and ImageNet only (ms/photo)"),
    ("album_rerun", "Album re-runs with the prediction cache (seconds, peak memory)"),
    ("scaling", "Cost per item at 1x, 4x, 16x the sample (seconds/item, peak memory)"),
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def describe_machine() -> dict:
    """CPU, cores, memory and library versions: the context every number depends on."""
    import numpy
    import tensorflow

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "gpus": [device.name for device in tensorflow.config.list_physical_devices("GPU")],
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }


def _flatten(values: dict, prefix: str = ""):
    """`(dotted key, value)` pairs of a nested result dict, in order."""
    for key, value in values.items():
        if isinstance(value, dict) and key != "targets":
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def to_markdown(report: dict) -> str:
    lines = ["# Benchmark report", ""]
    machine = report["machine"]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    lines += [f"- mode: {'quick' if report['quick'] else 'full'}", ""]
    for name, title in BENCHMARKS:
        result = report["benchmarks"].get(name)
        lines += [f"## {title}", ""]
        if result is None:
            lines += ["not run", ""]
            continue
        if "error" in result:
            lines += [f"failed: `{result['error']}`", ""]
            continue
        lines += ["| measure | value |", "|---|---|"]
        for key, value in _flatten(result):
            shown = f"{value:.4g}" if isinstance(value, float) else json.dumps(value, ensure_ascii=False)
            lines.append(f"| {key} | {shown} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Run all benchmarks.")
    parser.add_argument("--quick", action="store_true", help="small sizes (harness check)")
    parser.add_argument("--only", nargs="*", help="benchmark module names to run")
    args = parser.parse_args(argv)

    report = {"machine": describe_machine(), "quick": args.quick, "benchmarks": {}}
    previous = RESULTS_DIR / "report.json"
    if args.only and previous.is_file():  # re-running some: keep the others' last numbers
        old = json.loads(previous.read_text())
        if old.get("quick") == args.quick:
            report["benchmarks"] = old.get("benchmarks", {})
    failures = 0
    for name, title in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        print(f"\n=== {title} (bench.{name}) ===", flush=True)
        start = time.perf_counter()
        try:
            result = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            result = {"error": f"{type(error).__name__}: {error}"}
            failures += 1
        result["seconds"] = round(time.perf_counter() - start, 1)
        report["benchmarks"][name] = result

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS_DIR / "report.md").write_text(to_markdown(report))
    print(f"\nReport: {RESULTS_DIR / 'report.md'} and report.json ({failures} failed)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
