"""PHI scan: what in a file or folder could identify a patient, reported without the PHI itself.

Per file: attributes of the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile
present with a value (names, IDs, dates, times, institution, device serials, free-text
descriptions, addresses, physicians, operators, …; nested sequences included), private tags,
``BurnedInAnnotation`` YES, PHI-looking file and folder names (dates, MRN-like digit runs,
``Last^First`` names, the file's own PatientName/PatientID), NIfTI header text fields (``descrip``,
``aux_file``, ``intent_name``, ``db_name``, extensions; read from the 348-byte header) and NRRD/MHA
header keys copied from DICOM (``0010|0010`` …). A finding names the tag or field and carries a
masked hint (``'J***' (8 chars)``), never the value.

The profile table (:data:`PROFILE`) maps DICOM keywords to the Basic Profile action: ``X`` remove,
``Z`` empty, ``D`` dummy. Tags come from pydicom's data dictionary. UIDs (action ``U``) are handled
by rule in :mod:`.deid` (every non-standard UID is replaced) and are not findings here.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

_Z = """PatientName PatientID PatientBirthDate PatientSex StudyDate StudyTime ReferringPhysicianName
StudyID AccessionNumber ContentDate ContentTime ContentCreatorName"""
_D = """VerifyingObserverName PersonName"""
_X = """PatientBirthName PatientBirthTime OtherPatientNames OtherPatientIDs OtherPatientIDsSequence
PatientMotherBirthName IssuerOfPatientID MedicalRecordLocator PatientAge PatientSize PatientWeight
PatientAddress PatientTelephoneNumbers CountryOfResidence RegionOfResidence MilitaryRank
BranchOfService Occupation EthnicGroup PatientReligiousPreference PatientSexNeutered MedicalAlerts
Allergies PregnancyStatus SmokingStatus LastMenstrualDate SpecialNeeds PatientState PatientComments
AdditionalPatientHistory ResponsibleOrganization ResponsiblePerson PatientInsurancePlanCodeSequence
PatientPrimaryLanguageCodeSequence CurrentPatientLocation PatientInstitutionResidence
ConfidentialityConstraintOnPatientDataDescription PerformingPhysicianName OperatorsName
NameOfPhysiciansReadingStudy PhysiciansOfRecord RequestingPhysician ReviewerName
ScheduledPerformingPhysicianName ConsultingPhysicianName EvaluatorName InterpretationAuthor
ReferringPhysicianAddress ReferringPhysicianTelephoneNumbers PersonAddress PersonTelephoneNumbers
OrderEnteredBy OrderEntererLocation OrderCallbackPhoneNumber CameraOwnerName
ReferringPhysicianIdentificationSequence PhysiciansOfRecordIdentificationSequence
PerformingPhysicianIdentificationSequence OperatorIdentificationSequence
PhysiciansReadingStudyIdentificationSequence AuthorObserverSequence ParticipantSequence
CustodialOrganizationSequence AdmissionID RequestedProcedureID PerformedProcedureStepID
ScheduledProcedureStepID FillerOrderNumberImagingServiceRequest
PlacerOrderNumberImagingServiceRequest StudyIDIssuer ServiceEpisodeID ServiceEpisodeDescription
InstitutionName InstitutionAddress InstitutionalDepartmentName InstitutionCodeSequence
InstitutionalDepartmentTypeCodeSequence StationName StationAETitle PerformedStationName
PerformedStationAETitle ScheduledStationName ScheduledStationAETitle PerformedLocation
ScheduledStudyLocation ScheduledProcedureStepLocation DeviceSerialNumber DetectorID GantryID
PlateID CassetteID GeneratorID DeviceDescription LensSerialNumber SourceSerialNumber
ModifyingDeviceID ModifyingDeviceManufacturer DateOfLastCalibration TimeOfLastCalibration
StudyDescription SeriesDescription ProtocolName ImageComments FrameComments DerivationDescription
AdmittingDiagnosesDescription DischargeDiagnosisDescription RequestedProcedureDescription
PerformedProcedureStepDescription ScheduledProcedureStepDescription
CommentsOnThePerformedProcedureStep RequestingService VisitComments AcquisitionComments
ReasonForStudy RequestedContrastAgent StudyComments TextString TextComments IdentifyingComments
InterpretationText ResultsComments ContrastBolusAgent SeriesDate SeriesTime AcquisitionDate
AcquisitionTime AcquisitionDateTime InstanceCreationDate InstanceCreationTime OverlayDate
CurveDate AdmittingDate AdmittingTime DischargeDate DischargeTime PerformedProcedureStepStartDate
PerformedProcedureStepStartTime PerformedProcedureStepEndDate PerformedProcedureStepEndTime
ScheduledProcedureStepStartDate ScheduledProcedureStepStartTime ScheduledProcedureStepEndDate
ScheduledProcedureStepEndTime DateOfSecondaryCapture TimeOfSecondaryCapture ReferencedPatientSequence
ReferencedStudySequence ReferencedPerformedProcedureStepSequence RequestAttributesSequence
ProcedureCodeSequence RequestedProcedureCodeSequence ContentSequence AcquisitionContextSequence
DigitalSignaturesSequence MACParametersSequence EncryptedAttributesSequence
OriginalAttributesSequence ModifiedAttributesSequence SourceApplicationEntityTitle ContributionDateTime"""

PROFILE: dict[str, str] = {
    **{k: "X" for k in _X.split()},
    **{k: "Z" for k in _Z.split()},
    **{k: "D" for k in _D.split()},
}
PROFILE_TAGS: dict[int, tuple[str, str]] = {
    int(tag_for_keyword(k)): (k, a) for k, a in PROFILE.items() if tag_for_keyword(k) is not None
}
DUMMY_TEXT = "ANONYMOUS"
ALLOWED_VALUES = {DUMMY_TEXT, "ANONYMIZED", "REMOVED"}
_NIFTI_FIELDS = (
    ("db_name", 14, 18),
    ("descrip", 148, 80),
    ("aux_file", 228, 24),
    ("intent_name", 328, 16),
)
_NIFTI_ALLOWED = {"intent_name": {"", "label"}}
_DATE = re.compile(r"(?<!\d)(19|20)\d\d[-_.]?(0[1-9]|1[0-2])[-_.]?(0[1-9]|[12]\d|3[01])(?!\d)")
_DMY = re.compile(r"(?<!\d)(0[1-9]|[12]\d|3[01])[-_.](0[1-9]|1[0-2])[-_.](19|20)\d\d(?!\d)")
_LONG_DIGITS = re.compile(r"(?<![\d.])\d{6,}(?![\d.])")
_NAME = re.compile(r"[A-Za-z]{2,}\^[A-Za-z]|[A-Z][a-z]+,\s?[A-Z][a-z]+")
_ITK_TAG = re.compile(rb"^\s*([0-9a-fA-F]{4})\|([0-9a-fA-F]{4})\s*(:=|=|:)\s*(.*)$")


@dataclass(frozen=True)
class Finding:
    """One thing that may identify a patient: where in the file and a masked hint.

    ``display`` is the file's path relative to the scanned root with every PHI-looking part
    masked; ``path`` (the real path, not shown in ``repr``) is for programs, not for printing.
    """

    path: Path = field(repr=False)
    where: str
    hint: str
    display: str = ""

    def line(self) -> str:
        """A printable line (never holds the value itself, nor a PHI-looking path part)."""
        return f"{self.display or '(file)'}: {self.where}: {self.hint}"


def mask(value: object) -> str:
    """A hint that never reveals the value: first character, stars and the length."""
    text = str(value)
    if not text:
        return "(empty)"
    if len(text) <= 3:  # a first character would give too much away
        return f"'***' ({len(text)} chars)"
    return f"'{text[0]}***' ({len(text)} chars)"


def _has_value(elem: pydicom.DataElement) -> bool:
    if elem.VR == "SQ":
        return bool(elem.value)
    v = elem.value
    if v is None or v == "" or v == b"":
        return False
    return not (
        isinstance(v, list | tuple | pydicom.multival.MultiValue) and not any(str(x) for x in v)
    )


def scan_dataset(ds: Dataset, path: Path, prefix: str = "") -> list[Finding]:
    """Findings in one DICOM dataset (profile attributes, private tags, burned-in annotation)."""
    out: list[Finding] = []
    for elem in ds:
        tag = int(elem.tag)
        name = f"{prefix}{elem.keyword or 'tag'} {elem.tag}"
        if elem.tag.is_private:
            if elem.tag.element > 0x00FF and _has_value(elem):  # data, not the private creator
                hint = "sequence" if elem.VR == "SQ" else mask(_text(elem))
                out.append(Finding(path, f"{prefix}private tag {elem.tag}", hint))
            continue
        if tag in PROFILE_TAGS and _has_value(elem):
            if elem.VR != "SQ" and str(elem.value).strip().upper() in ALLOWED_VALUES:
                continue
            hint = (
                f"sequence of {len(elem.value)} item(s)" if elem.VR == "SQ" else mask(_text(elem))
            )
            out.append(Finding(path, name, hint))
            continue
        if elem.keyword == "BurnedInAnnotation" and str(elem.value).upper() == "YES":
            out.append(Finding(path, name, "YES: identifiers may be burned into the pixels"))
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                out.extend(scan_dataset(item, path, f"{prefix}{elem.keyword or elem.tag}[{i}]."))
    return out


def _text(elem: pydicom.DataElement) -> str:
    v = elem.value
    if isinstance(v, bytes):
        return v.decode("latin-1", "replace")
    if isinstance(v, list | tuple | pydicom.multival.MultiValue):
        return "\\".join(str(x) for x in v)
    return str(v)


def _name_flag(part: str, identity: tuple[str, ...] = ()) -> str | None:
    """Why a file or folder name looks identifying (None when it does not)."""
    stem = re.sub(r"(\.nii\.gz|\.[A-Za-z]{2,4})$", "", part)
    for label, rx in (("date", _DATE), ("date", _DMY), ("MRN-like number", _LONG_DIGITS),
                      ("person name", _NAME)):  # fmt: skip
        m = rx.search(stem)
        if m:
            return f"{label} {mask(m.group(0))}"
    low = stem.lower()
    if any(len(i) >= 3 and i.lower() in low for i in identity):
        return "holds the PatientName/ID"
    return None


def display_path(path: Path, root: Path, identity: tuple[str, ...] = ()) -> str:
    """``path`` relative to ``root`` with every identifying-looking part masked."""
    try:
        parts = path.relative_to(root).parts or (path.name,)
    except ValueError:
        parts = (path.name,)
    return "/".join(mask(p) if _name_flag(p, identity) else p for p in parts)


def scan_name(path: Path, root: Path, identity: tuple[str, ...] = ()) -> list[Finding]:
    """A finding when the last part of ``path`` (a file or folder name) looks identifying."""
    why = _name_flag(path.name, identity)
    if why is None:
        return []
    kind = "folder name" if path.is_dir() else "file name"
    return [Finding(path, kind, why, display_path(path, root, identity))]


def scan_nifti(path: Path) -> list[Finding]:
    """Text fields and extensions of a NIfTI-1/2 header."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(352 + 8)
    except (OSError, EOFError):
        return [Finding(path, "NIfTI header", "unreadable (corrupt or truncated)")]
    out: list[Finding] = []
    if len(head) >= 348 and struct.unpack("<i", head[:4])[0] in (348, 1543569408):
        for name, at, size in _NIFTI_FIELDS:
            text = head[at : at + size].split(b"\0")[0].decode("latin-1").strip()
            if text and text not in _NIFTI_ALLOWED.get(name, set()):
                out.append(Finding(path, f"NIfTI {name}", mask(text)))
        if len(head) >= 352 and head[348] != 0:
            out.append(Finding(path, "NIfTI extension", "present (may hold DICOM or free text)"))
    return out


