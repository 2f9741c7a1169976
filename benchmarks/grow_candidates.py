"""Grow-from-seeds candidates compared against truth made by others, with a simulated reader.

``python benchmarks/grow_candidates.py`` prints a markdown table (kept in RESULTS.md).

Truth: dcmqi's liver label map on its real 3-slice CT (``../shared/data/dcmqi_ct3slice_seg``) and
the liver of the CT phantom (``core.image.samples.ct_phantom_truth``). The simulated reader
starts with one foreground stroke (a 7×7 square at the deepest liver point of the middle slice)
and a ring of 6 background dots 10 mm outside the liver on that slice, then, as a reader correcting
a preview, adds one 5×5 dot at the deepest point of the largest error (a background dot in a false
positive, a foreground dot in a miss) until Dice ≥ 0.93 or 20 corrections. Reported: Dice after
the initial seeds, corrections needed, final Dice, voxels outside the body, seconds per run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from napari_clinlabel.core.annotate.tools.grow_seeds import SeedGrower, background_seed_value
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.image.samples import LIVER, ct_phantom_truth

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dcmqi_ct3slice_seg"
BG = background_seed_value(np.uint8)
GOAL = 0.93


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(1, int(a.sum()) + int(b.sum()))


def outside_body(image: np.ndarray) -> np.ndarray:
    """Air (< -500 HU) connected to the border of its slice: outside the body."""
    out = np.zeros(image.shape, bool)
    for k in range(image.shape[0]):
        lab, _ = ndi.label(image[k] < -500)
        edge = np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]])
        out[k] = np.isin(lab, edge[edge > 0])
    return out


def initial_seeds(truth: np.ndarray, spacing, outside: np.ndarray) -> np.ndarray:
    seeds = np.zeros(truth.shape, np.uint8)
    k = truth.shape[0] // 2
    while not truth[k].any():
        k += 1
    d = ndi.distance_transform_edt(truth[k], sampling=spacing[1:])
    y, x = np.unravel_index(int(d.argmax()), d.shape)
    seeds[k, y - 3 : y + 4, x - 3 : x + 4] = 1
    dist = ndi.distance_transform_edt(~truth[k], sampling=spacing[1:])
    ring = np.argwhere((dist > 9.0) & (dist < 11.0) & ~outside[k])
    cy, cx = np.argwhere(truth[k]).mean(0)
    ang = np.arctan2(ring[:, 0] - cy, ring[:, 1] - cx)
    for a in np.linspace(-np.pi, np.pi, 6, endpoint=False):
        yy, xx = ring[np.argmin(np.abs((ang - a + np.pi) % (2 * np.pi) - np.pi))]
        seeds[k, yy - 2 : yy + 3, xx - 2 : xx + 3] = BG
    return seeds


def correction(result: np.ndarray, truth: np.ndarray, seeds: np.ndarray, spacing) -> None:
    """Add one dot at the deepest point of the largest error component (in place)."""
    err = result != truth
    lab, n = ndi.label(err)
    if n == 0:
        return
    sizes = ndi.sum(err, lab, range(1, n + 1))
    comp = lab == (int(np.argmax(sizes)) + 1)
    d = ndi.distance_transform_edt(comp, sampling=spacing)
    z, y, x = np.unravel_index(int(d.argmax()), d.shape)
    value = 1 if truth[z, y, x] else BG
    seeds[z, max(0, y - 2) : y + 3, max(0, x - 2) : x + 3] = value


def run_candidate(name, fn, image, truth, spacing, outside) -> dict:
    seeds = initial_seeds(truth, spacing, outside)
    times, first, clicks = [], None, 0
    while True:
        t = time.perf_counter()
        result = fn(image, seeds, spacing)
        times.append(time.perf_counter() - t)
        d = dice(result, truth)
        first = d if first is None else first
        if d >= GOAL or clicks >= 20:
            break
        correction(result, truth, seeds, spacing)
        clicks += 1
    return {
        "candidate": name + (f" → {fn.used}" if getattr(fn, "used", "") else ""), "first": first, "clicks": clicks, "dice": d,
        "outside": int((result & outside).sum()), "s": float(np.median(times)),
        "fg_strokes": int(len(np.unique(ndi.label(seeds == 1)[0])) - 1),
        "bg_strokes": int(len(np.unique(ndi.label(seeds == BG)[0])) - 1),
    }  # fmt: skip


def ours(method):
    grower: dict[str, SeedGrower] = {}

    def fn(image, seeds, spacing):
        # one grower per image, as in the widget: auto decides at the first grow and keeps it;
        # corrections update locally
        key = str(id(image))
        if key not in grower:
            grower.clear()
            grower[key] = SeedGrower(image, spacing, method=method)
        res = grower[key].grow(seeds)
        fn.used = res.params["method_used"]
        out = np.zeros(image.shape, bool)
        out[res.roi] = res.where
        return out

    fn.used = ""
    return fn


def random_walker(image, seeds, spacing):
    from skimage.segmentation import random_walker as rw  # bench-only comparison

    a = np.clip(image.astype(np.float32), -200, 300)
    a = (a - a.min()) / max(1e-6, float(a.max() - a.min()))
    m = np.where(seeds == BG, 2, seeds).astype(np.int32)
    m[image < -500] = 2
    out = np.zeros(image.shape, bool)
    for k in range(image.shape[0]):  # 2D per slice: a 3D walk here takes minutes
        if (m[k] == 1).any():
            out[k] = rw(a[k], m[k], beta=1000, mode="cg_j") == 1
    return out


def connected_threshold(image, seeds, spacing):
    """The old tool: ConnectedThreshold, window = seed mean ± 2.5 std (no smoothing)."""
    vals = image[seeds == 1].astype(float)
    lo, hi = vals.mean() - 2.5 * vals.std(), vals.mean() + 2.5 * vals.std()
    z, y, x = np.argwhere(seeds == 1)[0]
    img = sitk.GetImageFromArray(image)
    out = sitk.ConnectedThreshold(img, seedList=[(int(x), int(y), int(z))], lower=lo, upper=hi)
    return sitk.GetArrayFromImage(out) > 0


CANDIDATES = {
    "auto: method chosen per image from where the background seeds sit (default)": ours("auto"),
    "watershed on intensity-weighted gradient (ours, SimpleITK)": ours("watershed"),
    "watershed on gradient magnitude (SimpleITK)": ours("watershed_gradient"),
    "random walker (scikit-image, 2D per slice)": random_walker,
    "connected threshold (SimpleITK, previous tool)": connected_threshold,
}


def cases():
    if DATA.is_dir():
        vol = read_volumes(DATA / "ct-3slice")[0]
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "liver_seg.nrrd"))) > 0
        yield "dcmqi CT liver (3×512×512)", np.asarray(vol.array), truth, vol.geometry.spacing_zyx
    vol, lab = ct_phantom_truth()
    yield (
        "CT phantom liver (48×160×160)",
        np.asarray(vol.array),
        lab == LIVER,
        vol.geometry.spacing_zyx,
    )


def main() -> int:
    print(
        "| case | candidate | Dice, initial seeds | corrections to 0.93 | final Dice | "
        "fg / bg strokes | voxels outside body | s per run (median) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    skip = set(sys.argv[1:])  # e.g. "random" to leave out candidates whose name holds the word
    for case, image, truth, spacing in cases():
        outside = outside_body(image)
        for name, fn in CANDIDATES.items():
            if any(word in name for word in skip):
                continue
            r = run_candidate(name, fn, image, truth, spacing, outside)
            print(
                f"| {case} | {r['candidate']} | {r['first']:.3f} | {r['clicks']} | {r['dice']:.3f} | "
                f"{r['fg_strokes']} / {r['bg_strokes']} | {r['outside']} | {r['s']:.2f} |"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
