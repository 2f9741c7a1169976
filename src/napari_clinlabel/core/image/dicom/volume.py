"""DICOM → :class:`Volume`: pixels of a validated :class:`SeriesPlan` read with SimpleITK.

Pixels come from SimpleITK (GDCM), which applies RescaleSlope/RescaleIntercept; the file order
and the geometry come from the plan (never from SimpleITK's own sorting). Slabs of a series are
read on two threads while the voxel digest is computed in order, so opening costs about one
SimpleITK read.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from napari_clinlabel.core.errors import ClinlabelError, ClinlabelWarning, GeometryError, InputError
from napari_clinlabel.core.image.dicom.series import (
    SeriesPlan,
    SliceHeader,
    group_series,
    plan_blocks,
    read_header,
    scan_folder,
)
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume

_SLAB = 40  # slices per SimpleITK read


def _execute(files: list[Path], pixel_type: int | None) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    if pixel_type is not None:
        reader.SetOutputPixelType(pixel_type)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        bad = _find_unreadable(files)
        raise InputError(
            f"{bad}: SimpleITK cannot decode the pixel data ({_first_line(exc)}). Re-export "
            "the file (uncompressed if possible) or remove it, then open again."
        ) from exc


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if "ERROR" in ln or "rror" in ln]
    return (lines[-1] if lines else str(exc).splitlines()[0])[:200]


def _find_unreadable(files: list[Path]) -> Path:
    for f in files:
        try:
            sitk.ReadImage(str(f))
        except RuntimeError:
            return f
    return files[0]


_PLAIN_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}  # little-endian, uncompressed


_PIXEL_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) Pixel Data, little endian


def _stored_from_tail(data: bytes, h: SliceHeader) -> np.ndarray | None:
    """Stored values of an uncompressed slice whose Pixel Data is the file's last element,
    read straight from the buffer; None when anything is unusual (then pydicom decodes it)."""
    allocated, stored_bits, signed = h.bits
    if h.syntax not in _PLAIN_SYNTAXES or allocated not in (8, 16) or h.samples != 1:
        return None
    n = h.rows * h.cols * allocated // 8
    length = n.to_bytes(4, "little")
    explicit = h.syntax == "1.2.840.10008.1.2.1"
    if explicit:
        head = data[-n - 12 : -n]
        ok = head[:4] == _PIXEL_TAG and head[4:6] in (b"OW", b"OB") and head[6:] == b"\0\0" + length
    else:
        ok = data[-n - 8 : -n] == _PIXEL_TAG + length
    if not ok:
        return None
    kind = ("i" if signed else "u") + str(allocated // 8)
    arr = np.frombuffer(data, "<" + kind, count=h.rows * h.cols, offset=len(data) - n)
    if stored_bits < allocated and arr.size:  # unused high bits: only values already in range
        lo, hi = (-(1 << (stored_bits - 1)), (1 << (stored_bits - 1)) - 1) if signed else (
            0, (1 << stored_bits) - 1)  # fmt: skip
        if int(arr.min()) < lo or int(arr.max()) > hi:
            return None  # masking / sign extension needed: pydicom does it
    return arr.reshape(h.rows, h.cols)


def _decode_into(dst: np.ndarray, data: bytes, h: SliceHeader) -> None:
    """Decode one uncompressed slice held in memory into ``dst`` (SimpleITK's voxel type),
    rescaled like SimpleITK (integral rescale only): in place when no value can overflow."""
    stored = _stored_from_tail(data, h)
    if stored is None:
        stored = pydicom.dcmread(io.BytesIO(data)).pixel_array  # pydicom: bits, sign, order
    slope, intercept = int(h.rescale[0]), int(h.rescale[1])
    info = np.iinfo(dst.dtype)
    lo, hi = (int(stored.min()), int(stored.max())) if stored.size else (0, 0)
    ends = [lo, hi, lo * slope, hi * slope, lo * slope + intercept, hi * slope + intercept]
    if min(ends) >= info.min and max(ends) <= info.max:  # every step fits: exact in place
        np.copyto(dst, stored, casting="unsafe")
        if slope != 1:
            dst *= slope
        if intercept:
            dst += intercept
    else:
        dst[...] = stored.astype(np.int64) * slope + intercept


def _buffers_usable(plan: SeriesPlan, flat: list[Path], buffers: Mapping[Path, bytes] | None,
                    pixel_id: int) -> bool:  # fmt: skip
    """True when every file of the plan is in memory, uncompressed little endian, with an
    integral rescale to an integer type: then decoding it here gives SimpleITK's values."""
    if not buffers or any(f not in buffers for f in flat):
        return False
    if any(s != round(s) or b != round(b) for s, b in {h.rescale for h in plan.headers}):
        return False
    if pixel_id not in (sitk.sitkInt8, sitk.sitkUInt8, sitk.sitkInt16, sitk.sitkUInt16,
                        sitk.sitkInt32, sitk.sitkUInt32):  # fmt: skip
        return False
    return all(h.syntax in _PLAIN_SYNTAXES for h in plan.headers)


def read_plan_pixels(
    plan: SeriesPlan, buffers: Mapping[Path, bytes] | None = None
) -> tuple[np.ndarray, str]:
    """Voxels (z, y, x) or (t, z, y, x) of a series plan and their sha256 (C-order bytes).

    ``buffers``: the files' bytes already in memory (a PACS pull); an uncompressed series with
    an integral rescale is then decoded from them with pydicom instead of read again from disk
    (the voxel type is still SimpleITK's, so the digest matches a later open of the folder).
    """
    flat = [f for vol in plan.files for f in vol]
    rescales = {h.rescale for h in plan.headers}
    pixel_type = sitk.sitkFloat64 if len(rescales) > 1 else None
    info = sitk.ImageFileReader()
    info.SetFileName(str(flat[0]))
    info.ReadImageInformation()
    first_type = pixel_type if pixel_type is not None else info.GetPixelID()
    comps = info.GetNumberOfComponents()
    if comps != 1:
        raise InputError(
            f"{flat[0]}: colour DICOM series ({comps} samples per pixel) cannot be stacked; "
            "open one file at a time."
        )
    dtype = sitk.GetArrayViewFromImage(sitk.Image([1, 1], first_type)).dtype
    h0 = plan.headers[0]
    out = np.empty((len(flat), h0.rows, h0.cols), dtype=dtype)
    # slabs never cross a volume boundary (SimpleITK warns about the jump back in position)
    nz = len(plan.files[0])
    slabs = [
        (t * nz + s, t * nz + min(s + _SLAB, nz))
        for t in range(plan.n_volumes)
        for s in range(0, nz, _SLAB)
    ]

    in_memory = _buffers_usable(plan, flat, buffers, first_type)
    header_of = {x.path: x for x in plan.headers}

    def load(span: tuple[int, int]) -> None:
        if in_memory:
            for n in range(span[0], span[1]):
                _decode_into(out[n], buffers[flat[n]], header_of[flat[n]])  # type: ignore[index]
            return
        img = _execute(flat[span[0] : span[1]], first_type)
        out[span[0] : span[1]] = sitk.GetArrayViewFromImage(img).reshape(
            out[span[0] : span[1]].shape
        )

    digest = hashlib.sha256()
    workers = min(2, os.cpu_count() or 1, len(slabs))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(load, s) for s in slabs]
        for fut, (a, b) in zip(futures, slabs, strict=True):
            fut.result()
            digest.update(memoryview(out[a:b].reshape(-1).view(np.uint8)))
    if plan.n_volumes > 1:
        out = out.reshape(plan.n_volumes, nz, h0.rows, h0.cols)
    return out, digest.hexdigest()


