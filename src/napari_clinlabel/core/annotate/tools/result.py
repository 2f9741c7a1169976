"""The result every editing tool returns, and the change it would make to a label array."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import ClinlabelError

TOOL_VERSION = "1"  # bump when a tool's output for the same input and parameters changes


def tool_source(name: str) -> dict[str, str]:
    """The ``source`` of a record written by tool ``name`` (DESIGN: kind tool, name, version)."""
    return {"kind": "tool", "name": str(name), "version": TOOL_VERSION}


@dataclass
class ToolResult:
    """What a tool decided: set ``target[where]`` (0 erases) on the label array.

    ``edits`` are the label values the tool works on: without overwriting, only unlabelled voxels
    and voxels of these labels may change. ``seeds`` are the human's seeds (JSON-able), kept in the
    record so the action can be understood without the tool.
    """

    tool: str
    where: np.ndarray  # bool (z, y, x)
    target: np.ndarray | int  # label value(s) to write where ``where`` (same shape, or a scalar)
    edits: frozenset[int]
    params: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, Any] | None = None
    roi: tuple[slice, ...] | None = None  # ``where``/``target`` cover only this box when set

    def record_data(self, overwrite: bool, locked: Iterable[int]) -> dict[str, Any]:
        """The ``data`` of the applying record (the diff object is added by the recorder)."""
        data: dict[str, Any] = {
            "params": {**self.params, "overwrite_other_labels": bool(overwrite)},
            "locked": sorted(int(v) for v in locked),
        }
        if self.seeds is not None:
            data["seeds"] = self.seeds
        return data


def planned_change(
    labels: np.ndarray,
    result: ToolResult,
    *,
    overwrite_other_labels: bool = False,
    locked: Iterable[int] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indices, old, new)`` that applying ``result`` to ``labels`` would make (labels unchanged).

    A voxel holding a locked label never changes. Without ``overwrite_other_labels`` a voxel
    changes only when it is unlabelled or holds one of ``result.edits``.
    """
    where = np.asarray(result.where, dtype=bool)
    roi = result.roi or tuple(slice(0, n) for n in labels.shape)
    box = tuple(r.stop - r.start for r in roi)
    if (
        where.shape != box
        or len(box) != labels.ndim
        or any(r.start < 0 or r.stop > n for r, n in zip(roi, labels.shape, strict=True))
    ):
        raise ClinlabelError(
            f"{result.tool}: result {where.shape} is not on the label grid {labels.shape}."
        )
    target = result.target
    info = np.iinfo(labels.dtype)
    tmax = int(np.max(target)) if np.ndim(target) else int(target)
    if tmax > info.max or (int(np.min(target)) if np.ndim(target) else int(target)) < 0:
        raise ClinlabelError(
            f"{result.tool}: label value {tmax} does not fit the {labels.dtype} labels layer; "
            "use a uint16 labels layer."
        )
    local = np.flatnonzero(where.reshape(-1))
    idx = _global_index(local, roi, box, labels.shape)
    current = labels.reshape(-1)[idx]
    new = (
        np.asarray(target).reshape(-1)[local].astype(labels.dtype)
        if np.ndim(target)
        else np.full(idx.shape, int(target), labels.dtype)
    )
    keep = current != new
    # which current values may change: a lookup table indexed by the value (np.isin sorts the
    # millions of voxels a grow preview holds)
    may = np.ones(int(info.max) + 1 if labels.dtype.itemsize <= 2 else 0, bool)
    lock = sorted(int(v) for v in locked)
    if may.size:
        if not overwrite_other_labels:
            allowed = np.zeros_like(may)
            allowed[[0, *sorted(int(v) for v in result.edits if 0 <= int(v) < may.size)]] = True
            may &= allowed
        may[[v for v in lock if 0 <= v < may.size]] = False
        keep &= may[current]
    else:  # 32-bit labels: no table
        if lock:
            keep &= ~np.isin(current, np.asarray(lock, dtype=np.int64))
        if not overwrite_other_labels:
            edits = np.asarray(sorted(result.edits), dtype=np.int64)
            keep &= (current == 0) | np.isin(current, edits)
    idx = idx[keep]
    return idx, current[keep], new[keep]


def _global_index(
    local: np.ndarray, roi: tuple[slice, ...], box: tuple[int, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """Flat indices in an array of ``shape`` of the flat indices ``local`` of its box ``roi``.

    One table of row starts (a row = a run along the last axis) and two integer operations per
    voxel, instead of unravelling and ravelling every coordinate.
    """
    nx = box[-1]
    grids = np.meshgrid(*[np.arange(r.start, r.stop) for r in roi[:-1]], indexing="ij")
    rows = np.ravel_multi_index(tuple(grids), shape[:-1]).reshape(-1).astype(np.int64)
    rows = rows * shape[-1] + roi[-1].start
    r, c = np.divmod(local.astype(np.int64), nx)
    return rows[r] + c


def preview_array(labels: np.ndarray, idx: np.ndarray, new: np.ndarray) -> np.ndarray:
    """A preview label map: the new value where painting, else 0 (erased voxels: see below).

    Erased voxels get the dtype's largest value (shown in a colour of its own by the widget).
    """
    out = np.zeros(labels.shape, labels.dtype)
    vals = np.asarray(new, labels.dtype).copy()
    vals[vals == 0] = np.iinfo(labels.dtype).max
    out.reshape(-1)[idx] = vals
    return out
