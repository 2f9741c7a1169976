"""Read a log (or a byte range of it) block by block and check its lines.

With the compiled fast path (``_logscan``, built from ``_logscan.c`` when a C compiler was
there at install), whole runs of records are checked in C, which accepts a record only when it
proves that :func:`.log_checks.scan` would (canonical JSON, the spec's hash, chain, fields, the
same actor, source and image as a record checked in Python); every other record - a first one, a
new actor, a signature, any fault - is checked in Python, so reasons and seqs are those of the
Python checks. Object files named by C-checked records are checked here, in seq order.

Without it, each block goes through :func:`.log_checks.scan`, every record re-serialised to
check its hash; the time and object-digest patterns are checked once per block with C-speed
string operations (:class:`Batch`), and when any fails the block is checked again record by
record from the same state, so the first bad seq and its reason are the same.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO

from napari_clinlabel.core.log.checks import _TIME_RE, Chain, Context, Run, _Broken, scan

try:
    from napari_clinlabel.core.log import _logscan
except ImportError:  # not compiled here (no C compiler at install): Python checks every record
    _logscan = None

_BLOCK = 4 << 20  # read and split a log this much at a time
_TIMES_RE = re.compile(rf"(?:{_TIME_RE.pattern}\n)*{_TIME_RE.pattern}", re.ASCII)
# where a time of each valid length has its marks (every other character is a digit)
_TIME_MARKS = {
    n: [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":")]
    + ([(19, "Z")] if n == 20 else [(19, "."), (n - 1, "Z")])
    for n in [20, *range(22, 31)]
}


def scan_range(
    fh: BinaryIO, start: int, end: int | None, chain: Chain, ctx: Context, strict: bool, run: Run
) -> None:
    """Check the lines of bytes ``[start, end)`` of an open log (``end`` None: to the end of the
    file) from ``chain`` on, into ``run``; a last line with no newline is a torn tail.
    ``strict`` checks every record in Python (the reference path)."""
    if _logscan is not None and not strict:
        _scan_range_compiled(fh, start, end, chain, ctx, run)
        return
    fh.seek(start)
    left = -1 if end is None else end - start
    rest: list[bytes] = []  # the start of a line that goes on in the next block
    while left:
        data = fh.read(_BLOCK if left < 0 else min(_BLOCK, left))
        if not data:
            break
        left -= len(data) if left > 0 else 0
        lines = data.split(b"\n")
        del data
        if len(lines) == 1:  # no newline in this block (a very long line)
            rest.append(lines[0])
            continue
        if rest:
            lines[0] = b"".join(rest) + lines[0]
        rest = [lines.pop()]
        # the time and digest patterns checked for the whole block at once; on any doubt the
        # block is checked again record by record, from the same state
        batch = Batch(not ctx.check)
        undo = _undo_point(chain, run, ctx)
        ok = scan(lines, chain, ctx, run, batch)
        if not batch.valid():
            undo()
            ok = scan(lines, chain, ctx, run)
        if not ok:
            return
    run.torn = any(rest)


class Batch:
    """Time strings and object digests whose pattern is checked once per block."""

    def __init__(self, digests: bool) -> None:
        self.times: list[str] = []
        self.digests: list[Any] | None = [] if digests else None

    def valid(self) -> bool:
        """Every time and digest matches its pattern (False: check them one by one)."""
        return _all_times_valid(self.times) and _all_hex64(self.digests or ())


def _all_times_valid(times: list[str]) -> bool:
    """``_TIME_RE.fullmatch`` holds for each of ``times`` (all str)."""
    n = len(times)
    if not n:
        return True
    joined, size = "\n".join(times), len(times[0])
    if len(joined) == n * (size + 1) - 1 and joined.count("\n") == n - 1:  # all of one length
        marks = _TIME_MARKS.get(size)
        try:
            if marks is not None and all(joined[i :: size + 1] == c * n for i, c in marks):
                # what is left without the digits is exactly the marks: the rest are digits
                left = joined.encode("ascii").translate(None, b"0123456789")
                return (
                    left
                    == ("".join(c for _, c in marks) + "\n").encode() * (n - 1)
                    + "".join(c for _, c in marks).encode()
                )
        except UnicodeEncodeError:
            pass  # non-ASCII digits: the pattern decides
    return joined.count("\n") == n - 1 and _TIMES_RE.fullmatch(joined) is not None


def _all_hex64(digests: Any) -> bool:
    """Each of ``digests`` is a str of 64 lowercase hex digits."""
    n = len(digests)
    if not n:
        return True
    try:
        joined = "\n".join(digests)
        return (
            len(joined) == 65 * n - 1
            and joined[64::65] == "\n" * (n - 1)
            and joined.encode("ascii").translate(None, b"0123456789abcdef") == b"\n" * (n - 1)
        )
    except (TypeError, UnicodeEncodeError):
        return False


def _undo_point(chain: Chain, run: Run, ctx: Context) -> Any:
    """A function that puts ``chain``, ``run`` and ``ctx``'s warnings back as they are now."""
    saved = (chain.expected, chain.prev, chain.last_time, chain.image0)
    sizes = (len(run.hashes), len(run.warnings), len(run.deferred), len(run.signed))
    counts = (run.unregistered, run.time_warnings, run.bad_seq, run.reason, set(ctx.warned))

    def undo() -> None:
        chain.expected, chain.prev, chain.last_time, chain.image0 = saved
        for items, n in zip(
            (run.hashes, run.warnings, run.deferred, run.signed), sizes, strict=True
        ):
            del items[n:]
        run.unregistered, run.time_warnings, run.bad_seq, run.reason, ctx.warned = counts

    return undo


