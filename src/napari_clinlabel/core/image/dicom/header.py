"""DICOM headers: a fast header-only scan of files and folders, grouped by series.

Only the attributes the reader needs are parsed (straight from their bytes), never patient
attributes. Empty or corrupt files raise :class:`InputError`; truncated pixel data is noted on
the header so the series it belongs to is refused when read.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from napari_clinlabel.core.errors import ClinlabelWarning, InputError

# uncompressed transfer syntaxes: pixel data length is known, so truncation is detectable
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "FrameOfReferenceUID", "Modality", "SeriesDescription", "SeriesNumber", "InstanceNumber",
    "AcquisitionNumber", "TemporalPositionIdentifier", "AcquisitionTime", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "SamplesPerPixel",
    "BitsAllocated", "BitsStored", "PixelRepresentation", "NumberOfFrames", "RescaleSlope",
    "RescaleIntercept", "WindowCenter", "WindowWidth", "GantryDetectorTilt", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "SpecificCharacterSet",
    "ImageLaterality", "Laterality", "ViewPosition",
]  # fmt: skip
_TAG_OF = {k: tag_for_keyword(k) for k in _TAGS}
_TAG_LIST = [Tag(t) for t in _TAG_OF.values()]
_BINARY_INT = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}


@dataclass(frozen=True)
class SliceHeader:
    """What the reader needs from one DICOM file's header (no patient attributes)."""

    path: Path
    series_uid: str
    sop_uid: str
    sop_class: str
    study_uid: str
    frame_uid: str
    modality: str
    description: str
    series_number: int
    rows: int
    cols: int
    samples: int
    frames: int
    iop: tuple[float, ...] | None
    ipp: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None  # DICOM order: (row spacing, column spacing)
    instance: int
    acquisition: int
    temporal: int
    acq_time: str
    gantry_tilt: float
    rescale: tuple[float, float]  # (slope, intercept)
    window: tuple[float, float] | None
    enhanced: bool
    frame_positions: tuple[tuple[float, ...], ...] | None  # enhanced: per-frame IPP
    problem: str | None = None  # why the file cannot be used (e.g. truncated pixel data)
    bits: tuple[int, int, int] = (0, 0, 0)  # BitsAllocated, BitsStored, PixelRepresentation
    syntax: str = ""  # TransferSyntaxUID
    laterality: str = ""  # ImageLaterality (0020,0062), else Laterality (0020,0060): L, R, B, U
    view_position: str = ""  # ViewPosition (0018,5101), e.g. CC, MLO


def _raw(ds: pydicom.Dataset, keyword: str) -> object:
    """Value of a top-level attribute parsed straight from its bytes (no pydicom conversion).

    Header scans touch a few attributes of hundreds of files; pydicom's value conversion
    and validation dominated the scan, so text values are split and binary ints unpacked here.
    Text comes back as a str (one value) or a list of str; sequences as pydicom values.
    """
    tag = _TAG_OF[keyword]
    if tag not in ds:
        return None
    elem = ds.get_item(tag)
    if not isinstance(elem, RawDataElement):
        return elem.value
    raw = elem.value
    vr = elem.VR or dictionary_VR(tag)
    if raw is None or vr == "SQ":
        return ds[tag].value
    if vr in _BINARY_INT:
        code = _BINARY_INT[vr]
        n = len(raw) // struct.calcsize(code)
        vals = struct.unpack(
            ("<" if elem.is_little_endian else ">") + code * n, raw[: n * struct.calcsize(code)]
        )
        return vals[0] if len(vals) == 1 else list(vals)
    parts = raw.decode("latin-1").strip(" \x00").split("\\")
    parts = [x.strip(" \x00") for x in parts]
    return parts[0] if len(parts) == 1 else parts


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _int(ds: pydicom.Dataset, name: str) -> int:
    v = _raw(ds, name)
    if isinstance(v, list | tuple | pydicom.multival.MultiValue):
        v = v[0] if len(v) else None
    try:
        return int(float(v)) if v not in (None, "") else 0
    except (TypeError, ValueError):
        return 0


