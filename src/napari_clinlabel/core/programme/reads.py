"""A reader's read of a case, from its log: not started / in progress / completed (or unreadable),
what it found (image-level grades, box classes) for design rules that depend on findings, and
where review stands (approved by a signature, or returned with comments).

A read is *completed* when its log's latest ``image.done`` comes after its last per-image grade
and after the last ``review.return`` (a returned read is in progress again until done anew). It is
*reviewed* when a ``sign`` record with meaning review or approval follows its latest
``image.done``. A log that cannot be read (a corrupt line, a symlink) is ``CORRUPT``: reported
and counted by status, never fatal for the rest.

:class:`ReadIndex` keeps the read states of ``reads/`` in an on-disk cache
(``<dataset>/.clinlabel-cache/reads.json``) keyed by each log's size, mtime and a sha256 of its
last 4 KiB (the chain head is in there), so a fresh process parses only logs that changed. It is a
cache, never the source of truth: any entry that does not match its file exactly is parsed again
from the log, and an unreadable or foreign cache file is ignored (and rewritten).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from napari_clinlabel.core.annotate.boxes import boxes_from_records
from napari_clinlabel.core.annotate.grading import grades_from_records, is_done, is_image_item
from napari_clinlabel.core.errors import LogError
from napari_clinlabel.core.log.audit_log import iter_records

NOT_STARTED, IN_PROGRESS, COMPLETED = "not started", "in progress", "completed"
CORRUPT = "unreadable"
RETURN = "review.return"  # a reviewer sends a read back with comments (in the read's log)
CACHE_DIR = ".clinlabel-cache"
_INDEX_FORMAT = "clinlabel-read-index/1"
_TAIL = 4096


@dataclass
class ReadState:
    """Status of one read and its findings (empty until it is completed)."""

    status: str
    grades: dict[str, str] = field(default_factory=dict)  # scale -> value, per image
    box_classes: set[str] = field(default_factory=set)
    reviewed: bool = False  # a review/approval signature after the latest image.done
    returned: str | None = None  # the comment of a return not yet answered by a new done
    problem: str | None = None  # why the log is unreadable (CORRUPT)

    def to_json(self) -> list[Any]:
        """Compact form for the on-disk index."""
        return [self.status, self.grades, sorted(self.box_classes), self.reviewed, self.returned,
                self.problem]  # fmt: skip

    @classmethod
    def from_json(cls, v: Any) -> ReadState:
        """Inverse of :meth:`to_json` (ValueError/TypeError on anything else)."""
        status, grades, boxes, reviewed, returned, problem = v
        if status not in (NOT_STARTED, IN_PROGRESS, COMPLETED, CORRUPT):
            raise ValueError(status)
        if not isinstance(grades, dict) or not isinstance(boxes, list):
            raise TypeError("grades/boxes")
        return cls(status, {str(k): str(x) for k, x in grades.items()}, {str(b) for b in boxes},
                   bool(reviewed), None if returned is None else str(returned),
                   None if problem is None else str(problem))  # fmt: skip


def state_from_records(records: list[dict[str, Any]]) -> ReadState:
    """The state of a read from its records."""
    last_done = last_return = last_sign = -1
    comment = None
    for r in records:
        a = r.get("action")
        if a == "image.done":
            last_done = int(r["seq"])
        elif a == RETURN:
            last_return, comment = int(r["seq"]), str((r.get("data") or {}).get("comment", ""))
        elif a == "sign" and (r.get("data") or {}).get("meaning") in ("review", "approval"):
            last_sign = int(r["seq"])
    if not records:
        return ReadState(NOT_STARTED)
    if not is_done(records) or last_return > last_done:
        return ReadState(IN_PROGRESS, returned=comment if last_return > last_done else None)
    grades = {s: g.value for (s, i), g in grades_from_records(records).items() if is_image_item(i)}
    boxes = {b.cls for b in boxes_from_records(records).values()}
    return ReadState(COMPLETED, grades, boxes, reviewed=last_sign > last_done)


def read_state(log_path: str | os.PathLike[str]) -> ReadState:
    """The state of the read logged at ``log_path`` (``CORRUPT`` with the reason when the log
    cannot be read)."""
    p = Path(log_path)
    try:
        if not p.is_file() and not p.is_symlink():
            return ReadState(NOT_STARTED)
        return state_from_records(list(iter_records(p)))
    except (LogError, OSError, KeyError, TypeError, ValueError) as exc:
        return ReadState(CORRUPT, problem=_one_line(exc))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def tail_digest(path: str | os.PathLike[str], size: int) -> str:
    """sha256 of the last 4 KiB of the file's first ``size`` bytes (holds the chain head)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return hashlib.sha256(os.pread(fd, _TAIL, max(0, size - _TAIL))).hexdigest()
    finally:
        os.close(fd)


