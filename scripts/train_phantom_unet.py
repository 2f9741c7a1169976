"""Train the shipped phantom UNet: ``python scripts/train_phantom_unet.py [--minutes 4] [--out DIR]``.

Reproducible: a fixed number of steps, one CPU thread, fixed seeds for numpy and torch, deterministic data. Training phantoms are the CT
phantom (``core.samples.ct_phantom_truth``) with seeds 1–4 and several fields of view (the anatomy
scales with the field of view, so organ sizes vary), resampled to the card's spacing with
SimpleITK, plus random crops, intensity shift/scale and extra noise. Seed 0 and seeds ≥ 5 are never
trained on; the script ends by printing the Dice per organ on seed 7 through the real loader and
the sliding window, then writes ``phantom_unet.pt`` (TorchScript) and ``phantom_unet.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from napari_clinlabel.core.image.samples import CT_LABELS, ct_phantom_truth
from napari_clinlabel.core.models.card import card_from_dict
from napari_clinlabel.core.models.inference import normalize_intensity, resample_to_spacing
from napari_clinlabel.core.models.unet import UNet3D

OUT = Path(__file__).resolve().parents[1] / "src" / "napari_clinlabel" / "models"
CARD = {
    "name": "phantom-unet",
    "version": "1.0.0",
    "task": "segmentation",
    "schema": "abdomen-ct",
    "description": "Small 3D UNet trained on the CT phantom only (scripts/train_phantom_unet.py); "
    "a demonstration model, not for clinical use.",
    "in_channels": 1,
    "patch_size": [32, 48, 48],
    "input_spacing": [2.5, 2.0, 2.0],
    "normalization": {"kind": "ct_window", "low": -200, "high": 300},
    "classes": [{"index": 0, "name": "background"}]
    + [{"index": v, "label": v, "name": n} for v, n in sorted(CT_LABELS.items())],
    # applied before proposals are logged: one liver, one spleen…, at most ten lesions, and no speck
    # below a plausible size (the smallest phantom lesion is a 6 mm sphere, 113 mm³)
    "postprocess": {
        "min_component_mm3": {
            "liver": 5000,
            "spleen": 1000,
            "right kidney": 1000,
            "left kidney": 1000,
            "aorta": 500,
            "lesion": 50,
        },
        "largest_component": ["liver", "spleen", "right kidney", "left kidney", "aorta"],
        "max_components": {"lesion": 10},  # the ten largest: the phantom has six
    },  # fmt: skip
    # what it was trained on (median HU −109; 0.8 × 0.8 × 2.5 mm; 100–141 mm fields), with margin
    "input_domain": {
        "intensity_p50": [-400, 100],
        "spacing_mm": [[1.5, 4.0], [0.5, 1.2], [0.5, 1.2]],
        "field_of_view_mm": [[80, 180], [100, 180], [100, 180]],
    },
}
TRAIN_SEEDS = (1, 2, 3, 4)
SHAPES = ((48, 160, 160), (40, 144, 144), (56, 176, 176), (48, 144, 176), (44, 176, 160))
WIDTH, DEPTH = 8, 2


def training_set(card) -> list[tuple[np.ndarray, np.ndarray]]:
    """(normalised image, labels) pairs on the model's grid."""
    pairs = []
    for seed in TRAIN_SEEDS:
        for shape in SHAPES:
            vol, truth = ct_phantom_truth(shape=shape, seed=seed)
            img = resample_to_spacing(vol.to_itk(vol.array.astype(np.float32)), card.input_spacing)
            lab = resample_to_spacing(vol.to_itk(truth), card.input_spacing, linear=False)
            pairs.append(
                (
                    normalize_intensity(sitk.GetArrayFromImage(img), card.normalization),
                    sitk.GetArrayFromImage(lab).astype(np.int64),
                )
            )
    return pairs


def sample_batch(pairs, rng, patch, n):
    xs, ys = [], []
    for _ in range(n):
        img, lab = pairs[rng.integers(len(pairs))]
        pads = [(0, max(p - s, 0)) for s, p in zip(img.shape, patch, strict=True)]
        img, lab = np.pad(img, pads), np.pad(lab, pads)
        st = [rng.integers(0, s - p + 1) for s, p in zip(img.shape, patch, strict=True)]
        sl = tuple(slice(a, a + p) for a, p in zip(st, patch, strict=True))
        x = img[sl] * rng.uniform(0.92, 1.08) + rng.uniform(-0.03, 0.03)
        x = x + rng.normal(0, rng.uniform(0, 0.02), x.shape)
        xs.append(x[None].astype(np.float32))
        ys.append(lab[sl])
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def dice_loss(logits, target, n_classes):
    p = torch.softmax(logits, 1)
    oh = torch.nn.functional.one_hot(target, n_classes).permute(0, 4, 1, 2, 3).float()
    inter = (p * oh).sum((0, 2, 3, 4))
    den = p.sum((0, 2, 3, 4)) + oh.sum((0, 2, 3, 4))
    return 1 - ((2 * inter + 1) / (den + 1))[1:].mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="optimiser steps (fixed: reproducible)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(0)
    card = card_from_dict(CARD)
    pairs = training_set(card)
    model = UNet3D(1, card.n_classes, WIDTH, DEPTH)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    ce = torch.nn.CrossEntropyLoss()
    t0, step = time.perf_counter(), 0
    while step < args.steps:
        x, y = sample_batch(pairs, rng, card.patch_size, 2)
        logits = model(x)
        loss = ce(logits, y) + dice_loss(logits, y, card.n_classes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            print(
                f"step {step} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f} s)", flush=True
            )
    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    pt = args.out / "phantom_unet.pt"
    torch.jit.script(model).save(str(pt))
    (args.out / "phantom_unet.json").write_text(json.dumps(CARD, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {pt} ({pt.stat().st_size} bytes) after {step} steps")
    report(pt)


def report(pt: Path) -> None:
    """Dice per organ on an unseen phantom (seed 7), via the real loader and sliding window."""
    from napari_clinlabel.core.models.loader import load_model
    from napari_clinlabel.core.models.run import predict_labels

    model = load_model(str(pt), device="cpu")
    vol, truth = ct_phantom_truth(seed=7)
    pred, _ = predict_labels(vol, model)
    for value, name in sorted(CT_LABELS.items()):
        a, b = pred == value, truth == value
        d = 2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)
        print(f"dice {name}: {d:.3f}")


if __name__ == "__main__":
    main()
