"""Benchmarks: plain scripts (`python -m bench.<name>`), each exposing `run(quick=False) -> dict`."""
