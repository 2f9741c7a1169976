"""The one reader of log files: regular files only, lines and nesting bounded, parsed by orjson.

Every reader of a sidecar log (the verifier, :func:`iter_records` and through it replay, export,
report, agreement, napari's reopening) goes through :func:`parse_line` and :func:`open_regular`,
so a crafted log (a record nested 100 000 deep, a line of a gigabyte, a symlink, a FIFO) gives
the same one clear :class:`LogIntegrityError` everywhere instead of a RecursionError, a
MemoryError or a hang.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from typing import Any

import orjson

from napari_clinlabel.core.errors import LogError, LogIntegrityError

MAX_NESTING = 500  # deepest record a log holds (orjson itself stops at 1024)
MAX_LINE_BYTES = 64 << 20  # longest record line read; the writer never writes one longer
_STRINGS_FREE = bytes(set(range(256)) - set(b'[]{}"\\'))


def nesting(line: bytes) -> int:
    """How deep a line's arrays and objects nest (0 when it cannot exceed :data:`MAX_NESTING`)."""
    if line.count(b"[") + line.count(b"{") <= MAX_NESTING:
        return 0
    depth = top = 0
    in_str = escaped = False
    for c in line.translate(None, _STRINGS_FREE):  # brackets, quotes and backslashes only
        if in_str:
            if escaped:
                escaped = False
            elif c == 0x5C:
                escaped = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in b"[{":
            depth += 1
            top = max(top, depth)
        elif c in b"]}":
            depth -= 1
    return top


def line_problem(line: bytes) -> str:
    """Why a line cannot be read as a record ('' when its size and nesting are within bounds)."""
    if len(line) > MAX_LINE_BYTES:
        return f"record line is longer than {MAX_LINE_BYTES >> 20} MiB (not readable)"
    if nesting(line) > MAX_NESTING:
        return f"record nests deeper than {MAX_NESTING} levels (not checkable)"
    return ""


def parse_line(line: bytes) -> Any:
    """One log line parsed by orjson, within the bounds; ValueError with the reason otherwise.

    orjson reads UTF-8 only (no BOM, no lone surrogates, no NaN); an integer beyond 64 bits reads
    as a float unless orjson refuses the line (then :func:`parse_exact`); a v1 record holding one
    is re-read exactly by the verifier to re-serialise it.
    """
    problem = line_problem(line)
    if problem:
        raise ValueError(problem)
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return parse_exact(line)


# an integer token of 19+ digits (after ``:``, ``[`` or ``,``): orjson reads one beyond 64 bits
# as a float, and refuses one beyond a float's range; digit runs inside strings do not count
LONG_INT = re.compile(rb"[:\[,]\s*-?\d{19,}\s*[,\]}]")


def parse_exact(line: bytes) -> Any:
    """A line orjson refused: read by :mod:`json` when it holds an integer beyond 64 bits
    (exactly, as an int), else ValueError. NaN and Infinity are refused (not JSON)."""
    if not LONG_INT.search(line):
        raise ValueError("not valid JSON")
    try:
        return json.loads(line.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        raise ValueError("not valid JSON") from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """An fd on ``path`` opened without following a symlink and checked to be a regular file.

    O_NONBLOCK keeps a FIFO from blocking the open; any non-regular file (FIFO, device,
    folder, socket) is refused with :class:`LogError` naming it. FileNotFoundError passes through.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LogError(
                f"{path}: is a symbolic link; a log and its objects must be regular files "
                "(replace the link with the file it points to)."
            ) from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):
            raise LogError(f"{path}: is not a regular file; move it aside.") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LogError(f"{path}: is not a regular file; move it aside.")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a regular file (never a symlink, FIFO or device), at most its size at open.

    ``limit``: refuse a file larger than this many bytes (LogError) before reading it.
    """
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if limit is not None and size > limit:
            raise LogError(
                f"{path}: is {size} bytes, more than the {limit} expected; move it aside."
            )
        chunks, left = [], size
        while left > 0:  # bounded by the size at open: a file that grows is not followed
            chunk = os.read(fd, min(left, 1 << 24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def iter_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Complete records of a log file, in order (a torn last line is skipped).

    Raises :class:`LogIntegrityError` (with the line index as its seq) for a line that is not a
    JSON object within the bounds, and :class:`LogError` for a symlink or a non-regular file.
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as fh:
        n = 0
        while True:
            line = fh.readline(MAX_LINE_BYTES + 2)
            if not line.endswith(b"\n"):
                if len(line) > MAX_LINE_BYTES:
                    raise LogIntegrityError(f"{path}: line {n + 1}: {line_problem(line)}.", n)
                return  # end of file, or a torn last line (recorded at the next open)
            try:
                rec = parse_line(line)
            except ValueError as exc:
                raise LogIntegrityError(f"{path}: line {n + 1}: {exc}.", n) from None
            if type(rec) is not dict:
                raise LogIntegrityError(f"{path}: line {n + 1}: not a JSON object.", n)
            yield rec
            n += 1
