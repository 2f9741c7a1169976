"""De-identification: DICOM PS3.15 Annex E, the whole Table E.1-1, with profile options.

The actions come from :mod:`.table` (the current Table E.1-1, generated from a maintained source,
alternatives resolved IOD-safely as documented there) and are applied to every element, inside
sequences at any depth and in DICOMDIR records. ``U``: every table UID, and every other UID that is
not a standard DICOM UID (SOP classes, transfer syntaxes, coding schemes), is replaced by a keyed
hash (``2.25.<uuid>``; HMAC-SHA256 with a key made for the run), so references inside sequences and
across series and studies still match. Private tags are removed: the safe-private list
(:data:`SAFE_PRIVATE`) is empty. Geometry and pixel data are kept byte for byte unless the Clean
Pixel Data option blanks burned-in text. Each output gets a new, complete file meta, PatientIdentity
Removed YES, LongitudinalTemporalInformationModified, DeidentificationMethod and Deidentification
MethodCodeSequence (113100 plus one code per option applied).

Options (:class:`DeidOptions`, all off by default = the Basic Profile):

* ``retain_temporal`` (113107): dates keep their intervals — every date of the table, and the
  date part of every date-time, is moved back by one secret whole-day offset per patient (365 to
  3650 days, from the run key and the patient's original ID); times of day are kept; time-zone
  suffixes and the birth date/time keep the Basic Profile action.
* ``retain_patient_chars`` (113108): sex, age (above 89 written as 090Y), size, weight, sex
  neutered, ethnic group, smoking and pregnancy status are kept.
* ``retain_device`` (113109): device serial numbers, device/detector/gantry/plate IDs and
  labels, station names and AE titles, treatment machine name are kept.
* ``clean_pixels`` (113101): burned-in text found by OCR is blanked (see :mod:`.burned_in`);
  without it such an image is refused. ``blank_regions`` adds regions configured per
  manufacturer/model (as CTP's pixel anonymizer), blanked before OCR looks for more.

Every DICOM file is counted, header-less ones included (read with ``force=True``); a file that
cannot be read, has burned-in text, or cannot be written is refused and listed with its reason
while the rest are written. Files go to a temporary folder beside ``out``, renamed into place at
the end, named ``S001/I0001.dcm`` (input names may themselves identify). The report names tags,
actions, counts and per-file outcomes, never a value; the old→new UID map only where asked.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.log.audit_log import atomic_write_bytes
from napari_clinlabel.core.privacy.burned_in import (
    OcrUnavailable,
    PixelsUnreadable,
    Region,
    blank,
    find_text,
    risk,
)
from napari_clinlabel.core.privacy.phi_scan import display_path
from napari_clinlabel.core.privacy.reading import (
    Unreadable,
    dicom_files,
    proper_meta,
    read,
    transfer_syntax,
)
from napari_clinlabel.core.privacy.table import (
    BASIC_PROFILE,
    CLEAN_PIXEL_DATA,
    CODE_ITEM_KEYWORDS,
    DEVICE_IDENTITY,
    FREE_TEXT_VRS,
    NOT_SHIFTED,
    PATIENT_CHARACTERISTICS,
    RETAIN_DEVICE,
    RETAIN_PATIENT_CHARS,
    RETAIN_TEMPORAL,
    TABLE_SOURCE,
    TABLE_STANDARD,
    TEMPORAL_VRS,
    applied_action,
    dummy_value,
    empty_value,
    rule_for,
)

BASIC_PROFILE_CODE = BASIC_PROFILE
METHOD = "PS3.15 E.1-1 Basic Profile; napari-clinlabel"
SAFE_PRIVATE: frozenset[tuple[str, int]] = frozenset()  # (creator, element): none is kept
KEEP_UID_KEYWORDS = {
    "SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
    "ImplementationClassUID", "CodingSchemeUID", "ContextGroupExtensionCreatorUID",
    "ReferencedSOPClassUIDInFile", "ReferencedTransferSyntaxUIDInFile", "RelatedGeneralSOPClassUID",
    "OriginalSpecializedSOPClassUID", "SOPClassesInStudy", "AffectedSOPClassUID",
    "RequestedSOPClassUID", "ReferencedRelatedGeneralSOPClassUIDInFile",
}  # fmt: skip
REPORT_NAME = "deid-report.json"
_DA = re.compile(r"^\d{8}$")
_DT = re.compile(r"^(\d{8})(\d{0,6}(?:\.\d{1,6})?)?([+-]\d{4})?$")


@dataclass(frozen=True)
class DeidOptions:
    """PS3.15 E.3 options on top of the Basic Profile (all off: the Basic Profile)."""

    retain_temporal: bool = False
    retain_patient_chars: bool = False
    retain_device: bool = False
    clean_pixels: bool = False
    # Clean Pixel Data regions configured per device, as CTP's pixel anonymizer does:
    # (manufacturer, model, x, y, width, height); "*" matches any; blanked before OCR looks.
    blank_regions: tuple[tuple[str, str, int, int, int, int], ...] = ()

    def codes(self) -> list[tuple[str, str, str]]:
        """CID 7050 codes of the profile and the options chosen (pixel cleaning per file)."""
        out = [BASIC_PROFILE]
        for on, code in ((self.retain_temporal, RETAIN_TEMPORAL),
                         (self.retain_patient_chars, RETAIN_PATIENT_CHARS),
                         (self.retain_device, RETAIN_DEVICE)):  # fmt: skip
            if on:
                out.append(code)
        return out


class UidMapper:
    """Old UID → new ``2.25.`` UID, consistent for the run (keyed hash), remembered for the map."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        self.map: dict[str, str] = {}

    def __call__(self, old: str) -> str:
        old = str(old).strip().rstrip("\0")
        if old not in self.map:
            digest = hmac.new(self._key, old.encode("ascii", "replace"), hashlib.sha256).digest()
            self.map[old] = f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"
        return self.map[old]

    def day_offset(self, patient: str) -> int:
        """The patient's secret date shift in days (365..3650), the same for the whole run."""
        digest = hmac.new(self._key, b"date-offset\0" + patient.encode("utf-8", "replace"),
                          hashlib.sha256).digest()  # fmt: skip
        return 365 + int.from_bytes(digest[:4], "big") % 3286


