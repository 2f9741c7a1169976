"""Lesion-wise box matching: IoU against voxel counting, matching against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from napari_clinlabel.core.annotate.boxes import LesionBox
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.quality.detection import detection_prf, iou_matrix, match_boxes


def _raster(lo, hi, shape, scale=2):
    """Box as a fine voxel mask (coordinates scaled by ``scale`` so half-voxel edges are exact)."""
    m = np.zeros(shape, bool)
    sl = tuple(
        slice(int(round((a + 0.5) * scale)), int(round((b + 0.5) * scale)))
        for a, b in zip(lo, hi, strict=True)
    )
    m[sl] = True
    return m


def test_iou_matches_voxel_counting_3d_and_2d_on_slice():
    rng = np.random.default_rng(0)
    boxes = []
    for _ in range(6):
        lo = rng.integers(0, 8, 3).astype(float) - 0.5
        hi = lo + rng.integers(1, 6, 3)
        boxes.append({"zyx_min": lo.tolist(), "zyx_max": hi.tolist(), "class": "x"})
    boxes.append(
        {"zyx_min": [3.0, 1.5, 2.5], "zyx_max": [3.0, 6.5, 7.5], "class": "x"}
    )  # 2D on slice 3
    iou = iou_matrix(boxes, boxes)
    shape = (32, 32, 32)
    for (i, a), (j, b) in itertools.product(enumerate(boxes), repeat=2):
        la, ha = np.array(a["zyx_min"]), np.array(a["zyx_max"])
        lb, hb = np.array(b["zyx_min"]), np.array(b["zyx_max"])
        la, ha = np.where(la == ha, la - 0.5, la), np.where(la == ha, ha + 0.5, ha)
        lb, hb = np.where(lb == hb, lb - 0.5, lb), np.where(lb == hb, hb + 0.5, hb)
        ma, mb = _raster(la, ha, shape), _raster(lb, hb, shape)
        ref = (ma & mb).sum() / (ma | mb).sum()
        assert iou[i, j] == pytest.approx(ref, abs=1e-12)


def test_2d_box_equals_single_slice_3d_box():
    flat = LesionBox((4.0, 1.0, 1.0), (4.0, 5.0, 5.0), cls="benign")
    thick = LesionBox((3.5, 1.0, 1.0), (4.5, 5.0, 5.0), cls="benign")
    assert iou_matrix([flat], [thick])[0, 0] == pytest.approx(1.0)


def _brute_best(iou, thr):
    """Largest summed IoU over every one-to-one assignment of pairs with IoU >= thr."""
    n, m = iou.shape
    best = 0.0
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                vals = [iou[r, c] for r, c in zip(rows, cols, strict=True)]
                if all(v >= thr for v in vals):
                    best = max(best, sum(vals))
    return best


def _boxes_2d(rng, n):
    out = []
    for _ in range(n):
        lo = rng.uniform(0, 10, 2)
        out.append(
            {"zyx_min": lo.tolist(), "zyx_max": (lo + rng.uniform(2, 5, 2)).tolist(), "class": "m"}
        )
    return out


@pytest.mark.parametrize("seed", range(5))
def test_hungarian_is_optimal_and_greedy_is_valid(seed):
    rng = np.random.default_rng(seed)
    t, p = _boxes_2d(rng, 4), _boxes_2d(rng, 4)
    iou = iou_matrix(t, p)
    thr = 0.1
    hung = match_boxes(t, p, thr, "hungarian")
    greedy = match_boxes(t, p, thr, "greedy")
    assert sum(m[2] for m in hung) == pytest.approx(_brute_best(iou, thr), abs=1e-12)
    assert sum(m[2] for m in greedy) <= sum(m[2] for m in hung) + 1e-12
    for matches in (hung, greedy):
        assert len({m[0] for m in matches}) == len(matches) == len({m[1] for m in matches})
        assert all(m[2] >= thr for m in matches)


def test_greedy_and_hungarian_differ_where_expected():
    # greedy grabs the single best pair and strands the rest; Hungarian finds two matches
    # IoUs: T1-P1 0.5, T2-P1 3/7, T1-P2 0.45, T2-P2 0
    t = [
        {"zyx_min": [0, 0], "zyx_max": [4, 4], "class": "c"},
        {"zyx_min": [0, 3], "zyx_max": [4, 8], "class": "c"},
    ]
    p = [
        {"zyx_min": [0, 1], "zyx_max": [4, 6], "class": "c"},
        {"zyx_min": [0, 0], "zyx_max": [4, 1.8], "class": "c"},
    ]
    assert len(match_boxes(t, p, 0.3, "hungarian")) == 2
    assert len(match_boxes(t, p, 0.3, "greedy")) == 1


def test_detection_prf_per_class():
    truth = [
        LesionBox((2.0, 0.0, 0.0), (2.0, 4.0, 4.0), cls="malignant"),
        LesionBox((5.0, 10.0, 10.0), (5.0, 14.0, 14.0), cls="benign"),
        LesionBox((7.0, 20.0, 20.0), (7.0, 24.0, 24.0), cls="benign"),
    ]
    pred = [
        LesionBox((2.0, 0.0, 0.5), (2.0, 4.0, 4.5), cls="malignant"),  # IoU 0.78 -> TP
        LesionBox((5.0, 10.0, 10.0), (5.0, 14.0, 14.0), cls="malignant"),  # wrong class -> FP + FN
        LesionBox((9.0, 0.0, 0.0), (9.0, 2.0, 2.0), cls="benign"),  # nowhere -> FP
    ]
    res = detection_prf(truth, pred, iou_threshold=0.5)
    assert (res["malignant"]["tp"], res["malignant"]["fp"], res["malignant"]["fn"]) == (1, 1, 0)
    assert (res["benign"]["tp"], res["benign"]["fp"], res["benign"]["fn"]) == (0, 1, 2)
    assert res["benign"]["f1"] == 0.0 and res["malignant"]["precision"] == 0.5
    assert res["all"]["f1"] == pytest.approx(2 * 1 / (2 + 2 + 2))
    # a stricter threshold drops the shifted match
    assert detection_prf(truth, pred, iou_threshold=0.8)["malignant"]["tp"] == 0
    empty = detection_prf([], [])
    assert math.isnan(empty["all"]["f1"])


def test_bad_input():
    b2 = [{"zyx_min": [0, 0], "zyx_max": [1, 1], "class": "c"}]
    b3 = [{"zyx_min": [0, 0, 0], "zyx_max": [1, 1, 1], "class": "c"}]
    with pytest.raises(InputError, match="3-D"):
        iou_matrix(b2, b3)
    with pytest.raises(InputError, match="iou_threshold"):
        match_boxes(b2, b2, 0.0)
    with pytest.raises(InputError, match="method"):
        match_boxes(b2, b2, 0.5, "random")
