"""``clinlabel adjudicate LOG [LOG …]``: the reads of one image, their agreement, and the decision.

A log that readers shared (one folder) holds each reader's own labels array
(``core.annotate.reads``) and gives one read per array, so one path is enough; readers in
separate folders give one log each. Without a decision it prints the reads and the pairwise Dice
and HD95 (to a role that may see other reads: reviewer, adjudicator, the roster's owner, or
anyone once adjudicated). ``--accept READER`` or ``--majority`` with ``--reason`` records the
decision as the adjudicator (``adjudicate`` + ``sign`` records) in ``--into`` (default: the one
log given).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_clinlabel.cli.agreement import _finite_or_none, format_result
from napari_clinlabel.core.annotate.reads import may_see_other_reads
from napari_clinlabel.core.errors import InputError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import current_actor, find_roster
from napari_clinlabel.core.quality import adjudication as adj


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``adjudicate`` subcommand."""
    p = sub.add_parser(
        "adjudicate",
        help="readers' reads of one image (one shared log or one log each): agreement, decision",
        description="Load the reads of one image from one shared sidecar log (each reader's own "
        "labels array is one read) or from one log per reader; print the pairwise agreement, or "
        "record the adjudicator's signed decision (--accept READER or --majority, --reason).",
    )
    p.add_argument("logs", nargs="+", type=Path, help="sidecar log(s) (.clinlabel.jsonl)")
    p.add_argument("--labels", metavar="NAME", default=None, help="labels array, one per log")
    p.add_argument("--json", action="store_true", help="print the agreement as JSON")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--accept", metavar="READER", help="adjudicate: accept this reader's read")
    what.add_argument("--majority", action="store_true", help="adjudicate: voxel-wise majority")
    p.add_argument("--reason", default="", help="why (required with a decision)")
    p.add_argument("--into", type=Path, default=None,
                   help="the adjudicator's log of the image (default: the one log given)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the reads' agreement, or record and sign the decision; exit 0."""
    deciding = args.accept is not None or args.majority
    into = args.into or (args.logs[0] if len(args.logs) == 1 else None)
    if deciding and into is None:
        raise InputError(
            "the reads come from several logs; name the adjudicator's log of the image with "
            "--into PATH (nothing was recorded)"
        )
    reads = adj.load_reads(args.logs, labels_name=args.labels)
    if not deciding or into is None:
        return _show(args, reads)
    if args.majority:
        result = adj.merge_reads(reads, "majority")
    else:
        chosen = [r for r in reads if r.reader == args.accept]
        if not chosen:
            raise InputError(
                f"no read by {args.accept!r} (readers: {', '.join(r.reader for r in reads)}); "
                "nothing was recorded"
            )
        result = chosen[0].labels
    first = next(iter(iter_records(args.logs[0])))
    actor = current_actor(near=into, role="adjudicator")
    log = AuditLog(into, first["image"], actor)
    rec, sig = adj.adjudicate(log, reads, result, args.reason)
    log.close()
    what = rec["data"]["decision"] + (
        f" {rec['data']['reader']}" if "reader" in rec["data"] else ""
    )
    print(f"{into}: adjudicate seq {rec['seq']} ({what}), sign seq {sig['seq']} by {actor.id}")
    return 0


def _show(args: argparse.Namespace, reads: list[adj.Read]) -> int:
    actor = current_actor(near=args.logs[0])
    done = any(adj.is_adjudicated(p) for p in {r.log_path for r in reads})
    if may_see_other_reads(actor, find_roster(args.logs[0]), done) is None:
        raise PermissionRefused(
            f"{actor.id!r} acts as {actor.role}; other readers' reads stay hidden until the "
            "image is adjudicated (a reviewer or adjudicator may see them)"
        )
    pairs = adj.pairwise_agreement(reads)
    if args.json:
        out = {
            "reads": [{**r.citation(), "name": r.reader_name} for r in reads],
            "agreement": pairs,
        }
        print(json.dumps(_finite_or_none(out), indent=2, allow_nan=False))
        return 0
    for r in reads:
        print(
            f"read {r.reader}: labels {r.labels_name!r} in {r.log_path.name} (seq {r.head['seq']})"
        )
    for pair, per_label in pairs.items():
        print(f"\n{pair}\n{format_result({'labels': per_label})}")
    return 0
