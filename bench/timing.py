"""Timing and peak memory shared by the benchmarks."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def vm_hwm_kib() -> int | None:
    """Peak resident memory of this process (since its start or the last reset through
    /proc/self/clear_refs), KiB: Linux's VmHWM; None where /proc has no such line."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_kib() -> int:
    """Peak resident memory of this process, KiB: VmHWM, which belongs to this process's own
    address space. `ru_maxrss` (the fallback where there is no /proc) survives exec on Linux: a
    child started by a benchmark process with TensorFlow loaded would report that parent's peak."""
    peak = vm_hwm_kib()
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def interleaved_best(measurements: dict, repeats: int = 3) -> dict:
    """Time every measurement `repeats` times, in rounds (one of each per round), and keep each
    one's fastest wall-clock time in seconds (the least disturbed by other processes, as
    `timeit` recommends). Interleaving gives every measurement the same chances on a shared
    machine, so their ratios stay fair even when the load changes during the run.

    Args:
        measurements: name -> `function` or `(function, setup or None)`; `setup()` runs untimed
            before each call of its function.
    """
    best = {name: float("inf") for name in measurements}
    for _ in range(repeats):
        for name, measurement in measurements.items():
            function, setup = measurement if isinstance(measurement, tuple) else (measurement, None)
            if setup is not None:
                setup()
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def run_child(script: str, *args: str) -> dict:
    """Run `python -c script args...` in a fresh process (its own peak memory) and return the
    JSON object its last line of output prints.

    Raises:
        RuntimeError: the child failed (the message ends with its stderr).
    """
    completed = subprocess.run([sys.executable, "-c", script, *args],
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
