"""Lesion-wise detection agreement: match boxes by IoU, then precision / recall / F1 per class.

Boxes are axis-aligned in napari data coordinates (z, y, x) or (y, x), as
:class:`~napari_clinlabel.core.annotate.boxes.LesionBox` holds them: objects with ``zyx_min``,
``zyx_max`` and ``cls``, or dicts with ``"zyx_min"``, ``"zyx_max"`` and ``"class"``. An axis along
which a box has no extent (a 2D box drawn on one slice: ``z_min == z_max``) covers one voxel there,
``[z - 0.5, z + 0.5]``, so a 2D box and the 3D box over that one slice are the same box.

A truth and a predicted box of the same class match when their IoU reaches ``iou_threshold``;
each box matches at most once. ``method="hungarian"`` maximises the summed IoU of the matches
(:func:`scipy.optimize.linear_sum_assignment`); ``"greedy"`` takes pairs in decreasing IoU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from napari_clinlabel.core.errors import InputError

__all__ = ["box_arrays", "iou_matrix", "match_boxes", "detection_prf"]


def _field(box: Any, name: str) -> Any:
    if isinstance(box, dict):
        return box["class" if name == "cls" else name]
    return getattr(box, name)


def box_arrays(boxes: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) corner arrays of shape (N, ndim), degenerate axes widened to one voxel."""
    if not boxes:
        return np.empty((0, 0)), np.empty((0, 0))
    try:
        lo = np.array([_field(b, "zyx_min") for b in boxes], dtype=float)
        hi = np.array([_field(b, "zyx_max") for b in boxes], dtype=float)
    except (KeyError, AttributeError, ValueError) as exc:
        raise InputError(f"boxes need zyx_min and zyx_max of one dimensionality ({exc})") from None
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    flat = hi == lo
    lo, hi = np.where(flat, lo - 0.5, lo), np.where(flat, hi + 0.5, hi)
    return lo, hi


def iou_matrix(truth: Sequence[Any], pred: Sequence[Any]) -> np.ndarray:
    """IoU (intersection over union of box volumes) of every truth box with every predicted box."""
    if not truth or not pred:
        return np.zeros((len(truth), len(pred)))
    tl, th = box_arrays(truth)
    pl, ph = box_arrays(pred)
    if tl.shape[1] != pl.shape[1]:
        raise InputError(
            f"cannot compare {tl.shape[1]}-D truth boxes with {pl.shape[1]}-D predicted boxes"
        )
    inter_ext = np.clip(
        np.minimum(th[:, None], ph[None]) - np.maximum(tl[:, None], pl[None]), 0, None
    )
    inter = inter_ext.prod(axis=2)
    vol_t, vol_p = (th - tl).prod(axis=1), (ph - pl).prod(axis=1)
    union = vol_t[:, None] + vol_p[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_boxes(
    truth: Sequence[Any], pred: Sequence[Any], iou_threshold: float = 0.5, method: str = "hungarian"
) -> list[tuple[int, int, float]]:
    """Matches ``(truth_index, pred_index, iou)`` with IoU ≥ threshold, ignoring classes."""
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"iou_threshold must lie in (0, 1], not {iou_threshold}")
    iou = iou_matrix(truth, pred)
    if iou.size == 0:
        return []
    if method == "hungarian":
        ok = iou >= iou_threshold
        rows, cols = linear_sum_assignment(np.where(ok, iou, 0.0), maximize=True)
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if ok[r, c]]
    elif method == "greedy":
        order = np.argsort(-iou, axis=None, kind="stable")
        used_t: set[int] = set()
        used_p: set[int] = set()
        pairs = []
        for flat in order:
            r, c = divmod(int(flat), iou.shape[1])
            if iou[r, c] < iou_threshold:
                break
            if r not in used_t and c not in used_p:
                used_t.add(r)
                used_p.add(c)
                pairs.append((r, c))
    else:
        raise InputError(f"method must be 'hungarian' or 'greedy', not {method!r}")
    return sorted((r, c, float(iou[r, c])) for r, c in pairs)


def detection_prf(
    truth: Sequence[Any],
    pred: Sequence[Any],
    iou_threshold: float = 0.5,
    method: str = "hungarian",
) -> dict[str, dict[str, float]]:
    """Per class ``{"tp", "fp", "fn", "precision", "recall", "f1"}``; key ``"all"`` pools classes.

    Boxes match only within their class; precision/recall are NaN when undefined (no predictions /
    no truth boxes of the class), F1 = 2TP / (2TP + FP + FN), NaN when all three are 0.
    """
    classes = sorted({str(_field(b, "cls")) for b in [*truth, *pred]})
    out: dict[str, dict[str, float]] = {}
    totals = np.zeros(3, dtype=int)
    for c in classes:
        t = [b for b in truth if str(_field(b, "cls")) == c]
        p = [b for b in pred if str(_field(b, "cls")) == c]
        tp = len(match_boxes(t, p, iou_threshold, method))
        counts = np.array([tp, len(p) - tp, len(t) - tp])
        totals += counts
        out[c] = _prf(*counts)
    out["all"] = _prf(*totals)
    return out


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    nan = float("nan")
    return {
        "tp": int(tp),
        "fp": int(fp),
        "fn": int(fn),
        "precision": tp / (tp + fp) if tp + fp else nan,
        "recall": tp / (tp + fn) if tp + fn else nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
    }
