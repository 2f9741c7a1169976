"""Editing tools (margin, hollow, smoothing, local threshold, logical, locks) against oracles not
written here: scipy's Euclidean distance transform with voxel spacing, and constructed shapes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_clinlabel.core.annotate.tools import planned_change, tool_source
from napari_clinlabel.core.annotate.tools.logical import logical
from napari_clinlabel.core.annotate.tools.morphology import (
    hollow,
    local_threshold,
    margin,
    smoothing,
)
from napari_clinlabel.core.errors import ClinlabelError, InputError

SPACING = (2.5, 0.8, 0.8)  # anisotropic, like CT


def _ball(shape=(24, 60, 60), r_mm=10.0, spacing=SPACING) -> np.ndarray:
    c = [(n - 1) / 2 for n in shape]
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    d2 = ((zz - c[0]) * spacing[0]) ** 2 + ((yy - c[1]) * spacing[1]) ** 2
    return d2 + ((xx - c[2]) * spacing[2]) ** 2 <= r_mm**2


def _apply(labels, result, **kw):
    idx, _old, new = planned_change(labels, result, **kw)
    out = labels.copy()
    out.reshape(-1)[idx] = new
    return out


@pytest.mark.parametrize("mm", [3.0, -3.0, 5.0])
def test_margin_matches_scipy_distance_in_mm(mm):
    labels = _ball().astype(np.uint8)
    out = _apply(labels, margin(labels, 1, mm, SPACING)) == 1
    if mm > 0:  # oracle: distance (mm) from each free voxel to the nearest labelled voxel
        expect = (ndi.distance_transform_edt(labels == 0, sampling=SPACING) <= mm) | (labels == 1)
    else:  # mirror: a labelled voxel stays when every free voxel is more than |mm| away
        expect = ndi.distance_transform_edt(labels == 1, sampling=SPACING) > -mm
    assert (out != expect).sum() <= 0.005 * expect.sum()  # float ties on the sphere only
    if mm > 0:
        assert out.sum() > labels.sum()
        # anisotropic: the margin spans more voxels in-plane than across slices
        grown_y = np.flatnonzero(out[12, :, 30]).size - np.flatnonzero(labels[12, :, 30]).size
        grown_z = np.flatnonzero(out[:, 30, 30]).size - np.flatnonzero(labels[:, 30, 30]).size
        assert grown_y > grown_z
    else:
        assert out.sum() < labels.sum()


def test_hollow_inside_shell_has_the_thickness():
    labels = _ball(r_mm=12.0).astype(np.uint8)
    out = _apply(labels, hollow(labels, 1, 2.0, SPACING, "inside")) == 1
    depth = ndi.distance_transform_edt(labels == 1, sampling=SPACING)
    assert out.any() and not (out & (labels == 0)).any()
    assert depth[out].max() <= 2.0 + 0.8 + 1e-6  # within a voxel of the requested thickness
    assert not out[12, 30, 30]  # the centre is hollow
    with pytest.raises(InputError):
        hollow(labels, 1, 0.0, SPACING)


def test_smoothing_on_a_thin_stack_and_each_method():
    labels = np.zeros((3, 40, 40), np.uint8)  # 3 slices: SimpleITK's Gaussian would refuse
    labels[:, 10:30, 10:30] = 1
    labels[:, 20, 30:34] = 1  # a one-voxel spur
    labels[:, 18:21, 19] = 0  # a thin cut
    opened = _apply(labels, smoothing(labels, 1, "opening", 1.0, (1.0, 0.8, 0.8)))
    assert not opened[1, 20, 32]  # spur gone
    closed = _apply(labels, smoothing(labels, 1, "closing", 1.0, (1.0, 0.8, 0.8)))
    assert closed[1, 19, 19]  # cut closed
    median = _apply(labels, smoothing(labels, 1, "median", 1.0, (1.0, 0.8, 0.8)))
    assert not median[1, 20, 33]
    with pytest.raises(InputError):
        smoothing(labels, 1, "median", 0.1, (1.0, 0.8, 0.8))
    with pytest.raises(ClinlabelError):
        smoothing(labels, 1, "gaussian", 1.0, (1.0, 0.8, 0.8))


def _dumbbell() -> np.ndarray:
    img = np.full((5, 60, 100), -100, np.int16)
    img[:, 10:50, 5:45] = 60  # left blob
    img[:, 10:50, 55:95] = 60  # right blob
    img[:, 29:31, 45:55] = 60  # a 2-voxel neck (1.6 mm)
    return img


def test_local_threshold_min_diameter_cuts_the_neck():
    img = _dumbbell()
    both = local_threshold(img, (2, 30, 20), 1, 0, 100, SPACING)
    labels = np.zeros(img.shape, np.uint8)
    out = _apply(labels, both)
    assert out[2, 30, 70] == 1  # leaked through the neck
    cut = _apply(labels, local_threshold(img, (2, 30, 20), 1, 0, 100, SPACING, min_diameter_mm=4))
    assert cut[2, 30, 20] == 1 and cut[2, 30, 70] == 0
    assert (cut[:, 10:50, 5:45] == 1).mean() > 0.95  # the clicked blob keeps its corners
    with pytest.raises(InputError):
        local_threshold(img, (2, 0, 0), 1, 0, 100, SPACING)  # clicked outside the window
    with pytest.raises(InputError):
        local_threshold(img, (9, 0, 0), 1, 0, 100, SPACING)  # outside the image


def test_logical_operations():
    lab = np.zeros((3, 10, 10), np.uint8)
    lab[:, 1:8, 1:8] = 1
    lab[:, 3:5, 3:5] = 2  # inside 1 (a lesion in an organ)
    lab[:, 8:10, 8:10] = 3
    added = _apply(lab, logical(lab, 1, "add", 3))
    assert (added[:, 8:10, 8:10] == 1).all() and not (added == 3).any()
    copied = _apply(lab, logical(lab, 1, "copy", 3))
    assert (copied == 1).sum() == (lab == 3).sum() and (copied == 3).sum() == 0
    inv = _apply(lab, logical(lab, 3, "invert"))
    assert (inv == 3).sum() == (lab == 0).sum() and (inv[lab == 3] == 0).all()
    # intersect 2 with 1's filled region keeps all of 2; subtract removes it
    assert (_apply(lab, logical(lab, 2, "intersect", 1)) == 2).sum() == (lab == 2).sum()
    assert (_apply(lab, logical(lab, 2, "subtract", 1)) == 2).sum() == 0
    with pytest.raises(InputError):
        logical(lab, 1, "add", 1)
    with pytest.raises(ClinlabelError):
        logical(lab, 1, "xor", 2)


def test_locked_label_and_other_labels_are_never_painted_over():
    lab = np.zeros((3, 10, 10), np.uint8)
    lab[:, :, :3] = 2
    lab[:, :, 7:] = 4
    res = margin(np.where(lab == 0, 1, lab).astype(np.uint8) * 0 + (lab == 2), 1, 10.0, (1, 1, 1))
    kept = _apply(lab, res)
    assert (kept[lab == 2] == 2).all() and (kept[lab == 4] == 4).all()
    over = _apply(lab, res, overwrite_other_labels=True, locked={4})
    assert (over[lab == 4] == 4).all()  # locked survives overwrite
    assert (over[lab == 2] == 2).all()  # the margin tool's own label 1 came from label-2 voxels
    assert tool_source("margin") == {"kind": "tool", "name": "margin", "version": "1"}


@pytest.mark.parametrize("spacing,radius", [((2.5, 0.7, 0.7), 1.5), ((1.0, 1.0, 1.0), 3.0)])
def test_ball_erosion_and_dilation_match_simpleitk(spacing, radius):
    import SimpleITK as sitk

    from napari_clinlabel.core.annotate.tools.morphology import ball_offsets, dilate, erode

    a = np.random.default_rng(1).random((12, 30, 30)) > 0.3
    off = ball_offsets(radius, spacing)
    r = [int(round(radius / s)) for s in reversed(spacing)]
    img = sitk.GetImageFromArray(a.astype(np.uint8))
    d = sitk.BinaryDilate(img, r, sitk.sitkBall, foregroundValue=1)
    e = sitk.BinaryErode(img, r, sitk.sitkBall, foregroundValue=1, boundaryToForeground=True)
    assert np.array_equal(dilate(a, off), sitk.GetArrayFromImage(d) > 0)
    assert np.array_equal(erode(a, off), sitk.GetArrayFromImage(e) > 0)


def test_local_threshold_box_grows_until_the_region_fits():
    """A structure larger than the first box: the box grows on the touched sides; the region
    equals the one scipy finds on the whole image (opening by the same ball)."""
    img = np.full((10, 120, 120), -100, np.int16)
    img[2:8, 5:115, 10:100] = 60
    img[2:8, 60:62, 100:118] = 60  # a 2-voxel neck to a blob
    img[2:8, 40:80, 105:118] = 60
    res = local_threshold(img, (5, 30, 30), 1, 0, 100, SPACING, min_diameter_mm=4, start_mm=8)
    out = _apply(np.zeros(img.shape, np.uint8), res) == 1
    win = img >= 0
    from napari_clinlabel.core.annotate.tools.morphology import ball_offsets

    off = ball_offsets(2.0, SPACING)
    st = np.zeros((3, 7, 7), bool)
    st[1, 3, 3] = True
    for d in off:
        st[tuple(np.asarray(d) + (1, 3, 3))] = True
    core, _ = ndi.label(ndi.binary_erosion(win, st, border_value=1))
    core = core == core[5, 30, 30]
    expect = ndi.binary_dilation(core, st) & win
    assert np.array_equal(out, expect)
    assert out[5, 10, 20] and not out[5, 60, 110]  # the far corner reached, the neck cut
    assert res.roi[1].stop - res.roi[1].start > 2 * 8 / SPACING[1]  # the box grew


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_planned_change_in_a_box_follows_the_rules_voxel_by_voxel(dtype):
    """Against the rule written out per voxel with numpy masks (locks, other labels, the box)."""
    from napari_clinlabel.core.annotate.tools import ToolResult

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 5, (10, 24, 20)).astype(dtype)
    roi = (slice(2, 9), slice(3, 20), slice(5, 17))
    box = tuple(r.stop - r.start for r in roi)
    where = rng.random(box) > 0.5
    target = rng.integers(0, 4, box).astype(dtype)
    for overwrite in (False, True):
        for locked in ((), (2,), (1, 4)):
            res = ToolResult("t", where, target, frozenset({1, 3}), roi=roi)
            out = _apply(labels, res, overwrite_other_labels=overwrite, locked=locked)
            cur = labels[roi]
            ok = where & ~np.isin(cur, locked)
            if not overwrite:
                ok &= np.isin(cur, (0, 1, 3))
            expect = labels.copy()
            expect[roi] = np.where(ok, target, cur)
            assert np.array_equal(out, expect)
