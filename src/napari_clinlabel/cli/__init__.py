"""``clinlabel`` command line: a thin layer over the same core calls the widgets make.

Each subcommand lives in its own module exposing ``register(subparsers)``; its handler returns
the exit code. A :class:`ClinlabelError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..core.errors import ClinlabelError

# modules under napari_clinlabel.cli, each with register(subparsers)
SUBCOMMAND_MODULES = (
    "demo",
    "info",
    "log",
    "keys",
    "prelabel",
    "export",
    "phi",
    "agreement",
    "gold",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="clinlabel", description="Clinical-grade annotation with an auditable sidecar log."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # subcommand not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clinlabel`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ClinlabelError as exc:
        print(f"clinlabel {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clinlabel {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
