"""DICOM series: header-only scan, validation and geometric sorting, then pixels via SimpleITK.

SimpleITK's plain series read silently gets some real series wrong (several volumes at the
same positions, gaps, gantry tilt), so the plan is made here from the headers first:

* slices sort by position along the ImageOrientationPatient normal, never by instance number
  or file name;
* several images at every position (fMRI, DTI, multi-phase) become a 4D volume, volume axis
  first, volumes ordered by AcquisitionNumber, TemporalPositionIdentifier, AcquisitionTime and
  InstanceNumber;
* uneven spacing, a missing slice, gantry tilt (stack direction off the normal), mixed
  orientations or image sizes are refused with a :class:`GeometryError` naming the problem
  (nothing is resampled: a refused series is never shown in a wrong place);
* enhanced (multi-frame) images sort their frames by per-frame position.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from .errors import ClinlabelWarning, GeometryError, InputError

# uncompressed transfer syntaxes: pixel data length is known, so truncation is detectable
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "FrameOfReferenceUID", "Modality", "SeriesDescription", "SeriesNumber", "InstanceNumber",
    "AcquisitionNumber", "TemporalPositionIdentifier", "AcquisitionTime", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "SamplesPerPixel",
    "BitsAllocated", "NumberOfFrames", "RescaleSlope", "RescaleIntercept", "WindowCenter",
    "WindowWidth", "GantryDetectorTilt", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "SpecificCharacterSet",
]  # fmt: skip
_TAG_OF = {k: tag_for_keyword(k) for k in _TAGS}
_TAG_LIST = [Tag(t) for t in _TAG_OF.values()]
_BINARY_INT = {"US": "H", "SS": "h", "UL": "I", "SL": "i"}
POSITION_TOL_MM = 0.01  # slice positions agree within this (scanner rounding)
ORIENTATION_TOL = 1e-4  # direction cosines agree within this


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


def read_header(path: Path) -> SliceHeader | None:
    """Header facts of one file; None when it is not a DICOM image (text, SR, RT plan, …).

    Raises :class:`InputError` for an empty file or a corrupt header; truncated pixel data is
    noted in ``problem`` (the series it belongs to is refused when read).
    """
    size = path.stat().st_size
    if size == 0:
        raise InputError(
            f"{path}: the file is empty (0 bytes). Replace it with a complete copy from the "
            "scanner or PACS, or remove it from the folder, then open again."
        )
    try:
        with open(path, "rb") as fp:
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
    )


def scan_folder(folder: Path, recursive: bool = True, strict: bool = True) -> list[SliceHeader]:
    """Headers of every DICOM image in ``folder``; files that are not DICOM are skipped.

    With ``strict`` an empty or corrupt file raises :class:`InputError`; otherwise it is
    skipped with a :class:`ClinlabelWarning` naming it (used when one file's series is asked for).
    """
    import warnings

    headers = []
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, _dirs, names in walk:
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or name.upper() == "DICOMDIR" or not path.is_file():
                continue
            try:
                h = read_header(path)
            except InputError as exc:
                if strict:
                    raise
                warnings.warn(ClinlabelWarning(f"skipped a file: {exc}"), stacklevel=2)
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


@dataclass
class SeriesPlan:
    """A validated series: files per volume in slice order, and the geometry in ITK order."""

    headers: list[SliceHeader]
    files: list[list[Path]]  # [volume][slice], slices sorted along the normal
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    frame_order: list[int] | None = None  # enhanced: frame index for each output slice

    @property
    def n_volumes(self) -> int:
        """Number of volumes at each position (1 for an ordinary 3D series)."""
        return len(self.files)

    @property
    def n_slices(self) -> int:
        """Number of slice positions."""
        return len(self.files[0]) if self.frame_order is None else len(self.frame_order)


def _where(headers: list[SliceHeader]) -> str:
    h = headers[0]
    desc = f' "{h.description}"' if h.description else ""
    return f"series {h.series_number}{desc} in {h.path.parent}"


def _check_uniform(headers: list[SliceHeader]) -> np.ndarray:
    """Shared orientation as (row, col, normal) columns; refuse mixed sizes or orientations."""
    where = _where(headers)
    sizes = {(h.rows, h.cols) for h in headers}
    if len(sizes) > 1:
        raise GeometryError(
            f"{where}: images of different sizes {sorted(sizes)} in one series. Open the files "
            "of one size separately (e.g. move the others to another folder)."
        )
    if any(h.iop is None or h.ipp is None or h.pixel_spacing is None for h in headers):
        raise GeometryError(
            f"{where}: some images lack ImagePositionPatient, ImageOrientationPatient or "
            "PixelSpacing, so they cannot be stacked in space. Open the files one at a time."
        )
    iops = np.array([h.iop for h in headers], float)
    if np.abs(iops - iops[0]).max() > ORIENTATION_TOL:
        n = len({tuple(np.round(i, 3)) for i in iops})
        raise GeometryError(
            f"{where}: {n} different slice orientations in one series (e.g. a localizer). "
            "Open each orientation separately (move its files to their own folder)."
        )
    sp = np.array([h.pixel_spacing for h in headers], float)
    if np.abs(sp - sp[0]).max() > 1e-4:
        raise GeometryError(f"{where}: pixel spacing differs between images; open them separately.")
    row, col = iops[0, :3], iops[0, 3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    return np.stack([row, col, np.cross(row, col)], axis=1)


def _stack_geometry(
    where: str, positions: np.ndarray, rot: np.ndarray, tilt: float
) -> tuple[np.ndarray, float]:
    """Sort key along the normal and the regular slice spacing; refuse gaps, unevenness, tilt."""
    normal = rot[:, 2]
    d = positions @ normal
    if len(d) < 2:
        return d, 0.0
    ds = np.sort(d)
    steps = np.diff(ds)
    step = (ds[-1] - ds[0]) / (len(ds) - 1)
    tol = max(POSITION_TOL_MM, 1e-3 * step)
    if np.abs(steps - step).max() > tol:
        small = float(np.median(steps))
        worst = int(np.argmax(np.abs(steps - small)))
        kind = "a missing slice" if steps[worst] > 1.5 * small else "uneven slice spacing"
        raise GeometryError(
            f"{where}: {kind}: slices at {ds[worst]:.3f} and {ds[worst + 1]:.3f} mm along the "
            f"normal are {steps[worst]:.3f} mm apart where the others are {small:.3f} mm. "
            "Find the missing images or resample the series to a regular grid (e.g. with "
            "dcm2niix or 3D Slicer), then open the result."
        )
    order = np.argsort(d)
    first, last = positions[order[0]], positions[order[-1]]
    along = last - first
    off_normal = along - (along @ normal) * normal
    if np.linalg.norm(off_normal) > tol * 2:
        angle = np.degrees(np.arctan2(np.linalg.norm(off_normal), abs(along @ normal)))
        raise GeometryError(
            f"{where}: the slices are sheared {angle:.2f}° off the slice normal (gantry tilt, "
            f"GantryDetectorTilt {tilt:g}°); shown as a plain stack they would be misplaced. "
            "Correct the tilt first (e.g. dcm2niix or 3D Slicer's gantry tilt correction)."
        )
    return d, float(step)


def plan_series(headers: list[SliceHeader]) -> SeriesPlan:
    """Validate one series and sort it; raises :class:`GeometryError` naming the problem."""
    where = _where(headers)
    for h in headers:
        if h.problem:
            raise InputError(h.problem)
    if len(headers) == 1 and headers[0].enhanced and headers[0].frame_positions:
        return _plan_enhanced(headers[0])
    if len(headers) == 1 and (headers[0].ipp is None or headers[0].frames > 1):
        h = headers[0]  # a lone 2D image or plain multi-frame object: SimpleITK's geometry
        return SeriesPlan(headers, [[h.path]], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), ())
    rot = _check_uniform(headers)
    positions = np.array([h.ipp for h in headers], float)
    d = positions @ rot[:, 2]
    # group images at the same position (several volumes)
    order = np.argsort(d, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and abs(d[i] - d[groups[-1][0]]) <= POSITION_TOL_MM:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    counts = {len(g) for g in groups}
    if len(counts) > 1:
        raise GeometryError(
            f"{where}: positions hold different numbers of images ({sorted(counts)}): images "
            "are missing from some volumes or acquisitions are mixed. Find the missing images "
            "or separate the acquisitions, then open again."
        )
    n_vol = counts.pop()
    for g in groups:
        if np.abs(positions[g] - positions[g[0]]).max() > POSITION_TOL_MM * 2:
            raise GeometryError(
                f"{where}: images at the same depth are shifted in plane (two stacks in one "
                "series?). Open each stack separately."
            )
    tilt = max(abs(h.gantry_tilt) for h in headers)
    _, step = _stack_geometry(where, positions[[g[0] for g in groups]], rot, tilt)

    def vol_key(i: int) -> tuple:
        h = headers[i]
        return (h.acquisition, h.temporal, h.acq_time, h.instance)

    per_position = [sorted(g, key=vol_key) for g in groups]
    files = [[headers[g[t]].path for g in per_position] for t in range(n_vol)]
    pix = headers[0].pixel_spacing
    spacing = (float(pix[1]), float(pix[0]), step if step > 0 else 1.0)
    origin = tuple(float(v) for v in positions[per_position[0][0]])
    return SeriesPlan(headers, files, spacing, origin, tuple(float(v) + 0.0 for v in rot.ravel()))


def _plan_enhanced(h: SliceHeader) -> SeriesPlan:
    where = _where([h])
    if h.iop is None or h.pixel_spacing is None:
        raise GeometryError(f"{where}: enhanced image without plane orientation or pixel spacing.")
    iop = np.asarray(h.iop, float)
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    rot = np.stack([row, col, np.cross(row, col)], axis=1)
    positions = np.array(h.frame_positions, float)
    d, step = _stack_geometry(where, positions, rot, h.gantry_tilt)
    order = [int(i) for i in np.argsort(d, kind="stable")]
    if len(order) > 1 and np.min(np.diff(np.sort(d))) <= POSITION_TOL_MM:
        raise GeometryError(
            f"{where}: several frames share a position (multi-volume enhanced object); "
            "this reader opens single-volume enhanced images only."
        )
    spacing = (float(h.pixel_spacing[1]), float(h.pixel_spacing[0]), step if step > 0 else 1.0)
    origin = tuple(float(v) for v in positions[order[0]])
    return SeriesPlan(
        [h], [[h.path]], spacing, origin, tuple(float(v) + 0.0 for v in rot.ravel()), order
    )
