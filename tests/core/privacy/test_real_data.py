"""Real scanner files (shared data: GE fMRI, Philips tilted CT, dcmqi's CT and SEGs): every DICOM
file counted and de-identified with zero Table E.1-1 leftovers, judged by the table's source."""

from __future__ import annotations

import warnings

import pydicom
from support.deid_oracle import leftovers

from napari_clinlabel.core.privacy.deid import deidentify
from napari_clinlabel.core.privacy.reading import dicom_files


def test_shared_real_data_zero_leftovers(shared_data, tmp_path):
    rep = deidentify(shared_data, tmp_path / "out")
    files, _other = dicom_files(shared_data)
    assert rep.files_in == len(files) > 300
    assert rep.files_written == rep.files_in, rep.skipped  # real CT/MR/SEG: nothing to refuse
    bad = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in rep.files:
            out = pydicom.dcmread(tmp_path / "out" / entry["output"])
            found = leftovers(out, pydicom.dcmread(files[entry["input"]], force=True))
            if found:
                bad[entry["file"]] = found
    assert bad == {}
