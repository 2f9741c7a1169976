"""Sliding-window inference with Gaussian-blended overlap, batched, on CUDA (mixed precision) or CPU.

Memory: windows are visited slab by slab along the first spatial axis (z). Blended sums live in a
CPU float32 buffer only ``roi[0]`` planes deep, ``(C, roi_z, Y, X)``; a plane is normalised and
written out (as probabilities in ``out_dtype``, or as argmax + confidence) as soon as no later
window touches it. The blending weights are separable (a product of 1D Gaussians), so their sum
over all windows is an outer product of 1D sums and needs no volume-sized weight map. Nothing
volume-sized ever lives on the GPU: a batch of patches goes up (pinned, non-blocking), its
weighted probabilities come back.

:func:`iter_sliding_window` is a generator yielding ``(done, total)`` windows (napari's
``thread_worker`` can run it and stop it at any yield); :func:`sliding_window_predict` is the
synchronous form with a ``progress`` callback and a ``cancel`` event.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.models.card import Normalization


class InferenceCancelled(ClinlabelError):
    """The user cancelled inference; nothing was logged."""


@dataclass
class Prediction:
    """Result of a sliding window: ``probabilities`` (C, …) or ``labels`` + ``confidence`` (…)."""

    probabilities: np.ndarray | None = None
    labels: np.ndarray | None = None
    confidence: np.ndarray | None = None


def normalize_intensity(array: np.ndarray, norm: Normalization) -> np.ndarray:
    """float32 copy of ``array`` normalised as the model card says."""
    a = np.asarray(array, dtype=np.float32)
    if norm.kind == "ct_window":
        lo, hi = float(norm.low), float(norm.high)  # type: ignore[arg-type]
        return (np.clip(a, lo, hi) - lo) / (hi - lo)
    if norm.kind == "zscore":
        return (a - a.mean()) / max(float(a.std()), 1e-6)
    if norm.kind == "minmax":
        lo, hi = float(a.min()), float(a.max())
        return (a - lo) / max(hi - lo, 1e-6)
    return a.copy()


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of windows of length ``roi`` covering ``size`` with fractional ``overlap``."""
    if size <= roi:
        return [0]
    step = max(int(roi * (1.0 - overlap)), 1)
    n = math.ceil((size - roi) / step) + 1
    return sorted({min(i * step, size - roi) for i in range(n)})


def gaussian_1d(roi: int, sigma_scale: float = 0.125) -> np.ndarray:
    """1D Gaussian blending weights for a window of ``roi`` voxels (max 1, no zeros)."""
    sigma = max(roi * sigma_scale, 1e-3)
    x = np.arange(roi, dtype=np.float64) - (roi - 1) / 2.0
    g = np.exp(-0.5 * (x / sigma) ** 2)
    g /= g.max()
    return np.maximum(g, max(g[g > 0].min(), 1e-4)).astype(np.float32)


