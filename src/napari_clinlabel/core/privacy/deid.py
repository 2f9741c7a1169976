"""De-identification: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile.

Actions (table :data:`.phi_scan.PROFILE`, nested sequences included): ``X`` remove, ``Z`` empty,
``D`` dummy value; ``U``: every UID that is not a standard DICOM UID (SOP classes, transfer
syntaxes, coding schemes) is replaced by a keyed hash (``2.25.<uuid>``; HMAC-SHA256 with a key made
for the run), so references inside sequences and across series and studies still match. Private
tags, overlays and curves are removed; geometry (position, orientation, spacing) and pixel data
are kept byte for byte. Each output carries PatientIdentityRemoved YES, DeidentificationMethod and
DeidentificationMethodCodeSequence (DCM 113100, Basic Application Confidentiality Profile).

Files are written to a temporary folder beside ``out`` and renamed into place at the end, named
``S001/I0001.dcm`` (input names and folders may themselves be identifying). A file whose
BurnedInAnnotation is YES is not copied: its pixels may show identifiers. The report names tags,
actions and counts, never a value; the old→new UID map is written only where asked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.log.audit_log import atomic_write_bytes
from napari_clinlabel.core.privacy.phi_scan import DUMMY_TEXT, PROFILE_TAGS, is_dicom

BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
METHOD = "PS3.15 E Basic Profile; napari-clinlabel"
KEEP_UID_KEYWORDS = {
    "SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
    "ImplementationClassUID", "CodingSchemeUID", "ContextGroupExtensionCreatorUID",
    "ReferencedSOPClassUIDInFile", "ReferencedTransferSyntaxUIDInFile", "RelatedGeneralSOPClassUID",
    "OriginalSpecializedSOPClassUID", "SOPClassesInStudy", "AffectedSOPClassUID",
    "RequestedSOPClassUID", "ReferencedRelatedGeneralSOPClassUIDInFile",
}  # fmt: skip
_DUMMY = {
    "DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": DUMMY_TEXT,
    "AS": "000Y", "DS": "0", "IS": "0", "UI": None,
}  # fmt: skip
REPORT_NAME = "deid-report.json"


class UidMapper:
    """Old UID → new ``2.25.`` UID, consistent for the run (keyed hash), remembered for the map."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self.map: dict[str, str] = {}

    def __call__(self, old: str) -> str:
        old = str(old).strip()
        if old not in self.map:
            digest = hmac.new(self._key, old.encode("ascii", "replace"), hashlib.sha256).digest()
            self.map[old] = f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"
        return self.map[old]


