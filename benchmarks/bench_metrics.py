"""Dice + HD95 for every label of two label maps: ours vs SimpleITK's overlap and Hausdorff filters.

The maps are 512×512×300 uint8 (quick: 512×512×60) with a few overlapping ellipsoids per reader,
the second reader's shapes shifted and resized a little, on 0.7×0.7×2.5 mm voxels. The anchor is
``LabelOverlapMeasuresImageFilter`` (Dice of every label, one pass) plus
``HausdorffDistanceImageFilter`` on each label's binary masks, on the same maps in the same run.
"""

from __future__ import annotations

import time

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.quality.metrics import label_map_agreement

SPACING_XYZ = (0.7, 0.7, 2.5)


def _paint(m: np.ndarray, label: int, centre, radii) -> None:
    sl = tuple(
        slice(max(int(c - r) - 1, 0), min(int(c + r) + 2, n))
        for c, r, n in zip(centre, radii, m.shape, strict=True)
    )
    zz, yy, xx = np.ogrid[sl]
    inside = (
        ((zz - centre[0]) / radii[0]) ** 2
        + ((yy - centre[1]) / radii[1]) ** 2
        + ((xx - centre[2]) / radii[2]) ** 2
    ) <= 1.0
    m[sl][inside] = label


def make_maps(nz: int) -> tuple[np.ndarray, np.ndarray]:
    """Two readers' label maps: liver-like, kidney-like and two small lesions (labels 1-4)."""
    a = np.zeros((nz, 512, 512), np.uint8)
    b = np.zeros_like(a)
    f = nz / 300.0
    blobs = [  # label, centre (z, y, x), radii (z, y, x) in voxels
        (1, (150 * f, 250, 180), (60 * f, 110, 90)),
        (2, (140 * f, 300, 360), (30 * f, 45, 35)),
        (3, (160 * f, 220, 170), (6 * f + 2, 14, 12)),
        (4, (120 * f, 330, 330), (4 * f + 2, 8, 9)),
    ]
    for label, c, r in blobs:
        _paint(a, label, c, r)
        _paint(b, label, (c[0] + 1, c[1] + 3, c[2] - 2), (r[0] * 1.04, r[1] * 0.97, r[2] * 1.02))
    return a, b


def _ours(a: np.ndarray, b: np.ndarray) -> dict:
    geom = Geometry(SPACING_XYZ, (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    return label_map_agreement(a, b, geom)


def _anchor(a: np.ndarray, b: np.ndarray, labels: list[int]) -> dict:
    ia, ib = sitk.GetImageFromArray(a), sitk.GetImageFromArray(b)
    ia.SetSpacing(SPACING_XYZ)
    ib.SetSpacing(SPACING_XYZ)
    ov = sitk.LabelOverlapMeasuresImageFilter()
    ov.Execute(ia, ib)
    out = {}
    for v in labels:
        hd = sitk.HausdorffDistanceImageFilter()
        hd.Execute(ia == v, ib == v)
        out[v] = (ov.GetDiceCoefficient(v), hd.GetHausdorffDistance())
    return out


def bench_dice_hd95(quick: bool) -> dict:
    """Ours (Dice + HD95 per label) over SimpleITK overlap + Hausdorff filters, same maps."""
    a, b = make_maps(60 if quick else 300)
    labels = [1, 2, 3, 4]
    t0 = time.perf_counter()
    ours = _ours(a, b)
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    anchor = _anchor(a, b, labels)
    anchor_s = time.perf_counter() - t0
    worst_dice_err = max(abs(ours[str(v)]["dice"] - anchor[v][0]) for v in labels)
    # HD95 can never exceed the full Hausdorff distance (by more than the surface convention)
    hd95_le_hd = all(ours[str(v)]["hd95_mm"] <= anchor[v][1] + max(SPACING_XYZ) for v in labels)
    return {
        "ours_s": ours_s,
        "anchor_s": anchor_s,
        "budget": 1.0,
        "shape": "x".join(map(str, a.shape)),
        "dice_max_abs_err": float(worst_dice_err),
        "hd95_le_hd": hd95_le_hd,
    }


BENCHMARKS = [bench_dice_hd95]
