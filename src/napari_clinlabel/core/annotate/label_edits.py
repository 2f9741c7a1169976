"""Label changes as stroke diffs: the one path by which any change to a label array is logged.

A diff holds the flat C-order ``indices`` of the changed voxels with their ``old`` and ``new``
values, stored as an ``.npz`` object; its cost follows the stroke, not the volume. Any record
whose ``target`` names ``"labels"`` and whose ``data["objects"]`` holds ``"diff"`` changes that
label array; replay applies those records in order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_clinlabel.core.errors import ClinlabelError, LogError
from napari_clinlabel.core.log.audit_log import AuditLog


def diff_between(
    before: np.ndarray, after: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indices, old, new)`` of the voxels that differ between two same-shaped arrays."""
    if before.shape != after.shape:
        raise ClinlabelError(
            f"Label arrays differ in shape ({before.shape} vs {after.shape}); a label layer must "
            "stay on its image's grid."
        )
    idx = np.flatnonzero(before.reshape(-1) != after.reshape(-1))
    return idx.astype(np.int64), before.reshape(-1)[idx], after.reshape(-1)[idx]


def diff_in_region(
    before: np.ndarray, after: np.ndarray, slices: tuple[slice, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`diff_between` but only inside ``slices`` (a bounding box), in full-array indices."""
    b = before[slices]
    a = after[slices]
    local = np.nonzero(b != a)
    full = tuple(loc + (s.start or 0) for loc, s in zip(local, slices, strict=False))
    idx = np.ravel_multi_index(full, before.shape) if b.ndim else np.empty(0, np.int64)
    return np.asarray(idx, np.int64), b[local], a[local]


def apply_diff(labels: np.ndarray, diff: dict[str, np.ndarray], reverse: bool = False) -> None:
    """Apply a diff in place (``reverse`` puts the old values back)."""
    flat = labels.reshape(-1)
    if not np.shares_memory(flat, labels):
        raise ClinlabelError("Label array must be contiguous to apply a diff in place.")
    flat[diff["indices"]] = diff["old"] if reverse else diff["new"]


def bbox_of(indices: np.ndarray, shape: tuple[int, ...]) -> list[list[int]]:
    """``[[min…], [max…]]`` (inclusive, napari axis order) of flat indices; empty for no voxels."""
    if indices.size == 0:
        return []
    coords = np.unravel_index(indices, shape)
    return [[int(c.min()) for c in coords], [int(c.max()) for c in coords]]


def record_label_change(
    log: AuditLog,
    labels: np.ndarray,
    labels_name: str,
    indices: np.ndarray,
    old: np.ndarray,
    new: np.ndarray,
    *,
    action: str = "label.paint",
    source: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    target: dict[str, Any] | None = None,
    applied: bool = True,
) -> dict[str, Any]:
    """Log one change of ``labels`` (already applied unless ``applied=False``) and return the record.

    The change goes in as a stroke-diff object plus one record with the label value(s), the voxel
    count and the bounding box. If the log cannot be written the change is undone (the array is
    left as it was before) and :class:`LogError` propagates: never an unlogged change.
    """
    indices = np.asarray(indices, dtype=np.int64)
    old = np.asarray(old, dtype=labels.dtype)
    new = np.asarray(new, dtype=labels.dtype)
    diff = {"indices": indices, "old": old, "new": new}
    if not applied:
        apply_diff(labels, diff)
    try:
        digest = log.put_arrays(indices=indices, old=old, new=new, shape=np.asarray(labels.shape))
        values = np.unique(new)
        rec_data = {
            "label": int(values[0]) if values.size == 1 else [int(v) for v in values],
            "voxels": int(indices.size),
            "bbox": bbox_of(indices, labels.shape),
        }
        rec_data.update(data or {})
        rec_data["objects"] = {**rec_data.get("objects", {}), "diff": digest}
        rec_target = {"labels": labels_name, **(target or {})}
        return log.append(action, rec_target, rec_data, source)
    except LogError:
        apply_diff(labels, diff, reverse=True)
        raise


def record_labels_create(
    log: AuditLog, labels_name: str, shape: tuple[int, ...], dtype: Any
) -> dict[str, Any]:
    """Log the creation of an empty label array on the image grid (replay starts from zeros)."""
    return log.append(
        "labels.create",
        {"labels": labels_name},
        {"labels": labels_name, "shape": [int(s) for s in shape], "dtype": np.dtype(dtype).name},
    )


def record_labels_save(
    log: AuditLog, labels: np.ndarray, labels_name: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Log a full snapshot of ``labels`` (replay may start from it); returns the record."""
    digest = log.put_arrays(labels=labels)
    rec_data = {
        "labels": labels_name,
        "shape": [int(s) for s in labels.shape],
        "dtype": labels.dtype.name,
        **(data or {}),
    }
    rec_data["objects"] = {**rec_data.get("objects", {}), "snapshot": digest}
    return log.append("labels.save", {"labels": labels_name, "snapshot": True}, rec_data)
