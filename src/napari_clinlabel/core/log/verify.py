"""Verify a sidecar log against format v1: chain, fields, objects, signatures and anchors.

A record is valid when it is a JSON object holding exactly the v1 fields, ``v`` is 1, ``seq``
follows the previous one (0 first), ``prev`` is the previous ``hash`` (64 zeros at seq 0) and
``hash`` is the sha256 of the canonical JSON of the record without ``hash``. Beyond the hash
chain this checks: a human actor with a v1 role, a ``human`` or fully named ``model`` source, the
same ``image`` as seq 0, every object named in ``data["objects"]`` present and matching its
digest, every ``sign`` record's signature (and, given a roster, that the key is the signer's),
and that every head a record carries (``data["head"]``) is a record of this chain.

Time running backwards is reported as a *warning*, not a failure: the chain, not the clock,
proves order, and a workstation clock stepped back by NTP is not tampering. A torn last line
(a crash mid-append) is reported (``torn_tail_present``) and does not fail the log; the next
open of the log keeps it aside and records it.

Speed: the writer puts ``"hash"`` last, so a line's canonical bytes are the line without its
last member (``line[:-75] + b"}"``). The compiled fast path (:mod:`.log_blocks`, ``_logscan.c``)
proves in C that those bytes are exactly the canonical JSON of the record, hashes them and checks
chain and fields, and hands every record it cannot prove valid to the Python checks, which then
give the reason. Without the compiled module (no C compiler at install) every record is
re-serialised in Python: the same reports, several times slower. ``strict=True`` takes that
Python path even when the module is there (the reference to compare against). A log over 8 MiB
is checked in chunks side by side, one per CPU (:mod:`.log_verify_parallel`: threads with the
compiled checker, forked processes without), with the same report. The per-record checks themselves are in :mod:`.log_checks`.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import LogError
from napari_clinlabel.core.log import parallel as _parallel
from napari_clinlabel.core.log.audit_log import Head
from napari_clinlabel.core.log.blocks import scan_range
from napari_clinlabel.core.log.checks import (
    FIELDS,
    MAX_WARNINGS,
    MEANINGS,
    Chain,
    Context,
    Run,
    head_mismatch,
)
from napari_clinlabel.core.log.identity import Roster

__all__ = ["FIELDS", "MEANINGS", "VerifyReport", "verify_against_anchor", "verify_log"]


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_log`; ``records`` counts the valid records before any failure."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str = ""
    head: Head | None = None
    signatures_checked: int = 0
    torn_tail_present: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: ``valid: N records, head …`` or ``broken at seq N: why``."""
        if not self.ok:
            return f"broken at seq {self.first_bad_seq}: {self.reason}"
        head = f"head seq {self.head.seq} {self.head.hash}" if self.head else "empty log"
        sig = f", {self.signatures_checked} signature(s) valid" if self.signatures_checked else ""
        torn = (
            ", torn last line present (kept aside at next open)" if self.torn_tail_present else ""
        )
        return f"valid: {self.records} records, {head}{sig}{torn}"


def verify_log(
    path: str | Path,
    *,
    roster: Roster | None = None,
    public_keys: Mapping[str, Any] | None = None,
    check_objects: bool = True,
    objects: str | Path | None = None,
    strict: bool = False,
    workers: int | None = None,
) -> VerifyReport:
    """Check a whole log; the report names the first bad seq and why.

    ``public_keys`` maps user ids to a base64 key or a list of them (added to the roster's).
    ``objects`` is the objects folder (default ``<log minus .jsonl>/objects``).
    ``workers``: 1 checks in one pass; n > 1 splits the log into n chunks checked side by side
    (same report); None (default) does that for a big log (see :mod:`.log_verify_parallel`).
    """
    return _verify(Path(path), roster, public_keys, check_objects, objects, strict, workers)[0]


def verify_against_anchor(
    path: str | Path, head: Mapping[str, Any] | Head, **kwargs: Any
) -> VerifyReport:
    """Verify the log and that it still holds ``head`` (``{"seq", "hash"}``) an export or a
    signature recorded: a log truncated below it, or regrown differently past it, fails."""
    return verify_against_anchors(path, [head], **kwargs)


def verify_against_anchors(
    path: str | Path, heads: Sequence[Mapping[str, Any] | Head], **kwargs: Any
) -> VerifyReport:
    """Verify the log once and check every anchor in ``heads``; the first failure is reported."""
    anchors = []
    for head in heads:
        seq, h = (head.seq, head.hash) if isinstance(head, Head) else (head["seq"], head["hash"])
        if not isinstance(seq, int) or seq < 0:
            raise LogError(
                f"Anchor seq {seq!r} is not a record number; give SEQ:HASH from an export."
            )
        anchors.append((seq, h))
    rep, hashes = _verify(Path(path), kwargs.pop("roster", None), kwargs.pop("public_keys", None),
                          kwargs.pop("check_objects", True), kwargs.pop("objects", None),
                          kwargs.pop("strict", False), kwargs.pop("workers", None))  # fmt: skip
    for seq, h in sorted(anchors):
        if not rep.ok and rep.first_bad_seq is not None and rep.first_bad_seq <= seq:
            return rep
        if len(hashes) <= seq:
            rep.ok, rep.first_bad_seq = False, len(hashes)
            rep.reason = (
                f"log truncated: an export or signature covers seq {seq} ({h[:12]}…) but the log "
                f"holds only {len(hashes)} record(s)"
            )
            return rep
        if hashes[seq] != h:
            rep.ok, rep.first_bad_seq = False, seq
            rep.reason = (
                f"record {seq} is not the one an export or signature covers (recorded hash "
                f"{h[:12]}…, log has {hashes[seq][:12]}…): the log was rewritten at or before "
                f"seq {seq}"
            )
            return rep
    return rep