def _enhanced_pixels(plan: SeriesPlan) -> np.ndarray:
    """Frames of an enhanced image, reordered along the normal, rescale applied.

    pydicom decodes the frames so that the per-frame rescale of the functional groups is used
    exactly (GDCM applies only the shared one).
    """
    ds = pydicom.dcmread(plan.files[0][0])
    raw = ds.pixel_array
    raw = raw[None] if raw.ndim == 2 else raw
    slopes, intercepts = [], []
    shared = ds.get("SharedFunctionalGroupsSequence")
    for k, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        src = fg if "PixelValueTransformationSequence" in fg else (shared[0] if shared else None)
        pvt = (
            src.PixelValueTransformationSequence[0]
            if src and "PixelValueTransformationSequence" in src
            else ds
        )
        slopes.append(float(pvt.get("RescaleSlope", 1.0) or 1.0))
        intercepts.append(float(pvt.get("RescaleIntercept", 0.0) or 0.0))
        del k
    s, b = np.array(slopes)[:, None, None], np.array(intercepts)[:, None, None]
    integral = np.all(s == np.round(s)) and np.all(b == np.round(b))
    vals = raw.astype(np.float64) * s + b
    if integral and vals.min() >= np.iinfo(np.int32).min and vals.max() <= np.iinfo(np.int32).max:
        small = np.int16 if vals.min() >= -32768 and vals.max() <= 32767 else np.int32
        vals = vals.astype(small)
    out = np.ascontiguousarray(vals[plan.frame_order])
    if plan.n_volumes > 1:  # multi-volume enhanced object: (t, z, y, x)
        out = out.reshape(plan.n_volumes, plan.n_slices, *out.shape[1:])
    return out


