"""``clinlabel dataset init|add|calibrate|assign|status|next|flag``: run an annotation programme.

The owner (the owner of the dataset's signed roster) initialises the dataset with a reading
design, adds cases, records gold-panel results and assigns; anyone on the roster reads the status
and asks for their next case. Exit 2 on bad input or a refusal, with one line saying why.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.programme.assign import assign
from napari_clinlabel.core.programme.dataset import Dataset, init_dataset
from napari_clinlabel.core.programme.manifest import read_design
from napari_clinlabel.core.programme.status import next_case, status
from napari_clinlabel.core.quality.gold_panel import score_reader
from napari_clinlabel.core.schema import load_schema


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``dataset`` subcommand and its actions."""
    p = sub.add_parser("dataset", help="run an annotation programme (design, assignments, queues)")
    acts = p.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    a = acts.add_parser("init", help="make DIR a dataset: owner-signed manifest with the design")
    a.add_argument("dir", type=Path)
    a.add_argument("--design", type=Path, help="reading design (TOML or JSON); defaults otherwise")
    a.add_argument(
        "--update", action="store_true", help="replace the design of an existing dataset"
    )
    a.set_defaults(func=run_init)
    a = acts.add_parser("add", help="add cases (image files or folders, or PACS series)")
    a.add_argument("dir", type=Path)
    a.add_argument(
        "cases", nargs="+", help="image files or DICOM folders; with --pacs, SeriesInstanceUIDs"
    )
    a.add_argument("--pacs", metavar="URL",
                   help="the cases are series of this DICOMweb server, given by SeriesInstanceUID")  # fmt: skip
    a.add_argument("--class", dest="cls", help="the cases' class (matches a design rule's class)")
    a.add_argument(
        "--honeypot", action="store_true", help="gold cases mixed blindly into worklists"
    )
    a.add_argument("--gold-author", action="append", default=[], help="who wrote the gold answer")
    a.add_argument("--exclude", action="append", default=[], help="a reader who must not see them")
    a.set_defaults(func=run_add)
    a = acts.add_parser("calibrate", help="score a reader on the gold panel and record the result")
    a.add_argument("dir", type=Path)
    a.add_argument("--reader", required=True)
    a.add_argument("--gold-maps", type=Path)
    a.add_argument("--reader-maps", type=Path)
    a.add_argument("--gold-grades", type=Path)
    a.add_argument("--reader-grades", type=Path)
    a.add_argument("--schema")
    a.add_argument("--scale")
    a.set_defaults(func=run_calibrate)
    a = acts.add_parser("assign", help="assign cases by the design (seeded, balanced, gated)")
    a.add_argument("dir", type=Path)
    a.add_argument("--seed", type=int, default=None, help="default: the design's seed")
    a.set_defaults(func=run_assign)
    a = acts.add_parser("status", help="progress, double-read rates, adjudications, calibration")
    a.add_argument("dir", type=Path)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run_status)
    a = acts.add_parser("next", help="the next case for a reader")
    a.add_argument("dir", type=Path)
    a.add_argument("--reader", required=True)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run_next)
    a = acts.add_parser("flag", help="flag one of your assigned cases with a reason")
    a.add_argument("dir", type=Path)
    a.add_argument("case")
    a.add_argument("--reason", required=True)
    a.set_defaults(func=run_flag)


def run_init(args: argparse.Namespace) -> int:
    """Write and sign the manifest; start the dataset log."""
    ds = init_dataset(args.dir, read_design(args.design), update=args.update)
    g = ds.guideline
    print(f"{args.dir}: dataset {ds.manifest['id'][:12]}… guideline {g.get('name')} {g['version']}; "
          f"manifest signed by {ds.roster.owner['id']!r}")  # type: ignore[index]  # fmt: skip
    return 0


