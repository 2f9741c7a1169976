"""Verify a sidecar log (formats v1 and v2): chain, fields, objects, then the trust checks.

Pure Python: each line is parsed by orjson and its hash computed by hashlib over the line's own
bytes (v2; v1 records are re-serialised as format v1 defines). The per-record checks are
:func:`.checks.scan`; the trust checks (roles, signatures, and whatever else is checked against
the roster or heads kept outside the log) are :class:`.trust.Trust`, called from there.

A log may hold v1 records followed by v2 records (a log begun before format v2 and appended to
since); once a v2 record appears, a later v1 record fails. Time running backwards is a
*warning*, not a failure: the chain, not the clock, proves order. A torn last line (a crash
mid-append) is reported (``torn_tail_present``) and does not fail the log; the next open keeps
it aside and records it.

A log of :data:`SPLIT_MIN_BYTES` or more is checked as two halves side by side (a forked
process checks the second) when this process may fork (a single thread, a platform that forks);
the report is the one a single pass gives. A half starts from the line before its boundary; a
head naming a record before it is checked here once every earlier hash is known.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import LogError
from napari_clinlabel.core.log.audit_log import Head
from napari_clinlabel.core.log.checks import (
    FIELDS,
    MAX_WARNINGS,
    Chain,
    Context,
    Run,
    head_mismatch,
    scan_range,
)
from napari_clinlabel.core.log.identity import Roster
from napari_clinlabel.core.log.reader import open_regular, parse_line
from napari_clinlabel.core.log.trust import MEANINGS, Trust

__all__ = ["FIELDS", "MEANINGS", "VerifyReport", "verify_against_anchor", "verify_log"]

SPLIT_MIN_BYTES = 8 << 20  # below this a fork costs more than it saves
_WINDOW = 1 << 16


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

    def warn(self, text: str) -> None:
        """Add a warning (the first :data:`MAX_WARNINGS` are kept)."""
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("… more warnings not shown")

    def fail(self, seq: int, reason: str, hashes: Sequence[str] = ()) -> None:
        """Mark the log broken at ``seq`` (an earlier failure stays); ``hashes``: the valid
        records' hashes by seq, to move the head back before ``seq``."""
        if self.ok or self.first_bad_seq is None or seq < self.first_bad_seq:
            self.ok, self.first_bad_seq, self.reason = False, seq, reason
            self.records = min(self.records, seq)
            if len(hashes) >= self.records:
                self.head = (
                    Head(self.records - 1, hashes[self.records - 1]) if self.records else None
                )


def verify_log(
    path: str | Path,
    *,
    roster: Roster | None = None,
    public_keys: Mapping[str, Any] | None = None,
    check_objects: bool = True,
    objects: str | Path | None = None,
    workers: int | None = None,
    trust: Trust | None = None,
) -> VerifyReport:
    """Check a whole log; the report names the first bad seq and why.

    ``public_keys`` maps user ids to a base64 key or a list of them (added to the roster's).
    ``objects`` is the objects folder (default ``<log minus .jsonl>/objects``).
    ``workers``: 1 checks in one pass, 2 or more in that many parts side by side (processes);
    None (default) uses two for a log of :data:`SPLIT_MIN_BYTES` or more.
    ``trust``: the trust checks (default: roles and signatures against ``roster``/``public_keys``).
    """
    return _verify(Path(path), roster, public_keys, check_objects, objects, workers, trust)[0]


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
                          kwargs.pop("workers", None), kwargs.pop("trust", None))  # fmt: skip
    if kwargs:
        raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
    return check_anchors(rep, hashes, anchors)


def check_anchors(
    rep: VerifyReport, hashes: Sequence[str], anchors: Sequence[tuple[int, str]]
) -> VerifyReport:
    """Fail ``rep`` at the first ``(seq, hash)`` the log no longer holds (truncated, rewritten)."""
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


def default_objects(path: Path) -> Path:
    """The objects folder beside a log: ``<log minus .jsonl>/objects``."""
    stem = str(path).removesuffix(".jsonl")
    return Path(stem if stem != str(path) else stem + ".clinlabel") / "objects"