def blending_weights(roi: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """N-D blending weights of one window: outer product of :func:`gaussian_1d` per axis."""
    w = np.ones((), dtype=np.float32)
    for r in roi:
        w = np.multiply.outer(w, gaussian_1d(int(r), sigma_scale))
    return w.astype(np.float32)


def _weight_sums(
    shape: Sequence[int], roi: Sequence[int], starts: list[list[int]], sigma_scale: float
) -> list[np.ndarray]:
    sums = []
    for size, r, st in zip(shape, roi, starts, strict=True):
        g = gaussian_1d(r, sigma_scale)
        s = np.zeros(size, dtype=np.float32)
        for a in st:
            s[a : a + r] += g
        sums.append(s)
    return sums


def iter_sliding_window(
    array: np.ndarray,
    model: Callable[[Any], Any],
    roi: Sequence[int] = (96, 96, 96),
    overlap: float = 0.25,
    batch_size: int = 4,
    device: str = "cpu",
    output: str = "probabilities",
    activation: str | None = "softmax",
    out_dtype: Any = np.float32,
    sigma_scale: float = 0.125,
    cancel: threading.Event | None = None,
) -> Generator[tuple[int, int], None, Prediction]:
    """Yield ``(done, total)`` windows while predicting; return a :class:`Prediction`.

    ``array`` is (C, *spatial) or spatial only (one channel), already normalised. ``output`` is
    ``"probabilities"`` ((C, *spatial) in ``out_dtype``) or ``"argmax"`` (uint8/uint16 labels and
    float16 confidence). ``activation`` ``"softmax"``/``"sigmoid"`` is applied per window before
    blending (``None`` blends raw outputs). Raises :class:`InferenceCancelled` when ``cancel`` is set.
    """
    import torch  # lazy: torch takes seconds to import; only running a model needs it

    if output not in ("probabilities", "argmax"):
        raise ValueError(f"output must be 'probabilities' or 'argmax', not {output!r}")
    roi = tuple(int(r) for r in roi)
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == len(roi):
        a = a[None]
    if a.ndim != len(roi) + 1:
        raise ClinlabelError(f"Image has {a.ndim - 1} spatial axes but the window has {len(roi)}.")
    spatial = a.shape[1:]
    pad = [(0, max(r - s, 0)) for s, r in zip(spatial, roi, strict=True)]
    if any(p[1] for p in pad):
        a = np.pad(a, [(0, 0), *pad])
    shape = a.shape[1:]
    starts = [window_starts(s, r, overlap) for s, r in zip(shape, roi, strict=True)]
    windows = list(itertools.product(*starts))  # first axis major: slab order
    total = len(windows)
    wsums = _weight_sums(shape, roi, starts, sigma_scale)
    cuda = str(device).startswith("cuda")
    dev = torch.device(device)
    imp = torch.from_numpy(blending_weights(roi, sigma_scale)).to(dev)
    amp_dtype = None
    if cuda:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    n_out: int | None = None
    buf: torch.Tensor | None = None  # (C, roi0, *shape[1:]) float32 on CPU
    # one batch of patches, filled in place each time (no per-batch allocation; pinned for CUDA)
    staging = torch.empty((batch_size, a.shape[0], *roi), dtype=torch.float32, pin_memory=cuda)
    stage = staging.numpy()
    base = 0  # first plane held in buf
    written = 0  # planes [0, written) are final
    result = Prediction()

    def flush(upto: int) -> None:
        nonlocal written
        upto = min(upto, spatial[0])
        if upto <= written:
            return
        lo, hi = written - base, upto - base
        wz = torch.from_numpy(wsums[0][written:upto])
        w = wz.reshape(-1, *([1] * (len(roi) - 1)))
        for ax, ws in enumerate(wsums[1:], start=1):
            shp = [1] * len(roi)
            shp[ax] = -1
            w = w * torch.from_numpy(ws).reshape(shp)
        slab = buf[:, lo:hi] / w  # type: ignore[index]
        crop = (slice(None), slice(None), *(slice(0, s) for s in spatial[1:]))
        slab = slab[crop]
        if output == "probabilities":
            result.probabilities[:, written:upto] = slab.numpy().astype(out_dtype, copy=False)  # type: ignore[index]
        else:
            conf, lab = slab.max(dim=0)
            result.labels[written:upto] = lab.numpy()  # type: ignore[index]
            result.confidence[written:upto] = conf.numpy().astype(np.float16)  # type: ignore[index]
        written = upto

    def shift_to(new_base: int) -> None:
        nonlocal base
        d = new_base - base
        if d <= 0:
            return
        r0 = roi[0]
        if d >= r0:
            buf.zero_()  # type: ignore[union-attr]
        else:
            buf[:, : r0 - d] = buf[:, d:].clone()  # type: ignore[index]
            buf[:, r0 - d :] = 0  # type: ignore[index]
        base = new_base

    yield 0, total
    done = 0
    with torch.inference_mode():
        i = 0
        while i < total:
            if cancel is not None and cancel.is_set():
                raise InferenceCancelled("Inference cancelled; no proposals were made.")
            # a batch never spans two slabs, so a slab can be flushed before the next begins
            z0 = windows[i][0]
            j = i
            while j < total and j - i < batch_size and windows[j][0] == z0:
                j += 1
            batch = windows[i:j]
            for k, w in enumerate(batch):
                stage[k] = a[(slice(None), *(slice(s, s + r) for s, r in zip(w, roi, strict=True)))]
            x = staging[: len(batch)]
            if cuda:
                x = x.to(dev, non_blocking=True)
                with torch.autocast(device_type="cuda", dtype=amp_dtype):
                    y = model(x)
            else:
                y = model(x)
            if y.dtype != torch.float32:
                y = y.float()
            if activation == "softmax":
                y = torch.softmax(y, dim=1)
            elif activation == "sigmoid":
                y = torch.sigmoid(y)
            # weight in place: the network's output is ours to overwrite (no 2nd batch-sized copy)
            y = y.mul_(imp).to("cpu", non_blocking=False)
            if buf is None:
                n_out = int(y.shape[1])
                buf = torch.zeros((n_out, roi[0], *shape[1:]), dtype=torch.float32)
                if output == "probabilities":
                    result.probabilities = np.empty((n_out, *spatial), dtype=out_dtype)
                else:
                    result.labels = np.empty(spatial, dtype=np.uint8 if n_out <= 256 else np.uint16)
                    result.confidence = np.empty(spatial, dtype=np.float16)
            for k, w in enumerate(batch):
                sl = (
                    slice(None),
                    slice(w[0] - base, w[0] - base + roi[0]),
                    *(slice(s, s + r) for s, r in zip(w[1:], roi[1:], strict=True)),
                )
                buf[sl] += y[k]
            done = j
            i = j
            if i == total or windows[i][0] != z0:
                nxt = windows[i][0] if i < total else shape[0]
                flush(nxt)
                shift_to(nxt)
            yield done, total
    return result


def sliding_window_predict(
    array: np.ndarray,
    model: Callable[[Any], Any],
    roi: Sequence[int] = (96, 96, 96),
    overlap: float = 0.25,
    batch_size: int = 4,
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    **kwargs: Any,
) -> Prediction:
    """Run :func:`iter_sliding_window` to the end, calling ``progress(done, total)`` per batch."""
    gen = iter_sliding_window(
        array, model, roi, overlap, batch_size, device, cancel=cancel, **kwargs
    )
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)


