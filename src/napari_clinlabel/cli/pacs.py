"""``clinlabel pacs find|pull|push URL …``: DICOMweb search, resumable download, upload.

Credentials never go on the command line (shell history, ``ps``): ``--user NAME`` takes its
password from ``CLINLABEL_PACS_PASSWORD``; a bearer token comes from ``CLINLABEL_PACS_TOKEN``.
TLS certificates are verified (system CAs, or ``--ca-bundle FILE``) unless ``--insecure``.
Output names studies and series by UID, date, modality and description (free text, shown, never
logged); no patient name or ID.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from napari_clinlabel.core.errors import PacsError
from napari_clinlabel.core.pacs.client import (
    PacsConnection,
    PullProgress,
    find_studies,
    pull,
    push,
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="DICOMweb base URL, e.g. https://pacs.example.org/dicom-web")
    p.add_argument("--user", default=None,
                   help="HTTP basic user; the password is read from CLINLABEL_PACS_PASSWORD")  # fmt: skip
    p.add_argument("--ca-bundle", type=Path, default=None,
                   help="CA certificates (PEM) to verify the server with (default: system CAs)")  # fmt: skip
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the TLS certificate (test servers only; off by default)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pacs`` subcommand with ``find``, ``pull`` and ``push``."""
    p = sub.add_parser(
        "pacs",
        help="search, pull and push studies over DICOMweb (QIDO/WADO/STOW)",
        description="Auth: --user with CLINLABEL_PACS_PASSWORD, or CLINLABEL_PACS_TOKEN (bearer). "
        "TLS verification is on unless --insecure.",
    )
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    f = verbs.add_parser("find", help="list studies and their series (QIDO)")
    _common(f)
    f.add_argument("--modality", default=None, help="only studies/series of this modality")
    f.add_argument("--json", action="store_true", help="machine-readable output")
    f.set_defaults(func=run_find)
    pl = verbs.add_parser("pull", help="download a study or series (WADO; resumable)")
    _common(pl)
    which = pl.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", default=None, help="Study Instance UID")
    which.add_argument("--series", default=None, help="Series Instance UID")
    pl.add_argument("-o", "--output", type=Path, required=True,
                    help="folder; each series lands in OUTPUT/<SeriesInstanceUID>/")  # fmt: skip
    pl.set_defaults(func=run_pull)
    ps = verbs.add_parser("push", help="upload DICOM files or folders (STOW: series, SEG, SR)")
    _common(ps)
    ps.add_argument("paths", nargs="+", type=Path, help="DICOM files or folders (recursive)")
    ps.set_defaults(func=run_push)


def connection(args: argparse.Namespace) -> PacsConnection:
    """The connection the arguments and the environment describe."""
    if args.insecure and args.ca_bundle:
        raise PacsError("Give --ca-bundle or --insecure, not both.")
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise PacsError(f"{args.ca_bundle}: no such CA bundle file.")
    password = os.environ.get("CLINLABEL_PACS_PASSWORD")
    if args.user and password is None:
        raise PacsError(f"--user {args.user}: set CLINLABEL_PACS_PASSWORD to the password "
                        "(it is never taken on the command line).")  # fmt: skip
    verify: bool | str = (
        False if args.insecure else (str(args.ca_bundle) if args.ca_bundle else True)
    )
    return PacsConnection(
        url=args.url,
        username=args.user,
        password=password if args.user else None,
        token=os.environ.get("CLINLABEL_PACS_TOKEN") or None,
        verify=verify,
        timeout_s=args.timeout,
    )


def run_find(args: argparse.Namespace) -> int:
    """Print every study and its series (tab-separated), or JSON with ``--json``."""
    studies = find_studies(connection(args), modality=args.modality)
    if args.json:
        print(json.dumps([s.public() for s in studies], indent=1))
        return 0
    if not studies:
        print("no studies found")
    for st in studies:
        print(f"study\t{st.study_uid}\t{st.date}\t{'/'.join(st.modalities)}\t{st.description}")
        for se in st.series:
            print(f"  series\t{se.series_uid}\t{se.modality}\t#{se.number if se.number is not None else ''}"
                  f"\t{se.instances if se.instances is not None else '?'} instances\t{se.description}")  # fmt: skip
    return 0


def run_pull(args: argparse.Namespace) -> int:
    """Pull; progress on stderr (one updating line on a terminal); one summary line."""
    tty = sys.stderr.isatty()

    def show(p: PullProgress) -> None:
        if tty:
            print(f"\r{p.done}/{p.total} instances", end="", file=sys.stderr, flush=True)

    res = pull(connection(args), args.output, study_uid=args.study, series_uid=args.series,
               progress=show)  # fmt: skip
    if tty:
        print(file=sys.stderr)
    for folder in res.folders:
        print(folder)
    print(
        f"{res.total} instances: {res.fetched} fetched, {res.skipped} already on disk; all present"
    )
    return 0


def run_push(args: argparse.Namespace) -> int:
    """STOW the files; one summary line."""
    res = push(connection(args), args.paths)
    print(f"{len(res.stored)} instances stored")
    return 0
