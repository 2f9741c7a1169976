"""Per-user Ed25519 keys and ``sign`` records (review / approval / adjudication).

A ``sign`` record's ``target`` is ``{"seq", "hash"}`` of the record it signs; its ``data`` holds
the ``meaning``, the signer's base64 raw ``public_key``, the chain ``head`` it covers, the
``signed_at`` time, ``form`` (``clinlabel-sign/2``) and the base64 ``signature`` over the
statement :func:`statement` builds: UTF-8 lines ``key=value`` binding the log's identity (seq 0's
hash), the signed record's seq and hash, the meaning, the signer's id and role (the record's
``actor``) and ``signed_at``. Relabelling any of them, or moving the record to another log,
breaks the signature.

Old signatures (``sign`` records of format v1 without ``form``) signed only the 64 hex
characters of the target hash; they still verify by that rule, with a warning that their meaning,
signer and role are not bound. A v2 record must carry a binding signature.

Public keys go in the roster (``public_key = "<base64>"`` under the user's ``[[users]]`` entry).
Private keys are refused when group or others may read them; key folders are made 0700.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from napari_clinlabel.core.errors import ClinlabelError, LogError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, utc_now
from napari_clinlabel.core.log.identity import Actor, Roster, find_roster
from napari_clinlabel.core.log.witness import witness_record

MEANINGS = ("review", "approval", "adjudication")
FORM = "clinlabel-sign/2"
# who may sign what: a review or approval needs a reviewer or adjudicator, an adjudication an
# adjudicator (nobody signs off their own annotating as its reviewer)
SIGNER_ROLES = {
    "review": ("reviewer", "adjudicator"),
    "approval": ("reviewer", "adjudicator"),
    "adjudication": ("adjudicator",),
}
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
_STATEMENT_FIELDS = ("log", "seq", "hash", "meaning", "signer", "role", "time")


def keys_folder(folder: str | os.PathLike[str] | None = None) -> Path:
    """Where keys live: ``folder``, else ``$CLINLABEL_KEYS``, else ``$CLINLABEL_HOME/keys``,
    else ``~/.clinlabel/keys`` (the clinlabel home the witness files use too)."""
    if folder is not None:
        return Path(folder)
    env = os.environ.get("CLINLABEL_KEYS")
    if env:
        return Path(env)
    home = os.environ.get("CLINLABEL_HOME")
    return Path(home) / "keys" if home else Path.home() / ".clinlabel" / "keys"


def _key_path(user_id: str, folder: str | os.PathLike[str] | None) -> Path:
    if not _USER_RE.fullmatch(user_id):
        raise ClinlabelError(
            f"User id {user_id!r} cannot name a key file; use letters, digits, '.', '_', '@', '-'."
        )
    return keys_folder(folder) / f"{user_id}.ed25519.pem"


def private_folder(folder: Path) -> None:
    """Make ``folder`` (and missing parents) owner-only (0700), whatever the umask."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            pass
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask only downwards; be exact
    if folder.stat().st_uid == os.getuid() and stat.S_IMODE(folder.stat().st_mode) & 0o077:
        os.chmod(folder, 0o700)


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw 32-byte public key (the roster's ``public_key``)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def init_keys(user_id: str, folder: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Make ``user_id``'s key pair; return (private key file, base64 public key).

    The private key file is created with mode 0600 in a 0700 folder; an existing key is never
    overwritten.
    """
    path = _key_path(user_id, folder)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        private_folder(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ClinlabelError(
            f"{path}: a key for {user_id!r} exists already; it is kept (a new key would orphan "
            "the signatures made with it). Move it aside first if you really mean to replace it."
        ) from None
    except OSError as exc:
        raise ClinlabelError(f"{path}: cannot create the key file ({exc.strerror}).") from None
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), 0o600)  # exact, whatever the umask
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    pub = public_key_b64(key)
    (path.with_suffix(".pub")).write_text(pub + "\n", encoding="ascii")
    return path, pub


def load_private_key(
    user_id: str, folder: str | os.PathLike[str] | None = None
) -> Ed25519PrivateKey:
    """``user_id``'s private key (made by :func:`init_keys`); refused when others may read it."""
    path = _key_path(user_id, folder)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ClinlabelError(
            f"{path}: no signing key for {user_id!r}; run 'clinlabel keys init --user {user_id}'."
        ) from None
    except OSError as exc:
        raise ClinlabelError(f"{path}: cannot open the key ({exc.strerror}).") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ClinlabelError(f"{path}: not a regular file; a private key is a plain file.")
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise ClinlabelError(
                f"{path}: private key is readable by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); refused. Run 'chmod 600 {path}'."
            )
        pem = fh.read(64 * 1024)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ClinlabelError(f"{path}: not a usable private key ({exc}).") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ClinlabelError(f"{path}: not an Ed25519 key; make one with 'clinlabel keys init'.")
    return key


def statement(
    identity: str, seq: int, target_hash: str, meaning: str, signer: str, role: str, time: str
) -> bytes:
    """The bytes a v2 signature signs: ``clinlabel-sign/2`` then one ``key=value`` line each for
    log (seq 0's hash), seq, hash, meaning, signer, role and time, LF-terminated, UTF-8.

    A value holding a line break or a control character has no statement (ValueError).
    """
    values = (identity, str(seq), target_hash, meaning, signer, role, time)
    for v in values:
        if not isinstance(v, str) or any(ord(c) < 0x20 or c == "\x7f" for c in v):
            raise ValueError("a statement value holds a control character")
    lines = [FORM] + [f"{k}={v}" for k, v in zip(_STATEMENT_FIELDS, values, strict=True)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def record_statement(record: dict[str, Any], identity: str) -> bytes:
    """:func:`statement` of a ``sign`` record of the log whose seq 0 hash is ``identity``."""
    d, t, a = record["data"], record["target"], record["actor"]
    if type(t.get("seq")) is not int:
        raise ValueError("sign target seq is not an integer")
    return statement(identity, t["seq"], t["hash"], d["meaning"], a["id"], a["role"],
                     d["signed_at"])  # fmt: skip


def authority_for(log: AuditLog) -> Roster | None:
    """The roster in force for ``log`` (``CLINLABEL_ROSTER`` or beside it), checked against the
    owner the log pins in its first record: a different owner is refused."""
    roster = find_roster(log.path)
    pinned = pinned_owner(log.path)
    if pinned is not None and (roster is None or roster.owner != pinned):
        where = "no roster" if roster is None else f"roster {roster.path} names another owner"
        raise PermissionRefused(
            f"{log.path}: the log pins owner {pinned.get('id')!r} (key "
            f"{str(pinned.get('public_key'))[:12]}…) but {where}; nothing was recorded. Use the "
            "dataset's roster signed by that owner."
        )
    return roster


def pinned_owner(log_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``data["owner"]`` of a log's first record (``{"id", "public_key"}``), or None."""
    if not Path(log_path).exists():
        return None
    for rec in iter_records(log_path):
        owner = (rec.get("data") or {}).get("owner") if isinstance(rec.get("data"), dict) else None
        return owner if isinstance(owner, dict) else None
    return None


def require_role(log: AuditLog, allowed: tuple[str, ...], what: str) -> Roster | None:
    """Refuse (``PermissionRefused``) unless ``log.actor`` acts in one of ``allowed`` and the
    owner-signed roster in force for the log grants that role; returns that roster."""
    actor: Actor = log.actor
    if actor.role not in allowed:
        raise PermissionRefused(
            f"{actor.id!r} acts as {actor.role}; {what} needs the role {' or '.join(allowed)} "
            f"(set CLINLABEL_ROLE={allowed[0]} if the roster grants it)."
        )
    roster = authority_for(log)
    if roster is None or not roster.signed:
        why = "no roster is in force" if roster is None else roster.authority()
        raise PermissionRefused(
            f"{actor.id!r} may not act as {actor.role} for {log.path.name}: {why}, and without "
            "a roster its owner signed nobody acts above annotator."
        )
    if actor.role not in roster.roles_of(actor.id):
        raise PermissionRefused(
            f"{roster.path}: does not grant {actor.id!r} the role {actor.role}; nothing was "
            "recorded."
        )
    return roster


def sign_head(
    log: AuditLog,
    meaning: str,
    target_seq: int | None = None,
    key: Ed25519PrivateKey | None = None,
) -> dict[str, Any]:
    """Append a ``sign`` record by the log's actor over record ``target_seq`` (default: head).

    ``adjudication`` needs the adjudicator role, ``review`` and ``approval`` a reviewer or an
    adjudicator, granted by the owner-signed roster in force; the key must be the one the roster
    lists for the signer. Raises :class:`LogError` for an empty log or a seq not in it.
    """
    if meaning not in MEANINGS:
        raise ClinlabelError(f"Signature meaning {meaning!r} is not one of {', '.join(MEANINGS)}.")
    roster = require_role(log, SIGNER_ROLES[meaning], f"a {meaning} signature")
    if key is None:
        key = load_private_key(log.actor.id)
    pub = public_key_b64(key)
    if roster is not None and pub not in roster.public_keys(log.actor.id):
        raise PermissionRefused(
            f"{roster.path}: lists no key {pub[:12]}… for {log.actor.id!r}; the owner adds this "
            "public key to the user's entry and signs the roster again. Nothing was recorded."
        )
    head = log.head()
    if head.seq < 0:
        raise LogError(f"{log.path}: the log is empty; there is nothing to sign.")
    first = None
    target = None
    for rec in log.records():
        first = first or rec
        if rec["seq"] == (head.seq if target_seq is None else target_seq):
            target = {"seq": rec["seq"], "hash": rec["hash"]}
    if target is None:
        raise LogError(f"{log.path}: no record seq {target_seq} to sign (head {head.seq}).")
    assert first is not None
    signed_at = utc_now()
    try:
        message = statement(first["hash"], target["seq"], target["hash"], meaning, log.actor.id,
                            log.actor.role, signed_at)  # fmt: skip
    except ValueError:
        raise ClinlabelError(
            f"User id {log.actor.id!r} holds a control character; it cannot be signed for."
        ) from None
    data = {
        "meaning": meaning,
        "form": FORM,
        "signed_at": signed_at,
        "signature": base64.b64encode(key.sign(message)).decode("ascii"),
        "public_key": pub,
        "head": head.to_dict(),
    }
    rec = log.append("sign", target, data)
    witness_record(log.path, rec, "sign")
    return rec


def verify_signature(
    record: dict[str, Any], public_key_b64: str, identity: str | None = None
) -> bool:
    """True when ``record``'s signature is valid under ``public_key_b64``.

    A binding (``form`` ``clinlabel-sign/2``) signature is checked over :func:`record_statement`
    with ``identity`` (the log's seq 0 hash); an old one over the target hash alone.
    """
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        sig = base64.b64decode(record["data"]["signature"], validate=True)
        if is_binding(record):
            if identity is None:
                return False
            message = record_statement(record, identity)
        else:
            message = record["target"]["hash"].encode("ascii")
        pub.verify(sig, message)
    except (InvalidSignature, ValueError, TypeError, KeyError, binascii.Error, AttributeError):
        return False
    return True


def is_binding(record: dict[str, Any]) -> bool:
    """Whether a ``sign`` record carries a v2 binding signature (``form``)."""
    data = record.get("data")
    return isinstance(data, dict) and data.get("form") == FORM
