"""Benchmarks: plain scripts (`python -m bench.<name>`), each exposing `run(quick=False) -> dict`.

They read real data from ../shared (or `SHARED_DIR`); its offline NLTK data is used when
`NLTK_DATA` is not set (NLTK reads it when imported, hence here, before any benchmark runs).
`helpers` is imported here too, before any benchmark imports TensorFlow, so that they measure
its defaults (oneDNN on, `helpers/__init__.py`).
"""

import os
from pathlib import Path

_SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
if (_SHARED_DIR / "nltk_data").is_dir():
    os.environ.setdefault("NLTK_DATA", str(_SHARED_DIR / "nltk_data"))

import helpers  # noqa: E402, F401  (its settings, before TensorFlow is imported)