def _meta(plan: SeriesPlan, source: Path) -> dict:
    h = plan.headers[0]
    by_path = {x.path: x for x in plan.headers}
    sops = [by_path[f].sop_uid for vol in plan.files for f in vol]
    meta = {
        "modality": h.modality,
        "study_uid": h.study_uid or None,
        "series_uid": h.series_uid or None,
        "sop_instance_uids": sops,
        "frame_of_reference_uid": h.frame_uid or None,
        "series_description": h.description,
        "window": list(h.window) if h.window else None,
        "n_volumes": plan.n_volumes,
        "source_path": str(source),
    }
    if h.laterality or h.view_position:  # mammography: shown on the canvas, offered to boxes
        meta["laterality"], meta["view_position"] = h.laterality or None, h.view_position or None
    if plan.slice_step is not None:  # gantry tilt kept as a shear in the geometry
        meta["gantry_tilt_deg"] = plan.gantry_tilt
    if plan.block is not None:  # uneven spacing: one evenly spaced block of the series
        first, last, total = plan.block
        meta["slice_block"] = [first, last, total]
        base = h.description or "series"
        meta["series_description"] = f"{base} [slices {first}-{last} of {total}]"
    return meta


def volume_from_plan(
    plan: SeriesPlan, source: Path, buffers: Mapping[Path, bytes] | None = None
) -> Volume:
    """Read a planned series into a Volume with PHI-free metadata and its voxel digest."""
    meta = _meta(plan, source)
    if plan.frame_order is not None:
        array = _enhanced_pixels(plan)
    elif not plan.direction:  # lone 2D image or plain multi-frame: SimpleITK's geometry
        return _single_file_volume(plan.files[0][0], meta)
    else:
        array, meta["sha256"] = read_plan_pixels(plan, buffers)
    geometry = Geometry(plan.spacing, plan.origin, plan.direction, plan.slice_step)
    vol = Volume(array, geometry, meta)
    _ = vol.sha256
    return vol


def _single_file_volume(path: Path, meta: dict) -> Volume:
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(
            f"{path}: SimpleITK cannot decode the image ({_first_line(exc)})."
        ) from exc
    if img.GetDimension() == 3 and img.GetSize()[2] == 1:
        img = img[:, :, 0]
    rgb = img.GetNumberOfComponentsPerPixel() in (3, 4)  # colour photo or colour cine
    meta["rgb"] = rgb
    if not _states_pixel_spacing(path):  # SimpleITK's 1.0 is then a unit grid, not mm
        meta["spacing_known"] = False
    else:
        stated, source = _stated_pixel_spacing(path)
        if stated is not None:  # the header decides, not the reader's per-SOP-class rules
            row, col = stated
            spacing = list(img.GetSpacing())
            spacing[0], spacing[1] = col, row  # ITK order: column, row(, frame)
            img.SetSpacing(spacing)
            meta["pixel_spacing_source"] = source
    vol = Volume(sitk.GetArrayFromImage(img), Geometry.from_itk(img), meta)
    _ = vol.sha256
    return vol


def _source_of(headers: list[SliceHeader]) -> Path:
    """The series folder for multi-file series (where its sidecar log lives), else the file."""
    if len(headers) == 1:
        return headers[0].path
    parents = {h.path.parent for h in headers}
    return (
        parents.pop() if len(parents) == 1 else Path(os.path.commonpath([str(p) for p in parents]))
    )