def scan_itk_header(path: Path) -> list[Finding]:
    """NRRD/MHA/MHD header keys copied from DICOM (``GGGG|EEEE``) and known text keys."""
    with open(path, "rb") as fh:
        raw = fh.read(1 << 16)
    out: list[Finding] = []
    for line in raw.split(b"\n"):
        if line.strip() == b"" and path.suffix.lower() in (".nrrd", ".nhdr"):
            break
        if line.startswith(b"ElementDataFile"):
            break
        m = _ITK_TAG.match(line)
        if m:
            tag = int(m.group(1) + m.group(2), 16)
            kw = PROFILE_TAGS.get(tag, (None,))[0]
            value = m.group(4).decode("latin-1").strip()
            if value and (kw or (tag >> 16) % 2 == 1):
                out.append(Finding(path, f"header key {m.group(1).decode()}|{m.group(2).decode()}"
                                   f" {kw or 'private'}", mask(value)))  # fmt: skip
    return out


def is_dicom(path: Path) -> bool:
    """True for files with the DICM preamble (or that pydicom reads as DICOM without one)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def scan_file(path: Path, root: Path | None = None) -> list[Finding]:
    """Every finding for one file (its name included); paths shown relative to ``root``."""
    path = Path(path)
    root = root or path.parent
    name = path.name.lower()
    found: list[Finding] = []
    identity: tuple[str, ...] = ()
    if is_dicom(path):
        try:
            ds = pydicom.dcmread(path, defer_size=256)  # large values stay on disk
        except Exception:
            ds = None
        if ds is None or (("Rows" in ds or len(ds) < 5) and "PixelData" not in ds):
            why = "unreadable or truncated (attributes after the cut were not scanned)"
            return [Finding(path, "DICOM", why, display_path(path, root))]
        found.extend(scan_dataset(ds, path))
        if getattr(ds, "file_meta", None) is not None:
            found.extend(scan_dataset(ds.file_meta, path, "file meta "))
        identity = tuple(p for p in re.split(r"[\^ ]", str(ds.get("PatientName", ""))) if p)
        identity += (str(ds.get("PatientID", "")),)
    elif name.endswith((".nii", ".nii.gz")):
        found.extend(scan_nifti(path))
    elif name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
        found.extend(scan_itk_header(path))
    found.extend(scan_name(path, root, identity))
    shown = display_path(path, root, identity)
    return [Finding(f.path, f.where, f.hint, shown) for f in found]


def scan_path(path: str | os.PathLike[str]) -> list[Finding]:
    """Findings for a file, or for every file under a folder (hidden files and logs skipped)."""
    p = Path(path)
    if p.is_file():
        return scan_file(p)
    if not p.is_dir():
        from napari_clinlabel.core.errors import InputError

        raise InputError(f"{p}: no such file or folder; check the path.")
    out: list[Finding] = []
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(scan_name(Path(dirpath), p))
        for f in sorted(filenames):
            if f.startswith(".") or f.endswith((".jsonl", ".json")):
                continue
            out.extend(scan_file(Path(dirpath) / f, p))
    return out
