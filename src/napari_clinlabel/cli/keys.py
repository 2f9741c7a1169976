"""``clinlabel keys init``: make the acting user's Ed25519 signing key pair."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from napari_clinlabel.core.log.identity import login_name


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``keys`` subcommand and its ``init`` action."""
    p = sub.add_parser("keys", help="manage per-user signing keys")
    acts = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    i = acts.add_parser("init", help="make a key pair and print the roster line to add")
    i.add_argument("--user", default=None, help="user id (default: CLINLABEL_USER or the login)")
    i.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="key folder (default: $CLINLABEL_KEYS, else $CLINLABEL_HOME/keys, else ~/.clinlabel/keys)",
    )
    i.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    """Create the key pair; print where the private key is and the public key for the roster."""
    from napari_clinlabel.core.log.signing import init_keys

    user = args.user or os.environ.get("CLINLABEL_USER") or login_name()
    path, pub = init_keys(user, args.folder)
    print(f"private key: {path} (mode 0600 in a 0700 folder; keep it private, back it up)")
    print(f"public key:  {pub}")
    print("add to clinlabel-roster.toml under this user's entry:")
    print("[[users]]")
    print(f'id = "{user}"')
    print(f'public_key = "{pub}"')
    print("(only if you are the dataset's owner: put the same id and key under [owner] too, "
          "then run 'clinlabel roster sign ROSTER')")  # fmt: skip
    return 0