def _verify(
    path: Path,
    roster: Roster | None,
    public_keys: Mapping[str, Any] | None,
    check_objects: bool,
    objects: str | Path | None,
    workers: int | None,
    trust: Trust | None,
) -> tuple[VerifyReport, list[str]]:
    trust = trust if trust is not None else Trust(roster, public_keys)
    ctx = Context(Path(objects) if objects else default_objects(path), check_objects, trust)
    for folder in (ctx.objects, ctx.objects.parent) if check_objects else ():
        if folder.is_symlink():  # objects elsewhere are not this log's evidence
            raise LogError(
                f"{folder}: is a symbolic link; a log's objects folder must be a real folder "
                "(replace the link with the folder it points to)."
            )
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise LogError(f"{path}: no such log; check the path (<image>.clinlabel.jsonl).") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read the log ({exc.strerror}).") from None
    try:
        size = os.fstat(fd).st_size
        runs = None
        n = part_count(size, workers)
        if n > 1:
            with os.fdopen(os.dup(fd), "rb") as fh:
                runs = _verify_parts(fh, size, n, ctx)
        if runs is None:
            runs = [Run(start=0)]
            scan_range(fd, 0, size, Chain(), ctx, runs[0])
    except OSError as exc:
        raise LogError(f"{path}: cannot read the log ({exc.strerror}).") from None
    finally:
        os.close(fd)
    return merge(runs, ctx)


