"""DICOM series: header-only scan, validation and geometric sorting, then pixels via SimpleITK.

SimpleITK's plain series read silently gets some real series wrong (several volumes at the
same positions, gaps, gantry tilt), so the plan is made here from the headers first:

* slices sort by position along the ImageOrientationPatient normal, never by instance number
  or file name;
* several images at every position (fMRI, DTI, multi-phase) become a 4D volume, volume axis
  first, volumes ordered by AcquisitionNumber, TemporalPositionIdentifier, AcquisitionTime and
  InstanceNumber;
* gantry tilt (slices stepping along a vector off the normal) is kept as a shear: the plan's
  ``slice_step`` is the actual step between ImagePositionPatient values, and every voxel stays
  where the scanner put it (nothing is resampled);
* uneven slice spacing splits the series into blocks of even spacing (:func:`plan_blocks`),
  each its own volume named by its slice range;
* a missing slice, mixed orientations or image sizes are refused with a :class:`GeometryError`
  naming the problem (a refused series is never shown in a wrong place);
* enhanced (multi-frame) images sort their frames by per-frame position; an enhanced object
  holding several volumes at the same positions (temporal positions, stacks) becomes 4D
  (t, z, y, x), volumes ordered by the per-frame TemporalPositionIndex, then the
  DimensionIndexValues, then the frame number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from napari_clinlabel.core.errors import GeometryError, InputError
from napari_clinlabel.core.image.dicom.header import (
    SliceHeader,
    group_series,
    read_header,
    scan_folder,
)

__all__ = [
    "RESAMPLE_HINT",
    "SeriesPlan",
    "SliceHeader",
    "group_series",
    "plan_blocks",
    "plan_series",
    "read_header",
    "scan_folder",
]

POSITION_TOL_MM = 0.01  # slice positions agree within this (scanner rounding)
ORIENTATION_TOL = 1e-4  # direction cosines agree within this


@dataclass
class SeriesPlan:
    """A validated series: files per volume in slice order, and the geometry in ITK order."""

    headers: list[SliceHeader]
    files: list[list[Path]]  # [volume][slice], slices sorted along the normal
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    frame_order: list[int] | None = None  # enhanced: frame index for each output slice
    slice_step: tuple[float, float, float] | None = None  # sheared (gantry tilt): LPS step, mm
    gantry_tilt: float = 0.0  # GantryDetectorTilt as the header states it, degrees
    block: tuple[int, int, int] | None = None  # uneven series: (first, last, total) slice numbers
    frame_volumes: int = 1  # enhanced: volumes at each position (frame_order is t-major)

    @property
    def n_volumes(self) -> int:
        """Number of volumes at each position (1 for an ordinary 3D series)."""
        return len(self.files) if self.frame_order is None else self.frame_volumes

    @property
    def n_slices(self) -> int:
        """Number of slice positions."""
        if self.frame_order is None:
            return len(self.files[0])
        return len(self.frame_order) // self.frame_volumes


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


class _Uneven(GeometryError):
    """Uneven slice spacing (no slice missing): the series can open as even blocks."""


class _Gap(GeometryError):
    """A missing slice: refused, unless a human asks for the series resampled across the gap."""


# how a user asks for a series resampled (named in refusals; the request is logged)
RESAMPLE_HINT = (
    "open it resampled on request (napari: Session widget > 'Open DICOM resampled…'; "
    "CLI: --resample)"
)


def _stack_geometry(
    where: str, positions: np.ndarray, rot: np.ndarray
) -> tuple[np.ndarray, float, tuple[float, float, float] | None]:
    """Sort key along the normal, the regular spacing along it and, when the slices are
    sheared (gantry tilt), the actual step vector; refuses gaps and unevenness."""
    normal = rot[:, 2]
    d = positions @ normal
    if len(d) < 2:
        return d, 0.0, None
    ds = np.sort(d)
    steps = np.diff(ds)
    step = (ds[-1] - ds[0]) / (len(ds) - 1)
    tol = max(POSITION_TOL_MM, 1e-3 * step)
    if np.abs(steps - step).max() > tol:
        small = float(np.median(steps))
        worst = int(np.argmax(np.abs(steps - small)))
        gap = steps[worst] > 1.5 * small
        kind = "a missing slice" if gap else "uneven slice spacing"
        cls = _Gap if gap else _Uneven
        raise cls(
            f"{where}: {kind}: slices at {ds[worst]:.3f} and {ds[worst + 1]:.3f} mm along the "
            f"normal are {steps[worst]:.3f} mm apart where the others are {small:.3f} mm. "
            f"Find the missing images, or {RESAMPLE_HINT}: the gap is then interpolated."
        )
    order = np.argsort(d)
    first, last = positions[order[0]], positions[order[-1]]
    vec = (last - first) / (len(d) - 1)
    off_normal = vec - (vec @ normal) * normal
    if np.linalg.norm(off_normal) * (len(d) - 1) <= tol * 2:
        return d, float(step), None
    # sheared: every slice must lie on the line first + k * vec (else it is not one stack)
    k = np.arange(len(d))[:, None]
    miss = np.abs(positions[order] - (first + k * vec)).max()
    if miss > tol * 2:
        raise GeometryError(
            f"{where}: the slice positions do not lie on one straight line ({miss:.3f} mm off); "
            "the images are not one stack. Open each stack separately."
        )
    return d, float(step), tuple(float(v) for v in vec)


def _even_runs(d_sorted: np.ndarray) -> list[tuple[int, int]]:
    """Greedy [start, stop) runs of evenly spaced positions (each of one or more slices)."""
    runs, start = [], 0
    n = len(d_sorted)
    while start < n:
        stop = start + 1
        if stop < n:
            step = d_sorted[stop] - d_sorted[start]
            tol = max(POSITION_TOL_MM, 1e-3 * step)
            stop += 1
            while stop < n and abs(d_sorted[stop] - d_sorted[stop - 1] - step) <= tol:
                stop += 1
        runs.append((start, stop))
        start = stop
    return runs


def plan_blocks(headers: list[SliceHeader], bridge_gaps: bool = False) -> list[SeriesPlan]:
    """Plans for one series: one plan, or one per evenly spaced block when the spacing is
    uneven (no slice missing); each block's ``block`` names its slice range. ``bridge_gaps``
    (only for a resampling request): a missing slice splits the series into blocks too."""
    try:
        return [plan_series(headers)]
    except _Uneven:
        pass
    except _Gap:
        if not bridge_gaps:
            raise
    rot = _check_uniform(headers)
    positions = np.array([h.ipp for h in headers], float)
    d = positions @ rot[:, 2]
    levels = np.unique(np.round(d / POSITION_TOL_MM).astype(np.int64))  # distinct depths
    depth = levels * POSITION_TOL_MM
    runs = _even_runs(depth)
    plans = []
    for a, b in runs:
        lo, hi = depth[a] - POSITION_TOL_MM, depth[b - 1] + POSITION_TOL_MM
        part = [h for h, x in zip(headers, d, strict=True) if lo <= x <= hi]
        plan = plan_series(part)
        plan.block = (a + 1, b, len(depth))
        plans.append(plan)
    return plans


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
    tilt = max((h.gantry_tilt for h in headers), key=abs)
    _, step, slice_step = _stack_geometry(where, positions[[g[0] for g in groups]], rot)

    def vol_key(i: int) -> tuple:
        h = headers[i]
        return (h.acquisition, h.temporal, h.acq_time, h.instance)

    per_position = [sorted(g, key=vol_key) for g in groups]
    files = [[headers[g[t]].path for g in per_position] for t in range(n_vol)]
    pix = headers[0].pixel_spacing
    spacing = (float(pix[1]), float(pix[0]), step if step > 0 else 1.0)
    origin = tuple(float(v) for v in positions[per_position[0][0]])
    return SeriesPlan(
        headers,
        files,
        spacing,
        origin,
        tuple(float(v) + 0.0 for v in rot.ravel()),
        slice_step=slice_step,
        gantry_tilt=float(tilt),
    )


def _plan_enhanced(h: SliceHeader) -> SeriesPlan:
    where = _where([h])
    if h.iop is None or h.pixel_spacing is None:
        raise GeometryError(f"{where}: enhanced image without plane orientation or pixel spacing.")
    iop = np.asarray(h.iop, float)
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    rot = np.stack([row, col, np.cross(row, col)], axis=1)
    positions = np.array(h.frame_positions, float)
    d_all = positions @ rot[:, 2]
    # frames at the same position (within tolerance) are the volumes of a 4D object
    by_depth = np.argsort(d_all, kind="stable")
    groups: list[list[int]] = []
    for i in by_depth:
        if groups and abs(d_all[i] - d_all[groups[-1][0]]) <= POSITION_TOL_MM:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    counts = {len(g) for g in groups}
    if len(counts) > 1:
        raise GeometryError(
            f"{where}: positions hold different numbers of frames ({sorted(counts)}): the "
            "multi-volume enhanced object is incomplete or mixes stacks; it cannot be opened "
            "as one 4D image. Re-export it from the scanner, or one volume per file."
        )
    n_vol = counts.pop()
    for g in groups:
        if np.abs(positions[g] - positions[g[0]]).max() > POSITION_TOL_MM * 2:
            raise GeometryError(
                f"{where}: frames at the same depth are shifted in plane (two stacks in one "
                "object?). Open each stack separately."
            )
    _, step, slice_step = _stack_geometry(where, positions[[g[0] for g in groups]], rot)
    if n_vol > 1:
        keys = _frame_volume_keys(h.path, len(positions))
        groups = [sorted(g, key=lambda i: keys[i]) for g in groups]
    order = [g[t] for t in range(n_vol) for g in groups]  # t-major, then along the normal
    spacing = (float(h.pixel_spacing[1]), float(h.pixel_spacing[0]), step if step > 0 else 1.0)
    origin = tuple(float(v) for v in positions[groups[0][0]])
    return SeriesPlan(
        [h],
        [[h.path]],
        spacing,
        origin,
        tuple(float(v) + 0.0 for v in rot.ravel()),
        order,
        slice_step=slice_step,
        gantry_tilt=float(h.gantry_tilt),
        frame_volumes=n_vol,
    )


def _frame_volume_keys(path: Path, n_frames: int) -> list[tuple]:
    """Sort key of each frame's volume: (TemporalPositionIndex, DimensionIndexValues, frame
    number) from the per-frame FrameContentSequence (PS3.3 C.7.6.16.2.2)."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        per_frame = ds.PerFrameFunctionalGroupsSequence
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt bytes
        raise GeometryError(
            f"{path}: cannot read the per-frame functional groups ({exc})."
        ) from None
    keys = []
    for n in range(n_frames):
        fc = per_frame[n].get("FrameContentSequence")
        item = fc[0] if fc else {}
        temporal = item.get("TemporalPositionIndex") if item else None
        dims = item.get("DimensionIndexValues") if item else None
        dims_t = (
            tuple(
                int(v)
                for v in (
                    dims if isinstance(dims, list | tuple | pydicom.multival.MultiValue) else [dims]
                )
            )
            if dims is not None
            else ()
        )
        keys.append((int(temporal) if temporal is not None else 0, dims_t, n))
    return keys
