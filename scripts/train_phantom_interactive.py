"""Train the shipped interactive phantom model: ``python scripts/train_phantom_interactive.py [--steps N]``.

Reproducible: a fixed number of steps, one CPU thread, fixed seeds, deterministic data. Training
images are CT phantoms (``core.image.samples.ct_phantom_truth``) with seeds 1–4 and several fields
of view; every organ and every lesion (each connected component of the truth) is an object. Each
step draws objects and simulated prompts the way a reader gives them — one or more positive points
(the first well inside), sometimes negative points just outside, sometimes a box with a few voxels
of slack — and crops exactly as inference does (``core.models.interactive.crop_grid`` /
``crop_to_model``), so training and use see the same inputs. Seed 0 and seeds ≥ 5 are never
trained on; the script ends by printing the Dice per object on seed 7 through the real loader and
``predict_mask``, then writes ``phantom_interactive.pt`` (TorchScript) and its card.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from napari_clinlabel.core.image.samples import CT_LABELS, ct_phantom_truth
from napari_clinlabel.core.models.card import card_from_dict
from napari_clinlabel.core.models.inference import normalize_intensity
from napari_clinlabel.core.models.interactive import Prompt, crop_grid, crop_to_model
from napari_clinlabel.core.models.unet import PromptUNet

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_clinlabel" / "models"
CARD = {
    "name": "phantom-interactive",
    "version": "1.0.0",
    "task": "interactive",
    "description": "Small prompt-driven 3D UNet (image + positive/negative point and box maps) "
    "trained on the CT phantom only (scripts/train_phantom_interactive.py); a demonstration "
    "model, not for clinical use.",
    "in_channels": 1,
    "patch_size": [32, 48, 48],
    "input_spacing": [3.75, 2.5, 2.5],
    "normalization": {"kind": "ct_window", "low": -200, "high": 300},
    "classes": [{"index": 0, "name": "background"}, {"index": 1, "label": 1, "name": "object"}],
    "input_domain": {
        "intensity_p50": [-1000, 100],
        "spacing_mm": [[1.0, 5.0], [0.5, 2.0], [0.5, 2.0]],
    },
}
TRAIN_SEEDS = (1, 2, 3, 4)
SHAPES = ((48, 160, 160), (40, 144, 144), (56, 176, 176), (48, 144, 176), (44, 176, 160))
WIDTH, DEPTH = 8, 2
MIN_OBJECT = 20  # voxels: smaller components are not trained on


class Case:
    """One phantom: normalised image, spacing, and its objects with their prompt candidates."""

    def __init__(self, seed: int, shape: tuple[int, int, int], card) -> None:
        vol, truth = ct_phantom_truth(shape=shape, seed=seed)
        self.shape = truth.shape
        self.spacing = np.asarray(vol.geometry.spacing_zyx, dtype=np.float64)
        self.image = normalize_intensity(vol.array, card.normalization)
        self.objects = []
        for value in CT_LABELS:
            lab, n = ndimage.label(truth == value, structure=np.ones((3, 3, 3), bool))
            for k, sl in enumerate(ndimage.find_objects(lab), start=1):
                if sl is not None and np.count_nonzero(lab[sl] == k) >= MIN_OBJECT:
                    self.objects.append(ObjectPrompts(lab == k, sl))


class ObjectPrompts:
    """An object's mask and where simulated prompts may fall: well inside, inside, just outside."""

    def __init__(self, mask: np.ndarray, sl: tuple[slice, ...]) -> None:
        self.mask = mask
        lo = np.array([max(s.start - 5, 0) for s in sl])
        hi = np.array([min(s.stop + 5, n) for s, n in zip(sl, mask.shape, strict=True)])
        sub = mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        edt = ndimage.distance_transform_edt(sub)
        self.inner = np.argwhere(edt >= 0.5 * edt.max()) + lo
        self.anywhere = np.argwhere(edt >= 1) + lo
        self.ring = np.argwhere(ndimage.binary_dilation(sub, iterations=4) & ~sub) + lo
        self.lo = np.array([s.start for s in sl], dtype=float)
        self.hi = np.array([s.stop - 1 for s in sl], dtype=float)


def simulate_prompt(obj: ObjectPrompts, rng: np.random.Generator) -> Prompt:
    """Prompts a reader might give: points inside (the first well inside), maybe points just
    outside, maybe a box with a few voxels of slack."""
    mode = rng.integers(4)  # 0 one point, 1 points (+negatives), 2 box only, 3 box + point
    pos, neg, box = [], [], None
    if mode in (0, 1, 3):
        pos.append(obj.inner[rng.integers(len(obj.inner))])
    if mode == 1:
        for _ in range(rng.integers(0, 3)):
            pos.append(obj.anywhere[rng.integers(len(obj.anywhere))])
        for _ in range(rng.integers(0, 3)):
            neg.append(obj.ring[rng.integers(len(obj.ring))])
    if mode in (2, 3):
        slack = np.array([1, 3, 3])
        lo = obj.lo - rng.integers(0, slack + 1)
        hi = obj.hi + rng.integers(0, slack + 1)
        box = np.stack([np.maximum(lo, 0), np.minimum(hi, np.asarray(obj.mask.shape) - 1)])
    return Prompt.make(pos, neg, box, obj.mask.shape)


