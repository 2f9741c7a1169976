"""A multi-volume enhanced DICOM object (several temporal positions at the same slice positions)
opens as 4D (t, z, y, x), volumes ordered by the per-frame TemporalPositionIndex.

Oracles: the synthetic writer's known inputs (each frame's stored values, position and temporal
index, written with pydicom in shuffled frame order) and the DICOM standard's voxel centres from
each frame's ImagePositionPatient / ImageOrientationPatient / PixelSpacing; napari's
``data_to_world`` for the 4D layer.
"""

from __future__ import annotations

import random

import napari
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from support.dicom_series_factory import _base_dataset, _set_pixels, phantom_stored

from napari_clinlabel.core.errors import GeometryError
from napari_clinlabel.core.image.dicom.volume import read_dicom_folder
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.glue.layers import volume_to_layer_data

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def write_enhanced_mr_4d(path, stored, *, spacing=(0.9, 0.8, 3.0), origin=(-50.0, -40.0, 10.0),
                         iop=(1.0, 0.0, 0.0, 0.0, 0.8660254, -0.5), seed=0, drop=None):  # fmt: skip
    """One Enhanced MR file of ``stored`` (t, z, y, x): frames shuffled, per-frame position,
    TemporalPositionIndex and DimensionIndexValues (temporal, in-stack position)."""
    nt, nz = stored.shape[:2]
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    frames = [(t, k) for t in range(nt) for k in range(nz) if (t, k) != drop]
    random.Random(seed).shuffle(frames)
    ds = _base_dataset(ENHANCED_MR, pydicom.uid.generate_uid())
    ds.Modality = "MR"
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid()
    ds.SeriesDescription = "Synthetic dynamic MR"
    ds.InstanceNumber = 1
    ds.NumberOfFrames = len(frames)
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
    pm.SliceThickness = f"{spacing[2]:g}"
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [f"{v:.7f}" for v in iop]
    shared.PlaneOrientationSequence = Sequence([po])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame, positions = [], {}
    for t, k in frames:
        ipp = np.asarray(origin) + k * spacing[2] * normal
        positions[k] = ipp
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        fg.PlanePositionSequence = Sequence([pp])
        fc = Dataset()
        fc.TemporalPositionIndex = t + 1
        fc.InStackPositionNumber = k + 1
        fc.DimensionIndexValues = [t + 1, k + 1]
        fg.FrameContentSequence = Sequence([fc])
        per_frame.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _set_pixels(ds, np.stack([stored[t, k] for t, k in frames]))
    ds.save_as(path, enforce_file_format=True)
    return positions


def test_multi_volume_enhanced_mr_opens_as_4d(tmp_path):
    stored = np.stack([phantom_stored((4, 6, 7), seed=s) for s in range(3)])  # (t, z, y, x)
    positions = write_enhanced_mr_4d(tmp_path / "dyn.dcm", stored)
    (vol,) = read_volumes(tmp_path / "dyn.dcm")
    assert vol.array.shape == (3, 4, 6, 7) and vol.leading_axes == 1
    assert vol.meta["n_volumes"] == 3
    np.testing.assert_array_equal(vol.array, stored)  # no rescale: stored values, t then z
    row_mm, col_mm = 0.8, 0.9
    iop = np.array([1.0, 0.0, 0.0, 0.0, 0.8660254, -0.5])
    data, kwargs, _ = volume_to_layer_data(vol)
    layer = napari.layers.Image(data, affine=kwargs["affine"])
    for k, ipp in positions.items():
        for j, i in [(0, 0), (5, 6), (2, 3)]:
            truth = ipp + i * col_mm * iop[:3] + j * row_mm * iop[3:]  # PS3.3 C.7.6.2.1.1
            np.testing.assert_allclose(vol.geometry.index_to_world((k, j, i))[::-1], truth,
                                       atol=1e-4)  # fmt: skip
            for t in range(3):  # every volume at the same place; the t axis maps by identity
                w = np.asarray(layer.data_to_world((t, k, j, i)), float)
                assert w[0] == pytest.approx(t)
                np.testing.assert_allclose(w[1:][::-1], truth, atol=1e-4)


def test_incomplete_multi_volume_enhanced_object_is_refused_in_one_line(tmp_path):
    stored = np.stack([phantom_stored((4, 6, 7), seed=s) for s in range(2)])
    write_enhanced_mr_4d(tmp_path / "dyn.dcm", stored, drop=(1, 2))  # one frame missing
    with pytest.raises(GeometryError) as exc:
        read_dicom_folder(tmp_path)
    assert "different numbers of frames" in str(exc.value) and "\n" not in str(exc.value)