def _str(ds: pydicom.Dataset, name: str) -> str:
    v = _raw(ds, name)
    if isinstance(v, list):
        v = "\\".join(v)
    return "" if v is None else str(v)


def _floats(v: object) -> tuple[float, ...] | None:
    if v in (None, ""):
        return None
    if isinstance(v, str | bytes | float | int):
        v = [v]
    try:
        return tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None


def _functional(ds: pydicom.Dataset, item: str, attr: str) -> object:
    """Attribute from the shared functional groups (enhanced multi-frame), or None."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and item in shared[0] and len(shared[0][item].value):
        return shared[0][item].value[0].get(attr)
    return None


def read_header(path: Path, data: bytes | None = None) -> SliceHeader | None:
    """Header facts of one file; None when it is not a DICOM image (text, SR, RT plan, …).

    ``data``: the file's bytes already in memory (a PACS pull), parsed instead of reading ``path``.
    Raises :class:`InputError` for an empty file or a corrupt header; truncated pixel data is
    noted in ``problem`` (the series it belongs to is refused when read).
    """
    size = path.stat().st_size if data is None else len(data)
    if size == 0:
        raise InputError(
            f"{path}: the file is empty (0 bytes). Replace it with a complete copy from the "
            "scanner or PACS, or remove it from the folder, then open again."
        )
    try:
        with open(path, "rb") if data is None else io.BytesIO(data) as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_TAG_LIST)
            pixel_offset = fp.tell()
    except InvalidDicomError:
        return None  # no DICM preamble: not a DICOM file
    except Exception as exc:  # pydicom raises many types on corrupt bytes
        raise InputError(
            f"{path}: the DICOM header is corrupt ({type(exc).__name__}). Re-export the file "
            "from the scanner or PACS, or remove it from the folder."
        ) from exc
    if "Rows" not in ds or "Columns" not in ds:
        if "SeriesInstanceUID" not in ds and pixel_offset >= size:
            raise InputError(
                f"{path}: the DICOM file ends inside its header (truncated or corrupt). "
                "Re-export the file from the scanner or PACS, or remove it from the folder."
            )
        return None  # a non-image object (structured report, RT plan, …)
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames") or 1
    samples = _int(ds, "SamplesPerPixel") or 1
    syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", ""))
    problem = None
    if syntax in _UNCOMPRESSED:
        expected = rows * cols * frames * samples * (_int(ds, "BitsAllocated") or 16) // 8
        if pixel_offset >= size or size - pixel_offset < expected + 8:
            problem = (
                f"{path}: the pixel data is truncated ({max(size - pixel_offset, 0)} of "
                f"{expected} bytes present). Re-export or re-copy the file, or remove it."
            )
    per_frame = _raw(ds, "PerFrameFunctionalGroupsSequence")
    enhanced = bool(per_frame)
    iop = _floats(_raw(ds, "ImageOrientationPatient"))
    spacing = _floats(_raw(ds, "PixelSpacing"))
    frame_positions = None
    if enhanced:
        iop = iop or _floats(_functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient"))
        spacing = spacing or _floats(_functional(ds, "PixelMeasuresSequence", "PixelSpacing"))
        try:
            frame_positions = tuple(
                _floats(fg.PlanePositionSequence[0].ImagePositionPatient) for fg in per_frame
            )
        except (AttributeError, IndexError):
            frame_positions = None
    wc, ww = _first(_raw(ds, "WindowCenter")), _first(_raw(ds, "WindowWidth"))
    return SliceHeader(
        path=path,
        series_uid=_str(ds, "SeriesInstanceUID"),
        sop_uid=_str(ds, "SOPInstanceUID"),
        sop_class=_str(ds, "SOPClassUID"),
        study_uid=_str(ds, "StudyInstanceUID"),
        frame_uid=_str(ds, "FrameOfReferenceUID"),
        modality=_str(ds, "Modality"),
        description=_str(ds, "SeriesDescription"),
        series_number=_int(ds, "SeriesNumber"),
        rows=rows,
        cols=cols,
        samples=samples,
        frames=frames,
        iop=iop,
        ipp=_floats(_raw(ds, "ImagePositionPatient")),
        pixel_spacing=spacing,
        instance=_int(ds, "InstanceNumber"),
        acquisition=_int(ds, "AcquisitionNumber"),
        temporal=_int(ds, "TemporalPositionIdentifier"),
        acq_time=_str(ds, "AcquisitionTime"),
        gantry_tilt=_first(_raw(ds, "GantryDetectorTilt")) or 0.0,
        rescale=(
            _first(_raw(ds, "RescaleSlope")) or 1.0,
            _first(_raw(ds, "RescaleIntercept")) or 0.0,
        ),
        window=(wc, ww) if wc is not None and ww else None,
        enhanced=enhanced,
        frame_positions=frame_positions,
        problem=problem,
        bits=(_int(ds, "BitsAllocated"), _int(ds, "BitsStored"), _int(ds, "PixelRepresentation")),
        syntax=syntax,
        laterality=_str(ds, "ImageLaterality") or _str(ds, "Laterality"),
        view_position=_str(ds, "ViewPosition"),
    )


def dicomdir_files(folder: Path) -> set[Path] | None:
    """Files a DICOMDIR in ``folder`` references (resolved paths, case-folded), or None when
    there is no DICOMDIR or it cannot be read (then every file counts as a member)."""
    dicomdir = next((folder / n for n in os.listdir(folder) if n.upper() == "DICOMDIR"), None)
    if dicomdir is None or not dicomdir.is_file():
        return None
    try:
        ds = pydicom.dcmread(dicomdir, stop_before_pixels=True)
        records = ds.DirectoryRecordSequence
    except Exception:  # noqa: BLE001 - an unreadable DICOMDIR: fall back to the plain scan
        warnings.warn(
            ClinlabelWarning(f"{dicomdir}: the DICOMDIR cannot be read; scanning the folder."),
            stacklevel=3,
        )
        return None
    out = set()
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if ref:
            parts = [ref] if isinstance(ref, str) else list(ref)
            out.add(_fold(folder.joinpath(*parts)))
    return out


def _fold(path: Path) -> Path:
    """A path key that ignores case (DICOMDIR file IDs are upper case, media often are not)."""
    return Path(str(path.resolve()).casefold())


def scan_folder(folder: Path, recursive: bool = True, strict: bool = True) -> list[SliceHeader]:
    """Headers of every DICOM image in ``folder``; files that are not DICOM are skipped.

    With ``strict`` an empty or corrupt file raises :class:`InputError`; otherwise it is
    skipped with a :class:`ClinlabelWarning` naming it (used when one file's series is asked for).
    When ``folder`` holds a DICOMDIR, a broken file it does not reference (a stray file) is
    skipped with a warning naming it even with ``strict``; a broken file it references still
    raises, since a series would silently lose a slice.
    """
    headers = []
    members = dicomdir_files(folder)
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, _dirs, names in walk:
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or name.upper() == "DICOMDIR" or not path.is_file():
                continue
            stray = members is not None and _fold(path) not in members
            try:
                h = read_header(path)
            except InputError as exc:
                if strict and not stray:
                    raise
                why = " (not listed in the DICOMDIR)" if stray else ""
                warnings.warn(ClinlabelWarning(f"skipped a file{why}: {exc}"), stacklevel=2)
                continue
            if h is not None and h.problem and stray:
                warnings.warn(
                    ClinlabelWarning(f"skipped a file (not listed in the DICOMDIR): {h.problem}"),
                    stacklevel=2,
                )
                continue
            if h is not None:
                headers.append(h)
    return headers


def group_series(headers: list[SliceHeader]) -> list[list[SliceHeader]]:
    """Headers grouped by SeriesInstanceUID, ordered by series number then UID."""
    groups: dict[str, list[SliceHeader]] = {}
    for h in headers:
        groups.setdefault(h.series_uid, []).append(h)
    return sorted(groups.values(), key=lambda g: (g[0].series_number, g[0].series_uid))
