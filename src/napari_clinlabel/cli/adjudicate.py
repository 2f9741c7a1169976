"""``clinlabel adjudicate LOG [LOG …]``: the reads of one image, their agreement, and the decision.

A log that readers shared (one folder) holds each reader's own labels array
(``core.annotate.reads``) and gives one read per array, so one path is enough; readers in
separate folders give one log each. Without a decision it prints the reads and the pairwise Dice
and HD95 and the grades each reader gave, flagging those they disagree on (to a role that may
see other reads: reviewer, adjudicator, the roster's owner, or anyone once adjudicated).
``--accept READER`` or ``--majority`` with ``--reason`` records the decision as the adjudicator
(``adjudicate`` + ``sign`` records) in ``--into`` (default: the one log given; in a programme,
the ``log`` that ``clinlabel dataset next --json`` names). When the reads disagree on a grade the
decision must choose it: ``--grade SCALE=VALUE``, or ``--accept READER``, which takes that
reader's grade with their read (the record says so: ``grades_from``). A new adjudicator log
starts with ``image.open`` (the readers' image, the roster owner pinned) as the widget's does.
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
from napari_clinlabel.core.log.image_open import ACTION as IMAGE_OPEN
from napari_clinlabel.core.log.image_open import record_image_open
from napari_clinlabel.core.log.signing import load_private_key
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
    p.add_argument("--grade", metavar="SCALE=VALUE", action="append", default=[],
                   help="adjudicate: the final grade on SCALE (repeat per scale); required for a "
                   "grade the reads disagree on unless --accept takes that reader's")  # fmt: skip
    p.add_argument("--reason", default="", help="why (required with a decision)")
    p.add_argument("--into", type=Path, default=None,
                   help="the adjudicator's log of the image (default: the one log given)")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the reads' agreement, or record and sign the decision; exit 0."""
    deciding = args.accept is not None or args.majority
    grades = _parse_grades(args.grade)
    if grades and not deciding:
        raise InputError(
            "--grade is part of a decision; add --accept READER or --majority and --reason "
            "(nothing was recorded)"
        )
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
    adj.decide_grades(reads, grades, args.accept)  # refuse an unchosen grade before any write
    first = next(iter(iter_records(args.logs[0])))
    actor = current_actor(near=into, role="adjudicator")
    log = AuditLog(into, first["image"], actor)
    try:
        key = load_private_key(actor.id)  # fails before image.open starts a new log
        if log.head().seq < 0:  # a new log starts as the widget's does: the image opened
            opened = _image_open_data(args.logs[0])
            _check_before_open(log, reads, args.reason)
            record_image_open(log, opened, near=into)
        rec, sig = adj.adjudicate(
            log, reads, result, args.reason, key=key, grades=grades, grades_from=args.accept
        )
    finally:
        log.close()
    what = rec["data"]["decision"] + (
        f" {rec['data']['reader']}" if "reader" in rec["data"] else ""
    )
    final = rec["data"].get("grades") or {}
    if final:
        src = rec["data"].get("grades_from")
        what += "; grade " + ", ".join(f"{k} {v}" for k, v in final.items())
        what += f" (taken with {src}'s read)" if src else ""
    print(f"{into}: adjudicate seq {rec['seq']} ({what}), sign seq {sig['seq']} by {actor.id}")
    return 0


def _parse_grades(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        scale, sep, value = item.partition("=")
        if not sep or not scale.strip() or not value.strip():
            raise InputError(
                f"--grade {item!r}: write SCALE=VALUE (e.g. birads=4A); nothing was recorded"
            )
        if scale.strip() in out:
            raise InputError(f"--grade names {scale.strip()!r} twice; nothing was recorded")
        out[scale.strip()] = value.strip()
    return out


def _image_open_data(log_path: Path) -> dict:
    """The data of the readers' ``image.open`` (the image grid), without their log's owner pin."""
    for rec in iter_records(log_path):
        if rec.get("action") == IMAGE_OPEN:
            return {k: v for k, v in (rec.get("data") or {}).items() if k != "owner"}
    raise InputError(f"{log_path}: the read log never opened the image (no image.open record)")


def _check_before_open(log: AuditLog, reads: list[adj.Read], reason: str) -> None:
    """What :func:`adj.adjudicate` refuses, checked before ``image.open`` starts a new log, so a
    refused decision leaves no log behind."""
    if log.actor.role != "adjudicator" or log.actor.id in {r.reader for r in reads}:
        raise PermissionRefused(
            f"{log.actor.id!r} acts as {log.actor.role}; only an adjudicator who read none of "
            "the reads settles them (nothing was recorded)"
        )
    if not reason.strip():
        raise InputError("give the reason for the adjudication decision; nothing was recorded")


def _show(args: argparse.Namespace, reads: list[adj.Read]) -> int:
    actor = current_actor(near=args.logs[0])
    done = any(adj.is_adjudicated(p) for p in {r.log_path for r in reads})
    if may_see_other_reads(actor, find_roster(args.logs[0]), done) is None:
        raise PermissionRefused(
            f"{actor.id!r} acts as {actor.role}; other readers' reads stay hidden until the "
            "image is adjudicated (a reviewer or adjudicator may see them)"
        )
    pairs = adj.pairwise_agreement(reads)
    disputed = adj.grade_disagreements(reads)
    if args.json:
        out = {
            "reads": [{**r.citation(), "name": r.reader_name, "grades": r.grades} for r in reads],
            "agreement": pairs,
            "grade_disagreements": disputed,
        }
        print(json.dumps(_finite_or_none(out), indent=2, allow_nan=False))
        return 0
    for r in reads:
        graded = ", ".join(f"{k} {v}" for k, v in r.grades.items())
        print(
            f"read {r.reader}: labels {r.labels_name!r} in {r.log_path.name} (seq {r.head['seq']})"
            + (f"; grades {graded}" if graded else "")
        )
    for scale, values in disputed.items():
        said = " vs ".join(f"{u} {v if v is not None else '(none)'}" for u, v in values.items())
        print(f"GRADE DISAGREEMENT {scale}: {said} — the decision must choose it (--grade "
              f"{scale}=VALUE, or --accept a reader to take their grade)")  # fmt: skip
    for pair, per_label in pairs.items():
        print(f"\n{pair}\n{format_result({'labels': per_label})}")
    return 0
