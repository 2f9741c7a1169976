"""Reopen an image to exactly the annotation state its sidecar log describes.

Persistence and autosave policy: there is no separate save file to lose. Every user action
(a box drawn, moved or deleted, a grade chosen, a tile graded, a label stroke, "done") is one
record appended to the sidecar log and flushed and fsynced *before* the action counts as done
(see :class:`.audit_log.AuditLog`); bulky payloads are content-addressed objects written
atomically first. So a crash loses at most the action in flight, never an acknowledged one — an
autosave interval of zero. A torn last line left by a crash is kept aside by the log on next open.
Reopening replays the records: :func:`restore_state`.

Labels are rebuilt by :func:`.replay.replay_labels`; proposals (a higher layer) are read with
``core.proposals.load_proposals``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_clinlabel.core.annotate.boxes import LesionBox, boxes_from_records
from napari_clinlabel.core.annotate.grading import IMAGE_ITEM, Grade, grades_from_records, is_done
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.annotate.tiles import _ID
from napari_clinlabel.core.log.audit_log import iter_records


@dataclass
class AnnotationState:
    """What a log says is in force: boxes, image grades, tile grades, done, labels, proposals."""

    boxes: dict[str, LesionBox] = field(default_factory=dict)
    grades: dict[tuple[str, str], Grade] = field(default_factory=dict)
    tile_grades: dict[tuple[str, str], Grade] = field(default_factory=dict)
    done: bool = False
    schema: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None  # layer name -> label array (replay), if any


def restore_state(log_path: str | os.PathLike[str]) -> AnnotationState:
    """The annotation state at the end of the log (an empty state when there is no log)."""
    path = Path(log_path)
    records = list(iter_records(path))
    all_grades = grades_from_records(records)
    state = AnnotationState(
        boxes=boxes_from_records(records),
        grades={k: g for k, g in all_grades.items() if not _ID.match(k[1])},
        tile_grades={k: g for k, g in all_grades.items() if _ID.match(k[1])},
        done=is_done(records),
    )
    for rec in reversed(records):
        if rec.get("schema"):
            state.schema = rec["schema"]
            break
    if not records:
        return state
    if any(_names_labels(r) for r in records):
        state.labels = replay_labels(path).labels  # {layer name: array} as of the last record
    return state


def _names_labels(rec: dict[str, Any]) -> bool:
    target = rec.get("target")
    return isinstance(target, dict) and bool(target.get("labels"))


def image_grades(state: AnnotationState) -> dict[str, str]:
    """``{scale id: value}`` of the per-image grades in force."""
    return {s: g.value for (s, i), g in state.grades.items() if i == IMAGE_ITEM}
