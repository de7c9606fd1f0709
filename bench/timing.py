"""Timing shared by the benchmarks."""

from __future__ import annotations

import time


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
