"""Segmentation metrics against independent oracles (SimpleITK overlap filter, brute-force KD-tree)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.quality.metrics import (
    dice,
    hd95_mm,
    label_map_agreement,
    mean_surface_distance_mm,
    surface_distances_mm,
    volume_difference_ml,
)


def _ellipsoid(shape, centre, radii):
    zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in shape)]
    return (
        ((zz - centre[0]) / radii[0]) ** 2
        + ((yy - centre[1]) / radii[1]) ** 2
        + ((xx - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def _two_readers(shape=(24, 40, 44), seed=0):
    rng = np.random.default_rng(seed)
    a = np.zeros(shape, np.uint8)
    b = np.zeros(shape, np.uint8)
    a[_ellipsoid(shape, (12, 20, 20), (8, 12, 10))] = 1
    b[_ellipsoid(shape, (13, 21, 19), (7, 13, 11))] = 1
    a[_ellipsoid(shape, (6, 8, 34), (4, 5, 6))] = 2
    b[_ellipsoid(shape, (6, 9, 33), (5, 5, 5))] = 2
    a[_ellipsoid(shape, (20, 32, 36), (3, 4, 4))] = 4  # label 4 touches nothing in B
    b[_ellipsoid(shape, (3, 35, 5), (2, 3, 3))] = 5  # label 5 only in B
    # a little noise so shapes are not perfectly smooth
    flip = rng.random(shape) < 0.01
    b[flip & (b == 1)] = 0
    return a, b


def _surface_independent(mask):
    """Surface voxels by an explicit 6-neighbour check on a zero-padded copy (no erosion call)."""
    p = np.pad(mask, 1)
    inner = np.ones_like(p)
    for axis in range(mask.ndim):
        inner &= np.roll(p, 1, axis) & np.roll(p, -1, axis)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    return mask & ~inner[core]


def _brute_directed(a, b, spacing):
    pa = np.argwhere(_surface_independent(a)) * np.asarray(spacing)
    pb = np.argwhere(_surface_independent(b)) * np.asarray(spacing)
    d, _ = cKDTree(pb).query(pa)
    return d


def _sitk_dice(a, b, label, spacing=(1.0, 1.0, 1.0)):
    ia, ib = sitk.GetImageFromArray(a), sitk.GetImageFromArray(b)
    ia.SetSpacing(spacing[::-1])
    ib.SetSpacing(spacing[::-1])
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(ia, ib)
    return f.GetDiceCoefficient(label)


def test_dice_matches_simpleitk_per_label():
    a, b = _two_readers()
    res = label_map_agreement(a, b)
    assert set(res) == {"1", "2", "4", "5"}
    for v in (1, 2):
        assert res[str(v)]["dice"] == pytest.approx(_sitk_dice(a, b, v), abs=1e-9)
        assert dice(a == v, b == v) == pytest.approx(_sitk_dice(a, b, v), abs=1e-9)
    assert res["4"]["dice"] == 0.0 and res["5"]["dice"] == 0.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.9)])
def test_hd95_and_msd_match_bruteforce_kdtree(spacing):
    a, b = _two_readers()
    geom = Geometry(tuple(reversed(spacing)), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    res = label_map_agreement(a, b, geom)
    for v in (1, 2):
        ma, mb = a == v, b == v
        d_ab, d_ba = _brute_directed(ma, mb, spacing), _brute_directed(mb, ma, spacing)
        expected = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
        pooled = np.percentile(np.concatenate([d_ab, d_ba]), 95)
        msd = np.concatenate([d_ab, d_ba]).mean()
        assert res[str(v)]["hd95_mm"] == pytest.approx(expected, abs=1e-9)
        assert hd95_mm(ma, mb, spacing) == pytest.approx(expected, abs=1e-9)
        assert hd95_mm(ma, mb, spacing, pooled=True) == pytest.approx(pooled, abs=1e-9)
        assert res[str(v)]["mean_surface_distance_mm"] == pytest.approx(msd, abs=1e-9)
        assert mean_surface_distance_mm(ma, mb, spacing) == pytest.approx(msd, abs=1e-9)
        mine_ab, mine_ba = surface_distances_mm(ma, mb, spacing)
        np.testing.assert_allclose(np.sort(mine_ab), np.sort(d_ab), atol=1e-9)
        np.testing.assert_allclose(np.sort(mine_ba), np.sort(d_ba), atol=1e-9)


def test_hd95_known_shift_in_mm():
    # two identical boxes shifted by 3 slices of 2 mm: every directed distance <= 6 mm
    a = np.zeros((20, 12, 12), bool)
    b = np.zeros_like(a)
    a[4:12, 3:9, 3:9] = True
    b[7:15, 3:9, 3:9] = True
    hd = hd95_mm(a, b, (2.0, 0.5, 0.5))
    assert 0 < hd <= 6.0 + 1e-9
    # a box touching the array border still has a surface there
    c = np.zeros_like(a)
    c[0:8, 3:9, 3:9] = True
    assert hd95_mm(c, c, (2.0, 0.5, 0.5)) == 0.0


def test_oblique_geometry_uses_spacing_only():
    a, b = _two_readers()
    th = math.radians(30)
    rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
    obl = Geometry((0.8, 0.6, 2.0), (10.0, -5.0, 3.0), tuple(rot.ravel()))
    axial = Geometry((0.8, 0.6, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    r1, r2 = label_map_agreement(a, b, obl), label_map_agreement(a, b, axial)
    for v in r1:
        for k in r1[v]:
            assert r1[v][k] == pytest.approx(r2[v][k], abs=1e-9)
    assert r1["1"]["volume_difference_ml"] == pytest.approx(
        (np.count_nonzero(b == 1) - np.count_nonzero(a == 1)) * 0.8 * 0.6 * 2.0 / 1000, abs=1e-12
    )


def test_empty_conventions():
    z = np.zeros((5, 6, 7), bool)
    m = z.copy()
    m[1:3, 2:4, 2:5] = True
    assert (
        math.isnan(dice(z, z))
        and math.isnan(hd95_mm(z, z))
        and math.isnan(mean_surface_distance_mm(z, z))
    )
    assert (
        dice(m, z) == 0.0
        and hd95_mm(m, z) == math.inf
        and mean_surface_distance_mm(z, m) == math.inf
    )
    assert volume_difference_ml(m, z, 1000.0) == pytest.approx(-12.0)
    res = label_map_agreement(m.astype(np.uint8), z.astype(np.uint8))
    assert res["1"]["hd95_mm"] == math.inf and res["1"]["voxels_b"] == 0
    assert label_map_agreement(z.astype(np.uint8), z.astype(np.uint8)) == {}


def test_2d_masks():
    a = np.zeros((30, 30), np.uint16)
    b = np.zeros_like(a)
    a[5:20, 5:20] = 3
    b[6:22, 4:19] = 3
    res = label_map_agreement(a, b, Geometry((0.5, 0.25), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0)))
    d_ab, d_ba = (
        _brute_directed(a == 3, b == 3, (0.25, 0.5)),
        _brute_directed(b == 3, a == 3, (0.25, 0.5)),
    )
    assert res["3"]["hd95_mm"] == pytest.approx(
        max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
    )
    assert res["3"]["dice"] == pytest.approx(_sitk_dice(a, b, 3, (1.0, 1.0)), abs=1e-9)


def test_bad_input_shapes_dtype_and_negative_labels():
    with pytest.raises(InputError, match="different shapes"):
        label_map_agreement(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(InputError, match="different shapes"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(InputError, match="integers"):
        label_map_agreement(np.zeros((4, 4), float), np.zeros((4, 4), float))
    with pytest.raises(InputError, match="negative"):
        label_map_agreement(np.full((4, 4), -1, np.int16), np.zeros((4, 4), np.int16))
    with pytest.raises(InputError, match="spacing"):
        hd95_mm(np.ones((3, 3), bool), np.ones((3, 3), bool), (1.0, 0.0))