@dataclass
class DeidReport:
    """What de-identification changed: tags with actions and counts (no values)."""

    files_in: int = 0
    files_written: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    actions: Counter = field(default_factory=Counter)  # "(gggg,eeee) Keyword" + action -> count
    private_removed: int = 0
    uids_replaced: int = 0
    uid_map_written: bool = False
    out: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the report."""
        rows = [{"tag": t, "action": a, "count": n} for (t, a), n in sorted(self.actions.items())]
        return {
            "method": METHOD,
            "code": list(BASIC_PROFILE_CODE),
            "files_in": self.files_in,
            "files_written": self.files_written,
            "skipped": self.skipped,
            "changes": rows,
            "private_tags_removed": self.private_removed,
            "uids_replaced": self.uids_replaced,
            "uid_map_written": self.uid_map_written,
            "pixel_data": "unchanged",
            "geometry": "unchanged",
        }


def _is_standard_uid(value: str) -> bool:
    return str(value) in UID_dictionary


def _dummy(elem: pydicom.DataElement) -> Any:
    if elem.VR == "SQ":
        return Sequence([])
    return _DUMMY.get(elem.VR, DUMMY_TEXT)


def deidentify_dataset(ds: Dataset, uids: UidMapper, report: DeidReport) -> None:
    """Apply the Basic Profile to ``ds`` in place (recursing into sequences)."""
    for elem in list(ds):
        tag = elem.tag
        label = f"{tag} {elem.keyword or 'private'}"
        if tag.is_private:
            del ds[tag]
            report.private_removed += 1
            continue
        if (0x5000 <= tag.group <= 0x501E) or (
            0x6000 <= tag.group <= 0x601E and tag.element in (0x3000, 0x4000)
        ):
            del ds[tag]  # curves, overlay data and overlay comments
            report.actions[(f"{tag} {elem.keyword or 'overlay/curve'}", "X")] += 1
            continue
        rule = PROFILE_TAGS.get(int(tag))
        if rule is not None:
            action = rule[1]
            if action == "X":
                del ds[tag]
            elif action == "Z":
                elem.value = Sequence([]) if elem.VR == "SQ" else ""
            elif action == "D":
                elem.value = uids(str(elem.value)) if elem.VR == "UI" else _dummy(elem)
            report.actions[(label, action)] += 1
            continue
        if elem.VR == "UI" and elem.keyword not in KEEP_UID_KEYWORDS and elem.value:
            vals = (
                elem.value
                if isinstance(elem.value, list | pydicom.multival.MultiValue)
                else [elem.value]
            )
            new = [v if _is_standard_uid(v) else uids(v) for v in vals]
            if new != [str(v) for v in vals]:
                elem.value = new if len(new) > 1 else new[0]
                report.uids_replaced += sum(1 for a, b in zip(vals, new, strict=True) if a != b)
                report.actions[(label, "U")] += 1
            continue
        if elem.VR == "SQ":
            for item in elem.value:
                deidentify_dataset(item, uids, report)


def _mark(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])


def deidentify_file(ds: Dataset, uids: UidMapper, report: DeidReport) -> Dataset:
    """De-identify one dataset read with pixels; file meta follows the new SOP Instance UID."""
    deidentify_dataset(ds, uids, report)
    _mark(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for kw in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                   "ReceivingApplicationEntityTitle", "PrivateInformationCreatorUID",
                   "PrivateInformation"):  # fmt: skip
            if kw in meta:
                del meta[kw]
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _inputs(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def deidentify(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    uid_map: str | os.PathLike[str] | None = None,
    key: bytes | None = None,
) -> DeidReport:
    """De-identify every DICOM file under ``src`` into the new folder ``out``; return the report."""
    src_p, out_p = Path(src).resolve(), Path(out).resolve()
    if not src_p.exists():
        raise InputError(f"{src_p}: no such file or folder; check the path.")
    if out_p.exists() and (not out_p.is_dir() or any(out_p.iterdir())):
        raise ClinlabelError(f"{out_p}: already exists and is not empty; choose a new folder.")
    if out_p == src_p or src_p in out_p.parents:
        raise ClinlabelError(f"{out_p}: is inside the input; choose a folder outside {src_p.name}.")
    if not out_p.parent.is_dir():
        raise ClinlabelError(f"{out_p.parent}: the folder does not exist; create it first.")
    uids, report = UidMapper(key), DeidReport(out=str(out_p))
    files = _inputs(src_p)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_p.name}.", suffix=".part", dir=out_p.parent))
    try:
        series_dirs: dict[str, Path] = {}
        counters: Counter = Counter()
        for i, f in enumerate(files):
            if not is_dicom(f):
                continue
            report.files_in += 1
            try:
                ds = pydicom.dcmread(f)
            except Exception:
                report.skipped.append({"file": i, "reason": "unreadable DICOM; not copied"})
                continue
            if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
                report.skipped.append({"file": i, "reason": "BurnedInAnnotation YES: pixels may "
                                       "show identifiers; not copied (clean the pixels first)"})  # fmt: skip
                continue
            deidentify_file(ds, uids, report)
            series = str(ds.get("SeriesInstanceUID", "none"))
            folder = series_dirs.setdefault(series, tmp / f"S{len(series_dirs) + 1:03d}")
            folder.mkdir(exist_ok=True)
            counters[series] += 1
            ds.save_as(folder / f"I{counters[series]:04d}.dcm", enforce_file_format=True)
            report.files_written += 1
        if report.files_in == 0:
            raise InputError(f"{src_p.name}: no DICOM files found; nothing to de-identify.")
        atomic_write_bytes(
            tmp / REPORT_NAME, (json.dumps(report.to_dict(), indent=2) + "\n").encode()
        )
        if out_p.exists():
            out_p.rmdir()
        os.replace(tmp, out_p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if uid_map is not None:
        report.uid_map_written = True
        atomic_write_bytes(  # old UIDs identify the patient's studies: owner-only
            Path(uid_map),
            (json.dumps(uids.map, indent=2, sort_keys=True) + "\n").encode(),
            mode=0o600,
        )
        atomic_write_bytes(
            out_p / REPORT_NAME, (json.dumps(report.to_dict(), indent=2) + "\n").encode()
        )
    return report