def read_dicom_folder(folder: Path) -> list[Volume]:
    """One Volume per series in ``folder``; a bad series among good ones is skipped with a warning."""
    headers = scan_folder(folder)
    if not headers:
        raise InputError(
            f"{folder}: no DICOM images found in this folder (or its subfolders). Choose the "
            "folder that holds the .dcm files, or open a NIfTI/NRRD/MHA file instead."
        )
    return _read_groups(group_series(headers))


def read_dicom_buffers(
    buffers: Mapping[Path, bytes], headers: Sequence[SliceHeader] | None = None
) -> list[Volume]:
    """One Volume per series among files whose bytes are already in memory (``{path: bytes}``,
    e.g. just pulled from a PACS and written there): the same validation and the same voxels
    as :func:`read_dicom_folder` on those files, without reading them again. ``headers``: their
    :func:`read_header` results when the caller parsed them already (else parsed here)."""
    if headers is None:
        headers = [h for p, b in buffers.items() if (h := read_header(Path(p), b)) is not None]
    headers = list(headers)
    if not headers:
        raise InputError("no DICOM images among the files received; nothing to open.")
    return _read_groups(group_series(headers), buffers)


def _read_groups(
    groups: list[list[SliceHeader]], buffers: Mapping[Path, bytes] | None = None
) -> list[Volume]:
    volumes, errors = [], []
    for g in groups:
        try:
            for plan in plan_blocks(g):
                volumes.append(volume_from_plan(plan, _source_of(g), buffers))
        except ClinlabelError as exc:
            errors.append(exc)
    if errors and not volumes:
        raise errors[0]
    for exc in errors:  # never silent: each skipped series is named
        warnings.warn(ClinlabelWarning(f"skipped a series: {exc}"), stacklevel=3)
    return volumes


def read_dicom_file(path: Path) -> list[Volume]:
    """The whole series ``path`` belongs to, from the files in the same folder."""
    h = read_header(path)
    if h is None:
        raise InputError(
            f"{path}: not a DICOM image (no DICOM header, or an object without pixels such "
            "as a report). Open an image file or the series folder."
        )
    if h.enhanced or h.frames > 1 or h.ipp is None:
        return _read_groups([[h]])
    if h.problem:
        raise InputError(h.problem)
    others = scan_folder(path.parent, recursive=False, strict=False)
    same = [x for x in others if x.series_uid == h.series_uid]
    return _read_groups([same or [h]])


def read_dicom_files(paths: Sequence[Path]) -> list[Volume]:
    """Exactly these files as one series; refuses files from several series."""
    headers = []
    for p in paths:
        h = read_header(Path(p))
        if h is None:
            raise InputError(f"{p}: not a DICOM image; remove it from the selection.")
        headers.append(h)
    groups = group_series(headers)
    if len(groups) > 1:
        desc = ", ".join(f'"{g[0].description}" ({len(g)} files)' for g in groups)
        raise InputError(
            f"{Path(paths[0]).parent}: the {len(paths)} files given belong to {len(groups)} "
            f"series ({desc}). Select files of one series, or open the folder to get one "
            "layer per series."
        )
    return _read_groups(groups)


__all__ = [
    "GeometryError",
    "labels_on_original_slices",
    "map_to_original_slices",
    "original_slice_span",
    "original_blocks",
    "read_dicom_buffers",
    "read_dicom_resampled",
    "read_dicom_file",
    "read_dicom_files",
    "read_dicom_folder",
    "read_plan_pixels",
    "resample_record_data",
    "volume_from_plan",
]


_SPACING_TAGS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")


def _states_pixel_spacing(path: Path) -> bool:
    """True when a DICOM file gives a physical pixel size (plain or per-frame)."""
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - SimpleITK read it; an odd header keeps its spacing
        return True
    if any(ds.get(tag) for tag in _SPACING_TAGS):
        return True
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group) or []:
            measures = item.get("PixelMeasuresSequence") or []
            if any(m.get("PixelSpacing") for m in measures):
                return True
    return False


