"""Margin, hollow, smoothing and local threshold: mask tools in millimetres (spacing respected).

Distances are SimpleITK signed Maurer distance maps with the image spacing (anisotropic voxels
give the right margin in mm on every axis); kernel radii in mm become per-axis voxel radii.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.annotate.tools.result import ToolResult
from napari_clinlabel.core.errors import ClinlabelError, InputError

SMOOTHING = ("median", "opening", "closing")
HOLLOW_SIDES = ("inside", "outside", "centred")


def _itk(mask: np.ndarray, spacing_zyx: Sequence[float]) -> sitk.Image:
    img = sitk.GetImageFromArray(np.asarray(mask, np.uint8))
    img.SetSpacing(tuple(float(s) for s in reversed(tuple(spacing_zyx))))
    return img


def signed_distance_mm(mask: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Signed distance (mm) to the label's surface: negative inside, positive outside."""
    m = np.asarray(mask, bool)
    if not m.any():
        raise InputError("The label is empty: paint it before using a margin or hollow tool.")
    d = sitk.SignedMaurerDistanceMap(
        _itk(m, spacing_zyx), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return sitk.GetArrayFromImage(d)


def _check_spacing(mask: np.ndarray, spacing_zyx: Sequence[float]) -> None:
    if len(spacing_zyx) != np.ndim(mask) or min(spacing_zyx) <= 0:
        raise InputError(f"Spacing {tuple(spacing_zyx)} does not fit a {np.ndim(mask)}D label map.")


def margin(
    labels: np.ndarray, value: int, margin_mm: float, spacing_zyx: Sequence[float]
) -> ToolResult:
    """Grow (``margin_mm`` > 0) or shrink (< 0) label ``value`` by a distance in mm."""
    _check_spacing(labels, spacing_zyx)
    mask = np.asarray(labels) == value
    # grow: a free voxel joins when the nearest labelled voxel centre is within the margin;
    # shrink, the mirror: a labelled voxel leaves when the nearest free voxel centre is
    if margin_mm >= 0:
        d = signed_distance_mm(mask, spacing_zyx)
        where, target = (d <= margin_mm) & ~mask, value
    else:
        if mask.all():
            raise InputError("The label fills the whole image: there is no surface to shrink from.")
        d = signed_distance_mm(~mask, spacing_zyx)
        where, target = mask & (d <= -margin_mm), 0
    return ToolResult(
        "margin",
        where,
        target,
        frozenset({int(value)}),
        {"label": int(value), "margin_mm": margin_mm},
    )


def hollow(
    labels: np.ndarray,
    value: int,
    thickness_mm: float,
    spacing_zyx: Sequence[float],
    side: str = "inside",
) -> ToolResult:
    """Label ``value`` turned into a shell ``thickness_mm`` thick, inside/outside/centred on its surface."""
    _check_spacing(labels, spacing_zyx)
    if side not in HOLLOW_SIDES:
        raise ClinlabelError(f"Unknown shell side {side!r}; use one of {HOLLOW_SIDES}.")
    if thickness_mm <= 0:
        raise InputError(f"Shell thickness {thickness_mm} mm must be positive.")
    mask = np.asarray(labels) == value
    if mask.all():
        raise InputError("The label fills the whole image: it has no surface to hollow.")
    depth = {"inside": thickness_mm, "outside": 0.0, "centred": thickness_mm / 2}[side]
    reach = thickness_mm - depth
    # inside part: labelled voxels whose nearest free voxel is within ``depth``; outside part:
    # free voxels whose nearest labelled voxel is within ``reach`` (the margin rules, mirrored)
    shell = mask & (signed_distance_mm(~mask, spacing_zyx) <= depth) if depth > 0 else mask & False
    if reach > 0:
        shell |= ~mask & (signed_distance_mm(mask, spacing_zyx) <= reach)
    target = np.where(shell, value, 0).astype(np.asarray(labels).dtype)
    where = shell ^ mask  # add the outer part, clear the inside
    return ToolResult(
        "hollow", where, target, frozenset({int(value)}),
        {"label": int(value), "thickness_mm": thickness_mm, "side": side},
    )  # fmt: skip


def radius_voxels(radius_mm: float, spacing_zyx: Sequence[float]) -> list[int]:
    """Per-axis kernel radius in voxels (ITK order x, y, z) for a radius in mm."""
    return [int(round(radius_mm / s)) for s in reversed(tuple(spacing_zyx))]


def smoothing(
    labels: np.ndarray,
    value: int,
    method: str,
    radius_mm: float,
    spacing_zyx: Sequence[float],
) -> ToolResult:
    """Label ``value`` smoothed by a binary median, opening or closing of ``radius_mm``."""
    _check_spacing(labels, spacing_zyx)
    if method not in SMOOTHING:
        raise ClinlabelError(f"Unknown smoothing {method!r}; use one of {SMOOTHING}.")
    radius = radius_voxels(radius_mm, spacing_zyx)
    if max(radius) < 1:
        raise InputError(
            f"Smoothing radius {radius_mm} mm is under one voxel ({min(spacing_zyx):g} mm); "
            "choose a larger radius."
        )
    mask = np.asarray(labels) == value
    img = _itk(mask, spacing_zyx)
    if method == "median":
        out = sitk.BinaryMedian(img, radius, foregroundValue=1, backgroundValue=0)
    elif method == "opening":
        out = sitk.BinaryMorphologicalOpening(img, radius, sitk.sitkBall, foregroundValue=1)
    else:
        out = sitk.BinaryMorphologicalClosing(img, radius, sitk.sitkBall, foregroundValue=1)
    smooth = sitk.GetArrayFromImage(out) > 0
    target = np.where(smooth, value, 0).astype(np.asarray(labels).dtype)
    return ToolResult(
        "smoothing", smooth ^ mask, target, frozenset({int(value)}),
        {"label": int(value), "method": method, "radius_mm": radius_mm,
         "radius_voxels_xyz": radius},
    )  # fmt: skip


def local_threshold(
    image: np.ndarray,
    seed_zyx: Sequence[float],
    value: int,
    low: float,
    high: float,
    spacing_zyx: Sequence[float],
    *,
    min_diameter_mm: float = 0.0,
    extent_mm: float = 150.0,
) -> ToolResult:
    """Click → the region connected to the seed with intensity in ``[low, high]``.

    ``min_diameter_mm`` cuts leaks through necks thinner than it (opening: erode, keep the seed's
    component, dilate back inside the window). Work stays within ``extent_mm`` of the seed.
    """
    a = np.asarray(image)
    _check_spacing(a, spacing_zyx)
    if low > high:
        raise InputError(f"Intensity window {low}..{high} is empty: low must not exceed high.")
    seed = tuple(int(round(float(c))) for c in seed_zyx)
    if len(seed) != a.ndim or any(not 0 <= c < n for c, n in zip(seed, a.shape, strict=True)):
        raise InputError(
            f"Seed {tuple(seed_zyx)} lies outside the image {a.shape}; click inside it."
        )
    roi = tuple(
        slice(max(0, c - int(extent_mm / s)), min(n, c + int(extent_mm / s) + 1))
        for c, s, n in zip(seed, spacing_zyx, a.shape, strict=True)
    )
    local_seed = [c - r.start for c, r in zip(seed, roi, strict=True)]
    crop = a[roi]
    if not low <= crop[tuple(local_seed)] <= high:
        raise InputError(
            f"The clicked voxel ({crop[tuple(local_seed)]}) is outside the window {low}..{high}; "
            "click inside the structure or widen the window."
        )
    window = ((crop >= low) & (crop <= high)).astype(np.uint8)
    img = sitk.GetImageFromArray(window)
    img.SetSpacing(tuple(float(s) for s in reversed(tuple(spacing_zyx))))
    itk_seed = [tuple(int(c) for c in reversed(local_seed))]
    radius = radius_voxels(min_diameter_mm / 2.0, spacing_zyx)
    if min_diameter_mm > 0 and max(radius) >= 1:
        eroded = sitk.BinaryErode(img, radius, sitk.sitkBall, foregroundValue=1)
        core = sitk.ConnectedThreshold(eroded, seedList=itk_seed, lower=1, upper=1)
        if sitk.GetArrayViewFromImage(core).any():
            grown = sitk.BinaryDilate(core, radius, sitk.sitkBall, foregroundValue=1)
            region = (sitk.GetArrayFromImage(grown) > 0) & (window > 0)
        else:  # the seed sits in a structure thinner than the minimum diameter
            raise InputError(
                f"The clicked structure is thinner than the minimum diameter {min_diameter_mm} "
                "mm; lower it."
            )
    else:
        region = (
            sitk.GetArrayFromImage(
                sitk.ConnectedThreshold(img, seedList=itk_seed, lower=1, upper=1)
            )
            > 0
        )
    return ToolResult(
        "local_threshold", region, int(value), frozenset({int(value)}),
        {"label": int(value), "low": float(low), "high": float(high),
         "min_diameter_mm": float(min_diameter_mm), "extent_mm": float(extent_mm)},
        seeds={"click_zyx": list(seed)}, roi=roi,
    )  # fmt: skip
