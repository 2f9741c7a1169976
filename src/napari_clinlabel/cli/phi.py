"""``clinlabel phi-scan PATH`` and ``clinlabel deid IN OUT``: find and remove patient identifiers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``phi-scan`` and ``deid`` subcommands."""
    s = sub.add_parser(
        "phi-scan",
        help="report what could identify a patient (exit 1 when anything is found); never prints it",
    )
    s.add_argument("path", type=Path, help="a file or a folder (scanned recursively)")
    s.add_argument("--json", action="store_true", help="one JSON object per finding")
    s.set_defaults(func=run_scan)

    d = sub.add_parser(
        "deid",
        help="de-identify DICOM (PS3.15 Basic Profile) into a new folder, with a report",
    )
    d.add_argument("input", type=Path, help="DICOM file or folder")
    d.add_argument("output", type=Path, help="new (or empty) folder for the de-identified copy")
    d.add_argument(
        "--uid-map",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the old→new UID map here (it is itself identifying: keep it private)",
    )
    d.set_defaults(func=run_deid)


def run_scan(args: argparse.Namespace) -> int:
    """Print each finding (tag or field, masked hint); exit 1 when there is any, 0 when clean."""
    from napari_clinlabel.core.privacy.phi_scan import scan_path

    findings = scan_path(args.path)
    for f in findings:
        if args.json:
            print(json.dumps({"file": f.display, "where": f.where, "hint": f.hint}))
        else:
            print(f.line())
    if not args.json:
        files = len({f.display for f in findings})
        print(f"{len(findings)} finding(s) in {files} file(s)" if findings else "no PHI found")
    return 1 if findings else 0


def run_deid(args: argparse.Namespace) -> int:
    """De-identify, then print the counts and where the report is."""
    from napari_clinlabel.core.privacy.deid import REPORT_NAME, deidentify

    rep = deidentify(args.input, args.output, uid_map=args.uid_map)
    print(
        f"{rep.files_written} of {rep.files_in} DICOM file(s) de-identified into {args.output}; "
        f"{sum(rep.actions.values())} attribute change(s), {rep.private_removed} private tag(s) "
        f"removed, {rep.uids_replaced} UID(s) replaced"
    )
    for s in rep.skipped:
        print(f"skipped file #{s['file']}: {s['reason']}")
    print(f"report: {Path(args.output) / REPORT_NAME}")
    if args.uid_map:
        print(f"UID map: {args.uid_map} (identifying: do not share it with the data)")
    return 0 if not rep.skipped else 1
