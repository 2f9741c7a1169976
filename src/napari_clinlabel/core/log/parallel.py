"""Verify a big log in chunks checked side by side: by threads when the compiled checker is
there (it runs without the GIL), else by forked processes (this process checking the first).

The log is split at line boundaries. Each chunk starts from the record before its boundary (its
seq, hash and time, parsed from that line; seq 0's image from the first line) and reads its own
byte range. A head that names a record before the chunk (``data.head``, a sign's target or head)
is left to the parent, which checks it once it holds every earlier hash (``log_verify.merge``).
The parent then joins the chunks: each must start where the previous one ended (seq and hash),
the first bad seq is the earliest of a chunk's own failure and a failed deferred head, and only
the warnings and signatures before it count. The report is the one a single pass gives; when
anything here cannot decide (a chunk that cannot start, a worker that died or raised), the
caller falls back to the single pass.

Auto mode (``workers=None``) splits only logs of at least :data:`PARALLEL_MIN_BYTES`; forks
only in a single-threaded process (forking a threaded one, e.g. napari's, is not safe), on
platforms that fork. Threads share nothing mutable: each chunk has its own context copy (objects
seen, roster warnings given), as a forked worker would.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PARALLEL_MIN_BYTES = 8 * 2**20  # below this a fork costs more than it saves
_MIN_CHUNK = 4 * 2**20
_WINDOW = 1 << 16


def chunk_count(size: int, workers: int | None, threads: bool = False) -> int:
    """How many chunks to verify a log of ``size`` bytes in (1: a single pass); ``threads``:
    the chunks would be checked by threads (no fork needed)."""
    if not threads and "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if workers is not None:
        return max(1, int(workers))
    if size < PARALLEL_MIN_BYTES:
        return 1
    if not threads and (threading.active_count() != 1 or multiprocessing.current_process().daemon):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, size // _MIN_CHUNK))


def verify_chunks(path: Path, size: int, n: int, ctx: Any, strict: bool) -> tuple[Any, Any] | None:
    """``(report, hashes)`` from ``n`` chunks checked side by side; None to fall back."""
    from napari_clinlabel.core.log.blocks import scan_range
    from napari_clinlabel.core.log.checks import Chain, Run
    from napari_clinlabel.core.log.verify import merge

    with open(path, "rb") as fh:
        bounds = _boundaries(fh, size, n)
    if len(bounds) < 3:
        return None
    mp = multiprocessing.get_context("fork")
    children: list[tuple[Any, Connection]] = []
    try:
        for k in range(1, len(bounds) - 1):
            recv, send = mp.Pipe(duplex=False)
            proc = mp.Process(
                target=_child, args=(send, path, bounds[k], bounds[k + 1], ctx, strict), daemon=True
            )
            try:
                proc.start()
            except (AssertionError, OSError):  # a daemon process may not fork; out of processes
                send.close()
                recv.close()
                return None
            send.close()
            children.append((proc, recv))
        runs = [Run(start=0)]
        with open(path, "rb") as fh:
            scan_range(fh, 0, bounds[1], Chain(), ctx, strict, runs[0])
        last = runs[0].hashes[-1] if runs[0].hashes else None
        for _, recv in children:
            if runs[-1].bad_seq is not None:
                break  # what follows a failure does not count
            try:
                got = recv.recv()
            except (EOFError, OSError):
                return None  # the worker died
            if not isinstance(got, tuple):
                return None  # it raised, or could not start: the single pass decides
            run, start_prev = got
            if run.start != runs[-1].start + _count(runs[-1]) or start_prev != last:
                return None  # the chunks do not link: never trust them
            runs.append(run)
            if _count(run):
                last = run.hashes[-64:].decode("ascii")
        return merge(runs, ctx)
    finally:
        for proc, recv in children:
            recv.close()
            if proc.is_alive():
                proc.terminate()
            proc.join()


def verify_threads(path: Path, size: int, n: int, ctx: Any, strict: bool) -> tuple[Any, Any] | None:
    """``(report, hashes)`` from ``n`` chunks checked by threads side by side (the compiled
    checker releases the GIL); None to fall back to one pass."""
    from concurrent.futures import ThreadPoolExecutor

    from napari_clinlabel.core.log.blocks import scan_range
    from napari_clinlabel.core.log.checks import Chain, Run
    from napari_clinlabel.core.log.verify import merge

    with open(path, "rb") as fh:
        bounds = _boundaries(fh, size, n)
        if len(bounds) < 3:
            return None
        chains = [Chain()] + [_chunk_start(fh, b) for b in bounds[1:-1]]
    start_prevs = [c.prev if c else None for c in chains]
    runs = [Run(start=c.expected if c else -1) for c in chains]
    contexts = [ctx] + [ctx.fresh() for _ in chains[1:]]

    def check(k: int) -> None:
        if chains[k] is None:
            return  # cannot start here: the chunk before fails on that line, or we fall back
        with open(path, "rb") as fh:
            scan_range(fh, bounds[k], bounds[k + 1], chains[k], contexts[k], strict, runs[k])

    with ThreadPoolExecutor(len(chains)) as pool:
        futures = [pool.submit(check, k) for k in range(len(chains))]
        if any(f.exception() is not None for f in futures):
            return None  # the single pass reports it (or raises it) properly
    linked = runs[:1]
    for k in range(1, len(runs)):
        before = linked[-1]
        if before.bad_seq is not None:
            break  # what follows a failure does not count
        if chains[k] is None:
            return None
        run = runs[k]
        if run.start != before.start + len(before.hashes) or (
            len(before.hashes) and start_prevs[k] != before.hashes[-1]
        ):
            return None  # the chunks do not link: never trust them
        linked.append(run)
    return merge(linked, ctx)


def _count(run: Any) -> int:
    return len(run.hashes) // 64 if isinstance(run.hashes, bytes) else len(run.hashes)


def _child(conn: Connection, path: Path, start: int, end: int, ctx: Any, strict: bool) -> None:
    """Check bytes ``[start, end)`` of the log; send ``(run, prev hash it started from)``."""
    from napari_clinlabel.core.log.blocks import scan_range
    from napari_clinlabel.core.log.checks import Run

    try:
        with open(path, "rb") as fh:
            chain = _chunk_start(fh, start)
            if chain is None:
                result: Any = "cannot start"
            else:
                run, start_prev = Run(start=chain.expected), chain.prev
                scan_range(fh, start, end, chain, ctx, strict, run)  # moves chain on
                run.hashes = bytes(run.hashes.raw)  # one bytes object to send
                result = (run, start_prev)
    except Exception as exc:  # noqa: BLE001 - any surprise: the parent re-checks in one pass
        result = repr(exc)
    conn.send(result)
    conn.close()


def _chunk_start(fh: Any, start: int) -> Any:
    """The chain state after the line that ends at ``start``; None when that line is not a
    record (the previous chunk then fails on it)."""
    from napari_clinlabel.core.log.checks import Chain, _Broken, _json_loads

    try:  # json's reading, as the single pass's (orjson reads ints beyond 64 bits as floats)
        fh.seek(0)
        first = _json_loads(fh.readline().rstrip(b"\n"))
        rec = _json_loads(_line_before(fh, start))
        seq, h, t = rec["seq"], rec["hash"], rec["time"]
        image0 = first["image"]
    except (_Broken, TypeError, KeyError, RecursionError):
        return None
    if type(seq) is not int or type(h) is not str or type(t) is not str or image0 is None:
        return None
    return Chain(expected=seq + 1, prev=h, last_time=t, image0=image0)


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
    """``[0, b1, …, size]``: chunk starts just after a newline near ``size * k / n``."""
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
