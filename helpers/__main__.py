"""Command line: `python -m helpers <command> ...` (run `python -m helpers --help`).

Each command lives in the module that does the work; that module exposes
`add_cli(subparsers)`, which registers its sub-command(s) and sets `func` (a callable taking
the parsed `argparse.Namespace` and returning an exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES = (
    "helpers.sample",      # make-sample
    "helpers.train",       # prepare, train
    "helpers.inference",   # caption, evaluate
    "helpers.metrics",     # score
    "helpers.album",       # tag-album
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers",
        description="Caption and tag photos; tag MyPhotoShare albums.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