@dataclass
class DeidReport:
    """What de-identification changed: tags with actions and counts, per-file outcomes (no values)."""

    files_in: int = 0
    files_written: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # refused files, with reasons
    files: list[dict[str, Any]] = field(default_factory=list)
    actions: Counter = field(default_factory=Counter)  # ("(gggg,eeee) Keyword", action) -> count
    private_removed: int = 0
    uids_replaced: int = 0
    uid_map_written: bool = False
    options: DeidOptions = field(default_factory=DeidOptions)
    out: str = ""

    @property
    def burned(self) -> list[dict[str, Any]]:
        """Per-file burned-in text outcomes (files at risk only)."""
        return [f for f in self.files if f.get("burned")]

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the report."""
        rows = [{"tag": t, "action": a, "count": n} for (t, a), n in sorted(self.actions.items())]
        return {
            "method": METHOD,
            "table": {"standard": TABLE_STANDARD, "source": TABLE_SOURCE},
            "options": asdict(self.options),
            "codes": [list(c) for c in self.options.codes()]
            + ([list(CLEAN_PIXEL_DATA)] if self.options.clean_pixels else []),
            "files_in": self.files_in,
            "files_written": self.files_written,
            "files_refused": len(self.skipped),
            "files": self.files,
            "changes": rows,
            "private_tags_removed": self.private_removed,
            "safe_private_kept": sorted(SAFE_PRIVATE),
            "uids_replaced": self.uids_replaced,
            "uid_map_written": self.uid_map_written,
            "pixel_data": "blanked where burned-in text was found"
            if any(f["burned"].get("action") == "blanked" for f in self.burned)
            else "unchanged",
            "geometry": "unchanged",
        }


@dataclass
class _Ctx:
    uids: UidMapper
    report: DeidReport
    options: DeidOptions
    offset_days: int


def _is_standard_uid(value: str) -> bool:
    return str(value) in UID_dictionary


def _values(elem: pydicom.DataElement) -> list[Any]:
    v = elem.value
    return list(v) if isinstance(v, list | MultiValue) else [v]


def _shift(elem: pydicom.DataElement, days: int) -> bool:
    """Move a DA/DT value back by ``days``; False when a value cannot be parsed (then the table
    action applies). A DT's time-zone suffix is dropped; TM values are kept as they are."""
    if elem.VR == "TM":
        return True
    out = []
    for v in _values(elem):
        s = str(v).strip()
        if not s:
            out.append(s)
            continue
        m = (_DA if elem.VR == "DA" else _DT).match(s)
        if not m:
            return False
        try:
            day = _dt.datetime.strptime(s[:8], "%Y%m%d").date() - _dt.timedelta(days=days)
        except ValueError:
            return False
        rest = "" if elem.VR == "DA" else (m.group(2) or "")
        out.append(day.strftime("%Y%m%d") + rest)
    elem.value = out if len(out) > 1 else out[0]
    return True


