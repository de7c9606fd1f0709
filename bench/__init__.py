"""Benchmarks: plain scripts (`python -m bench.<name>`), each exposing `run(quick=False) -> dict`.

They read real data from ../shared (or `SHARED_DIR`); its offline NLTK data is used when
`NLTK_DATA` is not set (NLTK reads it when imported, hence here, before any benchmark runs).
`helpers` is imported here too, before any benchmark imports TensorFlow, so that they measure
its defaults (oneDNN on, `helpers/__init__.py`).

Each module's `main()` is `command_line`: its options, `run`, the result printed as JSON.
`python -m bench` (`bench/__main__.py`) runs them all and writes `bench/results/report.{md,json}`.
"""

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

_SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
if (_SHARED_DIR / "nltk_data").is_dir():
    os.environ.setdefault("NLTK_DATA", str(_SHARED_DIR / "nltk_data"))
if (_SHARED_DIR / "models" / "yolox-nano" / "yolox_nano.onnx").is_file():   # the COCO detector
    os.environ.setdefault("PHOTO_CAPTIONS_DETECTOR", str(_SHARED_DIR / "models" / "yolox-nano" / "yolox_nano.onnx"))

_CAPTION_TEXT = [_SHARED_DIR / "data" / "coco-val2014-captions-4800" / "captions_val2014_subset4800.json",
                 _SHARED_DIR / "data" / "flickr8k-text" / "Flickr8k.token.txt"]
if all(path.is_file() for path in _CAPTION_TEXT):   # the concept decoder's caption text
    os.environ.setdefault("PHOTO_CAPTIONS_TEXT", ",".join(str(path) for path in _CAPTION_TEXT))
if (_SHARED_DIR / "data" / "coco-mini-2017").is_dir():   # the benchmark photos: never trained on
    os.environ.setdefault("PHOTO_CAPTIONS_EXCLUDE", str(_SHARED_DIR / "data" / "coco-mini-2017"))
if (_SHARED_DIR / "data" / "multi30k-task1" / "train.fr.gz").is_file():   # French and German caption text
    os.environ.setdefault("PHOTO_CAPTIONS_MULTI30K", str(_SHARED_DIR / "data" / "multi30k-task1"))

import helpers  # noqa: E402, F401  (its settings, before TensorFlow is imported)


def option(*flags: str, **settings) -> tuple[tuple[str, ...], dict]:
    """One option of `command_line`: the arguments of `argparse.ArgumentParser.add_argument`."""
    return flags, settings


def command_line(description: str, run: Callable[..., dict | None], argv: Sequence[str] | None = None, *,
                 quick: str | None = None, options: Sequence[tuple[tuple[str, ...], dict]] = (),
                 prog: str | None = None, print_result: bool = True) -> int:
    """A benchmark's `main()`: parse its options, call `run` with them, print what it returns.

    Args:
        description: the help's text: a one-line summary (wrapped to the terminal) or the module's
            docstring (several lines, shown as written).
        run: called with the options as keyword arguments (their `dest` names, `quick` first);
            returns the numbers, or None when it has printed or written what it had to.
        argv: the arguments (default: the command line's).
        quick: the help of a `--quick` flag (None: no such flag).
        options: the other options, in order (`option(...)`).
        prog: the program's name in the help (default: the script's file name).
        print_result: print `run`'s result as indented JSON (False for the benchmarks that print
            their own table).

    Returns:
        0, the exit status (a failing benchmark raises).
    """
    multi_line = "\n" in description.strip()
    parser = argparse.ArgumentParser(
        prog=prog, description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter if multi_line else argparse.HelpFormatter)
    if quick is not None:
        parser.add_argument("--quick", action="store_true", help=quick)
    for flags, settings in options:
        parser.add_argument(*flags, **settings)
    result = run(**vars(parser.parse_args(argv)))
    if print_result and result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0
