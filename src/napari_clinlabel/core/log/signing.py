"""Per-user Ed25519 keys and ``sign`` records (review / approval / adjudication).

A ``sign`` record's ``target`` is ``{"seq", "hash"}`` of the record it signs; its ``data`` holds
the ``meaning``, the base64 ``signature`` over that hash (the 64 hex characters as ASCII bytes),
the signer's base64 raw ``public_key`` and the chain ``head`` it covers. Public keys go in the
roster (``public_key = "<base64>"`` under the user's ``[[users]]`` entry).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from napari_clinlabel.core.errors import ClinlabelError, LogError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog

MEANINGS = ("review", "approval", "adjudication")
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def keys_folder(folder: str | os.PathLike[str] | None = None) -> Path:
    """Where keys live: ``folder``, else ``$CLINLABEL_KEYS``, else ``~/.clinlabel/keys``."""
    if folder is not None:
        return Path(folder)
    env = os.environ.get("CLINLABEL_KEYS")
    return Path(env) if env else Path.home() / ".clinlabel" / "keys"


def _key_path(user_id: str, folder: str | os.PathLike[str] | None) -> Path:
    if not _USER_RE.fullmatch(user_id):
        raise ClinlabelError(
            f"User id {user_id!r} cannot name a key file; use letters, digits, '.', '_', '@', '-'."
        )
    return keys_folder(folder) / f"{user_id}.ed25519.pem"


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw 32-byte public key (the roster's ``public_key``)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def init_keys(user_id: str, folder: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Make ``user_id``'s key pair; return (private key file, base64 public key).

    The private key file is created with mode 0600; an existing key is never overwritten.
    """
    path = _key_path(user_id, folder)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ClinlabelError(
            f"{path}: a key for {user_id!r} exists already; it is kept (a new key would orphan "
            "the signatures made with it). Move it aside first if you really mean to replace it."
        ) from None
    except OSError as exc:
        raise ClinlabelError(f"{path}: cannot create the key file ({exc.strerror}).") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    pub = public_key_b64(key)
    (path.with_suffix(".pub")).write_text(pub + "\n", encoding="ascii")
    return path, pub


def load_private_key(
    user_id: str, folder: str | os.PathLike[str] | None = None
) -> Ed25519PrivateKey:
    """``user_id``'s private key (made by :func:`init_keys`)."""
    path = _key_path(user_id, folder)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ClinlabelError(
            f"{path}: no signing key for {user_id!r}; run 'clinlabel keys init --user {user_id}'."
        ) from None
    except (ValueError, TypeError) as exc:
        raise ClinlabelError(f"{path}: not a usable private key ({exc}).") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ClinlabelError(f"{path}: not an Ed25519 key; make one with 'clinlabel keys init'.")
    return key


def sign_head(
    log: AuditLog,
    meaning: str,
    target_seq: int | None = None,
    key: Ed25519PrivateKey | None = None,
) -> dict[str, Any]:
    """Append a ``sign`` record by the log's actor over record ``target_seq`` (default: head).

    ``adjudication`` needs the adjudicator role, ``review`` and ``approval`` a reviewer or an
    adjudicator (nobody signs off their own annotating as its reviewer). Raises :class:`LogError` for an empty log or a
    seq that is not in it.
    """
    if meaning not in MEANINGS:
        raise ClinlabelError(f"Signature meaning {meaning!r} is not one of {', '.join(MEANINGS)}.")
    if meaning == "adjudication" and log.actor.role != "adjudicator":
        raise PermissionRefused(
            f"{log.actor.id!r} acts as {log.actor.role}; only an adjudicator signs an "
            "adjudication (set CLINLABEL_ROLE=adjudicator if the roster grants it)."
        )
    if meaning in ("review", "approval") and log.actor.role not in ("reviewer", "adjudicator"):
        raise PermissionRefused(
            f"{log.actor.id!r} acts as {log.actor.role}; a {meaning} is signed by a reviewer or "
            "an adjudicator (set CLINLABEL_ROLE=reviewer if the roster grants it)."
        )
    if key is None:
        key = load_private_key(log.actor.id)
    head = log.head()
    if head.seq < 0:
        raise LogError(f"{log.path}: the log is empty; there is nothing to sign.")
    if target_seq is None or target_seq == head.seq:
        target = head.to_dict()
    else:
        rec = next((r for r in log.records() if r["seq"] == target_seq), None)
        if rec is None:
            raise LogError(f"{log.path}: no record seq {target_seq} to sign (head {head.seq}).")
        target = {"seq": rec["seq"], "hash": rec["hash"]}
    signature = key.sign(target["hash"].encode("ascii"))
    data = {
        "meaning": meaning,
        "signature": base64.b64encode(signature).decode("ascii"),
        "public_key": public_key_b64(key),
        "head": head.to_dict(),
    }
    return log.append("sign", target, data)


def verify_signature(record: dict[str, Any], public_key_b64: str) -> bool:
    """True when ``record``'s signature is valid for its target hash under ``public_key_b64``."""
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        sig = base64.b64decode(record["data"]["signature"], validate=True)
        message = record["target"]["hash"].encode("ascii")
        pub.verify(sig, message)
    except (InvalidSignature, ValueError, TypeError, KeyError, binascii.Error, AttributeError):
        return False
    return True
