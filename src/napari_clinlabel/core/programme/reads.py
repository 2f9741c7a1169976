"""A reader's read of a case, from its log: not started / in progress / completed, and what it
found (image-level grades, box classes) for design rules that depend on findings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from napari_clinlabel.core.annotate.boxes import boxes_from_records
from napari_clinlabel.core.annotate.grading import grades_from_records, is_done, is_image_item
from napari_clinlabel.core.log.audit_log import iter_records

NOT_STARTED, IN_PROGRESS, COMPLETED = "not started", "in progress", "completed"


@dataclass
class ReadState:
    """Status of one read and its findings (empty until it is completed)."""

    status: str
    grades: dict[str, str] = field(default_factory=dict)  # scale -> value, per image
    box_classes: set[str] = field(default_factory=set)


def read_state(log_path: str | os.PathLike[str]) -> ReadState:
    """The state of the read logged at ``log_path`` (completed: an ``image.done`` after its last
    per-image grade)."""
    p = Path(log_path)
    if not p.is_file():
        return ReadState(NOT_STARTED)
    records = list(iter_records(p))
    if not is_done(records):
        return ReadState(IN_PROGRESS)
    grades = {s: g.value for (s, i), g in grades_from_records(records).items() if is_image_item(i)}
    boxes = {b.cls for b in boxes_from_records(records).values()}
    return ReadState(COMPLETED, grades, boxes)


class ReadIndex:
    """Read states of a dataset's ``reads/`` folder, listed once (one ``scandir``, no stat per
    assignment) and parsed only when a log changed since the last look (size and mtime).

    The index is derived, in memory: it records nothing and is rebuilt from the logs.
    """

    _parsed: dict[str, tuple[int, int, ReadState]] = {}  # log path -> (size, mtime_ns, state)

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.present: dict[str, os.stat_result] = {}
        try:
            with os.scandir(folder) as it:
                for e in it:
                    if e.name.endswith(".clinlabel.jsonl"):
                        self.present[e.name] = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            pass

    def state(self, name: str) -> ReadState:
        """The state of the read logged as ``reads/<name>``."""
        st = self.present.get(name)
        if st is None:
            return ReadState(NOT_STARTED)
        path = str(self.folder / name)
        hit = self._parsed.get(path)
        if hit is not None and hit[:2] == (st.st_size, st.st_mtime_ns):
            return hit[2]
        state = read_state(path)
        self._parsed[path] = (st.st_size, st.st_mtime_ns, state)
        return state


__all__ = ["NOT_STARTED", "IN_PROGRESS", "COMPLETED", "ReadState", "read_state", "ReadIndex"]
