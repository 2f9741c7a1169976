"""``clinlabel phi-scan PATH`` and ``clinlabel deid IN OUT``: find and remove patient identifiers.

Exit codes. ``phi-scan``: 0 clean; 1 PHI found; 3 some file unreadable or not fully checkable (never
called clean), whatever else was found; 2 bad input. ``deid``: 0 every DICOM file written; 1 some
refused (each listed with its reason; the rest written); 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.privacy.deid import REPORT_NAME, DeidOptions, deidentify
from napari_clinlabel.core.privacy.phi_scan import scan_path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``phi-scan`` and ``deid`` subcommands."""
    s = sub.add_parser(
        "phi-scan",
        help="report what could identify a patient (exit 0 clean, 1 PHI found, 3 unreadable); "
        "never prints it",
    )
    s.add_argument("path", type=Path, help="a file or a folder (scanned recursively)")
    s.add_argument("--json", action="store_true", help="one JSON object per finding")
    s.add_argument(
        "--no-ocr", action="store_true", help="skip the OCR of images at risk of burned-in text"
    )
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
    d.add_argument("--retain-dates", action="store_true",
                   help="Retain Longitudinal Temporal Information: shift dates by a secret offset "
                   "per patient (intervals kept) instead of removing them")  # fmt: skip
    d.add_argument("--retain-patient-characteristics", action="store_true",
                   help="keep sex, age (>89 as 090Y), size, weight, ethnic group, smoking and "
                   "pregnancy status")  # fmt: skip
    d.add_argument("--retain-device", action="store_true",
                   help="keep device serial numbers, IDs, station names")  # fmt: skip
    d.add_argument("--clean-pixels", action="store_true",
                   help="blank burned-in text found by OCR (otherwise such images are refused)")  # fmt: skip
    d.add_argument("--blank-regions", type=Path, default=None, metavar="FILE",
                   help="with --clean-pixels: JSON list of {manufacturer, model, x, y, width, "
                   "height} regions blanked on that device's images ('*' matches any), as CTP")  # fmt: skip
    d.set_defaults(func=run_deid)


def run_scan(args: argparse.Namespace) -> int:
    """Print each finding (tag or field, masked hint); exit 0 clean, 1 PHI, 3 unreadable."""
    findings = scan_path(args.path, ocr=not args.no_ocr)
    unreadable = [f for f in findings if f.kind == "unreadable"]
    for f in findings:
        if args.json:
            print(json.dumps({"file": f.display, "where": f.where, "hint": f.hint,
                              "kind": f.kind}))  # fmt: skip
        else:
            print(f.line())
    if not args.json:
        files = len({f.display for f in findings if f.kind == "phi"})
        phi = len(findings) - len(unreadable)
        print(f"{phi} finding(s) in {files} file(s)" if phi else "no PHI found in what was read")
        if unreadable:
            n = len({f.display for f in unreadable})
            print(f"{n} file(s) unreadable or not fully checked: not clean")
    if unreadable:
        return 3
    return 1 if findings else 0


def _regions(path: Path | None) -> tuple[tuple[str, str, int, int, int, int], ...]:
    """Blank-out regions from a JSON file; one clear error when it is not what is expected."""
    if path is None:
        return ()
    try:
        rows = json.loads(path.read_text())
        return tuple(
            (str(r["manufacturer"]), str(r["model"]), int(r["x"]), int(r["y"]),
             int(r["width"]), int(r["height"]))
            for r in rows
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: not a list of {{manufacturer, model, x, y, width, height}} regions "
            f"({type(exc).__name__}); fix the file."
        ) from None


def run_deid(args: argparse.Namespace) -> int:
    """De-identify, then print the counts and where the report is."""
    options = DeidOptions(
        retain_temporal=args.retain_dates,
        retain_patient_chars=args.retain_patient_characteristics,
        retain_device=args.retain_device,
        clean_pixels=args.clean_pixels,
        blank_regions=_regions(args.blank_regions),
    )
    rep = deidentify(args.input, args.output, options=options, uid_map=args.uid_map)
    print(
        f"{rep.files_written} of {rep.files_in} DICOM file(s) de-identified into {args.output}; "
        f"{sum(rep.actions.values())} attribute change(s), {rep.private_removed} private tag(s) "
        f"removed, {rep.uids_replaced} UID(s) replaced"
    )
    for f in rep.burned:
        if f["burned"]["action"] != "refused":
            print(f"{f['file']}: burned-in text check ({f['burned']['risk']}): "
                  f"{f['burned']['action']}")  # fmt: skip
    for s in rep.skipped:
        print(f"refused {s['name']}: {s['reason']}")
    print(f"report: {Path(args.output) / REPORT_NAME}")
    if args.uid_map:
        print(f"UID map: {args.uid_map} (identifying: do not share it with the data)")
    return 0 if not rep.skipped else 1
