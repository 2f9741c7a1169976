"""PHI scan: every planted identifier found, reported by tag with a masked hint, never the value."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.dicom_factory import (
    DATE_FIELDS,
    PN_FIELDS,
    TEXT_FIELDS,
    TIME_FIELDS,
    canaries,
    write_ct_series,
)

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.export.labelmap import render_labelmap
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.privacy.phi_scan import mask, scan_path

G = Geometry((0.7, 0.8, 2.5), (-10.0, 20.0, 5.0), tuple(np.eye(3).ravel()))
PHI = canaries("SCAN")


def _never_leaks(findings):
    text = "\n".join(f.line() for f in findings)
    for v in PHI.values():
        assert v not in text
    assert "19610413" not in text


def test_every_planted_dicom_attribute_found(tmp_path):
    write_ct_series(tmp_path / "ct", np.zeros((2, 6, 6), np.int16), G, phi=PHI, burned_in=True)
    findings = [f for f in scan_path(tmp_path / "ct") if f.path.name == "ct_000.dcm"]
    where = {f.where.split(" (")[0] for f in findings}
    for kw in PN_FIELDS + TEXT_FIELDS + DATE_FIELDS + TIME_FIELDS:
        assert kw in where, kw
    for kw in ("PatientSex", "PatientAge", "PatientWeight", "ProcedureCodeSequence",
               "RequestAttributesSequence", "BurnedInAnnotation",
               "ContributingEquipmentSequence[0].InstitutionName",
               "ContributingEquipmentSequence[0].OperatorsName",
               "ContributingEquipmentSequence[0].ContributionDateTime"):  # fmt: skip
        assert kw in where, kw
    assert any(f.where.startswith("private tag (0011,1001)") for f in findings)
    # a reference sequence (X/Z, kept with replaced UIDs) is not PHI in itself
    assert "ReferencedStudySequence" not in where
    name = next(f for f in findings if f.where.startswith("PatientName"))
    assert name.hint == "'S***' (8 chars)"
    _never_leaks(findings)


def test_clean_series_and_our_exports_have_no_findings(tmp_path):
    write_ct_series(tmp_path / "ct", np.zeros((2, 6, 6), np.int16), G)
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        (tmp_path / "ct" / f"labels{suffix}").write_bytes(
            render_labelmap(np.ones((2, 6, 6), np.uint8), G, suffix)
        )
    assert scan_path(tmp_path / "ct") == []


def test_names_of_files_and_folders(tmp_path):
    for rel in ("Smith^Anna/scan.nii", "2019-03-14_ct/x.nii", "mrn_12345678/a.nii",
                "ok/img_19610413.nii", "ok/Smith, Anna.nii", "ok/1.2.840.113619.2.55.nii",
                "ok/ct_001.nii"):  # fmt: skip
        p = tmp_path / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(render_labelmap(np.zeros((2, 3, 3), np.uint8), G, ".nii"))
    found = scan_path(tmp_path / "data")
    hints = sorted(f"{f.path.name}|{f.hint.split(' ')[0]}" for f in found)
    assert hints == sorted([
        "Smith^Anna|person", "2019-03-14_ct|date", "mrn_12345678|MRN-like",
        "img_19610413.nii|date", "Smith, Anna.nii|person",
    ])  # fmt: skip
    assert not any("Smith" in f.line() or "12345678" in f.line() for f in found)
    assert not any("Smith" in repr(f) for f in found)
    assert any(f.line().startswith("'m***' (12 chars): folder name") for f in found)


def test_dicom_name_in_its_own_file_name(tmp_path):
    write_ct_series(tmp_path / "ct", np.zeros((1, 4, 4), np.int16), G, phi=PHI,
                    file_names="{PatientID}_{k}.dcm")  # fmt: skip
    found = [f for f in scan_path(tmp_path / "ct") if f.where.startswith("file name")]
    assert len(found) == 1 and "PatientName/ID" in found[0].hint
    _never_leaks(found)


def test_nifti_header_text_fields(tmp_path):
    raw = bytearray(render_labelmap(np.zeros((2, 3, 3), np.uint8), G, ".nii"))
    raw[148 : 148 + 12] = PHI["PatientName"].encode().ljust(12, b"\0")
    raw[228 : 228 + 12] = PHI["PatientID"].encode().ljust(12, b"\0")
    raw[328:344] = b"Doe J".ljust(16, b"\0")
    p = tmp_path / "img.nii"
    p.write_bytes(bytes(raw))
    where = {f.where for f in scan_path(p)}
    assert where == {"NIfTI descrip", "NIfTI aux_file", "NIfTI intent_name"}
    assert all(f.line().startswith("img.nii: NIfTI") for f in scan_path(p))
    _never_leaks(scan_path(p))
    assert struct.unpack("<i", raw[:4])[0] == 348


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_itk_headers_copied_from_dicom(tmp_path, suffix):
    paths = write_ct_series(tmp_path / "ct", np.zeros((1, 4, 4), np.int16), G, phi=PHI)
    img = sitk.ReadImage(str(paths[0]))  # SimpleITK keeps the DICOM dictionary
    out = tmp_path / f"leak{suffix}"
    sitk.WriteImage(img, str(out))
    found = scan_path(out)
    where = {f.where for f in found}
    assert "header key 0010|0010 PatientName" in where
    _never_leaks(found)


def test_mask_and_bad_path(tmp_path):
    assert mask("") == "(empty)" and mask("F") == "'***' (1 chars)"
    assert mask("Jonathan") == "'J***' (8 chars)"
    with pytest.raises(InputError, match="no such"):
        scan_path(tmp_path / "missing")
    paths = write_ct_series(tmp_path / "ct", np.zeros((1, 4, 4), np.int16), G, phi=PHI)
    Path(tmp_path / "trunc.dcm").write_bytes(paths[0].read_bytes()[:400])
    assert [f.hint.split(" ")[0] for f in scan_path(tmp_path / "trunc.dcm")] == ["unreadable"]