def _stated_pixel_spacing(path: Path) -> tuple[tuple[float, float] | None, str | None]:
    """(row, column) pixel size in mm the header states for the patient plane, and which
    attribute said so: ``PixelSpacing``; else ``ImagerPixelSpacing`` (measured at the detector)
    divided by ``EstimatedRadiographicMagnificationFactor`` when there is one (PS3.3 10.7.1.1);
    else ``NominalScannedPixelSpacing``. (None, None) when none does (or an odd header)."""
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        for tag in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
            value = ds.get(tag)
            if not value:
                continue
            row, col = float(value[0]), float(value[1])
            factor = ds.get("EstimatedRadiographicMagnificationFactor")
            if tag == "ImagerPixelSpacing" and factor is not None and float(factor) > 0:
                f = float(factor)
                return (row / f, col / f), f"{tag} / EstimatedRadiographicMagnificationFactor"
            return (row, col), tag
    except (ValueError, TypeError, IndexError, AttributeError, OSError):
        pass
    return None, None


def _series_headers(path: Path, series_uid: str | None) -> list[SliceHeader]:
    """Headers of one series in a folder (the only one, or the one named ``series_uid``)."""
    groups = group_series(scan_folder(path))
    if series_uid is not None:
        groups = [g for g in groups if g[0].series_uid == series_uid]
    if len(groups) != 1:
        raise InputError(
            f"{path}: holds {len(groups)} series matching the request; name one with its "
            "SeriesInstanceUID (clinlabel info lists them)."
        )
    return groups[0]


def read_dicom_resampled(
    path: str | os.PathLike[str], spacing_mm: float | None = None, series_uid: str | None = None
) -> Volume:
    """An unevenly spaced series resampled to even slices along the normal — only on request.

    The series' even blocks (what :func:`read_dicom_folder` opens) are read as they are and
    interpolated linearly along the normal between the true slice positions onto even slices
    from the first original slice to the last, exactly: ``n = ceil(extent / spacing_mm) + 1``
    slices ``extent / (n - 1)`` apart, at most ``spacing_mm`` (default: the smallest original
    step); the spacing used is ``meta["resampled"]["to_spacing_mm"]``. Voxels become float32. In-plane voxels are never touched. ``meta["resampled"]``
    holds what the request changed (original steps, positions, SOP Instance UIDs, blocks) for the
    log record (:func:`resample_record_data`) and for :func:`labels_on_original_slices`.
    A missing slice (a step over 1.5 times the median) is interpolated across like any other
    step and counted in ``gaps_bridged``. A series that is evenly spaced, sheared, or several
    volumes is refused (nothing to do, or not supported) with one line.
    """
    folder = Path(path)
    if folder.is_file():  # one file of the series: its folder, that series
        h = read_header(folder)
        if h is None:
            raise InputError(
                f"{folder}: not a DICOM image; resampling applies to a DICOM series (give the "
                "series' folder or one of its files)."
            )
        folder, series_uid = folder.parent, series_uid or h.series_uid or None
    elif not folder.is_dir():
        raise InputError(
            f"{folder}: no such file or folder; give the folder of the DICOM series to resample."
        )
    headers = _series_headers(folder, series_uid)
    plans = plan_blocks(headers, bridge_gaps=True)  # asked for: a missing slice is interpolated
    if len(plans) == 1:
        raise InputError(
            f"{folder}: the series is evenly spaced; open it as it is (nothing to resample)."
        )
    if any(p.slice_step is not None or p.n_volumes > 1 for p in plans):
        raise InputError(
            f"{folder}: resampling is offered for single-volume series without gantry tilt only; "
            "open the series as its evenly spaced blocks instead."
        )
    source = _source_of(headers)
    blocks = [volume_from_plan(p, source) for p in plans]
    g0 = blocks[0].geometry
    normal = g0.direction_matrix()[:, 2]
    depth = []
    for v in blocks:
        d0 = float(np.asarray(v.geometry.origin) @ normal)
        depth += [d0 + k * v.geometry.spacing[2] for k in range(v.array.shape[0])]
    depth_a = np.asarray(depth)
    stack = np.concatenate([np.asarray(v.array, np.float32) for v in blocks])
    steps = np.diff(depth_a)
    asked = float(spacing_mm) if spacing_mm is not None else float(steps.min())
    if not np.isfinite(asked) or asked <= 0:
        raise InputError(f"{folder}: a resampling spacing must be a positive number of mm.")
    # the grid spans the first to the last original slice exactly: n slices at extent/(n-1)
    # (at most the spacing asked), so the last true slice is shown, not a blend before it;
    # the spacing depends on n only, so reopening at the recorded spacing gives the same grid
    extent = float(depth_a[-1] - depth_a[0])
    # a remainder under 0.01 mm (or 1 % of the spacing) is header rounding, not a slice more
    n = int(np.ceil((extent - min(0.01, 0.01 * asked)) / asked)) + 1
    if n > 4096:
        raise InputError(f"{folder}: {asked:g} mm would make {n} slices; choose a larger spacing.")
    step = extent / (n - 1)
    targets = depth_a[0] + extent * np.arange(n) / (n - 1)
    targets[-1] = depth_a[-1]  # exactly the last true slice (no rounding blend)
    upper = np.clip(np.searchsorted(depth_a, targets, side="right"), 1, len(depth_a) - 1)
    lower = upper - 1
    w = np.clip((targets - depth_a[lower]) / (depth_a[upper] - depth_a[lower]), 0.0, 1.0)
    out = np.empty((n, *stack.shape[1:]), np.float32)
    for k in range(n):  # one slice at a time: memory stays at the output plus two slices
        out[k] = stack[lower[k]] * np.float32(1 - w[k]) + stack[upper[k]] * np.float32(w[k])
    geometry = Geometry((g0.spacing[0], g0.spacing[1], step), g0.origin, g0.direction)
    meta = {k: v for k, v in blocks[0].meta.items() if k not in ("sha256", "slice_block")}
    base = headers[0].description or "series"
    meta["series_description"] = f"{base} [resampled to {step:g} mm]"
    meta["sop_instance_uids"] = None  # no resampled slice is an original frame
    meta["resampled"] = {
        "method": "linear along the slice normal",
        "from_steps_mm": sorted({round(float(s), 4) for s in steps}),
        "to_spacing_mm": step,
        "asked_spacing_mm": asked,
        "gaps_bridged": int(np.sum(steps > 1.5 * float(np.median(steps)))),
        "original_slices": len(depth_a),
        "resampled_slices": n,
        "original_depth_mm": [round(float(d), 6) for d in depth_a],
        "original_sop_instance_uids": [u for v in blocks for u in v.meta["sop_instance_uids"]],
        "blocks": [v.meta["slice_block"] for v in blocks],
        "block_geometries": [v.geometry.to_dict() for v in blocks],
    }
    vol = Volume(out, geometry, meta)
    _ = vol.sha256
    return vol


