"""De-identification: planted PHI everywhere → nothing left; geometry and pixels identical; UIDs consistent."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from support.dicom_factory import canaries, write_ct_series

from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.samples import _rotation
from napari_clinlabel.core.privacy.deid import REPORT_NAME, deidentify
from napari_clinlabel.core.privacy.phi_scan import scan_path

G = Geometry((0.7, 0.8, 2.5), (-10.0, 20.0, 5.0), tuple(_rotation(20.0, 5.0).ravel()))
PHI = canaries("DEID")


def _study(tmp_path: Path) -> Path:
    """Two series of one study full of planted PHI; series B references a slice of series A."""
    src = tmp_path / "Doe^John_19610413"
    rng = np.random.default_rng(1)
    vol = rng.integers(-1000, 1000, (4, 12, 10)).astype(np.int16)
    study = pydicom.uid.generate_uid()
    a = write_ct_series(src / "A", vol, G, phi=PHI, study_uid=study)
    b = write_ct_series(src / "B", vol + 7, G, phi=PHI, study_uid=study)
    ref_ds = pydicom.dcmread(a[2])
    ds = pydicom.dcmread(b[0])
    item = Dataset()
    item.ReferencedSOPClassUID = ref_ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ref_ds.SOPInstanceUID
    ds.ReferencedImageSequence = Sequence([item])
    ds.save_as(b[0], enforce_file_format=True)
    return src


def _by_series(folder: Path) -> dict[str, list[pydicom.Dataset]]:
    out: dict[str, list] = {}
    for f in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        out.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    for v in out.values():
        v.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return out


def test_nothing_left_geometry_and_pixels_identical(tmp_path):
    src = _study(tmp_path)
    assert len(scan_path(src)) > 50  # the scan sees the planted PHI
    out = tmp_path / "clean"
    report = deidentify(src, out)
    assert report.files_written == 8 and report.skipped == []
    # no planted value anywhere in any byte written, file names included
    for f in out.rglob("*"):
        assert not any(v in str(f.relative_to(out)) for v in PHI.values())
        if f.is_file():
            raw = f.read_bytes()
            for name, value in PHI.items():
                assert value.encode() not in raw, (f.name, name)
            assert b"19610413" not in raw and b"ACME PHI" not in raw
    assert scan_path(out) == []
    before, after = _by_series(src), _by_series(out)
    assert len(after) == 2
    for old_series in before.values():
        old_px = sorted(d.PixelData for d in old_series)
        match = [s for s in after.values() if sorted(d.PixelData for d in s) == old_px]
        assert len(match) == 1  # pixel data byte for byte
        for o, n in zip(old_series, match[0], strict=True):
            for kw in (
                "ImagePositionPatient",
                "ImageOrientationPatient",
                "PixelSpacing",
                "SliceThickness",
                "Rows",
                "Columns",
                "RescaleSlope",
                "RescaleIntercept",
            ):
                assert o.get(kw) == n.get(kw)
            assert n.PatientIdentityRemoved == "YES"
            code = n.DeidentificationMethodCodeSequence[0]
            assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
            assert n.SOPInstanceUID != o.SOPInstanceUID
            assert n.file_meta.MediaStorageSOPInstanceUID == n.SOPInstanceUID
            assert not any(e.tag.is_private for e in n)
    # SimpleITK sees the same grid and voxels
    for s_new in (out / "S001", out / "S002"):
        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(str(s_new)))
        img = r.Execute()
        assert Geometry.from_itk(img).close_to(G, atol_mm=1e-3)
    # UIDs consistent across series: one study, one frame of reference per series kept apart,
    # and the reference from series B to series A's slice still resolves
    new_all = [d for s in after.values() for d in s]
    assert len({d.StudyInstanceUID for d in new_all}) == 1
    sops = {d.SOPInstanceUID for d in new_all}
    refs = [d.ReferencedImageSequence[0].ReferencedSOPInstanceUID for d in new_all
            if "ReferencedImageSequence" in d]  # fmt: skip
    assert len(refs) == 1 and refs[0] in sops
    old_uids = {d.SOPInstanceUID for s in before.values() for d in s}
    assert not (old_uids & sops)
    rep = json.loads((out / REPORT_NAME).read_text())
    actions = {(c["tag"].split(" ", 2)[-1], c["action"]) for c in rep["changes"]}
    # Table E.1-1: PatientName Z; InstitutionName X/Z/D, written as the IOD-safe dummy (D)
    assert ("PatientName", "Z") in actions and ("InstitutionName", "D") in actions
    assert ("SOPInstanceUID", "U") in actions
    assert rep["private_tags_removed"] > 0 and rep["uid_map_written"] is False
    assert not any(v in (out / REPORT_NAME).read_text() for v in PHI.values())


def test_uid_map_only_when_asked_and_dciodvfy(tmp_path):
    src = _study(tmp_path)
    out = tmp_path / "clean"
    report = deidentify(src, out, uid_map=tmp_path / "map.json")
    m = json.loads((tmp_path / "map.json").read_text())
    old = pydicom.dcmread(next((src / "A").glob("*.dcm")))
    assert m[old.SOPInstanceUID].startswith("2.25.") and report.uid_map_written
    assert not any("map" in f.name for f in out.rglob("*"))
    assert (tmp_path / "map.json").stat().st_mode & 0o777 == 0o600  # identifying: owner only
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed")

    def errors(p):
        r = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, check=False)
        return {ln for ln in r.stderr.splitlines() if ln.startswith("Error")}

    new = pydicom.dcmread(out / "S001" / "I0001.dcm")
    orig = next(
        f for f in src.rglob("*.dcm") if m[pydicom.dcmread(f).SOPInstanceUID] == new.SOPInstanceUID
    )
    assert errors(out / "S001" / "I0001.dcm") <= errors(orig)


def test_refusals_and_burned_in(tmp_path):
    src = tmp_path / "in"
    write_ct_series(src, np.zeros((2, 6, 6), np.int16), G, phi=PHI, burned_in=True)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(ClinlabelError, match="not empty"):
        deidentify(src, tmp_path / "busy")
    with pytest.raises(ClinlabelError, match="inside the input"):
        deidentify(src, src / "out")
    with pytest.raises(InputError, match="no such"):
        deidentify(tmp_path / "nope", tmp_path / "o")
    report = deidentify(src, tmp_path / "o")
    assert report.files_written == 0 and len(report.skipped) == 2
    assert "BurnedInAnnotation" in report.skipped[0]["reason"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM"):
        deidentify(tmp_path / "empty", tmp_path / "o2")
    assert not (tmp_path / "o2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_real_ct_deid_geometry_dciodvfy_and_scan(tmp_path, shared_data):
    src = shared_data / "dcmqi_ct3slice_seg" / "ct-3slice"
    out = tmp_path / "clean"
    report = deidentify(src, out)
    assert report.files_written == 3 and scan_path(out) == []
    r_old, r_new = sitk.ImageSeriesReader(), sitk.ImageSeriesReader()
    r_old.SetFileNames(r_old.GetGDCMSeriesFileNames(str(src)))
    r_new.SetFileNames(r_new.GetGDCMSeriesFileNames(str(out / "S001")))
    old, new = r_old.Execute(), r_new.Execute()
    assert Geometry.from_itk(old).close_to(Geometry.from_itk(new), atol_mm=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(old), sitk.GetArrayFromImage(new))
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed")

    def errors(p):
        r = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, check=False)
        return {ln for ln in r.stderr.splitlines() if ln.startswith("Error")}

    by_pos = {}
    for f in src.glob("*.dcm"):
        by_pos[pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]] = f
    for f in (out / "S001").glob("*.dcm"):
        pos = pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]
        assert errors(f) <= errors(by_pos[pos]), errors(f) - errors(by_pos[pos])
