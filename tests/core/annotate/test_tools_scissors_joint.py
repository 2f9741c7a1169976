"""Scissors and joint smoothing against constructed shapes and scipy (oracles not written here)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_clinlabel.core.annotate.tools import planned_change
from napari_clinlabel.core.annotate.tools.morphology import joint_smoothing, smoothing
from napari_clinlabel.core.annotate.tools.scissors import scissors
from napari_clinlabel.core.errors import InputError

SPACING = (2.0, 0.8, 0.8)


def _apply(labels, result, **kw):
    idx, _old, new = planned_change(labels, result, **kw)
    out = labels.copy()
    out.reshape(-1)[idx] = new
    return out


def _two_labels():
    lab = np.zeros((6, 40, 40), np.uint8)
    lab[:, 5:35, 5:20] = 1
    lab[:, 5:35, 20:35] = 2
    return lab


def test_rectangle_inside_on_the_slice_and_outside_through_the_volume():
    lab = _two_labels()
    rect = [[3, 10, 10], [3, 10, 30], [3, 20, 30], [3, 20, 10]]
    out = _apply(lab, scissors(lab, rect, "rectangle", value=1, side="inside"))
    expect = lab.copy()
    expect[3, 10:21, 10:20] = 0  # label 1 only, pixel centres inside (edges included)
    assert np.array_equal(out, expect)
    res = scissors(lab, rect, "rectangle", value=None, side="outside", extent="volume")
    out = _apply(lab, res)
    keep = np.zeros(lab.shape, bool)
    keep[:, 10:21, 10:31] = True
    assert np.array_equal(out, np.where(keep, lab, 0))
    assert res.edits == {1, 2} and res.params["extent"] == "volume"
    assert res.seeds["vertices"][0] == [3.0, 10.0, 10.0]


def test_circle_matches_a_disk_and_polygon_and_locks():
    lab = _two_labels()
    cy, cx, r = 20.0, 20.0, 8.0
    corners = [[2, cy - r, cx - r], [2, cy - r, cx + r], [2, cy + r, cx + r], [2, cy + r, cx - r]]
    out = _apply(lab, scissors(lab, corners, "ellipse", value=None))
    yy, xx = np.mgrid[:40, :40]
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    cut = (lab[2] != 0) & (out[2] == 0)
    assert (cut != (disk & (lab[2] != 0))).sum() <= 8  # the 256-gon vs the true circle
    res = scissors(lab, [[1, 5, 5], [1, 5, 30], [1, 30, 5]], "polygon", value=None)
    locked = _apply(lab, res, locked={2})
    assert (locked[lab == 2] == 2).all() and (locked[1][lab[1] == 1] == 0).any()
    with pytest.raises(InputError):
        scissors(lab, [[1, 5, 5], [1, 6, 6]], "polygon", value=1)
    with pytest.raises(InputError):
        scissors(lab, [[1, 0, 0], [1, 0, 2], [1, 2, 0]], "polygon", value=2)  # nothing there


def test_fill_inside_paints_the_label_and_leaves_others():
    lab = _two_labels()
    rect = [[2, 0, 0], [2, 0, 39], [2, 3, 39], [2, 3, 0]]  # rows 0..3, empty there
    res = scissors(lab, rect, "rectangle", value=4, operation="fill")
    out = _apply(lab, res)
    expect = lab.copy()
    expect[2, 0:4, :] = 4
    assert np.array_equal(out, expect) and res.params["operation"] == "fill"
    over = _apply(lab, scissors(lab, [[2, 0, 0], [2, 0, 39], [2, 39, 39], [2, 39, 0]],
                                "rectangle", value=4, operation="fill"))  # fmt: skip
    assert (over[2][lab[2] != 0] == lab[2][lab[2] != 0]).all()  # other labels kept
    with pytest.raises(InputError):
        scissors(lab, rect, "rectangle", value=None, operation="fill")


def test_joint_smoothing_is_argmax_of_blurred_one_hots_and_keeps_locks():
    rng = np.random.default_rng(0)
    lab = _two_labels()
    noisy = lab.copy()
    flip = rng.random(lab.shape) < 0.05
    noisy[flip] = rng.integers(0, 3, int(flip.sum()))
    res = joint_smoothing(noisy, 1.0, SPACING)
    out = _apply(noisy, res)
    # oracle: scipy Gaussian (sigma in voxels) per one-hot, argmax
    sig = [1.0 / s for s in SPACING]
    stack = np.stack([ndi.gaussian_filter((noisy == v).astype(float), sig) for v in (0, 1, 2)])
    expect = stack.argmax(axis=0)
    assert (out != expect).mean() < 0.01
    assert (out != lab).sum() < 0.3 * (noisy != lab).sum()  # noise mostly gone
    assert res.params == {"method": "joint", "sigma_mm": 1.0, "labels": [1, 2]}
    kept = _apply(noisy, joint_smoothing(noisy, 1.0, SPACING, locked=[2]))
    assert np.array_equal(kept == 2, noisy == 2)  # locked: neither moved nor grown
    assert _apply(noisy, smoothing(noisy, 1, "joint", 1.0, SPACING)).shape == lab.shape
    with pytest.raises(InputError):
        joint_smoothing(np.zeros((3, 8, 8), np.uint8), 1.0, SPACING)
