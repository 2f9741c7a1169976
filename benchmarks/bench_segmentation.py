"""Segmentation tools on CT-sized maps: live volumes, region growing, fill between slices.

- ``label_volumes``: per-label mL of a 512×512×300 uint8 map (quick: ×60), ours against one
  ``numpy.bincount`` of the whole array (what "live" would naively cost), same map, same run.
- ``region_grow``: our ConnectedThreshold wrapper (array in, mask out) against SimpleITK called
  directly on the same image and seed (its own conversions included).
- ``interpolate_slices``: filling a liver-sized structure drawn on every 5th slice; absolute.
- ``grow_seeds_first``: grow from seeds, first preview (region smoothing + edge map + watershed)
  on 512×512×300 with liver strokes on 3 slices and background dots around them; absolute,
  median of 3 fresh growers. ``grow_seeds_update``: one background dot added inside the prepared
  region, just outside the liver (the edge map is reused, the flood redone in a box around the
  dot); median of 3. ``local_threshold_click``: one click, HU window, 3 mm minimum diameter;
  median of 3. (Budgets 2000 / 500 / 500 ms, DESIGN.md.) These three also report ``cpu_ms``
  (process time): on 2 cores shared by several agents, wall time is CPU time × the queue.
"""

from __future__ import annotations

import time

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.annotate import seg_tools
from napari_clinlabel.core.annotate.tools.grow_seeds import SeedGrower, background_seed_value
from napari_clinlabel.core.annotate.tools.morphology import local_threshold
from napari_clinlabel.core.image.geometry import Geometry

GEOMETRY = Geometry((0.7, 0.7, 2.5), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))


def _ellipsoid(shape: tuple[int, int, int], centre, radii) -> np.ndarray:
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (
        ((zz - centre[0]) / radii[0]) ** 2
        + ((yy - centre[1]) / radii[1]) ** 2
        + ((xx - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def _maps(nz: int) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like int16 image and a label map with a liver-like and a kidney-like structure."""
    shape = (nz, 512, 512)
    labels = np.zeros(shape, np.uint8)
    liver = _ellipsoid(shape, (nz / 2, 250, 180), (nz / 3, 110, 90))
    kidney = _ellipsoid(shape, (nz / 2, 300, 360), (nz / 6, 45, 35))
    labels[liver] = 1
    labels[kidney] = 2
    rng = np.random.default_rng(0)
    image = rng.normal(40, 10, shape).astype(np.int16)
    image[liver] += 20
    image[kidney] += 110
    return image, labels


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_label_volumes(quick: bool) -> dict:
    _, labels = _maps(60 if quick else 300)
    ours = _best(lambda: seg_tools.label_volumes_ml(labels, GEOMETRY))
    anchor = _best(lambda: np.bincount(labels.reshape(-1)))
    return {"name": "label_volumes", "ours_s": ours, "anchor_s": anchor, "budget": 1.0,
            "voxels": int(labels.size)}  # fmt: skip


def bench_region_grow(quick: bool) -> dict:
    image, labels = _maps(60 if quick else 300)
    seed = tuple(int(c) for c in np.argwhere(labels == 1).mean(axis=0))

    def anchor() -> None:
        img = sitk.GetImageFromArray(image)
        out = sitk.ConnectedThreshold(img, seedList=[seed[::-1]], lower=45, upper=80)
        sitk.GetArrayViewFromImage(out).astype(bool)

    ours = _best(lambda: seg_tools.region_grow(image, seed, lower=45, upper=80), 2)
    return {"name": "region_grow", "ours_s": ours, "anchor_s": _best(anchor, 2), "budget": 1.2}


def bench_interpolate_slices(quick: bool) -> dict:
    _, labels = _maps(60 if quick else 300)
    sparse = np.zeros_like(labels)
    sparse[::5][labels[::5] == 1] = 1
    t = _best(lambda: seg_tools.interpolate_slices(sparse, 1, 0, GEOMETRY.spacing_zyx), 1)
    return {"name": "interpolate_slices", "value_ms": t * 1000.0, "budget_ms": 20000}


def _median(fn, repeat: int = 3) -> tuple[float, float]:
    """Median wall and CPU (process) seconds of ``repeat`` calls."""
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(times)), float(np.median(cpu))


def _grow_seeds(nz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image, labels = _maps(nz)
    seeds = np.zeros(labels.shape, np.uint8)
    bg = background_seed_value(seeds.dtype)
    liver = labels == 1
    for z in (nz // 2 - nz // 5, nz // 2, nz // 2 + nz // 5):
        ys, xs = np.nonzero(liver[z])
        cy, cx = int(ys.mean()), int(xs.mean())
        seeds[z, cy - 3 : cy + 4, cx - 30 : cx + 30] = 1  # a stroke
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1), (1, 1), (-1, -1)):
            y = int(np.clip(cy + dy * (ys.max() - ys.min()) * 0.62, 3, 508))
            x = int(np.clip(cx + dx * (xs.max() - xs.min()) * 0.62, 3, 508))
            seeds[z, y - 2 : y + 3, x - 2 : x + 3] = bg
    return image, seeds, liver


def bench_grow_seeds_first(quick: bool) -> dict:
    image, seeds, liver = _grow_seeds(60 if quick else 300)
    spacing = GEOMETRY.spacing_zyx
    t, cpu = _median(lambda: SeedGrower(image, spacing, air_below=None).grow(seeds))
    res = SeedGrower(image, spacing, air_below=None).grow(seeds)
    out = np.zeros(liver.shape, bool)
    out[res.roi] = res.target == 1
    dice = 2 * (out & liver).sum() / (out.sum() + liver.sum())
    return {"name": "grow_seeds_first", "value_ms": t * 1000.0, "budget_ms": 2000,
            "cpu_ms": cpu * 1000.0, "grid_step": res.params["grid_step"],
            "method_used": res.params["method_used"], "dice": float(dice)}  # fmt: skip


def bench_grow_seeds_update(quick: bool) -> dict:
    image, seeds, _ = _grow_seeds(60 if quick else 300)
    grower = SeedGrower(image, GEOMETRY.spacing_zyx, air_below=None)
    grower.grow(seeds)
    bg = background_seed_value(seeds.dtype)
    z = seeds.shape[0] // 2
    # dots just outside the liver (centre y 250, x 180; radii 110, 90 px), inside the region
    spots = iter([(z, 250, 285), (z + 3, 145, 180), (z - 3, 250, 80)])
    kinds = []

    def one() -> None:
        k, y, x = next(spots)
        seeds[k, y : y + 4, x : x + 4] = bg
        grower.grow(seeds)
        kinds.append(grower.last_update)

    t, cpu = _median(one)
    return {"name": "grow_seeds_update", "value_ms": t * 1000.0, "budget_ms": 500,
            "cpu_ms": cpu * 1000.0, "updates": "/".join(kinds)}  # fmt: skip


def bench_local_threshold_click(quick: bool) -> dict:
    image, labels = _maps(60 if quick else 300)
    seed = tuple(int(c) for c in np.argwhere(labels == 1).mean(axis=0))
    t, cpu = _median(
        lambda: local_threshold(image, seed, 1, 25, 100, GEOMETRY.spacing_zyx, min_diameter_mm=3)
    )
    return {"name": "local_threshold_click", "value_ms": t * 1000.0, "budget_ms": 500,
            "cpu_ms": cpu * 1000.0}  # fmt: skip


BENCHMARKS = [
    bench_label_volumes,
    bench_region_grow,
    bench_interpolate_slices,
    bench_grow_seeds_first,
    bench_grow_seeds_update,
    bench_local_threshold_click,
]