def _cap_age(elem: pydicom.DataElement) -> None:
    s = str(elem.value).strip().upper()
    if len(s) == 4 and s[:3].isdigit() and s[3] == "Y" and int(s[:3]) > 89:
        elem.value = "090Y"


def _map_uids(elem: pydicom.DataElement, ctx: _Ctx) -> None:
    if elem.VR == "UN":
        raw = bytes(elem.value or b"").decode("ascii", "replace").strip("\0 ")
        new = ctx.uids(raw).encode() if raw else b""
        elem.value = new + b"\0" * (len(new) % 2)
        ctx.report.uids_replaced += 1 if raw else 0
        return
    vals = [str(v) for v in _values(elem) if v is not None]
    new = [v if (not v or _is_standard_uid(v)) else ctx.uids(v) for v in vals]
    if new != vals:
        elem.value = new if len(new) > 1 else new[0]
        ctx.report.uids_replaced += sum(1 for a, b in zip(vals, new, strict=True) if a != b)


def deidentify_dataset(ds: Dataset, ctx: _Ctx, in_dummy: bool = False) -> None:
    """Apply Table E.1-1 (with the options of ``ctx``) to ``ds`` in place, recursing.

    ``in_dummy``: ``ds`` is an item of a sequence whose action is D; free text outside codes
    gets the dummy too (see :data:`.table.FREE_TEXT_VRS`)."""
    opts, report = ctx.options, ctx.report
    for elem in list(ds):
        tag = elem.tag
        if tag.is_private:
            del ds[tag]
            report.private_removed += 1
            continue
        kw = elem.keyword
        label = f"{tag} {kw or 'tag'}"
        is_sq = elem.VR == "SQ"
        rule = rule_for(int(tag))
        if rule is None:
            if elem.VR == "UI" and kw not in KEEP_UID_KEYWORDS and elem.value:
                _map_uids(elem, ctx)
            elif is_sq:
                for item in elem.value:
                    deidentify_dataset(item, ctx, in_dummy)
            elif in_dummy and elem.VR in FREE_TEXT_VRS and kw not in CODE_ITEM_KEYWORDS:
                if elem.value not in (None, ""):
                    elem.value = dummy_value(elem.VR)
                    report.actions[(label, "D")] += 1
            continue
        if (opts.retain_patient_chars and kw in PATIENT_CHARACTERISTICS) or (
            opts.retain_device and kw in DEVICE_IDENTITY
        ):
            if kw == "PatientAge":
                _cap_age(elem)
            report.actions[(label, "K")] += 1
            continue
        if (
            opts.retain_temporal
            and elem.VR in TEMPORAL_VRS
            and kw not in NOT_SHIFTED
            and _shift(elem, ctx.offset_days)
        ):
            report.actions[(label, "C")] += 1
            continue
        action = applied_action(rule.code, is_sq, kw)
        report.actions[(label, action)] += 1
        if action == "X":
            del ds[tag]
        elif action == "Z":
            elem.value = empty_value(elem.VR)
        elif action == "U":
            _map_uids(elem, ctx)
        elif is_sq:  # D or U*: the items stay, each de-identified by the table
            for item in elem.value:
                deidentify_dataset(item, ctx, in_dummy or action == "D")
        elif elem.VR == "UI":
            _map_uids(elem, ctx)
        else:
            elem.value = dummy_value(elem.VR)


