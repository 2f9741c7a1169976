"""Witnesses: heads of a log kept outside its folder, so a log cut back or re-hashed is caught.

Every signature and export appends the head it covers to two witness files: the acting user's
(``<clinlabel home>/witness/heads.jsonl``; the home is ``$CLINLABEL_HOME``, else the folder above
``$CLINLABEL_WORKSPACE``, else ``~/.clinlabel``) and the dataset's (``clinlabel-witness.jsonl``
beside the roster). An export also writes ``<output>.witness.jsonl`` beside its files, holding the
head that includes its own ``export`` record.

A witness line is one JSON object: ``v`` (1), ``log`` (the log's path: relative to the witness
file's folder when below it, else absolute), ``identity`` (seq 0's hash), ``seq`` and ``hash`` of
the head, ``image`` (voxel digest), ``owner`` (the owner key the log pins, or null), ``who``,
``role``, ``why`` (``sign`` or ``export``) and ``time``. A verifier checks the log against every
line whose identity is the log's or whose path names the log: the log must still hold each
witnessed record with the same hash, and the same first record.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ClinlabelWarning, InputError
from napari_clinlabel.core.log.audit_log import iter_records, utc_now
from napari_clinlabel.core.log.identity import roster_file_near

DATASET_WITNESS = "clinlabel-witness.jsonl"
MAX_LINE = 64 * 1024  # a witness line is ~600 bytes; longer lines are not witness lines


def clinlabel_home() -> Path:
    """The user's clinlabel folder: ``$CLINLABEL_HOME``, else the folder above
    ``$CLINLABEL_WORKSPACE``, else ``~/.clinlabel``."""
    env = os.environ.get("CLINLABEL_HOME")
    if env:
        return Path(env)
    ws = os.environ.get("CLINLABEL_WORKSPACE")
    return Path(ws).parent if ws else Path.home() / ".clinlabel"


def user_witness_path() -> Path:
    """The acting user's witness file."""
    return clinlabel_home() / "witness" / "heads.jsonl"


def dataset_witness_path(log_path: str | os.PathLike[str]) -> Path | None:
    """The dataset's witness file: beside the roster that governs ``log_path`` (None without)."""
    roster = roster_file_near(log_path)
    if roster is None and os.environ.get("CLINLABEL_ROSTER"):
        roster = Path(os.environ["CLINLABEL_ROSTER"])
    return None if roster is None else roster.parent / DATASET_WITNESS


def log_identity(log_path: str | os.PathLike[str]) -> tuple[str | None, Any]:
    """(seq 0's hash, the owner it pins) of a log; (None, None) when it is empty."""
    for rec in iter_records(log_path):
        data = rec.get("data")
        owner = data.get("owner") if isinstance(data, dict) else None
        return rec.get("hash"), owner if isinstance(owner, dict) else None
    return None, None


def witness_entry(log_path: Path, rec: dict[str, Any], why: str) -> dict[str, Any]:
    """The witness line (without ``log``) for record ``rec`` of ``log_path``."""
    identity, owner = log_identity(log_path)
    actor = rec.get("actor") or {}
    return {
        "v": 1,
        "identity": identity,
        "seq": rec["seq"],
        "hash": rec["hash"],
        "image": (rec.get("image") or {}).get("sha256"),
        "owner": None if owner is None else owner.get("public_key"),
        "who": actor.get("id"),
        "role": actor.get("role"),
        "why": why,
        "time": utc_now(),
    }


def witness_record(
    log_path: str | os.PathLike[str],
    rec: dict[str, Any],
    why: str,
    extra: Iterable[str | os.PathLike[str]] = (),
) -> list[Path]:
    """Append ``rec``'s head to the user's and the dataset's witness files (and ``extra``).

    The record is already in the log, so a witness that cannot be written is a warning
    (:class:`ClinlabelWarning`) naming the file, not an error; returns the files written.
    """
    log_path = Path(log_path).resolve()
    entry = witness_entry(log_path, rec, why)
    targets = [user_witness_path(), dataset_witness_path(log_path), *map(Path, extra)]
    written = []
    for target in targets:
        if target is None or target in written:
            continue
        try:
            append_witness(target, {"log": _log_ref(log_path, target), **entry})
        except OSError as exc:
            warnings.warn(
                ClinlabelWarning(
                    f"{target}: the witness of seq {rec['seq']} was not written ({exc.strerror}); "
                    "the record itself is in the log."
                ),
                stacklevel=2,
            )
            continue
        written.append(target)
    return written


def _log_ref(log_path: Path, witness: Path) -> str:
    folder = witness.resolve().parent if witness.parent.exists() else witness.parent
    try:
        return log_path.relative_to(folder).as_posix()
    except ValueError:
        return str(log_path)