def _scan_range_compiled(
    fh: BinaryIO, start: int, end: int | None, chain: Chain, ctx: Context, run: Run
) -> None:
    """:func:`scan_range` with runs of records checked by ``_logscan.scan``."""
    fh.seek(start)
    left = -1 if end is None else end - start
    buf = bytearray(_FAST_BLOCK)
    have = 0  # bytes of buf holding the log, from a line start
    caches: Any = (None, None, None)  # bytes of an accepted actor, source and image
    eof = False
    while not eof:
        want = len(buf) - have if left < 0 else min(len(buf) - have, left)
        with memoryview(buf) as mv:
            got = fh.readinto(mv[have : have + want]) if want else 0
        if not got:
            eof = True
        else:
            have += got
            left -= got if left > 0 else 0
        pos = 0
        while True:
            first = chain.expected
            pos, chain.expected, chain.prev, chain.last_time, hashes, named, bailed = _logscan.scan(
                buf, pos, have, chain.expected, chain.prev, chain.last_time, *caches, ctx.check
            )  # fmt: skip
            run.hashes.extend_raw(hashes)
            if named and not _check_named_objects(named, first, ctx, run):
                return
            if not bailed:
                break
            nl = buf.find(b"\n", pos, have)
            line = bytes(buf[pos:nl])
            if not scan([line], chain, ctx, run):
                return
            caches = _logscan.spans(line) or (None, None, None)
            pos = nl + 1
        rest = have - pos
        if pos == 0 and have == len(buf) and not eof:
            buf.extend(bytes(len(buf)))  # a line longer than the buffer: make room
        elif pos:
            buf[:rest] = buf[pos:have]
        have = rest
    run.torn = have > 0


_FAST_BLOCK = 1 << 20


def _check_named_objects(
    named: list[tuple[int, str, str]], first: int, ctx: Context, run: Run
) -> bool:
    """Check the object files C-checked records name, in seq order; False (and the run cut at
    that record) at the first missing or altered one."""
    for index, role, digest in named:
        if digest in ctx.seen:
            continue
        try:
            ctx.check_objects({role: digest})
        except _Broken as exc:
            seq = first + index
            run.bad_seq, run.reason = seq, exc.reason
            del run.hashes[seq - run.start :]
            return False
    return True