def resample_record_data(volume: Volume) -> dict:
    """The ``data`` of the log record of a resampling request: from which steps to which
    spacing, how, and how many slices (no positions of patient anatomy beyond the grid)."""
    r = volume.meta.get("resampled")
    if not r:
        raise InputError("this image was not resampled; there is nothing to record.")
    keys = ("method", "from_steps_mm", "to_spacing_mm", "asked_spacing_mm", "original_slices",
            "resampled_slices")  # fmt: skip
    return {k: r[k] for k in keys} | {
        "gaps_bridged": int(r.get("gaps_bridged", 0)),
        "series_uid": volume.series_uid,
    }


def original_blocks(volume: Volume) -> list[tuple[tuple[int, int, int], Geometry, list[str]]]:
    """The even blocks a resampled ``volume`` came from: ``(first, last, total)`` slice numbers,
    the block's own geometry and its SOP Instance UIDs, in the order of
    :func:`labels_on_original_slices`."""
    r = volume.meta.get("resampled") or {}
    if not r.get("block_geometries"):
        raise InputError("this image was not resampled; it has no original blocks.")
    uids, out, start = list(r["original_sop_instance_uids"]), [], 0
    for block, geom in zip(r["blocks"], r["block_geometries"], strict=True):
        n = block[1] - block[0] + 1
        out.append((tuple(block), Geometry.from_dict(geom), uids[start : start + n]))
        start += n
    return out


def labels_on_original_slices(labels: np.ndarray, volume: Volume) -> list[np.ndarray]:
    """Labels drawn on a resampled volume, back on the original slices, losing no labelled
    voxel (:func:`map_to_original_slices`). One array per even block, in the order
    :func:`read_dicom_folder` opens them, so the existing exporters (DICOM SEG on the original
    frames, NIfTI/NRRD of a block) write them with the original geometry."""
    return map_to_original_slices(labels, volume)[0]


