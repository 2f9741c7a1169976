"""Geometry against SimpleITK: index ↔ world for oblique 2D/3D grids, the napari affine, dicts."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from napari_clinlabel.core.image.geometry import Geometry


def _image(ndim: int, seed: int) -> sitk.Image:
    rng = np.random.default_rng(seed)
    img = sitk.Image([5, 7, 9][:ndim], sitk.sitkInt16)
    img.SetSpacing(tuple(rng.uniform(0.3, 3.0, ndim)))
    img.SetOrigin(tuple(rng.uniform(-200, 200, ndim)))
    if ndim == 3:
        d = Rotation.random(random_state=seed).as_matrix()
        if seed % 2:
            d = d @ np.diag([1, -1, 1])  # improper (a flipped axis) as real files have
    else:
        a = rng.uniform(0, 2 * np.pi)
        d = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    img.SetDirection(tuple(d.ravel()))
    return img


def _indices(img: sitk.Image, n: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, s, n) for s in reversed(img.GetSize())], 1)  # (z, y, x)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_index_to_world_is_itk_physical_point(ndim, seed):
    img = _image(ndim, seed)
    g = Geometry.from_itk(img)
    idx = _indices(img)
    expected = np.array(
        [img.TransformIndexToPhysicalPoint([int(v) for v in i[::-1]])[::-1] for i in idx]
    )
    np.testing.assert_allclose(g.index_to_world(idx), expected, atol=1e-9)
    aff = g.napari_affine()
    np.testing.assert_allclose(
        (aff[:ndim, :ndim] @ idx.T).T + aff[:ndim, ndim], expected, atol=1e-9
    )
    np.testing.assert_allclose(g.world_to_index(expected), idx, atol=1e-9)


def test_leading_axes_map_by_identity():
    img = _image(3, 1)
    g = Geometry.from_itk(img)
    aff = g.napari_affine(leading_axes=1)
    assert aff.shape == (5, 5)
    p = aff @ np.array([4, 2, 3, 1, 1.0])
    assert p[0] == 4
    np.testing.assert_allclose(p[1:4], g.index_to_world([2, 3, 1]), atol=1e-9)


def test_dict_round_trip_and_voxel_volume():
    img = _image(3, 2)
    g = Geometry.from_itk(img)
    assert Geometry.from_dict(g.to_dict()) == g
    assert g.voxel_volume_mm3 == pytest.approx(np.prod(img.GetSpacing()))
    assert g.close_to(Geometry.from_dict(g.to_dict()))