def sample(cases, rng, card):
    """One training example on the model grid: (image crop, points, labels, box, target)."""
    case = cases[rng.integers(len(cases))]
    obj = case.objects[rng.integers(len(case.objects))]
    prompt = simulate_prompt(obj, rng)
    grid = crop_grid(prompt, case.spacing, card)
    lo, hi = grid.image_bounds(case.shape)
    reg = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
    x = crop_to_model(case.image[reg], lo, grid)
    y = crop_to_model(obj.mask[reg].astype(np.float32), lo, grid) > 0.5
    x = x * rng.uniform(0.92, 1.08) + rng.uniform(-0.03, 0.03)
    x = x + rng.normal(0, rng.uniform(0, 0.02), x.shape)
    pts = np.concatenate([prompt.positive, prompt.negative])
    labels = np.r_[np.ones(len(prompt.positive)), np.zeros(len(prompt.negative))]
    box = grid.to_model(prompt.box) if prompt.box is not None else -np.ones((2, 3))
    return (
        torch.from_numpy(x[None, None].astype(np.float32)),
        torch.from_numpy(grid.to_model(pts).reshape(-1, 3).astype(np.float32)),
        torch.from_numpy(labels.astype(np.int64)),
        torch.from_numpy(box.astype(np.float32)),
        torch.from_numpy(y[None, None].astype(np.float32)),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=350, help="optimiser steps (fixed: reproducible)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--init", type=Path, help="start from these TorchScript weights (a 2nd stage)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the prompts and crops drawn")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(args.seed)
    card = card_from_dict(CARD)
    cases = [Case(seed, shape, card) for seed in TRAIN_SEEDS for shape in SHAPES]
    model = PromptUNet(1, WIDTH, DEPTH)
    if args.init:
        model.load_state_dict(torch.jit.load(str(args.init)).state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    bce = torch.nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = [sample(cases, rng, card) for _ in range(args.batch)]
        x = torch.cat([model.encode(*b[:4]) for b in batch])
        y = torch.cat([b[4] for b in batch])
        logits = model.net(x)
        p = torch.sigmoid(logits)
        inter = (p * y).sum((1, 2, 3, 4))
        dice = 1 - ((2 * inter + 1) / (p.sum((1, 2, 3, 4)) + y.sum((1, 2, 3, 4)) + 1)).mean()
        loss = bce(logits, y) + dice
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0:
            print(
                f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True
            )
    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    pt = args.out / "phantom_interactive.pt"
    torch.jit.script(model).save(str(pt))
    card_path = args.out / "phantom_interactive.json"
    card_path.write_text(json.dumps(CARD, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {pt} ({pt.stat().st_size} bytes) after {args.steps} steps")
    report(pt)


def report(pt: Path, seed: int = 7) -> None:
    """Dice per object on an unseen phantom: one central positive point, and a tight box."""
    from napari_clinlabel.core.models.interactive import predict_mask
    from napari_clinlabel.core.models.loader import load_model

    model = load_model(str(pt), device="cpu")
    vol, truth = ct_phantom_truth(seed=seed)
    for value, name in sorted(CT_LABELS.items()):
        lab, n = ndimage.label(truth == value, structure=np.ones((3, 3, 3), bool))
        for k in range(1, n + 1):
            obj = lab == k
            if obj.sum() < MIN_OBJECT:
                continue
            edt = ndimage.distance_transform_edt(obj)
            centre = np.unravel_index(int(np.argmax(edt)), obj.shape)
            idx = np.argwhere(obj)
            out = []
            for prompt in (
                Prompt.make([centre], shape=obj.shape),
                Prompt.make([], box=[idx.min(0), idx.max(0)], shape=obj.shape),
            ):
                try:
                    res = predict_mask(vol, model, prompt)
                except Exception as exc:  # report and go on: a miss is a result here
                    out.append(f"failed ({exc})")
                    continue
                m = np.zeros(obj.size, bool)
                m[res.indices] = True
                d = 2 * np.logical_and(m, obj.reshape(-1)).sum() / (m.sum() + obj.sum())
                out.append(f"{d:.3f}")
            print(f"dice {name} #{k} ({int(obj.sum())} vox): point {out[0]}, box {out[1]}")


if __name__ == "__main__":
    main()