def part_count(size: int, workers: int | None) -> int:
    """How many parts to check a log of ``size`` bytes in (1: one pass in this process)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() != 1 or multiprocessing.current_process().daemon:
        return 1  # forking a threaded process (napari) is not safe; a daemon may not fork
    if workers is not None:
        return max(1, int(workers))
    if size < SPLIT_MIN_BYTES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cpus = os.cpu_count() or 1
    return 2 if cpus > 1 else 1


def merge(runs: list[Run], ctx: Context) -> tuple[VerifyReport, list[str]]:
    """One report from consecutive runs: the first bad seq (a head a run deferred, or its own
    failure), warnings and signatures before it, the hashes of the valid records."""
    rep = VerifyReport(ok=True, records=0)
    hashes: list[str] = []
    bad: int | None = None
    for run in runs:
        if run.start != len(hashes):
            raise RuntimeError("log parts do not link")  # a bug: the caller checks the links
        for seq, what, s, h in run.deferred:
            if run.bad_seq is not None and seq > run.bad_seq:
                break
            reason = head_mismatch(what, s, h, hashes[s])
            if reason:
                bad, rep.reason = seq, reason
                break
        if bad is None and run.bad_seq is not None:
            bad, rep.reason = run.bad_seq, run.reason
        keep = (bad if bad is not None else run.start + len(run.hashes)) - run.start
        hashes += run.hashes[:keep]
        for seq, key, text in run.warnings:
            if bad is not None and seq > bad:
                break
            if key is None or key not in ctx.warned_keys:
                if key is not None:
                    ctx.warned_keys.add(key)
                rep.warn(text)
        rep.signatures_checked += sum(1 for s in run.signed if bad is None or s < bad)
        if bad is not None:
            rep.ok, rep.first_bad_seq = False, bad
            break
        rep.torn_tail_present = run.torn
    rep.records = len(hashes)
    if rep.records:
        rep.head = Head(rep.records - 1, hashes[-1])
    ctx.trust.finish(rep, hashes, runs)
    return rep, hashes


# -- two (or more) parts side by side ---------------------------------------------------------
def _verify_parts(fh: Any, size: int, n: int, ctx: Context) -> list[Run] | None:
    """The runs of ``n`` parts, the first checked here and the rest in forked processes; None
    when they cannot be split or do not link (the caller then checks in one pass)."""
    bounds, starts = [0], []
    for b in _boundaries(fh, size, n)[1:-1]:
        start = _part_start(fh, b)
        if start is not None:  # else the part before runs on and fails on that line
            bounds.append(b)
            starts.append(start)
    bounds.append(size)
    if len(bounds) < 3:
        return None
    mp = multiprocessing.get_context("fork")
    children = []
    try:
        for k, (chain, first) in enumerate(starts, start=1):
            recv, send = mp.Pipe(duplex=False)
            proc = mp.Process(target=_child, args=(send, fh, bounds[k], bounds[k + 1], chain,
                                                   first, ctx), daemon=True)  # fmt: skip
            try:
                proc.start()
            except (AssertionError, OSError):  # out of processes
                send.close()
                recv.close()
                return None
            send.close()
            children.append((proc, recv, chain.prev))
        runs = [Run(start=0)]
        scan_range(fh.fileno(), 0, bounds[1], Chain(), ctx, runs[0])
        for _, recv, start_prev in children:
            before = runs[-1]
            if before.bad_seq is not None:
                break  # what follows a failure does not count
            try:
                run = recv.recv()
            except (EOFError, OSError):
                return None  # the worker died
            if not isinstance(run, Run):
                return None  # it raised: the single pass reports it properly
            linked_prev = before.hashes[-1] if len(before.hashes) else None
            if run.start != before.start + len(before.hashes) or start_prev != linked_prev:
                return None  # the parts do not link: never trust them
            runs.append(run)
        return runs
    finally:
        for proc, recv, _ in children:
            recv.close()
            if proc.is_alive():
                proc.terminate()
            proc.join()


def _child(conn: Any, fh: Any, start: int, end: int, chain: Chain, first: dict[str, Any],
           ctx: Context) -> None:  # fmt: skip
    """Check bytes ``[start, end)`` of the log (a forked process); send the :class:`Run`."""
    try:
        run = Run(start=chain.expected)
        ctx.trust = ctx.trust.fresh()
        ctx.trust.begin_chunk(first)
        scan_range(fh.fileno(), start, end, chain, ctx, run)  # pread: no shared position
        result: Any = run
    except Exception as exc:  # noqa: BLE001 - any surprise: the parent re-checks in one pass
        result = repr(exc)
    conn.send(result)
    conn.close()


def _part_start(fh: Any, start: int) -> tuple[Chain, dict[str, Any]] | None:
    """The chain state after the line that ends at ``start`` and seq 0's record; None when
    either line is not a record (the part before then fails on it, in one pass)."""
    try:
        fh.seek(0)
        first = parse_line(fh.readline(_WINDOW * 16).rstrip(b"\n"))
        rec = parse_line(_line_before(fh, start))
        seq, h, t, v = rec["seq"], rec["hash"], rec["time"], rec["v"]
        image0 = first["image"]
    except (ValueError, TypeError, KeyError):
        return None
    if (type(seq) is not int or type(h) is not str or type(t) is not str or type(v) is not int
            or type(first) is not dict or image0 is None):  # fmt: skip
        return None
    return Chain(expected=seq + 1, prev=h, last_time=t, image0=image0, version=v), first


def _line_before(fh: Any, start: int) -> bytes:
    """The line whose newline is the byte before ``start`` (without that newline)."""
    end = start - 1
    pos, buf = end, b""
    while pos > 0:
        step = min(pos, _WINDOW)
        fh.seek(pos - step)
        buf = fh.read(step) + buf
        pos -= step
        i = buf.rfind(b"\n")
        if i >= 0:
            return buf[i + 1 :]
    return buf


def _boundaries(fh: Any, size: int, n: int) -> list[int]:
    """``[0, b1, …, size]``: part starts just after a newline near ``size * k / n``."""
    bounds = [0]
    for k in range(1, n):
        pos = max(size * k // n - 1, bounds[-1])
        fh.seek(pos)
        while True:
            block = fh.read(_WINDOW)
            i = block.find(b"\n")
            if i >= 0 or not block:
                break
            pos += len(block)
        if i < 0 or pos + i + 1 >= size:
            break
        if pos + i + 1 > bounds[-1]:
            bounds.append(pos + i + 1)
    bounds.append(size)
    return bounds
