"""How a log record reads in a table: the one presenter for the Audit widget and ``clinlabel log show``.

:func:`record_cells` turns one record into :data:`COLUMNS` strings (seq, time, actor, role,
action, target, source, details); both readers of a log show these cells, so a record reads the
same in napari and in a terminal. No Qt, no printing: callers lay the cells out.
"""

from __future__ import annotations

import json
from typing import Any

COLUMNS = ("seq", "time", "actor", "role", "action", "target", "source", "details")


def record_cells(rec: dict[str, Any]) -> tuple[str, ...]:
    """The cells of one record, in :data:`COLUMNS` order (all strings, "" where a field is absent)."""
    actor = rec.get("actor") or {}
    target = rec.get("target")
    return (
        str(rec.get("seq")),
        time_text(rec.get("time")),
        str(actor.get("id", "")),
        str(actor.get("role", "")),
        str(rec.get("action", "")),
        "" if target is None else json.dumps(target, separators=(",", ":"), ensure_ascii=False),
        source_text(rec.get("source")),
        details_text(rec.get("data") or {}),
    )


def time_text(value: Any) -> str:
    """An ISO UTC time as ``YYYY-MM-DD hh:mm:ss.mmm`` (the zone is always UTC in a log)."""
    return str(value or "").replace("T", " ").rstrip("Z")[:23]


def source_text(source: Any) -> str:
    """``model:NAME@VERSION`` for a model's work, else the source kind (``human``)."""
    if not isinstance(source, dict):
        return ""
    if source.get("kind") == "model":
        return f"model:{source.get('name')}@{source.get('version')}"
    return str(source.get("kind", ""))


def details_text(data: dict[str, Any]) -> str:
    """A short summary of a record's data: tool, label, voxels, undone seq, grade, signature
    meaning, export format, proposal decision."""
    parts = []
    if "tool" in data:
        parts.append(str(data["tool"]))
    if "meaning" in data:  # a signature
        parts.append(f"signs as {data['meaning']}")
    if "format" in data:  # an export
        parts.append(f"{data['format']} export")
    if "value" in data and "scale_kind" in data:  # a grade
        parts.append(f"grade {data['value']}")
    elif isinstance(data.get("as_grade"), dict):  # a decided grade proposal
        parts.append(f"grade {data['as_grade'].get('value')}")
    elif "label" in data:
        parts.append(f"label {data['label']}")
    if "voxels" in data:
        parts.append(f"{data['voxels']} voxels")
    if data.get("edited"):
        parts.append("edited")
    for key in ("undoes", "redoes"):
        if key in data:
            parts.append(f"{key} {data[key]}")
    return " · ".join(parts)
