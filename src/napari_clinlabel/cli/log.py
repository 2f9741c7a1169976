"""``clinlabel log verify|show|replay``: check, read and replay a sidecar audit log."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.identity import load_roster
from napari_clinlabel.core.log.present import COLUMNS, record_cells


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``log`` subcommand and its ``verify``, ``show`` and ``replay`` actions."""
    p = sub.add_parser("log", help="verify, show or replay a sidecar audit log")
    acts = p.add_subparsers(dest="log_command", required=True, metavar="ACTION")

    v = acts.add_parser("verify", help="check the chain, objects and signatures (exit 1 if broken)")
    v.add_argument("log", type=Path, help="<image>.clinlabel.jsonl")
    v.add_argument(
        "--roster",
        type=Path,
        help="roster TOML whose public keys check signatures (default: CLINLABEL_ROSTER, else "
        "clinlabel-roster.toml beside the image)",
    )
    v.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="a head an export or signature recorded; the log must still hold it (repeatable)",
    )
    v.add_argument(
        "--witness",
        action="append",
        default=[],
        type=Path,
        metavar="F",
        help="a witness file (an export's .witness.jsonl, a clinlabel-witness.jsonl) besides the "
        "user's and the dataset's, which are checked by themselves (repeatable)",
    )
    v.add_argument("--no-objects", action="store_true", help="skip checking the object files")
    v.set_defaults(func=run_verify)

    s = acts.add_parser("show", help="list the records as a table (or JSON lines)")
    s.add_argument("log", type=Path)
    s.add_argument("--json", action="store_true", help="one JSON record per line")
    s.add_argument("--action", help="only records with this action (e.g. label.paint)")
    s.add_argument("--actor", help="only records by this user id")
    s.set_defaults(func=run_show)

    g = acts.add_parser(
        "sign",
        help="sign the log's head (or a record) with your key: review or approval",
        description="Append a sign record by the acting human (CLINLABEL_USER / CLINLABEL_ROLE, "
        "the roster, or the OS login) with the key 'clinlabel keys init' made.",
    )
    g.add_argument("log", type=Path)
    g.add_argument("--meaning", required=True, choices=("review", "approval"))
    g.add_argument("--at", type=int, default=None, metavar="SEQ", help="record (default: head)")
    g.set_defaults(func=run_sign)

    r = acts.add_parser("replay", help="write the labels as they stood after a record")
    r.add_argument("log", type=Path)
    r.add_argument("--at", type=int, default=None, metavar="SEQ", help="record (default: last)")
    r.add_argument("-o", "--output", type=Path, required=True, help="OUT.nii.gz")
    r.add_argument("--labels", default=None, help="label layer name, when there are several")
    r.set_defaults(func=run_replay)


def _parse_anchor(text: str) -> dict[str, Any]:
    seq, sep, h = text.partition(":")
    if not sep or not seq.strip().isdigit() or len(h.strip()) != 64:
        raise ClinlabelError(f"--anchor {text!r}: expected SEQ:HASH (a record number and 64 hex).")
    return {"seq": int(seq), "hash": h.strip().lower()}


def run_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the log holds; 1 naming the first bad seq and why, and the authority used."""
    from napari_clinlabel.core.log.authority import summary_line, verify_trusted

    # the roster named, else CLINLABEL_ROSTER, else clinlabel-roster.toml beside the image
    roster = load_roster(args.roster) if args.roster else None
    anchors = [_parse_anchor(a) for a in args.anchor]
    report, trust = verify_trusted(args.log, roster, witnesses=args.witness, anchors=anchors,
                                   check_objects=not args.no_objects)  # fmt: skip
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{args.log}: {summary_line(report, trust)}")
    return 0 if report.ok else 1


_WIDTHS = {"actor": 16, "action": 18, "target": 32, "source": 28, "details": 48}


def _cell(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def run_show(args: argparse.Namespace) -> int:
    """Print the (filtered) records as a table (the Audit widget's cells) or as JSON lines."""
    if not os.path.lexists(args.log):  # a link, FIFO or device: the reader refuses it by name
        raise ClinlabelError(f"{args.log}: no such log; check the path.")
    rows = []
    for rec in iter_records(args.log):
        if args.action and rec.get("action") != args.action:
            continue
        if args.actor and (rec.get("actor") or {}).get("id") != args.actor:
            continue
        if args.json:
            print(json.dumps(rec, ensure_ascii=False))
            continue
        cells = record_cells(rec)
        rows.append(tuple(_cell(c, _WIDTHS.get(k)) for k, c in zip(COLUMNS, cells, strict=True)))
    if not args.json:
        header = tuple("time (UTC)" if c == "time" else c for c in COLUMNS)
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
        for row in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Write the replayed labels to a NIfTI file with the image geometry."""
    from napari_clinlabel.core.export.labelmap import write_replay

    out = write_replay(args.log, args.at, args.output, args.labels)
    print(f"wrote {out}")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    """Sign record ``--at`` (default: the head) of an existing log; print the sign record."""
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import current_actor
    from napari_clinlabel.core.log.signing import sign_head

    last = None
    for last in iter_records(args.log) if args.log.exists() else ():  # noqa: B007
        pass
    if last is None:
        raise ClinlabelError(f"{args.log}: no such log, or it is empty; there is nothing to sign.")
    actor = current_actor(args.log)
    log = AuditLog(args.log, last["image"], actor, last.get("schema"))  # the schema in force
    rec = sign_head(log, args.meaning, target_seq=args.at)
    t = rec["target"]
    print(f"{args.log}: seq {rec['seq']} signs seq {t['seq']} ({t['hash'][:12]}…) as "
          f"{args.meaning} by {actor.id} ({actor.role})")  # fmt: skip
    return 0