def _verify(
    path: Path,
    roster: Roster | None,
    public_keys: Mapping[str, Any] | None,
    check_objects: bool,
    objects: str | Path | None,
    strict: bool,
    workers: int | None = None,
) -> tuple[VerifyReport, Sequence[str]]:
    if objects is None:
        stem = str(path).removesuffix(".jsonl")
        objects = Path(stem if stem != str(path) else stem + ".clinlabel") / "objects"
    ctx = Context(Path(objects), roster, public_keys, check_objects)
    try:
        size = path.stat().st_size
        threads = compiled() and not strict  # C checks chunks side by side without the GIL
        n = _parallel.chunk_count(size, workers, threads)
        if n > 1:
            split = _parallel.verify_threads if threads else _parallel.verify_chunks
            done = split(path, size, n, ctx, strict)
            if done is not None:
                return done
        run = Run(start=0)
        with open(path, "rb") as fh:
            scan_range(fh, 0, None, Chain(), ctx, strict, run)
    except FileNotFoundError:
        raise LogError(f"{path}: no such log; check the path (<image>.clinlabel.jsonl).") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read the log ({exc.strerror}).") from None
    return merge([run], ctx)


def compiled() -> bool:
    """Whether the compiled checker (``core/_logscan.c``) was built here."""
    from napari_clinlabel.core.log.blocks import _logscan

    return _logscan is not None


def merge(runs: list[Run], ctx: Context) -> tuple[VerifyReport, Sequence[str]]:
    """One report from consecutive runs: the first bad seq (a head a run deferred, or its own
    failure), warnings and signatures before it, the hashes of the valid records."""
    rep = VerifyReport(ok=True, records=0)
    hashes = _Hashes()
    bad: int | None = None
    for run in runs:
        if run.start != len(hashes):
            raise RuntimeError("log chunks do not link")  # a bug: the caller verifies in one run
        for seq, what, s, h in run.deferred:
            if run.bad_seq is not None and seq > run.bad_seq:
                break
            reason = head_mismatch(what, s, h, hashes[s])
            if reason:
                bad, rep.reason = seq, reason
                break
        if bad is None and run.bad_seq is not None:
            bad, rep.reason = run.bad_seq, run.reason
        hashes.add(run.hashes, (bad if bad is not None else run.start + _count(run)) - run.start)
        for seq, key, text in run.warnings:
            if bad is not None and seq > bad:
                break
            if key is None or key not in ctx.warned_keys:
                if key is not None:
                    ctx.warned_keys.add(key)
                _warn(rep, text)
        rep.signatures_checked += sum(1 for s in run.signed if bad is None or s < bad)
        if bad is not None:
            rep.ok, rep.first_bad_seq = False, bad
            break
        rep.torn_tail_present = run.torn
    rep.records = len(hashes)
    if rep.records:
        rep.head = Head(rep.records - 1, hashes[-1])
    unregistered = sum(r.unregistered for r in runs)
    if rep.ok and unregistered:
        _warn(rep, f"{unregistered} signature(s) checked against the key they carry only; "
                   "pass a roster to check whose keys they are")  # fmt: skip
    return rep, hashes.as_sequence()


def _count(run: Run) -> int:
    return len(run.hashes) // 64 if isinstance(run.hashes, bytes) else len(run.hashes)


class _Hashes(Sequence[str]):
    """Record hashes by seq, kept as the runs held them: lists of str or 64-byte ASCII runs."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, Any]] = []
        self.n = 0

    def add(self, part: Any, count: int) -> None:
        if count > 0:
            self.parts.append((self.n, part[: 64 * count] if isinstance(part, bytes) else part))
            self.n += count

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> str:
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        k = bisect.bisect_right(self.parts, i, key=lambda p: p[0]) - 1
        start, part = self.parts[k]
        j = i - start
        return part[64 * j : 64 * j + 64].decode("ascii") if isinstance(part, bytes) else part[j]

    def as_sequence(self) -> Sequence[str]:
        """A plain list when one run held every hash as str (the single-process case)."""
        if len(self.parts) == 1 and isinstance(self.parts[0][1], list):
            part = self.parts[0][1]
            return part if len(part) == self.n else part[: self.n]
        return self if self.parts else []


def _warn(rep: VerifyReport, text: str) -> None:
    if len(rep.warnings) < MAX_WARNINGS:
        rep.warnings.append(text)
    elif len(rep.warnings) == MAX_WARNINGS:
        rep.warnings.append("… more warnings not shown")
