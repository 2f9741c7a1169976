"""``clinlabel report DATASET -o report.html``: the dataset's quality evidence as one HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.log.audit_log import atomic_write_bytes
from napari_clinlabel.core.programme.report import is_dataset, programme_view


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="HTML report over a dataset folder: log verification, provenance, agreement, cases",
        description="Verify every sidecar log under DATASET and write one self-contained HTML page: "
        "log verification, schema versions, how each final label came about, proposal acceptance, "
        "reader-pair Dice/HD95 and kappa with confusion matrices, and cases by sex, age band, site "
        "and scanner. Exit status 1 when any log fails verification (the page still lists it).",
    )
    p.add_argument("dataset", type=Path, help="folder of images and their sidecar logs")
    p.add_argument("-o", "--output", type=Path, required=True, help="HTML file to write")
    p.add_argument("--title", default="Annotation quality report", help="page title")
    p.add_argument("--dataset", dest="programme", type=Path, default=None, metavar="DIR",
                   help="add the programme view of this dataset (default: DATASET itself when it "
                   "holds clinlabel-dataset.json)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect, render and atomically write the report; exit 0 (1 when a log is broken)."""
    from napari_clinlabel.core.quality.report import collect_dataset
    from napari_clinlabel.core.quality.report_html import render_html

    out: Path = args.output
    if out.exists() and out.is_dir():
        raise InputError(f"{out}: is a folder; give the HTML file to write, e.g. -o report.html")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such folder for the report; create it first")
    rep = collect_dataset(args.dataset)
    programme = args.programme or (args.dataset if is_dataset(args.dataset) else None)
    if programme is not None:
        rep.programme = programme_view(programme)
    atomic_write_bytes(out, render_html(rep, args.title).encode("utf-8"))
    broken = [s.path for s in rep.logs if not s.verified]
    print(f"wrote {out}: {len(rep.logs)} log(s), {len(rep.seg_pairs)} label comparison(s), "
          f"{len(rep.grade_pairs)} grade comparison(s)")  # fmt: skip
    if rep.programme is not None:
        print(f"programme view: {rep.programme['cases']} case(s), "
              f"{len(rep.programme['adjudications'])} adjudication(s)")  # fmt: skip
    for authority in sorted({s.authority for s in rep.logs}):
        print(f"verified against: {authority}")
    if broken:
        print(f"{len(broken)} log(s) failed verification: {', '.join(broken[:3])}")
        return 1
    return 0
