"""A folder holding a good DICOMDIR file set and one truncated DICOM file beside it (a copy cut
off mid-pixel-data, which the DICOMDIR does not list) opens through the reader: the series the
DICOMDIR lists comes back whole, the stray is skipped with one warning line naming it. The same
truncated file listed in the DICOMDIR still refuses (a series must not silently lose a slice)."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel.core.errors import ClinlabelError, ClinlabelWarning
from napari_clinlabel.core.image.io import read_volumes


def _file_set(tmp_path):
    """A series written as a DICOMDIR file set by pydicom's FileSet (the DICOMDIR oracle)."""
    ws = write_series(tmp_path / "src", phantom_stored((4, 8, 8)))
    fs = FileSet()
    for f in ws.files:
        ds = pydicom.dcmread(f)
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20200101", "120000", "1"  # FileSet needs them
        fs.add(ds)
    fs.write(tmp_path / "set")
    return ws, tmp_path / "set"


def _truncate(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) - 40])  # pixel data cut short, header intact
    with pytest.raises(Exception):  # noqa: B017 - pydicom itself cannot decode its pixels
        _ = pydicom.dcmread(dst).pixel_array


def test_truncated_stray_beside_a_dicomdir_is_skipped_with_one_line(tmp_path):
    ws, root = _file_set(tmp_path)
    member = sorted((root / "PT000000" / "ST000000" / "SE000000").iterdir())[0]
    _truncate(member, root / "IM_COPY.dcm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (vol,) = read_volumes(root)
    np.testing.assert_array_equal(vol.array, ws.array)
    ours = [str(w.message) for w in caught if issubclass(w.category, ClinlabelWarning)]
    assert len(ours) == 1 and "IM_COPY.dcm" in ours[0] and "DICOMDIR" in ours[0]
    assert "\n" not in ours[0]


def test_truncated_member_of_the_dicomdir_is_refused(tmp_path):
    _, root = _file_set(tmp_path)
    member = sorted((root / "PT000000" / "ST000000" / "SE000000").iterdir())[0]
    tmp = tmp_path / "cut"
    _truncate(member, tmp)
    member.write_bytes(tmp.read_bytes())
    with pytest.raises(ClinlabelError, match=member.name):
        read_volumes(root)
