"""Synthetic CT series written with pydicom, optionally full of planted PHI (test helper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from napari_clinlabel.core.image.geometry import Geometry

# identifying attributes planted with a canary each; values built from the canary prefix
PN_FIELDS = (
    "PatientName", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
    "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord", "RequestingPhysician",
    "PatientMotherBirthName", "OtherPatientNames",
)  # fmt: skip
TEXT_FIELDS = (
    "PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "StudyDescription", "SeriesDescription", "ProtocolName", "PatientAddress",
    "PatientTelephoneNumbers", "ImageComments", "AdditionalPatientHistory", "PatientComments",
    "MilitaryRank", "Occupation", "MedicalRecordLocator", "RequestedProcedureDescription",
    "PerformedProcedureStepDescription", "DerivationDescription", "AdmittingDiagnosesDescription",
)  # fmt: skip
DATE_FIELDS = ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
TIME_FIELDS = ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")
PRIVATE_CREATOR = "ACME PHI"


def canaries(prefix: str = "CNRY") -> dict[str, str]:
    """One unique string per planted text/name field."""
    out = {}
    for i, kw in enumerate(PN_FIELDS + TEXT_FIELDS):
        out[kw] = f"{prefix}{i:02d}ZQ"
    out["NestedCodeMeaning"] = f"{prefix}90ZQ"
    out["NestedPhysician"] = f"{prefix}91ZQ"
    out["Private"] = f"{prefix}92ZQ"
    out["NestedInstitution"] = f"{prefix}93ZQ"
    return out


def write_ct_series(
    folder: Path,
    volume: np.ndarray,
    geometry: Geometry,
    *,
    phi: dict[str, str] | None = None,
    reverse_instances: bool = False,
    study_uid: str | None = None,
    file_names: str = "ct_{k:03d}.dcm",
    burned_in: bool = False,
    series_uid: str | None = None,
    for_uid: str | None = None,
) -> list[Path]:
    """Write ``volume`` (z, y, x, int16) as single-frame CT slices on ``geometry``."""
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = volume.shape
    d = geometry.direction_matrix()
    study_uid = study_uid or generate_uid()
    series_uid, for_uid = series_uid or generate_uid(), for_uid or generate_uid()
    paths = []
    for k in range(nz):
        ipp = np.asarray(geometry.origin) + k * geometry.spacing[2] * d[:, 2]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop_uid = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "", "", ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "", "", ""
        ds.StudyID, ds.AccessionNumber = "", ""
        ds.Modality, ds.SeriesNumber = "CT", 1
        ds.Laterality, ds.PatientPosition = "", "FFS"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = for_uid, ""
        ds.Manufacturer = "SYNTH"
        ds.InstanceNumber = (nz - k) if reverse_instances else (k + 1)
        ds.PatientOrientation = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelSpacing = [f"{geometry.spacing[1]:.6g}", f"{geometry.spacing[0]:.6g}"]
        ds.SliceThickness = f"{geometry.spacing[2]:.6g}"
        ds.ImageOrientationPatient = [f"{v:.10f}" for v in (*d[:, 0], *d[:, 1])]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
        ds.KVP, ds.AcquisitionNumber = "120", 1
        ds.PixelData = np.ascontiguousarray(volume[k].astype(np.int16)).tobytes()
        if phi:
            _plant(ds, phi)
            ds.BurnedInAnnotation = "YES" if burned_in else "NO"
        p = folder / file_names.format(k=k, **(phi or {}))
        pydicom.dcmwrite(p, ds, enforce_file_format=True)
        paths.append(p)
    return paths


def _plant(ds: Dataset, phi: dict[str, str]) -> None:
    for kw in PN_FIELDS + TEXT_FIELDS:
        setattr(ds, kw, phi[kw])
    for kw in DATE_FIELDS:
        setattr(ds, kw, "19610413")
    for kw in TIME_FIELDS:
        setattr(ds, kw, "101112")
    ds.PatientSex, ds.PatientAge = "F", "063Y"
    ds.PatientWeight, ds.PatientSize = "71", "1.68"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator = "CT.ABD", "99LOCAL"
    item.CodeMeaning = phi["NestedCodeMeaning"]
    ds.ProcedureCodeSequence = Sequence([item])
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedStudySequence = Sequence([ref])
    req = Dataset()
    req.RequestingPhysician = phi["NestedPhysician"]
    req.AccessionNumber = phi["AccessionNumber"]
    req.StudyInstanceUID = ds.StudyInstanceUID
    ds.RequestAttributesSequence = Sequence([req])
    equip = Dataset()  # a sequence the profile keeps, holding attributes it does not
    equip.Manufacturer = "SYNTH"
    equip.InstitutionName = phi["NestedInstitution"]
    equip.OperatorsName = phi["NestedInstitution"]
    equip.ContributionDateTime = "19610413101112"
    ds.ContributingEquipmentSequence = Sequence([equip])
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", phi["Private"])
    block.add_new(0x02, "DA", "19610413")


def write_secondary_capture(path: Path, spacing_tag: str | None = None) -> Path:
    """A one-frame 20 × 30 DICOM (secondary capture) that states its pixel size (0.25 mm) with
    ``spacing_tag``, or not at all (a scanned film, a screenshot)."""
    from pydicom.dataset import FileDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "OT", generate_uid(), generate_uid()
    if spacing_tag:
        setattr(ds, spacing_tag, [0.25, 0.25])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = 20, 30
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(600, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Path(path)