def append_witness(path: Path, entry: dict[str, Any]) -> None:
    """Append one line to a witness file: locked, fsynced, never through a symlink."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name == "witness":  # the user's own folder: owner-only
            os.chmod(path.parent, 0o700)
    line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class WitnessedHead:
    """A head some witness saw: the file and line, and the entry."""

    file: Path
    line: int
    seq: int
    hash: str
    identity: str
    owner: str | None
    who: str
    why: str
    time: str

    def where(self) -> str:
        """``file:line (why by who at time)`` for messages."""
        return f"{self.file}:{self.line} ({self.why} by {self.who!r} at {self.time})"


def witness_files(
    log_path: str | os.PathLike[str], extra: Sequence[str | os.PathLike[str]] = ()
) -> list[Path]:
    """Witness files to check ``log_path`` against: the user's and the dataset's (those that
    exist) and every file in ``extra`` (which must exist)."""
    found = [p for p in (user_witness_path(), dataset_witness_path(log_path)) if p and p.is_file()]
    for e in extra:
        p = Path(e)
        if not p.is_file():
            raise InputError(
                f"{p}: no such witness file; give a file an export or signature wrote."
            )
        if p not in found:
            found.append(p)
    return found


def witnessed_heads(
    log_path: str | os.PathLike[str],
    identity: str | None,
    extra: Sequence[str | os.PathLike[str]] = (),
    problems: list[str] | None = None,
) -> list[WitnessedHead]:
    """Every witnessed head of this log (its identity is ``identity``, or its path is the log).

    Lines that are not witness lines are skipped and described in ``problems``. A file in
    ``extra`` that holds no head of this log is refused (:class:`InputError`).
    """
    log_path = Path(log_path).resolve()
    heads: list[WitnessedHead] = []
    for f in witness_files(log_path, extra):
        mine = _heads_in(f, log_path, identity, problems if problems is not None else [])
        if not mine and any(Path(e) == f for e in extra):
            raise InputError(
                f"{f}: holds no witnessed head of {log_path.name}; give the witness file of this "
                "log (an export's .witness.jsonl, or a clinlabel-witness.jsonl)."
            )
        heads.extend(mine)
    return heads


def _heads_in(
    f: Path, log_path: Path, identity: str | None, problems: list[str]
) -> list[WitnessedHead]:
    out: list[WitnessedHead] = []
    try:
        fd = os.open(f, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        problems.append(f"{f}: witness file not read ({exc.strerror})")
        return out
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            problems.append(f"{f}: witness file is not a regular file; not read")
            return out
        for n, raw in enumerate(fh, start=1):
            if len(raw) > MAX_LINE:
                problems.append(f"{f}:{n}: not a witness line (too long)")
                continue
            try:
                e = json.loads(raw)
                seq, h, ident = e["seq"], e["hash"], e["identity"]
                if type(seq) is not int or seq < 0 or type(h) is not str or type(ident) is not str:
                    raise ValueError
            except (ValueError, KeyError, TypeError, RecursionError):
                problems.append(f"{f}:{n}: not a witness line; skipped")
                continue
            ref = e.get("log")
            same = ident == identity
            if not same and isinstance(ref, str) and ref:
                target = Path(ref) if os.path.isabs(ref) else f.resolve().parent / ref
                same = _same_file(target, log_path)
            if same:
                owner = e.get("owner")
                out.append(WitnessedHead(f, n, seq, h, ident, owner if isinstance(owner, str)
                                         else None, str(e.get("who")), str(e.get("why")),
                                         str(e.get("time"))))  # fmt: skip
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def check_heads(
    heads: Sequence[WitnessedHead],
    hashes: Sequence[str],
    identity: str | None,
    owner: str | None,
) -> tuple[int, str] | None:
    """The first (seq, reason) where the log (``hashes`` by seq) departs from a witnessed head;
    None when it holds every one. ``owner`` is the owner key the log pins."""
    worst: tuple[int, str] | None = None
    for w in heads:
        if w.identity != identity:
            bad = (0, f"seq 0 is not the first record witness {w.where()} saw (identity "
                      f"{w.identity[:12]}…, the log has {str(identity)[:12]}…): the log was "
                      "rewritten from its start")  # fmt: skip
        elif w.owner is not None and w.owner != owner:
            bad = (0, f"the log pins owner key {str(owner)[:12]}…, witness {w.where()} saw "
                      f"{w.owner[:12]}…: owner and roster were swapped")  # fmt: skip
        elif len(hashes) <= w.seq:
            bad = (len(hashes), f"log truncated: witness {w.where()} saw seq {w.seq} "
                                f"({w.hash[:12]}…) but the log holds {len(hashes)} record(s)")  # fmt: skip
        elif hashes[w.seq] != w.hash:
            bad = (w.seq, f"record {w.seq} is not the one witness {w.where()} saw (hash "
                          f"{w.hash[:12]}…, the log has {hashes[w.seq][:12]}…): the log was "
                          f"rewritten at or before seq {w.seq}")  # fmt: skip
        else:
            continue
        if worst is None or bad[0] < worst[0]:
            worst = bad
    return worst


__all__ = [
    "DATASET_WITNESS",
    "WitnessedHead",
    "check_heads",
    "clinlabel_home",
    "dataset_witness_path",
    "log_identity",
    "user_witness_path",
    "witness_files",
    "witness_record",
    "witnessed_heads",
]