def _mark(ds: Dataset, options: DeidOptions, pixels_cleaned: bool) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.retain_temporal else "REMOVED"
    )
    codes = options.codes() + ([CLEAN_PIXEL_DATA] if pixels_cleaned else [])
    # LO holds 64 characters: one value per method (the attribute is multi-valued)
    ds.DeidentificationMethod = [METHOD, *(c[2] for c in codes[1:])] if codes[1:] else METHOD
    items = []
    for value, scheme, meaning in codes:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
        items.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(items)


def _patient_key(ds: Dataset) -> str:
    return str(ds.get("PatientID", "") or ds.get("PatientName", "") or "")


def deidentify_file(
    ds: Dataset,
    uids: UidMapper,
    report: DeidReport,
    options: DeidOptions | None = None,
    *,
    pixels_cleaned: bool = False,
) -> Dataset:
    """De-identify one dataset read with pixels; give it a new, complete file meta."""
    options = options or report.options
    ts = transfer_syntax(ds)
    old_meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or "") or str(
        (old_meta or {}).get("MediaStorageSOPClassUID", "") or ""
    )
    old_inst = str(ds.get("SOPInstanceUID", "") or "") or str(
        (old_meta or {}).get("MediaStorageSOPInstanceUID", "") or ""
    )
    ctx = _Ctx(uids, report, options, uids.day_offset(_patient_key(ds)))
    deidentify_dataset(ds, ctx)
    _mark(ds, options, pixels_cleaned)
    if not sop_class:
        raise ClinlabelError("no SOP Class UID (not a storable DICOM instance)")
    new_inst = str(ds.get("SOPInstanceUID", "") or "") or uids(old_inst or f"{id(ds)}")
    proper_meta(ds, sop_class, new_inst, ts)
    return ds


def _configured_regions(ds: Dataset, options: DeidOptions) -> list[Region]:
    """The configured blank-out regions for this image's manufacturer and model (Clean Pixel
    Data on only)."""
    if not options.clean_pixels:
        return []
    maker = str(ds.get("Manufacturer", "")).strip().lower()
    model = str(ds.get("ManufacturerModelName", "")).strip().lower()
    out = []
    for m, mo, x, y, w, h in options.blank_regions:
        if m.strip().lower() in ("*", maker) and mo.strip().lower() in ("*", model):
            out.append(Region(int(x), int(y), int(w), int(h), 0))
    return out


def _check_pixels(ds: Dataset, options: DeidOptions) -> tuple[dict[str, Any] | None, str | None]:
    """Burned-in text: (what was found and done, refusal reason or None)."""
    why = risk(ds)
    if why is None:
        return None, None
    info: dict[str, Any] = {"risk": why}
    configured = _configured_regions(ds, options)
    if configured:
        try:
            blank(ds, configured)
        except PixelsUnreadable as exc:
            info["action"] = "refused"
            return info, f"configured regions not blanked: {exc}; not written"
        info["configured_regions"] = len(configured)
    try:
        regions = find_text(ds)
    except (OcrUnavailable, PixelsUnreadable) as exc:
        info["action"] = "refused"
        return info, f"burned-in text could not be checked: {exc}; not written"
    info["words"] = len(regions)
    if not regions and configured:  # the device's text areas blanked, OCR reads nothing more
        ds.BurnedInAnnotation = "NO"
        info["action"] = "blanked"
        return info, None
    if not regions:
        if why.startswith("BurnedInAnnotation YES"):
            info["action"] = "refused"
            return info, ("burned-in annotation declared (BurnedInAnnotation YES) but OCR found "
                          "no text to blank; not written — check the pixels")  # fmt: skip
        info["action"] = "none found"
        return info, None
    if not options.clean_pixels:
        info["action"] = "refused"
        return info, (f"burned-in text: {len(regions)} word(s) found by OCR ({why}); not written "
                      "— use the Clean Pixel Data option (--clean-pixels) to blank them")  # fmt: skip
    try:
        if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
            proper_meta(ds, "", "", transfer_syntax(ds))
        blank(ds, regions)
        left = find_text(ds)
        if left:  # blanking one word can reveal a neighbour OCR had merged: once more
            blank(ds, left)
            left = find_text(ds)
    except (OcrUnavailable, PixelsUnreadable) as exc:
        info["action"] = "refused"
        return info, f"burned-in text found but not blanked: {exc}; not written"
    if left:
        info["action"] = "refused"
        return info, "burned-in text still found by OCR after blanking; not written"
    ds.BurnedInAnnotation = "NO"
    info["action"] = "blanked"
    return info, None


