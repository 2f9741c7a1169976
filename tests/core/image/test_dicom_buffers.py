"""Opening a series from bytes already in memory (a PACS pull) gives SimpleITK's voxels.

Oracle: SimpleITK's own series read of the same files (GDCM decodes and rescales), for the fast
path (Pixel Data read straight from the buffer) and the cases it hands to pydicom (high bits set
beyond BitsStored, negative values), and for a non-integral rescale (read through SimpleITK).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support.dicom_series_factory import write_series

from napari_clinlabel.core.image.dicom.volume import read_dicom_buffers, read_dicom_folder


def _sitk_read(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


@pytest.mark.parametrize(
    ("stored", "bits", "rescale"),
    [
        (np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5) * 7, 12, (1.0, -1024.0)),
        (np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5) - 60, 16, (1.0, 0.0)),
        (np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5) - 60, 12, (1.0, 0.0)),
        (np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5) * 500, 12, (1.0, -1024.0)),
        (np.arange(4 * 6 * 5, dtype=np.uint16).reshape(4, 6, 5), 16, (2.5, -10.0)),
    ],
)
def test_in_memory_open_equals_simpleitk_read_of_the_files(tmp_path, stored, bits, rescale):
    ws = write_series(tmp_path / "s", stored, bits_stored=bits, rescale=rescale)
    ref = _sitk_read(tmp_path / "s")
    (vol,) = read_dicom_buffers({f: f.read_bytes() for f in ws.files})
    assert vol.array.dtype == ref.dtype
    np.testing.assert_array_equal(vol.array, ref)
    assert vol.sha256 == read_dicom_folder(tmp_path / "s")[0].sha256