def write_cache(path: Path, data: bytes) -> None:
    """Best effort: a cache that cannot be written (read-only share) is simply not kept."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def load_cache(path: Path, fmt: str) -> dict[str, Any] | None:
    try:
        raw = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return raw if isinstance(raw, dict) and raw.get("format") == fmt else None


class ReadIndex:
    """Read states of a dataset's ``reads/`` folder: listed once (one ``scandir``), each log
    parsed only when it changed since the last look, in this process or any other that kept
    the on-disk index. Call :meth:`save` to keep what was learnt.
    """

    _parsed: dict[str, tuple[int, int, ReadState]] = {}  # log path -> (size, mtime_ns, state)

    def __init__(self, folder: Path, cache: Path | None = None) -> None:
        self.folder = folder
        self._root = str(folder)
        self.cache_path = cache or folder.parent / CACHE_DIR / "reads.json"
        self.present: dict[str, os.stat_result] = {}
        self.parsed = 0  # logs parsed by this index (not taken from a cache)
        try:
            with os.scandir(folder) as it:
                for e in it:
                    if e.name.endswith(".clinlabel.jsonl"):
                        self.present[e.name] = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            pass
        self._disk: dict[str, Any] = {}
        if self.present:
            raw = load_cache(self.cache_path, _INDEX_FORMAT)
            entries = raw.get("entries") if raw else None
            self._disk = entries if isinstance(entries, dict) else {}
        self._dirty = False

    def state(self, name: str) -> ReadState:
        """The state of the read logged as ``reads/<name>``."""
        st = self.present.get(name)
        if st is None:
            return ReadState(NOT_STARTED)
        path = os.path.join(self._root, name)  # str join: pathlib costs more than the rest here
        hit = self._parsed.get(path)
        if hit is not None and hit[:2] == (st.st_size, st.st_mtime_ns):
            return hit[2]
        state = self._from_disk(name, path, st)
        if state is None:
            state = read_state(path)
            self.parsed += 1
            try:
                tail = tail_digest(path, st.st_size)
            except OSError:
                tail = ""
            self._disk[name] = [st.st_size, st.st_mtime_ns, tail, state.to_json()]
            self._dirty = True
        self._parsed[path] = (st.st_size, st.st_mtime_ns, state)
        return state

    def _from_disk(self, name: str, path: str, st: os.stat_result) -> ReadState | None:
        entry = self._disk.get(name)
        try:
            size, mtime, tail, value = entry  # type: ignore[misc]
            if (size, mtime) != (st.st_size, st.st_mtime_ns) or not tail:
                return None
            if tail != tail_digest(path, st.st_size):
                return None
            return ReadState.from_json(value)
        except (TypeError, ValueError, OSError):
            return None

    def save(self) -> None:
        """Write the on-disk index if anything was parsed (entries of vanished logs dropped)."""
        if not self._dirty:
            return
        entries = {k: v for k, v in self._disk.items() if k in self.present}
        write_cache(self.cache_path, orjson.dumps({"format": _INDEX_FORMAT, "entries": entries}))
        self._dirty = False


__all__ = [
    "NOT_STARTED", "IN_PROGRESS", "COMPLETED", "CORRUPT", "RETURN", "CACHE_DIR", "ReadState",
    "read_state", "state_from_records", "tail_digest", "load_cache", "write_cache", "ReadIndex",
]  # fmt: skip
