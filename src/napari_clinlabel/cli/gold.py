"""``clinlabel gold-panel``: score a new reader against a gold-standard set before production.

Exit 0 when the reader passes every judged part (mean Dice and kappa at or above the schema's
thresholds; defaults 0.85 and 0.90), 1 when not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_clinlabel.core.quality.gold_panel import score_reader
from napari_clinlabel.core.schema import load_schema


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``gold-panel`` subcommand."""
    p = sub.add_parser(
        "gold-panel",
        help="score a reader against a gold-standard panel (pass/fail by the schema's thresholds)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--gold-maps", type=Path, help="folder of gold label maps, one file per case")
    p.add_argument("--reader-maps", type=Path, help="the reader's label maps (same file names)")
    p.add_argument("--gold-grades", type=Path, help="gold grade table (CSV item,grade)")
    p.add_argument("--reader-grades", type=Path, help="the reader's grade table")
    p.add_argument("--schema", help="schema name or file giving thresholds and the grade scale")
    p.add_argument("--scale", help="which scale of the schema the grades use")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the figures and PASS/FAIL; exit 0 on pass, 1 on fail."""
    schema = load_schema(args.schema) if args.schema else None
    res = score_reader(
        args.gold_maps, args.reader_maps, args.gold_grades, args.reader_grades, schema, args.scale
    )
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, default=str))
    else:
        t = res.thresholds
        if res.segmentation is not None:
            s = res.segmentation
            print(f"segmentation: mean Dice {s['mean_dice']:.3f} (pass ≥ {t['dice']})")
        if res.grading is not None:
            g = res.grading
            print(f"grading: {g['kappa_kind']} {g['kappa']:.3f} over {g['n']} items "
                  f"(pass ≥ {t['kappa']})")  # fmt: skip
        for why in res.failures:
            print(f"  fail: {why}")
        print("PASS" if res.passed else "FAIL")
    return 0 if res.passed else 1