def run_add(args: argparse.Namespace) -> int:
    """Record the cases."""
    ds = Dataset(args.dir)
    if args.pacs:
        added = ds.add_pacs_series(
            args.pacs, args.cases, args.cls, args.honeypot, args.gold_author, args.exclude
        )
    else:
        added = ds.add_cases(
            [Path(c) for c in args.cases], args.cls, args.honeypot, args.gold_author, args.exclude
        )
    print(f"{args.dir}: {len(added)} case(s) added ({', '.join(c.id for c in added[:5])}"
          f"{', …' if len(added) > 5 else ''})")  # fmt: skip
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Score and record; exit 0 when the reader passed, 1 when not."""
    ds = Dataset(args.dir)
    ds.owner_actor()  # refused before any scoring when not the owner
    schema = load_schema(args.schema) if args.schema else None
    res = score_reader(
        args.gold_maps, args.reader_maps, args.gold_grades, args.reader_grades, schema, args.scale
    )
    ds.record_calibration(args.reader, res.to_dict())
    verdict = "PASS" if res.passed else "FAIL: " + "; ".join(res.failures)
    print(f"{args.reader}: gold panel for guideline {ds.guideline['version']}: {verdict}")
    return 0 if res.passed else 1


def run_assign(args: argparse.Namespace) -> int:
    """Record the assignments the design asks for now."""
    new, unfilled = assign(Dataset(args.dir), args.seed)
    per = {}
    for a in new:
        per[a["reader"]] = per.get(a["reader"], 0) + 1
    print(f"{args.dir}: {len(new)} assignment(s) recorded"
          + (f" ({', '.join(f'{u} {n}' for u, n in sorted(per.items()))})" if per else ""))  # fmt: skip
    for why in unfilled[:10]:
        print(f"  unfilled: {why}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the status (or JSON)."""
    s = status(Dataset(args.dir))
    if args.json:
        print(json.dumps(s, indent=2, sort_keys=True))
        return 0
    g = s["guideline"]
    print(f"dataset {s['dataset'][:12]}… guideline {g.get('name')} {g['version']}: {s['cases']} case(s), "
          f"{s['honeypots']} honeypot(s), {s['assignments']} assignment(s)")  # fmt: skip
    for u, r in s["readers"].items():
        cal = "calibrated" if s["calibration"].get(u, {}).get("current") else "NOT calibrated"
        print(f"  {u}: {r['assigned']} assigned, {r['completed']} completed, {r['in progress']} in "
              f"progress, {r['not started']} not started ({cal})")  # fmt: skip
    for cls, c in sorted(s["classes"].items()):
        print(f"  class {cls}: {c['cases']} case(s), double reads {c['achieved_rate']:.0%} "
              f"(design {c['design_rate']:.0%}), {c['double_completed']} completed")  # fmt: skip
    for u, a in s["honeypot_accuracy"].items():
        print(f"  {u}: honeypots {a['agreed']}/{a['reads']} agreed with gold")
    for flag in s["flags"]:
        print(f"  FLAG for the owner: {flag}")
    for f in s["flagged"]:
        print(f"  flagged: {f['case']} by {f['reader']}: {f['reason']}")
    for u in s["unreadable"]:
        print(f"  UNREADABLE read log {u['case']}__{u['reader']}: {u['why']}")
    if s["unreadable"]:
        print(f"  {len(s['unreadable'])} read log(s) unreadable: not counted as read; run "
              "'clinlabel log verify' on them")  # fmt: skip
    print(f"  adjudication queue: {len(s['adjudication_queue'])} open")
    for item in s["adjudication_queue"]:
        print(f"    {item['case']}: {'; '.join(item['why'])}")
    return 0


def run_next(args: argparse.Namespace) -> int:
    """Print the reader's next case; exit 1 when there is none."""
    e = next_case(Dataset(args.dir), args.reader)
    if args.json:
        print(json.dumps(e, indent=2))
    elif e is None:
        print(f"{args.reader}: nothing to do")
    else:
        print(f"{e['case']}: {e['task']} ({e['status']}) {e['path']} log {e['log']}")
    if e is None:
        return 1
    return 0


def run_flag(args: argparse.Namespace) -> int:
    """Record the flag in the dataset log."""
    rec = Dataset(args.dir).flag(args.case, args.reason)
    print(f"{args.case}: flagged by {rec['actor']['id']} (dataset log seq {rec['seq']})")
    return 0


__all__ = ["register", "InputError"]
