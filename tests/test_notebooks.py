"""The notebook series executed headless with papermill, as `make demo` runs it.

On the embedded sample (every notebook, short training) and on the real COCO photos of
`../shared/data/coco-mini-2017` (weights=None, short training). Slow by nature (a few minutes):
each notebook starts a kernel and imports TensorFlow.
"""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import nbformat
import pytest

from helpers import demo
from helpers.config import RUNS_DIR


def _assert_clean(notebook_path: Path) -> None:
    """Every code cell ran and none printed an error."""
    notebook = nbformat.read(notebook_path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", (notebook_path.name, cell.source[:200])


@pytest.fixture(scope="module")
def sample_series(sample_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("notebooks-sample")
    album_dir = out_dir / "album"
    shutil.copytree(sample_dir / "album", album_dir)
    run_name = "pytest-sample"
    shutil.rmtree(RUNS_DIR / run_name, ignore_errors=True)
    try:
        runs = demo.run_series(sample_dir, out_dir, run_name, quick=True, album_dir=album_dir)
        yield runs, RUNS_DIR / run_name, album_dir
    finally:
        shutil.rmtree(RUNS_DIR / run_name, ignore_errors=True)


def test_every_notebook_runs_on_the_sample(sample_series):
    runs, run_dir, album_dir = sample_series
    assert [run.name for run in runs] == list(demo.NOTEBOOKS)
    for run in runs:
        _assert_clean(run.output)
    # Notebooks 0 (data), 2 (loss curves) and 3 (predictions) draw figures.
    figures = {run.name: len(run.figures) for run in runs}
    assert figures["0_Dataset_Exploration.ipynb"] >= 4, figures
    assert figures["2_Training.ipynb"] >= 1, figures
    assert figures["3_Inference.ipynb"] >= 1, figures
    # Notebook 2 left a loadable bundle where notebooks 3 and 4 found it.
    assert (run_dir / "bundle" / "config.json").is_file()
    # Notebook 4 tagged the album copy: every picture section got auto_tags, and MyPhotoShare's
    # own configparser settings read the file.
    parser = configparser.ConfigParser(allow_no_value=True)
    parser.optionxform = str
    parser.read(album_dir / "album.ini", encoding="utf-8")
    pictures = [name for name in parser.sections() if name != "album"]
    assert pictures and all(parser.has_option(name, "auto_tags") for name in pictures)


def test_series_runs_on_real_coco_photos(shared_data, tmp_path):
    data_dir = shared_data / "coco-mini-2017"
    run_name = "pytest-coco-mini"
    shutil.rmtree(RUNS_DIR / run_name, ignore_errors=True)
    try:
        runs = demo.run_series(
            data_dir, tmp_path, run_name, notebooks=demo.NOTEBOOKS[:4], quick=True
        )
        for run in runs:
            _assert_clean(run.output)
        assert (RUNS_DIR / run_name / "bundle" / "config.json").is_file()
    finally:
        shutil.rmtree(RUNS_DIR / run_name, ignore_errors=True)
