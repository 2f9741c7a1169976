"""A dataset roster signed by its owner, for tests that act as reviewer or adjudicator.

``write_roster(folder, {"rev": ["reviewer"], "adj": ["adjudicator"]})`` makes each user's key in
``$CLINLABEL_KEYS`` (conftest isolates it), writes ``folder/clinlabel-roster.toml`` with an
``[owner]`` table and signs it with the owner's key (Ed25519 from ``cryptography`` directly, over
the documented statement: ``clinlabel-roster/1`` LF + the file's bytes).
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from napari_clinlabel.core.log.signing import init_keys, keys_folder


def _key(user: str) -> str:
    pem = keys_folder() / f"{user}.ed25519.pem"
    if pem.exists():
        return (keys_folder() / f"{user}.ed25519.pub").read_text().strip()
    return init_keys(user)[1]


def sign_file(path: Path, owner: str) -> Path:
    """Write ``path.sig``: ``owner``'s signature over the roster statement of ``path``."""
    pem = (keys_folder() / f"{owner}.ed25519.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    sig = key.sign(b"clinlabel-roster/1\n" + path.read_bytes())
    out = path.with_name(path.name + ".sig")
    out.write_text(base64.b64encode(sig).decode("ascii") + "\n")
    return out


def roster_text(
    users: dict[str, list[str]], owner: str = "owner", extra: str = "",
    names: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """Roster TOML: ``[owner]`` then one ``[[users]]`` per user, keys made as needed."""
    text = f'[owner]\nid = "{owner}"\npublic_key = "{_key(owner)}"\n\n'
    for uid, roles in users.items():
        roles_toml = ", ".join(f'"{r}"' for r in roles)
        name = f'name = "{names[uid]}"\n' if names and uid in names else ""
        text += (f'[[users]]\nid = "{uid}"\n{name}roles = [{roles_toml}]\n'
                 f'public_key = "{_key(uid)}"\n\n')  # fmt: skip
    return text + extra


def write_roster(
    folder: Path, users: dict[str, list[str]], owner: str = "owner", sign: bool = True,
    extra: str = "", names: dict[str, str] | None = None,
) -> Path:  # fmt: skip
    """``folder/clinlabel-roster.toml`` for ``users``, signed by ``owner`` unless ``sign`` is False."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "clinlabel-roster.toml"
    path.write_text(roster_text(users, owner, extra, names), encoding="utf-8")
    if sign:
        sign_file(path, owner)
    return path
