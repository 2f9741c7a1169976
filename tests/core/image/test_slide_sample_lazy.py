"""The lazy slide sample: levels render only what is indexed, and hold the pixels of the slide
file written tile by tile (read back by tifffile, the oracle), level for level."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_clinlabel.core.image.samples import SlideLevel, lazy_pathology_slide, write_slide_tiff


def test_lazy_levels_match_the_written_pyramid(tmp_path):
    shape = (600, 800)
    vol = lazy_pathology_slide(shape, levels=3)
    assert vol.multiscale and vol.rgb and vol.geometry.spacing == pytest.approx((0.00025,) * 2)
    assert vol.meta["sha256_kind"] == "recipe" and len(vol.sha256) == 64
    assert all(lv.rendered_pixels == 0 for lv in vol.array)  # made, nothing rendered
    path = write_slide_tiff(tmp_path / "s.tif", shape=shape, tile=256, levels=3)
    with tifffile.TiffFile(path) as tf:
        written = [lv.asarray() for lv in tf.series[0].levels]
    for lazy, ref in zip(vol.array, written, strict=True):
        assert lazy.shape == ref.shape
        np.testing.assert_array_equal(np.asarray(lazy), ref)
    # a region (with steps and a channel) renders that region only
    level = SlideLevel(shape, 0, 1)
    got = level[100:140:2, 300:364, 1]
    np.testing.assert_array_equal(got, written[0][100:140:2, 300:364, 1])
    assert level.rendered_pixels == 40 * 64
    assert level[5, 7].tolist() == written[0][5, 7].tolist()
    with pytest.raises(IndexError):
        level[600, 0]


def test_recipe_digest_names_shape_and_seed():
    a, b = lazy_pathology_slide((256, 256)), lazy_pathology_slide((256, 256), seed=1)
    assert a.sha256 == lazy_pathology_slide((256, 256)).sha256 != b.sha256
    assert a.sha256 != lazy_pathology_slide((256, 512)).sha256
