"""``clinlabel roster sign ROSTER``: the dataset owner signs the roster, so its roles count."""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

from napari_clinlabel.core.errors import InputError, PermissionRefused
from napari_clinlabel.core.log.audit_log import atomic_write_bytes
from napari_clinlabel.core.log.identity import (
    load_roster,
    login_name,
    roster_statement,
    signature_path,
)
from napari_clinlabel.core.log.signing import load_private_key, public_key_b64


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``roster`` subcommand and its ``sign`` and ``check`` actions."""
    p = sub.add_parser("roster", help="sign or check a dataset roster (clinlabel-roster.toml)")
    acts = p.add_subparsers(dest="roster_command", required=True, metavar="ACTION")
    s = acts.add_parser(
        "sign",
        help="sign the roster as its [owner] (writes ROSTER.sig beside it)",
        description="Sign ROSTER with the key 'clinlabel keys init' made for the owner named in "
        "its [owner] table; the signature goes to ROSTER.sig. Sign again after every edit: a "
        "roster whose signature does not match grants nothing beyond annotator.",
    )
    s.add_argument("roster", type=Path, help="clinlabel-roster.toml")
    s.add_argument("--user", default=None, help="acting user (default: CLINLABEL_USER or login)")
    s.set_defaults(func=run_sign)
    c = acts.add_parser("check", help="say whether the roster's owner signed it (exit 1 if not)")
    c.add_argument("roster", type=Path)
    c.set_defaults(func=run_check)


def run_sign(args: argparse.Namespace) -> int:
    """Write ``ROSTER.sig``: the owner's Ed25519 signature over the roster's exact bytes."""
    roster = load_roster(args.roster)
    if roster.owner is None:
        raise InputError(
            f"{args.roster}: has no [owner] table; add one with the owner's id and the public_key "
            "'clinlabel keys init' printed, then sign."
        )
    user = args.user or os.environ.get("CLINLABEL_USER") or login_name()
    if user != roster.owner["id"]:
        raise PermissionRefused(
            f"{args.roster}: its owner is {roster.owner['id']!r}, you act as {user!r}; only the "
            "owner signs the roster."
        )
    key = load_private_key(user)
    if public_key_b64(key) != roster.owner["public_key"]:
        raise PermissionRefused(
            f"{args.roster}: [owner] public_key is not the key of {user!r} in the key folder; put "
            "that key's public half (keys init printed it) in [owner]."
        )
    raw = args.roster.read_bytes()
    sig = base64.b64encode(key.sign(roster_statement(raw))).decode("ascii")
    out = signature_path(args.roster)
    atomic_write_bytes(out, (sig + "\n").encode("ascii"))
    print(f"{args.roster}: signed by its owner {user!r}; signature in {out}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Print the roster's authority line; exit 1 when its owner did not sign it."""
    roster = load_roster(args.roster)
    print(roster.authority())
    return 0 if roster.signed else 1
