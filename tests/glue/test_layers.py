"""Qt-free napari glue: layer data tuples, contrast, metadata round trip, reader dispatch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_clinlabel._reader import get_reader
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.samples import ct_phantom, fundus_phantom
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.glue.layers import contrast_limits, volume_from_layer, volume_to_layer_data


def test_ct_layer_tuple_has_affine_window_and_metadata():
    vol = ct_phantom(oblique=True, shape=(8, 32, 32))
    data, kwargs, kind = volume_to_layer_data(vol)
    assert kind == "image" and data is vol.array
    np.testing.assert_allclose(kwargs["affine"], vol.geometry.napari_affine())
    assert kwargs["contrast_limits"] == [-160.0, 240.0]
    meta = kwargs["metadata"]["clinlabel"]
    assert meta["geometry"] == vol.geometry.to_dict() and meta["shape"] == [8, 32, 32]
    assert meta["dtype"] == "int16" and meta["leading_axes"] == 0 and len(meta["sha256"]) == 64


def test_contrast_limits_by_modality():
    rng = np.random.default_rng(0)
    mr = Volume(
        rng.normal(500, 100, (10, 20, 20)).astype(np.float32),
        Geometry.identity(3),
        {"modality": "MR"},
    )
    lo, hi = contrast_limits(mr)
    assert 200 < lo < 300 and 700 < hi < 800  # ≈ 0.5 and 99.5 percentiles of N(500, 100)
    ct = Volume(np.zeros((2, 2, 2), np.int16), Geometry.identity(3), {"modality": "CT"})
    assert contrast_limits(ct) == [-160.0, 240.0]  # soft-tissue window without a DICOM one
    assert contrast_limits(fundus_phantom()) is None  # RGB uint8: napari's own range


def test_volume_from_layer_round_trip():
    vol = ct_phantom(shape=(6, 16, 16))
    data, kwargs, _ = volume_to_layer_data(vol)
    layer = SimpleNamespace(data=data, metadata=kwargs["metadata"], multiscale=False, name="CT")
    back = volume_from_layer(layer)
    assert back.geometry == vol.geometry and back.sha256 == vol.sha256
    assert back.series_uid == vol.series_uid and "geometry" not in back.meta
    with pytest.raises(InputError, match="not opened by napari-clinlabel"):
        volume_from_layer(SimpleNamespace(data=data, metadata={}, name="other"))


def test_get_reader_claims_only_what_it_reads(tmp_path):
    for name in ("a.nii.gz", "b.nrrd", "c.mha", "d.dcm", "e.png", "f.tiff"):
        assert get_reader(str(tmp_path / name)) is not None
    assert get_reader(str(tmp_path / "notes.txt")) is None
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    assert get_reader(str(tmp_path / "plain")) is None  # a folder without DICOM
    (tmp_path / "data.zarr").mkdir()
    assert get_reader(str(tmp_path / "data.zarr")) is None
    assert get_reader([str(tmp_path / "a.nii.gz"), str(tmp_path / "notes.txt")]) is None


def test_ct_in_hu_without_modality_gets_soft_tissue_window():
    """NIfTI/NRRD carry no modality: a volume whose darkest voxels are air in HU is shown as CT."""
    from napari_clinlabel.core.image.samples import ct_phantom
    from napari_clinlabel.glue.layers import SOFT_TISSUE_WINDOW, contrast_limits

    vol = ct_phantom(shape=(8, 64, 64))
    vol.meta.pop("modality", None)
    vol.meta.pop("window", None)
    c, w = SOFT_TISSUE_WINDOW
    assert contrast_limits(vol) == [c - w / 2, c + w / 2]
    # an MR-like volume (no negative values) keeps the percentile range
    vol.array = (vol.array - vol.array.min()).astype("int16")
    lo, hi = contrast_limits(vol)
    assert lo >= 0 and (lo, hi) != (c - w / 2, c + w / 2)