def _sources_per_original(r: dict, n_res: int) -> tuple[np.ndarray, list[list[int]]]:
    """For each original slice: its nearest resampled slice, and the resampled slices whose
    labels it takes, nearest first (see :func:`map_to_original_slices`)."""
    depth = np.asarray(r["original_depth_mm"], float) - float(r["original_depth_mm"][0])
    grid = float(r["to_spacing_mm"]) * np.arange(n_res)
    eps = 1e-6 * max(float(r["to_spacing_mm"]), 1e-9)  # positions equal within rounding: a tie
    dist = np.abs(depth[:, None] - grid[None, :])
    # nearest resampled slice of each original slice (tie: the lower one)
    nearest_res = np.argmax(dist <= dist.min(axis=1, keepdims=True) + eps, axis=1)
    # nearest original slice of each resampled slice (tie: the lower one)
    owner = np.argmax(dist.T <= dist.T.min(axis=1, keepdims=True) + eps, axis=1)
    out = []
    for i in range(len(depth)):
        own = [int(k) for k in np.flatnonzero(owner == i)] or [int(nearest_res[i])]
        out.append(sorted(own, key=lambda k: (abs(grid[k] - depth[i]), k)))
    return nearest_res, out


def original_slice_span(volume: Volume, first: int, last: int) -> tuple[int, int] | None:
    """The original slices (1-based numbers in the series) that resampled slices ``first`` ..
    ``last`` (inclusive) go onto, as labels do on export; None when the volume is not resampled."""
    r = volume.meta.get("resampled")
    if not r:
        return None
    _, per_original = _sources_per_original(r, volume.spatial_shape[0])
    hit = [i + 1 for i, own in enumerate(per_original) if any(first <= k <= last for k in own)]
    return (min(hit), max(hit)) if hit else None


def map_to_original_slices(labels: np.ndarray, volume: Volume) -> tuple[list[np.ndarray], dict]:
    """Labels of a resampled volume on the original slices, and what was carried.

    Every resampled slice is assigned to its nearest original slice along the normal (a tie goes
    to the original slice of lower depth, the earlier one in the series), and each original slice
    takes the labels of the resampled slices assigned to it, the nearest first, each filling only
    voxels still 0; an original slice that none is assigned to (the grid coarser than the series
    there) takes its nearest resampled slice's labels (a tie: the lower). So every labelled voxel
    drawn lands on an original slice, even one drawn only on a resampled slice that is no
    original slice's nearest. Returns the per-block arrays and ``{"voxels": n, "onto_slices":
    [1-based slice numbers], "from_resampled_slices": [0-based resampled indices],
    "shadowed_voxels": m}``: ``voxels`` labelled voxels an original slice took from a resampled
    slice other than its own nearest one (what a nearest-slice rule would drop);
    ``shadowed_voxels`` labelled voxels not carried because a nearer resampled slice assigned to
    the same original slice gives that voxel another label.
    """
    r = volume.meta.get("resampled")
    if not r:
        raise InputError(
            "these labels were not drawn on a resampled image; export them as they are."
        )
    lab = np.asarray(labels)
    if lab.shape != volume.spatial_shape:
        raise InputError(
            f"labels of shape {lab.shape} do not match the resampled grid {volume.spatial_shape}."
        )
    nearest_res, per_original = _sources_per_original(r, lab.shape[0])
    back = np.zeros((len(per_original), *lab.shape[1:]), lab.dtype)
    carried, shadowed, onto, sources = 0, 0, set(), set()
    for i, own in enumerate(per_original):
        for k in own:
            src = lab[k]
            fill = (back[i] == 0) & (src != 0)
            shadowed += int(np.count_nonzero((back[i] != 0) & (src != 0) & (back[i] != src)))
            back[i][fill] = src[fill]
            if k != nearest_res[i] and fill.any():
                carried += int(np.count_nonzero(fill))
                onto.add(i + 1)
                sources.add(k)
    out, start = [], 0
    for first, last, _total in r["blocks"]:
        n = last - first + 1
        out.append(np.ascontiguousarray(back[start : start + n]))
        start += n
    info = {
        "voxels": carried,
        "onto_slices": sorted(onto),
        "from_resampled_slices": sorted(sources),
        "shadowed_voxels": shadowed,
    }
    return out, info
