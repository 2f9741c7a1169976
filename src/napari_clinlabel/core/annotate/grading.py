"""Clinical grades on schema scales (BI-RADS, ICDR, ISUP, …): one ``grade.set`` record per choice.

A grade's ``target`` is ``{"scale": <scale id>, "item": <"image" | study id | tile id>}``; its
``data`` holds the stored ``value``, its human ``label``, the scale ``kind`` and a ``note``. The
latest record per (scale, item) is the grade in force; earlier ones are its history. An image is
marked done (``image.done``) only once every required per-image / per-study scale is graded.

A model's grade proposal that a human accepts or edits is a grade too: its ``proposal.accept`` /
``proposal.edit`` record carries ``data["as_grade"]`` (``scale``, ``item``, ``value``, ``label``,
resolved from the schema at decision time), which counts here exactly like a ``grade.set``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError, SchemaError
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.schema import builtin_schemas

GRADE_ACTIONS = ("grade.set", "proposal.accept", "proposal.edit")

IMAGE_ITEM = "image"


@dataclass
class Grade:
    """A grade in force for one (scale, item), with the grades it replaced (oldest first)."""

    scale: str
    item: str
    value: str
    label: str
    grader: str
    time: str
    seq: int
    note: str = ""
    history: list[Grade] = field(default_factory=list)


def grade_item(scale: Any, study_uid: str | None = None) -> str:
    """The ``item`` a grade on ``scale`` is about: ``"image"``, or ``"study:<uid>"`` for a scale
    graded per study (the image's own item when its study is unknown)."""
    if getattr(scale, "per", "image") == "study" and study_uid:
        return f"study:{study_uid}"
    return IMAGE_ITEM


def is_image_item(item: Any) -> bool:
    """True for per-image and per-study items (not tiles)."""
    return item in (None, IMAGE_ITEM) or str(item).startswith("study:")


def require_scale(schema: Any, scale_id: str, where: str = "this image") -> Any:
    """The scale ``scale_id`` of ``schema``; clear errors when there is no schema or no such scale."""
    if schema is None:
        raise SchemaError(
            f"{where}: no grading schema is chosen; pick one (e.g. birads, icdr, isup) before "
            "grading. Nothing was recorded."
        )
    scale = schema.scales.get(scale_id)
    if scale is None:
        have = ", ".join(schema.scales) or "none"
        raise SchemaError(
            f"{where}: schema {schema.id!r} has no scale {scale_id!r} (it has: {have})."
        )
    return scale


def resolve_value(scale: Any, value: Any) -> Any:
    """The scale value matching ``value`` (a stored value, else a keyboard key)."""
    text = str(value).strip()
    for v in scale.values:
        if v.value == text:
            return v
    for v in scale.values:
        if v.value.lower() == text.lower():
            return v
    by_key = scale.by_key(text) if len(text) == 1 else None
    if by_key is not None:
        return by_key
    allowed = ", ".join(f"{v.value} (key {v.key})" for v in scale.values)
    raise ClinlabelError(
        f"{text!r} is not a grade of {scale.name} ({scale.id}); choose one of: {allowed}. "
        "Nothing was recorded."
    )


def set_grade(
    log: AuditLog,
    scale: Any,
    value: Any,
    *,
    item: str | None = None,
    companion: dict[str, Any] | None = None,
    note: str = "",
) -> dict[str, Any]:
    """Log grade ``value`` of ``scale`` for ``item`` (default: the image) and return the record.

    ``companion`` holds related facts recorded with the grade (e.g. ``{"study": uid}``).
    Refused (nothing logged) when the log has no schema in force or the value is not on the scale.
    """
    if scale is None or log.schema is None:
        raise SchemaError(
            f"{log.path.name}: no grading schema is in force for this image; pick one (e.g. "
            "birads, icdr, isup) before grading. Nothing was recorded."
        )
    chosen = resolve_value(scale, value)
    data: dict[str, Any] = {
        "value": chosen.value,
        "label": chosen.label,
        "scale_kind": scale.kind,
        "note": str(note or ""),
    }
    if companion:
        data["companion"] = dict(companion)
    return log.append("grade.set", {"scale": scale.id, "item": item or IMAGE_ITEM}, data)


def grade_of(rec: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """``(scale, item, data)`` of a record that sets a grade (``grade.set``, or a decided grade
    proposal carrying ``as_grade``); None for any other record."""
    action, data = rec.get("action"), rec.get("data") or {}
    if action == "grade.set":
        tgt = rec.get("target") or {}
        return str(tgt.get("scale")), str(tgt.get("item") or IMAGE_ITEM), data
    if action in GRADE_ACTIONS and isinstance(data.get("as_grade"), dict):
        g = data["as_grade"]
        return str(g.get("scale")), str(g.get("item") or IMAGE_ITEM), g
    return None


def grades_from_records(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Grade]:
    """Latest grade per (scale, item) from records, each with its history."""
    out: dict[tuple[str, str], Grade] = {}
    for rec in records:
        found = grade_of(rec)
        if found is None:
            continue
        scale, item, data = found
        key = (scale, item)
        g = Grade(
            key[0],
            key[1],
            str(data.get("value")),
            str(data.get("label", "")),
            str((rec.get("actor") or {}).get("id", "")),
            str(rec.get("time", "")),
            int(rec.get("seq", -1)),
            str(data.get("note", "")),
        )
        prev = out.get(key)
        if prev is not None:
            g.history = [*prev.history, prev]
            prev.history = []
        out[key] = g
    return out


def scale_for_proposal(payload: dict[str, Any], schema_ref: dict[str, Any] | None = None) -> Any:
    """The schema scale a grade proposal's ``payload["scale"]`` names, or None.

    A model card names a scale id (``dr``) or a schema id (``icdr``: then the schema's scale
    holding the proposed value, else its first). The schema in force (``schema_ref``) is looked
    in first, then the built-in schemas.
    """
    name, value = str(payload.get("scale", "")), str(payload.get("value", ""))
    known = builtin_schemas()
    first = [schema_ref["id"]] if schema_ref and schema_ref.get("id") in known else []
    schemas = [known[n] for n in dict.fromkeys(first + list(known))]
    for schema in schemas:
        if name in schema.scales:
            return schema.scales[name]
    for schema in schemas:
        if schema.id == name and schema.scales:
            scales = list(schema.scales.values())
            return next((s for s in scales if value in s.value_list()), scales[0])
    return None


def proposal_as_grade(
    payload: dict[str, Any], schema_ref: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """What a decided grade proposal sets (``{scale, item, value, label}``), checked against its
    scale; None when no known scale matches. A value not on the scale is refused."""
    scale = scale_for_proposal(payload, schema_ref)
    if scale is None:
        return None
    chosen = resolve_value(scale, payload.get("value"))
    item = str(payload.get("item") or IMAGE_ITEM)
    return {"scale": scale.id, "item": item, "value": chosen.value, "label": chosen.label}


def load_grades(log_path: str | os.PathLike[str]) -> dict[tuple[str, str], Grade]:
    """Latest grade per (scale, item) in a sidecar log, with history (empty if no log)."""
    return grades_from_records(iter_records(log_path))


def missing_grades(schema: Any, grades: dict[tuple[str, str], Grade]) -> list[str]:
    """Names of the required per-image / per-study scales that have no grade yet."""
    out = []
    for sc in schema.scales.values():
        if sc.required and sc.per != "tile" and not any(k[0] == sc.id for k in grades):
            out.append(f"{sc.name} ({sc.id})")
    return out


def mark_done(log: AuditLog, schema: Any, *, where: str | None = None) -> dict[str, Any]:
    """Log ``image.done``; refused with the list of missing required grades until all exist.

    ``where`` names the image in messages (default: the log file's name).
    """
    where = where or log.path.name
    if schema is None:
        raise SchemaError(
            f"{where}: no grading schema is chosen, so the image cannot be marked done; "
            "pick one and grade it first."
        )
    grades = load_grades(log.path)
    missing = missing_grades(schema, grades)
    if missing:
        raise ClinlabelError(
            f"{where}: cannot mark the image done: required grade(s) missing: "
            f"{'; '.join(missing)}. Grade them first."
        )
    in_force = {f"{s}:{i}": g.value for (s, i), g in sorted(grades.items()) if is_image_item(i)}
    return log.append("image.done", {"image": IMAGE_ITEM}, {"grades": in_force})


def is_done(records: Iterable[dict[str, Any]]) -> bool:
    """True when the latest ``image.done`` comes after every per-image grade (a later change
    reopens)."""
    last_done, last_grade = -1, -1
    for rec in records:
        if rec.get("action") == "image.done":
            last_done = int(rec["seq"])
        else:
            found = grade_of(rec)
            if found is not None and is_image_item(found[1]):
                last_grade = int(rec["seq"])
    return last_done > last_grade


def graded_schema_ref(log_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The schema (``{"id", "version", "sha256"}``) of the latest per-image grade, or None."""
    ref = None
    for rec in iter_records(log_path):
        found = grade_of(rec) if rec.get("action") in GRADE_ACTIONS else None
        if found is not None and is_image_item(found[1]) and rec.get("schema"):
            ref = rec["schema"]
    return ref
