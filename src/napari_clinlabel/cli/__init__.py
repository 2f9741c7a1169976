"""``clinlabel`` command line: a thin layer over the Python API (``napari_clinlabel.api``) and
the same core calls the widgets make.

Each subcommand lives in its own module exposing ``register(subparsers)``; its handler returns
the exit code. A :class:`ClinlabelError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from napari_clinlabel.core.errors import ClinlabelError

# modules under napari_clinlabel.cli, each with register(subparsers)
SUBCOMMAND_MODULES = (
    "demo",
    "info",
    "log",
    "keys",
    "roster",
    "prelabel",
    "export",
    "phi",
    "agreement",
    "adjudicate",
    "gold",
    "report",
    "pacs",
    "dataset",
)


# the command each module registers, so a run imports only the module it needs (``clinlabel log
# verify`` need not load SimpleITK, scipy or torch); a test checks it against the modules
COMMAND_MODULES = {
    "demo": "demo", "info": "info", "log": "log", "keys": "keys", "roster": "roster",
    "prelabel": "prelabel",
    "export": "export", "phi-scan": "phi", "deid": "phi", "agreement": "agreement",
    "gold-panel": "gold", "report": "report", "pacs": "pacs",
    "dataset": "dataset", "adjudicate": "adjudicate",
}  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every subcommand, or only ``command``'s module when it is known."""
    parser = argparse.ArgumentParser(
        prog="clinlabel", description="Clinical-grade annotation with an auditable sidecar log."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    only = COMMAND_MODULES.get(command or "")
    for name in SUBCOMMAND_MODULES if only is None else (only,):
        # by name, so ``clinlabel log verify`` loads neither SimpleITK, scipy nor torch
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``clinlabel`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
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
