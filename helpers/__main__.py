"""Command line: `python -m helpers <command> ...` (run `python -m helpers --help`).

Each command lives in the module that does the work; that module exposes
`add_cli(subparsers)`, which registers its sub-command(s) and sets `func` (a callable taking
the parsed `argparse.Namespace` and returning an exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command -> module that defines it, in the order `--help` lists them. Only the module of the
# command being run is imported, so `make-sample` or `score` do not pay for importing TensorFlow.
COMMANDS = {
    "make-sample": "helpers.sample",
    "prepare": "helpers.train",
    "train": "helpers.train",
    "caption": "helpers.inference",
    "evaluate": "helpers.inference",
    "score": "helpers.metrics",
    "tag-album": "helpers.album",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `command`, only that command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers",
        description="Caption and tag photos; tag MyPhotoShare albums.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:  # a real missing dependency: say so
                raise
            continue
        add_cli = getattr(module, "add_cli", None)
        if add_cli is not None:
            add_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