def deidentify(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    options: DeidOptions | None = None,
    uid_map: str | os.PathLike[str] | None = None,
    key: bytes | None = None,
) -> DeidReport:
    """De-identify every DICOM file under ``src`` into the new folder ``out``; return the report.

    Files that cannot be read, written or cleaned are refused and listed; the rest are written.
    """
    options = options or DeidOptions()
    src_p, out_p = Path(src).resolve(), Path(out).resolve()
    if not src_p.exists():
        raise InputError(f"{src_p}: no such file or folder; check the path.")
    if out_p.exists() and (not out_p.is_dir() or any(out_p.iterdir())):
        raise ClinlabelError(f"{out_p}: already exists and is not empty; choose a new folder.")
    if out_p == src_p or src_p in out_p.parents:
        raise ClinlabelError(f"{out_p}: is inside the input; choose a folder outside {src_p.name}.")
    if not out_p.parent.is_dir():
        raise ClinlabelError(f"{out_p.parent}: the folder does not exist; create it first.")
    uids, report = UidMapper(key), DeidReport(out=str(out_p), options=options)
    files, _other = dicom_files(src_p)
    if not files:
        raise InputError(f"{src_p.name}: no DICOM files found; nothing to de-identify.")
    root = src_p if src_p.is_dir() else src_p.parent
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_p.name}.", suffix=".part", dir=out_p.parent))
    try:
        series_dirs: dict[str, Path] = {}
        counters: Counter = Counter()
        for i, f in enumerate(files):
            report.files_in += 1
            entry: dict[str, Any] = {"input": i, "file": display_path(f, root)}
            report.files.append(entry)

            def refuse(reason: str, entry: dict[str, Any] = entry) -> None:
                entry.update(status="refused", reason=reason)
                report.skipped.append({"file": entry["input"], "name": entry["file"],
                                       "reason": reason})  # fmt: skip

            try:
                ds = read(f)
            except Unreadable as exc:
                refuse(f"unreadable: {exc}; not written")
                continue
            burned, why = _check_pixels(ds, options)
            if burned is not None:
                entry["burned"] = burned
            if why is not None:
                refuse(why)
                continue
            name: Path | None = None
            try:
                deidentify_file(ds, uids, report, options,
                                pixels_cleaned=bool(burned and burned["action"] == "blanked"))  # fmt: skip
                series = str(ds.get("SeriesInstanceUID", "none"))
                folder = series_dirs.setdefault(series, tmp / f"S{len(series_dirs) + 1:03d}")
                folder.mkdir(exist_ok=True)
                counters[series] += 1
                name = folder / f"I{counters[series]:04d}.dcm"
                ds.save_as(name, enforce_file_format=True)
            except Exception as exc:  # a value pydicom cannot encode: refuse this file only
                msg = str(exc) if isinstance(exc, ClinlabelError) else type(exc).__name__
                refuse(f"could not be written ({msg}); not written")
                if name is not None and name.exists():
                    name.unlink()
                continue
            entry.update(status="written", output=str(name.relative_to(tmp)))
            report.files_written += 1
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
