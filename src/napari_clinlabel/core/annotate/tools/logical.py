"""Logical operators between two labels of one label map (a voxel holds one label).

``operand`` is the other label. As the labels of one map never overlap, ``intersect`` and
``subtract`` use the operand's filled region (its holes closed, slice by slice on 3D maps — e.g. a
lesion label inside an organ outline); ``add`` merges the operand into the label; ``copy`` makes
the label the operand's shape (the operand's voxels become the label, the label's others clear);
``invert`` gives the label every unlabelled voxel it does not hold (what is free becomes it).
"""

from __future__ import annotations

import numpy as np

from napari_clinlabel.core.annotate.seg_tools import fill_holes
from napari_clinlabel.core.annotate.tools.result import ToolResult
from napari_clinlabel.core.errors import ClinlabelError, InputError

OPERATIONS = ("copy", "add", "subtract", "intersect", "invert")


def logical(
    labels: np.ndarray, value: int, operation: str, operand: int | None = None
) -> ToolResult:
    """The change making label ``value`` = ``value`` <operation> ``operand``."""
    if operation not in OPERATIONS:
        raise ClinlabelError(f"Unknown operation {operation!r}; use one of {OPERATIONS}.")
    lab = np.asarray(labels)
    mine = lab == value
    params = {"label": int(value), "operation": operation}
    if operation == "invert":
        where = np.ones(lab.shape, bool)
        target = np.where(mine, 0, value).astype(lab.dtype)
        return ToolResult("logical", where, target, frozenset({int(value)}), params)
    if operand is None or operand == value or operand == 0:
        raise InputError(f"'{operation}' needs another label as its operand (not {operand}).")
    params["operand"] = int(operand)
    other = lab == operand
    if not other.any():
        raise InputError(f"Label {operand} is empty: nothing to {operation}.")
    axis = 0 if lab.ndim == 3 else None
    if operation == "add":
        return ToolResult(
            "logical", other, int(value), frozenset({int(value), int(operand)}), params
        )
    if operation == "copy":
        where = mine | other
        target = np.where(other, value, 0).astype(lab.dtype)
        return ToolResult("logical", where, target, frozenset({int(value), int(operand)}), params)
    region = fill_holes(other, per_slice_axis=axis)
    if operation == "subtract":
        return ToolResult("logical", mine & region, 0, frozenset({int(value)}), params)
    return ToolResult("logical", mine & ~region, 0, frozenset({int(value)}), params)  # intersect
