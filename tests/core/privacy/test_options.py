"""Profile options, canaries in every Table E.1-1 action class, header-less and broken files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from napari_clinlabel.core.privacy.deid import REPORT_NAME, DeidOptions, deidentify
from napari_clinlabel.core.privacy.phi_scan import scan_path
from napari_clinlabel.core.privacy.table import TABLE, rule_for

CT = "1.2.840.10008.5.1.4.1.1.2"


def _ct(patient: str, study_date: str, **extra) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CT, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "CT"
    ds.PatientName, ds.PatientID = f"{patient}^Pat", patient
    ds.PatientBirthDate = "19610413"
    ds.StudyDate, ds.SeriesDate, ds.StudyTime = study_date, study_date, "101500"
    ds.AcquisitionDateTime = f"{study_date}101530.5+0100"
    ds.PatientSex, ds.PatientAge, ds.PatientWeight, ds.PatientSize = "F", "093Y", "61.5", "1.68"
    ds.DeviceSerialNumber, ds.StationName = "SN-778899", "CT-ROOM-2"
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = np.arange(16, dtype=np.int16).tobytes()
    return ds


def _save(ds: Dataset, path: Path, meta: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if meta:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    else:  # no preamble, no file meta: the data set alone, implicit VR little endian
        ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return path


def _days(a: str, b: str) -> int:
    return (dt.datetime.strptime(b, "%Y%m%d") - dt.datetime.strptime(a, "%Y%m%d")).days


def _outputs(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]


def test_default_is_the_basic_profile(tmp_path):
    _save(_ct("P1", "20200110"), tmp_path / "in" / "a.dcm")
    rep = deidentify(tmp_path / "in", tmp_path / "out")
    (ds,) = _outputs(tmp_path / "out")
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert ds.StudyDate == "" and ds.PatientSex == "" and "PatientWeight" not in ds
    # X/D and X/Z/D: the IOD-safe dummy
    assert ds.SeriesDate == "19000101" and ds.DeviceSerialNumber == "ANONYMOUS"
    assert json.loads((tmp_path / "out" / REPORT_NAME).read_text())["options"] == {
        "retain_temporal": False, "retain_patient_chars": False, "retain_device": False,
        "clean_pixels": False, "blank_regions": [],
    }  # fmt: skip
    assert rep.files_written == 1


def test_retained_options_keep_what_they_say_and_record_it(tmp_path):
    # patient P1: two studies 47 days apart; patient P2: one study on P1's first day
    _save(_ct("P1", "20200110"), tmp_path / "in" / "a.dcm")
    _save(_ct("P1", "20200226"), tmp_path / "in" / "b.dcm")
    _save(_ct("P2", "20200110"), tmp_path / "in" / "c.dcm")
    opts = DeidOptions(retain_temporal=True, retain_patient_chars=True, retain_device=True)
    deidentify(tmp_path / "in", tmp_path / "out", options=opts, key=b"k" * 32)
    outs = _outputs(tmp_path / "out")
    originals = {"20200110", "20200226"}
    for ds in outs:
        codes = [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
        assert codes == ["113100", "113107", "113108", "113109"]
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        methods = list(ds.DeidentificationMethod)
        assert len(methods) == 4 and all(len(m) <= 64 for m in methods)  # LO: 64 at most
        assert ds.StudyDate not in originals and ds.StudyDate == ds.SeriesDate
        assert ds.StudyTime == "101500"  # whole-day shift: the time of day is kept
        assert ds.AcquisitionDateTime == ds.StudyDate + "101530.5"  # time zone dropped
        assert ds.PatientBirthDate == ""  # the birth date is not shifted: Basic Profile (Z)
        assert (ds.PatientSex, ds.PatientAge, str(ds.PatientWeight)) == ("F", "090Y", "61.5")
        assert (ds.DeviceSerialNumber, ds.StationName) == ("SN-778899", "CT-ROOM-2")
        assert _days(ds.StudyDate, "20200226") >= 365  # shifted back by a year or more
    # P1's two studies keep their 47-day interval; P2 (same original day as P1's first) has
    # its own offset, so three distinct dates
    dates = sorted(ds.StudyDate for ds in outs)
    gaps = {_days(a, b) for a in dates for b in dates if a < b}
    assert 47 in gaps and len(set(dates)) == 3
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["codes"][1][0] == "113107" and report["options"]["retain_device"] is True
    # the scan honours what the file declares (shifted dates, kept characteristics)
    assert [f for f in scan_path(tmp_path / "out") if f.kind == "phi"] == []


def test_canary_in_every_action_class_never_survives(tmp_path):
    """One canary per Table E.1-1 action code (top level and nested), private, overlay, meta."""
    ds = _ct("CANARYPID", "20200110")
    planted: dict[str, str] = {}
    by_code: dict[str, list] = {}
    for rule in TABLE.values():
        by_code.setdefault(rule.code, []).append(rule)
    from pydicom.datadict import dictionary_VR

    for code, rules in sorted(by_code.items()):
        for rule in rules:  # the first text-valued attribute of each class
            vr = dictionary_VR(rule.tag) if rule.keyword else ""
            if vr in ("LO", "SH", "PN", "LT", "ST", "UT", "UC") and rule.keyword:
                value = f"CNRY{len(planted):02d}ZQ"
                setattr(ds, rule.keyword, value)
                planted[f"{code} {rule.keyword}"] = value
                break
    item = Dataset()
    item.PersonName = "CNRYNESTEDZQ"  # D inside the Content Sequence (a kept D sequence)
    item.TextValue = "CNRYTEXTZQ"  # X inside it
    ds.ContentSequence = Sequence([item])
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CT, "1.2.3.4.CNRY"
    ds.ReferencedImageSequence = Sequence([ref])  # X/Z/U*: kept, UID replaced
    ds.add_new(0x60003000, "OW", b"CNRYOVERLAYZQ\0")
    ds.add_new(0x00091010, "LO", "CNRYPRIVATEZQ")
    path = _save(ds, tmp_path / "in" / "a.dcm")
    raw_meta = pydicom.dcmread(path)
    raw_meta.file_meta.SourceApplicationEntityTitle = "CNRYAE"
    raw_meta.save_as(path, enforce_file_format=True)
    assert len(planted) >= 7  # X, Z, D, Z/D, X/Z, X/D, X/Z/D each got one
    found = {f.where.split(" (")[0] for f in scan_path(path)}
    for name in planted:
        assert name.split()[1] in found, name
    deidentify(tmp_path / "in", tmp_path / "out")
    (out_file,) = sorted((tmp_path / "out").rglob("*.dcm"))
    raw = out_file.read_bytes()
    for value in [*planted.values(), "CNRYNESTEDZQ", "CNRYTEXTZQ", "1.2.3.4.CNRY",
                  "CNRYOVERLAYZQ", "CNRYPRIVATEZQ", "CNRYAE", "CANARYPID"]:  # fmt: skip
        assert value.encode() not in raw, value
    out = pydicom.dcmread(out_file)
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.25.")
    assert len(out.ContentSequence) == 1 and rule_for(0x0040A730).code == "D"


def test_header_less_and_broken_files_in_one_folder(tmp_path):
    _save(_ct("HEADERLESS", "20200110"), tmp_path / "in" / "noheader.dcm", meta=False)
    _save(_ct("GOOD", "20200110"), tmp_path / "in" / "good.dcm")
    good = (tmp_path / "in" / "good.dcm").read_bytes()
    (tmp_path / "in" / "cut.dcm").write_bytes(good[: len(good) - 20])
    (tmp_path / "in" / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    (tmp_path / "in" / "notes.txt").write_text("not dicom")
    assert (tmp_path / "in" / "noheader.dcm").read_bytes()[:4] == b"\x08\x00\x16\x00"
    findings = scan_path(tmp_path / "in")
    unreadable = {f.display for f in findings if f.kind == "unreadable"}
    assert unreadable == {"cut.dcm", "garbage.dcm"}
    assert any(f.display == "noheader.dcm" and f.where.startswith("PatientName")
               for f in findings)  # fmt: skip
    rep = deidentify(tmp_path / "in", tmp_path / "out")
    assert (rep.files_in, rep.files_written) == (4, 2)
    assert {s["name"] for s in rep.skipped} == {"cut.dcm", "garbage.dcm"}
    for ds in _outputs(tmp_path / "out"):  # proper Part 10 files, read without force
        assert ds.file_meta.TransferSyntaxUID and ds.file_meta.MediaStorageSOPInstanceUID
        assert b"HEADERLESS" not in ds.PatientName.encode() if ds.PatientName else True
    assert not any(b"HEADERLESS" in p.read_bytes() for p in (tmp_path / "out").rglob("*.dcm"))
