"""``clinlabel export PATH --format FMT -o OUT``: final labels, boxes or grades in a standard form."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_clinlabel.core.export.formats import ALL_FORMATS
from napari_clinlabel.core.export.gate import export


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    p = sub.add_parser(
        "export",
        help="export final labels (NIfTI/NRRD/MHA/DICOM SEG; PNG for 2D images without a pixel size) "
        "or boxes and grades (JSON/CSV/COCO)",
        description="Refuses (exit 2) while model proposals are undecided, unless "
        "--exclude-pending. Every export is recorded in the sidecar log with its digest.",
    )
    p.add_argument("path", type=Path, help="the image file or DICOM series folder")
    p.add_argument("--format", required=True, choices=ALL_FORMATS, dest="fmt")
    p.add_argument("-o", "--output", type=Path, required=True, help="output file")
    p.add_argument(
        "--exclude-pending",
        action="store_true",
        help="export although proposals are undecided (they are left out; the record says so)",
    )
    p.add_argument("--labels", default=None, help="labels layer name (default: the log's only one)")
    p.add_argument("--schema", default=None, help="schema file or builtin name, if not the log's")
    p.add_argument(
        "--include-empty", action="store_true", help="DICOM SEG: also a segment per unused label"
    )
    p.add_argument(
        "--seg-type",
        choices=("binary", "labelmap"),
        default="binary",
        help="DICOM SEG: BINARY (default, widest compatibility) or LABELMAP (one frame per slice)",
    )
    p.add_argument(
        "--resample",
        action="store_true",
        help="the image was annotated resampled (uneven DICOM spacing): resample it again as its "
        "log recorded and write the labels back onto the original slices, one file per even block",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print one line per file written (name, bytes, sha256)."""
    res = export(
        args.path,
        args.fmt,
        args.output,
        exclude_pending=args.exclude_pending,
        labels_name=args.labels,
        schema=args.schema,
        include_empty=args.include_empty,
        seg_type=args.seg_type,
        resample=args.resample,
    )
    for o in res.outputs:
        print(f"{o.path}\t{o.bytes} bytes\tsha256 {o.sha256}")
    for note in res.notes:
        print(f"note: {note}")
    print(f"recorded as seq {res.record['seq']} ({res.record['hash'][:12]}…)")
    return 0
