"""Sliding-window inference: ours vs MONAI ``sliding_window_inference``, same model, ROI, overlap, batch.

Both run the same eager ``nn.Module`` (our UNet3D, not TorchScript) under ``torch.inference_mode``
with ROI 96³, overlap 0.25, batch 4 and Gaussian blending, on a 300×512×512 volume (``--quick``:
96×160×160, four windows, timed anchor-ours-ours-anchor), and both return blended raw outputs (no softmax) as float32. The network is tiny
(width 2, depth 2, 2 classes) so that on this 2-core CPU the full run stays around three minutes:
the network dominates either way, so the ratio measures the sliding-window machinery. On CUDA the
extras add the network's FLOPs per patch (``torch.utils.flop_counter.FlopCounterMode``) and the
achieved fraction of the device's peak, taken as the measured rate of a large bf16 matmul.
"""

from __future__ import annotations

import time

import numpy as np


def _peak_flops(device: str) -> float:
    """Measured bf16 matmul rate (FLOP/s): the practical peak of the device."""
    import torch

    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t)


def bench_sliding_window(quick: bool) -> dict:
    import torch
    from monai.inferers import sliding_window_inference

    from napari_clinlabel.core.models.inference import sliding_window_predict
    from napari_clinlabel.core.models.unet import UNet3D

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    torch.manual_seed(0)
    width = 8 if cuda else 2
    net = UNet3D(1, 2, width=width, depth=2).eval().to(device)
    shape = (96, 160, 160) if quick else (300, 512, 512)
    vol = np.random.default_rng(0).random(shape, dtype=np.float32)
    roi, overlap, batch = (96, 96, 96), 0.25, 4

    def ours() -> np.ndarray:
        return sliding_window_predict(
            vol, net, roi, overlap, batch, device, activation=None
        ).probabilities

    def anchor() -> np.ndarray:
        x = torch.from_numpy(vol)[None, None]
        with torch.inference_mode():
            if cuda:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    y = sliding_window_inference(
                        x, roi, batch, net, overlap, mode="gaussian", sw_device=device, device="cpu"
                    )
            else:
                y = sliding_window_inference(x, roi, batch, net, overlap, mode="gaussian")
        return y[0].float().numpy()

    with torch.inference_mode():  # warm-up (allocator, kernels)
        net(torch.zeros((1, 1, *roi), device=device))

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    # quick: anchor, ours, ours, anchor (cancels a linear drift in machine load); full: one each
    a, anchor_s = timed(anchor)
    o, ours_s = timed(ours)
    if quick:
        ours_s += timed(ours)[1]
        anchor_s += timed(anchor)[1]
    agree = float(np.mean(a.argmax(0) == o.argmax(0)))
    del a, o
    res = {
        "ours_s": ours_s,
        "anchor_s": anchor_s,
        "budget": 1.0,
        "shape": "x".join(map(str, shape)),
        "device": device,
        "width": width,
        "voxels_per_s": float(np.prod(shape)) / ours_s,
        "argmax_agreement": agree,
    }
    if cuda:
        from torch.utils.flop_counter import FlopCounterMode

        from napari_clinlabel.core.models.inference import window_starts

        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            net(torch.zeros((1, 1, *roi), device=device))
        per_patch = fc.get_total_flops()
        n_win = int(
            np.prod([len(window_starts(s, r, overlap)) for s, r in zip(shape, roi, strict=True)])
        )
        res["gflop_per_patch"] = per_patch / 1e9
        res["peak_fraction"] = per_patch * n_win / ours_s / _peak_flops(device)
    return res


def bench_interactive_prompt(quick: bool) -> dict:
    """Prompt → logged proposal with ``builtin:phantom-interactive`` on CPU, 128³ CT, median ms.

    Each repeat: one positive point on the right kidney → crop onto the model grid → network → mask back
    on the image grid → one ``proposal.add`` record (fsynced) with its mask object. One warm-up
    call first (TorchScript's profiling runs, allocator).
    """
    import tempfile
    from pathlib import Path

    import torch
    from scipy import ndimage

    from napari_clinlabel.core.image.samples import ct_phantom_truth
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import Actor
    from napari_clinlabel.core.models.interactive import Prompt, propose
    from napari_clinlabel.core.models.loader import load_model

    model = load_model("builtin:phantom-interactive", device="cpu")
    vol, truth = ct_phantom_truth(shape=(128, 128, 128), seed=9)
    obj = truth == 3  # the right kidney (a 128-slice phantom stretches the liver to 290 mm)
    centre = np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(obj))), obj.shape)
    prompt = Prompt.make([centre], shape=obj.shape)
    reps = 3 if quick else 9
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog(Path(tmp) / "ct.nii.clinlabel.jsonl", {"uid": None, "sha256": "0" * 64},
                       Actor("bench", "Bench", "annotator"))  # fmt: skip
        propose(log, vol, model, prompt, label=3, name="right kidney")
        for _ in range(reps):
            t = time.perf_counter()
            p = propose(log, vol, model, prompt, label=3, name="right kidney")
            times.append(time.perf_counter() - t)
        idx = log.get_arrays(p.payload["mask"])["indices"]
    dice = 2 * obj.reshape(-1)[idx].sum() / (idx.size + obj.sum())
    return {
        "value_ms": float(np.median(times) * 1000),
        "budget_ms": 1000,
        "p90_ms": float(np.percentile(times, 90) * 1000),
        "shape": "128x128x128",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "reps": reps,
        "kidney_dice": float(dice),
    }


BENCHMARKS = [bench_sliding_window, bench_interactive_prompt]