def resample_to_spacing(image: Any, spacing_zyx: Sequence[float], linear: bool = True) -> Any:
    """SimpleITK image resampled to ``spacing_zyx`` mm over the same extent (linear or nearest)."""
    new_spacing = tuple(float(s) for s in reversed(spacing_zyx))
    old_size, old_spacing = image.GetSize(), image.GetSpacing()
    size = [
        max(1, int(round(n * s / t)))
        for n, s, t in zip(old_size, old_spacing, new_spacing, strict=True)
    ]
    # keep the physical extent centred: the first voxel centre moves by half the spacing change
    d = np.asarray(image.GetDirection()).reshape(image.GetDimension(), -1)
    shift = d @ ((np.asarray(new_spacing) - np.asarray(old_spacing)) / 2.0)
    origin = tuple(float(v) for v in np.asarray(image.GetOrigin()) + shift)
    interp = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    return sitk.Resample(
        image,
        size,
        sitk.Transform(),
        interp,
        origin,
        new_spacing,
        image.GetDirection(),
        0.0,
        image.GetPixelID(),
    )


def resample_like(image: Any, reference: Any, linear: bool = True) -> Any:
    """``image`` resampled onto ``reference``'s grid (linear for images/probabilities, nearest for labels)."""
    interp = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    return sitk.Resample(image, reference, sitk.Transform(), interp, 0.0, image.GetPixelID())
