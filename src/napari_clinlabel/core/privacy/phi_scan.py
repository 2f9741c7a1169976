"""PHI scan: what in a file or folder could identify a patient, reported without the PHI itself.

Per DICOM file (header-less ones included): every attribute of DICOM PS3.15 Table E.1-1
(:mod:`.table`, the whole current table; nested sequences and DICOMDIR records included) that
holds a value the Basic Profile would remove, empty or replace — except the dummies de-identification
writes and what the file's own DeidentificationMethodCodeSequence declares kept (113107 shifted
dates, 113108 patient characteristics, 113109 device identity); private tags; burned-in text:
BurnedInAnnotation YES, and on images at risk (:func:`.burned_in.risk`) the words Tesseract reads
in the pixels. Also PHI-looking file and folder names (dates, MRN-like digit runs, ``Last^First``
names, the file's own PatientName/PatientID), NIfTI header text fields (``descrip``, ``aux_file``,
``intent_name``, ``db_name``, extensions) and NRRD/MHA header keys copied from DICOM (``0010|0010``
…). UIDs (action ``U``) are replaced by :mod:`.deid` and are not findings here.

A finding names the tag or field and carries a masked hint (``'J***' (8 chars)``), never the value.
Its ``kind`` is ``"phi"``, or ``"unreadable"`` for a DICOM file that could not be parsed in full,
or whose pixels could not be checked for burned-in text (OCR missing, pixels undecodable): such a
file is never called clean.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.privacy.burned_in import (
    OcrUnavailable,
    PixelsUnreadable,
    find_text,
    risk,
)
from napari_clinlabel.core.privacy.reading import Unreadable, read, sniff
from napari_clinlabel.core.privacy.table import (
    CODE_ITEM_KEYWORDS,
    DEVICE_IDENTITY,
    DUMMY_TEXT,
    DUMMY_VALUES,
    EXTRA_REMOVED,
    FREE_TEXT_VRS,
    NOT_SHIFTED,
    PATIENT_CHARACTERISTICS,
    RETAIN_DEVICE,
    RETAIN_PATIENT_CHARS,
    RETAIN_TEMPORAL,
    TABLE,
    TEMPORAL_VRS,
    applied_action,
    rule_for,
)


def _strictest(code: str, is_sequence: bool) -> str:
    if code == "X" or (code in ("X/D", "X/Z/D", "X/Z") and not is_sequence):
        return "X"
    return applied_action(code, is_sequence)


# tag -> (keyword, strictest action the table allows): X where removal is one of the choices,
# except for sequences offered X/Z (references, Type 2 in many IODs) and X/Z/U*, which stay.
PROFILE_TAGS: dict[int, tuple[str, str]] = {
    t: (r.keyword, _strictest(r.code, dictionary_VR(t) == "SQ"))
    for t, r in {**TABLE, **EXTRA_REMOVED}.items()
    if r.keyword
}
PROFILE: dict[str, str] = {kw: a for kw, a in PROFILE_TAGS.values()}
ALLOWED_VALUES = DUMMY_VALUES
__all__ = ["DUMMY_TEXT", "Finding", "mask", "scan_dataset", "scan_file", "scan_path"]
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
    kind: str = "phi"  # or "unreadable": the file could not be checked in full

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


def _declared(ds: Dataset) -> set[str]:
    """Option codes a de-identified file declares in its DeidentificationMethodCodeSequence."""
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        return set()
    return {
        str(item.get("CodeValue", "")) for item in ds.get("DeidentificationMethodCodeSequence", [])
    }


def _kept_by_option(elem: pydicom.DataElement, declared: set[str]) -> bool:
    kw = elem.keyword
    return bool(
        (RETAIN_PATIENT_CHARS[0] in declared and kw in PATIENT_CHARACTERISTICS)
        or (RETAIN_DEVICE[0] in declared and kw in DEVICE_IDENTITY)
        or (RETAIN_TEMPORAL[0] in declared and elem.VR in TEMPORAL_VRS and kw not in NOT_SHIFTED)
    )


def scan_dataset(
    ds: Dataset,
    path: Path,
    prefix: str = "",
    declared: set[str] | None = None,
    in_dummy: bool = False,
) -> list[Finding]:
    """Findings in one DICOM dataset (Table E.1-1 attributes, private tags, burned-in flag).

    ``in_dummy``: ``ds`` is an item of a D sequence, where free text outside codes is PHI too."""
    declared = _declared(ds) if declared is None else declared
    out: list[Finding] = []
    for elem in ds:
        name = f"{prefix}{elem.keyword or 'tag'} {elem.tag}"
        if elem.tag.is_private:
            if elem.tag.element > 0x00FF and _has_value(elem):  # data, not the private creator
                hint = "sequence" if elem.VR == "SQ" else mask(_text(elem))
                out.append(Finding(path, f"{prefix}private tag {elem.tag}", hint))
            continue
        rule = rule_for(int(elem.tag))
        is_sq = elem.VR == "SQ"
        if rule is not None and "U" not in rule.code and _has_value(elem):
            action = applied_action(rule.code, is_sq, elem.keyword)
            if is_sq and action in ("D", "U*"):
                pass  # the items stay (their dummy): each is scanned below
            elif not is_sq and _text(elem).strip().upper() in ALLOWED_VALUES:
                continue
            elif not is_sq and action == "D" and elem.VR in ("US", "SS", "UL", "SL", "FL", "FD",
                                                              "OB", "OW", "UN") and not any(
                bytes(elem.value) if isinstance(elem.value, bytes) else [elem.value]
            ):  # fmt: skip
                continue  # the zero dummy of a binary value
            elif _kept_by_option(elem, declared):
                continue
            else:
                hint = f"sequence of {len(elem.value)} item(s)" if is_sq else mask(_text(elem))
                out.append(Finding(path, name, hint))
                continue
        if (
            rule is None
            and in_dummy
            and elem.VR in FREE_TEXT_VRS
            and elem.keyword not in CODE_ITEM_KEYWORDS
            and _has_value(elem)
            and _text(elem).strip().upper() not in ALLOWED_VALUES
        ):
            out.append(Finding(path, name, mask(_text(elem))))
            continue
        if elem.keyword == "BurnedInAnnotation" and str(elem.value).upper() == "YES":
            out.append(Finding(path, name, "YES: identifiers may be burned into the pixels"))
        if is_sq:
            for i, item in enumerate(elem.value):
                out.extend(scan_dataset(item, path, f"{prefix}{elem.keyword or elem.tag}[{i}].",
                                        declared, in_dummy or bool(
                                            rule and applied_action(rule.code, True) == "D")))  # fmt: skip
    return out


def scan_pixels(ds: Dataset, path: Path) -> list[Finding]:
    """Burned-in text on an image at risk: the words OCR reads (count only), or why unchecked."""
    why = risk(ds)
    if why is None:
        return []
    try:
        regions = find_text(ds)
    except (OcrUnavailable, PixelsUnreadable) as exc:
        return [Finding(path, "pixels", f"burned-in text not checked ({why}): {exc}",
                        kind="unreadable")]  # fmt: skip
    if not regions:
        return []
    chars = sum(r.chars for r in regions)
    return [Finding(path, "pixels", f"burned-in text: {len(regions)} word(s), {chars} "
                    f"character(s) read by OCR ({why})")]  # fmt: skip


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
    """True for files with the DICM preamble or that start like a header-less DICOM data set."""
    return sniff(Path(path))


def scan_file(path: Path, root: Path | None = None, *, ocr: bool = True) -> list[Finding]:
    """Every finding for one file (its name included); paths shown relative to ``root``."""
    path = Path(path)
    root = root or path.parent
    name = path.name.lower()
    found: list[Finding] = []
    identity: tuple[str, ...] = ()
    if is_dicom(path):
        try:
            ds = read(path)
        except Unreadable as exc:
            return [Finding(path, "DICOM", f"unreadable ({exc}); not scanned: never call it clean",
                            display_path(path, root), kind="unreadable")]  # fmt: skip
        found.extend(scan_dataset(ds, path))
        if getattr(ds, "file_meta", None) is not None:
            found.extend(scan_dataset(ds.file_meta, path, "file meta "))
        if ocr:
            found.extend(scan_pixels(ds, path))
        identity = tuple(p for p in re.split(r"[\^ ]", str(ds.get("PatientName", ""))) if p)
        identity += (str(ds.get("PatientID", "")),)
    elif name.endswith((".nii", ".nii.gz")):
        found.extend(scan_nifti(path))
    elif name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
        found.extend(scan_itk_header(path))
    found.extend(scan_name(path, root, identity))
    shown = display_path(path, root, identity)
    return [Finding(f.path, f.where, f.hint, shown, f.kind) for f in found]


def scan_path(path: str | os.PathLike[str], *, ocr: bool = True) -> list[Finding]:
    """Findings for a file, or for every file under a folder (hidden files and logs skipped)."""
    p = Path(path)
    if p.is_file():
        return scan_file(p, ocr=ocr)
    if not p.is_dir():
        raise InputError(f"{p}: no such file or folder; check the path.")
    out: list[Finding] = []
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(scan_name(Path(dirpath), p))
        for f in sorted(filenames):
            if f.startswith(".") or f.endswith((".jsonl", ".json")):
                continue
            out.extend(scan_file(Path(dirpath) / f, p, ocr=ocr))
    return out
