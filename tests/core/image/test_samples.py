"""Sample phantoms: realistic values, fixed label values, geometry, determinism, tiled slide TIFF."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_clinlabel.core.image import samples
from napari_clinlabel.core.image.samples import (
    SAMPLES,
    ct_phantom,
    ct_phantom_truth,
    fundus_phantom,
    mammogram_phantom,
    pathology_slide,
    write_slide_tiff,
)


@pytest.fixture(scope="module")
def ct():
    return ct_phantom_truth()


def test_ct_grid_and_meta(ct):
    vol, labels = ct
    assert vol.array.shape == (48, 160, 160) and vol.array.dtype == np.int16
    assert labels.shape == vol.array.shape and labels.dtype == np.uint8
    assert vol.geometry.spacing == (0.8, 0.8, 2.5)
    assert vol.geometry.origin == (-200.0, -180.0, -300.0)
    assert vol.meta["modality"] == "CT" and vol.meta["window"] == [40.0, 400.0]
    assert vol.meta["series_description"] == "Phantom CT"
    assert vol.series_uid == ct_phantom().series_uid  # deterministic UID


@pytest.mark.parametrize(
    "label,hu",
    [(0, None), (1, 60), (2, 50), (3, 150), (4, 150), (5, 200), (6, 20)],
)
def test_ct_organ_values(ct, label, hu):
    vol, labels = ct
    assert (labels == label).any()
    if hu is not None:
        values = vol.array[labels == label].astype(float)
        assert abs(np.median(values) - hu) < 8  # noise σ ≈ 12 HU
        assert 8 < values.std() < 16


def test_ct_tissues_air_fat_bone(ct):
    vol, labels = ct
    a = vol.array
    assert np.median(a[:, 0, 0]) < -950  # air outside the body
    assert (np.abs(a[labels == 0] + 100) < 40).mean() > 0.1  # fat
    assert (a > 600).sum() > 1000  # spine


def test_ct_liver_on_patient_right_spleen_left(ct):
    vol, labels = ct
    world_x = lambda lab: vol.geometry.index_to_world(np.argwhere(labels == lab)).mean(0)[2]  # noqa: E731
    assert world_x(1) < world_x(2)  # LPS: patient right has smaller x
    assert world_x(3) < world_x(4)


def test_ct_lesions_sizes(ct):
    vol, labels = ct
    lesions, n = ndimage.label(labels == 6)
    assert n >= 5
    vox_mm3 = vol.geometry.voxel_volume_mm3
    diam = [
        2 * (3 * (lesions == i).sum() * vox_mm3 / (4 * np.pi)) ** (1 / 3) for i in range(1, n + 1)
    ]
    assert min(diam) >= 4 and max(diam) <= 22
    spleen_region = ndimage.binary_dilation(labels == 2, iterations=3)
    assert (spleen_region & (labels == 6)).any()  # one lesion in the spleen


def test_ct_oblique_same_voxels_rotated_direction():
    plain, oblique = ct_phantom(), ct_phantom(oblique=True)
    np.testing.assert_array_equal(plain.array, oblique.array)
    d = oblique.geometry.direction_matrix()
    assert not np.allclose(d, np.eye(3))
    np.testing.assert_allclose(d @ d.T, np.eye(3), atol=1e-12)
    assert plain.series_uid != oblique.series_uid


def test_ct_deterministic_per_seed():
    assert ct_phantom(seed=0).sha256 == ct_phantom(seed=0).sha256
    assert ct_phantom(seed=0).sha256 != ct_phantom(seed=1).sha256


def test_mammogram():
    vol = mammogram_phantom()
    a = vol.array
    assert a.ndim == 2 and a.dtype == np.uint16 and vol.geometry.spacing == (0.1, 0.1)
    assert vol.meta["modality"] == "MG"
    assert a.max() > 3500  # calcifications
    breast = a > 500
    assert 0.3 < breast.mean() < 0.9


def test_fundus():
    vol = fundus_phantom()
    a = vol.array
    assert a.shape == (768, 768, 3) and a.dtype == np.uint8 and vol.rgb
    assert a[0, 0].sum() == 0  # black outside the field of view
    centre = a[384, 384]
    assert centre[0] > centre[1] > centre[2]  # orange-red fundus
    yellow = (a[..., 0] > 200) & (a[..., 1] > 180) & (a[..., 2] < 140)
    assert yellow.sum() > 50  # exudates / disc


def test_slide_regions_differ():
    a = pathology_slide((2048, 2048)).array
    assert a.shape == (2048, 2048, 3) and a.dtype == np.uint8
    tiles = a[512:1536, 512:1536].reshape(4, 256, 4, 256, 3).swapaxes(1, 2).reshape(16, 256, 256, 3)
    nuclei = [(t[..., 2] > t[..., 0]).mean() for t in tiles]  # purple (haematoxylin) fraction
    assert max(nuclei) - min(nuclei) > 0.15


def test_slide_tiff_is_tiled_pyramid_equal_to_render(tmp_path):
    path = write_slide_tiff(tmp_path / "s.tif", shape=(700, 900), tile=256, levels=3)
    with tifffile.TiffFile(path) as tf:
        series = tf.series[0]
        assert series.is_pyramidal and len(series.levels) == 3
        assert tf.pages[0].is_tiled and tf.pages[0].tilewidth == 256
        level0 = series.levels[0].asarray()
        level2 = series.levels[2].asarray()
    np.testing.assert_array_equal(level0, pathology_slide((700, 900)).array)
    assert level2.shape == (175, 225, 3)


def test_samples_registry():
    assert set(SAMPLES) == {"ct", "ct_oblique", "mammogram", "fundus", "slide"}
    assert samples.CT_LABELS[6] == "lesion"
