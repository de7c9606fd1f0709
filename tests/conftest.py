"""Shared test fixtures: where the real data in ../shared lives, and NLTK pointed at it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("SHARED_DIR", PROJECT_ROOT.parent / "shared"))
SHARED_DATA = SHARED_DIR / "data"

# NLTK reads NLTK_DATA when it is imported: point it at the offline copy before any test does.
if (SHARED_DIR / "nltk_data").is_dir():
    os.environ.setdefault("NLTK_DATA", str(SHARED_DIR / "nltk_data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`; tests that need it are skipped on a machine without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The embedded sample dataset, generated once per test session (small but complete)."""
    from helpers import sample

    out = tmp_path_factory.mktemp("sample")
    sample.make_sample(out, seed=0)
    return out
