"""Label maps: source geometry, integer type, label intent, and no DICOM attribute in any header."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from support.dicom_factory import canaries, write_ct_series

from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.labelmap import render_labelmap, side_file
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.samples import _rotation
from napari_clinlabel.core.schema import load_schema

G = Geometry((0.7, 0.8, 2.5), (-10.0, 20.0, 5.0), tuple(_rotation(20.0, 5.0).ravel()))


def _labels(shape=(4, 12, 10)):
    lab = np.zeros(shape, np.uint8)
    lab[1:3, 2:8, 3:7] = 1
    lab[3, :4, :4] = 6
    return lab


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_geometry(tmp_path, suffix):
    lab = _labels()
    out = tmp_path / f"l{suffix}"
    out.write_bytes(render_labelmap(lab, G, suffix))
    back = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), lab)
    assert Geometry.from_itk(back).close_to(G)  # oblique direction kept (RAS↔LPS handled by ITK)
    assert back.GetPixelID() == sitk.sitkUInt8


def test_nifti_header_label_intent_and_no_text():
    raw = gzip.decompress(render_labelmap(_labels(), G, ".nii.gz"))
    assert struct.unpack("<i", raw[:4])[0] == 348
    assert struct.unpack("<h", raw[70:72])[0] == 2  # datatype DT_UINT8
    assert struct.unpack("<h", raw[68:70])[0] == 1002  # NIFTI_INTENT_LABEL
    assert raw[328:344].rstrip(b"\0") == b"label"
    assert raw[148:228].strip(b"\0") == b"" and raw[228:252].strip(b"\0") == b""


def test_uint16_for_large_values_and_bad_values():
    lab = _labels()
    lab = lab.astype(np.int32)
    lab[0, 0, 0] = 300
    raw = render_labelmap(lab, G, ".nii")
    assert struct.unpack("<h", raw[70:72])[0] == 512  # DT_UINT16
    lab[0, 0, 0] = -1
    with pytest.raises(ExportError, match="non-negative"):
        render_labelmap(lab, G, ".nrrd")
    with pytest.raises(ExportError, match="axes"):
        render_labelmap(np.zeros((3, 3), np.uint8), G, ".nrrd")


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_no_phi_from_dicom_source(tmp_path, suffix):
    """SimpleITK copies PatientName into NRRD/MHA headers of DICOM-read images; ours never do."""
    phi = canaries("LEAK")
    write_ct_series(tmp_path / "ct", np.zeros((4, 12, 10), np.int16), G, phi=phi)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    img = reader.Execute()
    one = sitk.ReadImage(str(tmp_path / "ct" / "ct_000.dcm"))  # carries the DICOM dictionary
    if suffix != ".nii.gz":  # the pitfall is real: a naive write leaks PatientName & co.
        naive = tmp_path / f"naive{suffix}"
        sitk.WriteImage(one, str(naive))
        assert phi["PatientName"].encode() in naive.read_bytes()
    ours = render_labelmap(_labels(), Geometry.from_itk(img), suffix)
    raw = gzip.decompress(ours) if suffix == ".nii.gz" else ours
    for value in phi.values():
        assert value.encode() not in raw
    assert b"0010|" not in raw and b"0008|" not in raw and b"19610413" not in raw


def test_side_file_names_codes_and_volume():
    schema = load_schema("abdomen-ct")
    lab = _labels()
    side = side_file(lab, G, schema, {"seq": 3, "hash": "ab" * 32}, "f" * 64, "labels", "l.nii.gz")
    liver = side["labels"][0]
    assert liver["name"] == "liver" and liver["color"] == "#dd8265"
    assert liver["category"]["value"] == "91723000"
    assert liver["voxels"] == int((lab == 1).sum())
    assert liver["volume_ml"] == pytest.approx((lab == 1).sum() * 0.7 * 0.8 * 2.5 / 1000)
    assert side["schema"] == schema.ref() and side["log_head"]["seq"] == 3
