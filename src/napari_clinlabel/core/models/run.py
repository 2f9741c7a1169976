"""Run a loaded model on a :class:`Volume` and turn its output into proposal drafts.

Segmentation: one draft per connected component of each class (26-connectivity), scored by the
mean probability of its class. Detection: one box per component. Grading: one grade for the image,
with the class probabilities. The baseline detector makes its drafts itself.

A sheared image (gantry-tilted CT) runs in voxel space: the network sees the original voxel grid,
resampled (when the card asks for a spacing) on :meth:`Geometry.voxel_grid` — the spacing between
neighbouring voxels, the column norms of the sheared affine — and its output comes back on the
same original voxels, so proposals sit on the original frames (nothing resampled to hide the tilt).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from napari_clinlabel.core.errors import ModelError
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.models.inference import (
    iter_sliding_window,
    normalize_intensity,
    resample_like,
    resample_to_spacing,
)
from napari_clinlabel.core.models.loader import LoadedModel
from napari_clinlabel.core.proposals.model import ProposalDraft

Progress = Callable[[int, int], None]


def _channels_first(volume: Volume, model: LoadedModel) -> np.ndarray:
    card = model.card
    if volume.multiscale:
        raise ModelError("Multiscale images are not supported by volume models; open one level.")
    a = np.asarray(volume.base)
    if volume.leading_axes:
        raise ModelError(
            f"Image has {volume.leading_axes} non-spatial leading axis (a series of volumes); "
            "run the model on one volume at a time."
        )
    a = np.moveaxis(a, -1, 0) if volume.rgb else a[None]
    if a.shape[0] != card.in_channels:
        raise ModelError(
            f"Model {card.name} expects {card.in_channels} input channel(s) but the image has "
            f"{a.shape[0]}; choose a model made for this kind of image."
        )
    if a.ndim - 1 != len(card.patch_size):
        raise ModelError(
            f"Model {card.name} works on {len(card.patch_size)}D images but this image is "
            f"{a.ndim - 1}D; choose a model made for this kind of image."
        )
    if not np.all(np.isfinite(a)) if a.dtype.kind == "f" else False:
        raise ModelError(
            "Image holds NaN or infinite values; fix the image before running a model."
        )
    return np.stack([normalize_intensity(ch, card.normalization) for ch in a])


def _voxel_itk(volume: Volume, array: np.ndarray) -> sitk.Image:
    """``array`` (one channel on the volume's grid) as a SimpleITK image on its voxel grid:
    the volume's geometry, or for a sheared one the unsheared :meth:`Geometry.voxel_grid`."""
    img = sitk.GetImageFromArray(np.asarray(array))
    return volume.geometry.voxel_grid().apply_to_itk(img)


def _needs_resampling(volume: Volume, model: LoadedModel) -> bool:
    sp = model.card.input_spacing
    grid = volume.geometry.voxel_grid().spacing_zyx  # a sheared image: voxel-to-voxel distances
    return sp is not None and not np.allclose(grid, sp, rtol=1e-3)


MAX_RESAMPLED_VOXELS = 1 << 30


def _check_spacing(volume: Volume, model: LoadedModel) -> None:
    """Refuse a model spacing that would blow the image up beyond any sensible size."""
    card = model.card
    factor = np.prod(np.divide(volume.geometry.spacing_zyx, card.input_spacing))
    n = float(np.prod(volume.spatial_shape)) * float(factor)
    if n > MAX_RESAMPLED_VOXELS:
        mm = lambda s: "×".join(f"{v:g}" for v in s)  # noqa: E731
        raise ModelError(
            f"Model {card.name} works at {mm(card.input_spacing)} mm but this image has "
            f"{mm(volume.geometry.spacing_zyx)} mm voxels: resampling would make {n:.3g} voxels. "
            "Use a model made for this resolution."
        )


def iter_predict_labels(
    volume: Volume,
    model: LoadedModel,
    batch_size: int = 4,
    overlap: float = 0.25,
    cancel: threading.Event | None = None,
) -> Generator[tuple[int, int], None, tuple[np.ndarray, np.ndarray]]:
    """Yield ``(done, total)``; return (class index per voxel, its probability) on the image grid.

    With an ``input_spacing`` differing from the image's, the image is resampled (linear) to it,
    and each class probability is resampled back (linear) before the argmax: one class at a time,
    so memory stays at a few image-sized arrays.
    """
    card = model.card
    x = _channels_first(volume, model)
    resample = _needs_resampling(volume, model)
    ref = None
    if resample:
        _check_spacing(volume, model)
        ref = _voxel_itk(volume, x[0])
        x = np.stack(
            [
                sitk.GetArrayFromImage(
                    resample_to_spacing(_voxel_itk(volume, ch), card.input_spacing)
                )
                for ch in x
            ]
        )
    pred = yield from iter_sliding_window(
        x,
        model.module,
        card.patch_size,
        overlap,
        batch_size,
        model.device,
        output="probabilities" if resample else "argmax",
        out_dtype=np.float16,
        cancel=cancel,
    )
    if not resample:
        return pred.labels, pred.confidence
    probs = pred.probabilities
    grid = resample_to_spacing(ref, card.input_spacing)  # the model grid's geometry
    best = np.full(volume.spatial_shape, -1.0, dtype=np.float32)
    labels = np.zeros(volume.spatial_shape, dtype=np.uint8 if len(probs) <= 256 else np.uint16)
    for c in range(len(probs)):
        img = sitk.GetImageFromArray(probs[c].astype(np.float32))
        img.CopyInformation(grid)
        back = sitk.GetArrayFromImage(resample_like(img, ref))
        better = back > best
        labels[better] = c
        best[better] = back[better]
    return labels, best.astype(np.float16)


def predict_labels(
    volume: Volume, model: LoadedModel, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Synchronous :func:`iter_predict_labels`: (class index per voxel, its probability)."""
    return _drain(iter_predict_labels(volume, model, **kwargs), kwargs.get("progress"))


def _drain(gen: Generator[Any, None, Any], progress: Progress | None = None) -> Any:
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(*step)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """Flat indices of each 26-connected component of ``mask``, largest first."""
    lab, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    if n == 0:
        return []
    flat = lab.reshape(-1)
    nz = np.flatnonzero(flat)
    comp = flat[nz]
    order = np.argsort(comp, kind="stable")
    counts = np.bincount(comp, minlength=n + 1)[1:]
    parts = np.split(nz[order], np.cumsum(counts)[:-1])
    return sorted(parts, key=lambda p: -p.size)


def drafts_from_labels(
    labels: np.ndarray, confidence: np.ndarray, model: LoadedModel, voxel_volume_mm3: float
) -> list[ProposalDraft]:
    """One segment (segmentation) or box (detection) draft per connected component of each class."""
    card = model.card
    default_mm3 = float(card.params.get("min_component_mm3", 10.0))
    per_class = card.postprocess.get("min_component_mm3", {})
    largest = set(card.postprocess.get("largest_component", []))
    most = card.postprocess.get("max_components", {})
    conf = confidence.reshape(-1)
    drafts = []
    for cls in card.classes:
        if cls.is_background:
            continue
        min_mm3 = float(per_class.get(cls.name, default_mm3))
        parts = _components(labels == cls.index)  # largest first
        keep = 1 if cls.name in largest else most.get(cls.name, len(parts))
        for idx in parts[:keep]:
            if idx.size * voxel_volume_mm3 < min_mm3:
                break  # largest first: the rest are smaller still
            score = float(np.mean(conf[idx], dtype=np.float64))
            if card.task == "segmentation":
                drafts.append(
                    ProposalDraft(
                        "segment", int(cls.label), score, idx, labels.shape, name=cls.name
                    )
                )
            else:
                coords = np.unravel_index(idx, labels.shape)
                box = {
                    "zyx_min": [int(c.min()) for c in coords],
                    "zyx_max": [int(c.max()) for c in coords],
                    "class": cls.name,
                    "label": int(cls.label),
                    "voxels": int(idx.size),
                }
                drafts.append(
                    ProposalDraft("box", int(cls.label), score, payload=box, name=cls.name)
                )
    return drafts


def _grade(volume: Volume, model: LoadedModel) -> list[ProposalDraft]:
    import torch  # lazy: torch takes seconds to import; only running a model needs it

    card = model.card
    x = _channels_first(volume, model)
    size = tuple(reversed(card.patch_size))
    chans = []
    for ch in x:
        img = _voxel_itk(volume, ch)
        spacing = [s * n / m for s, n, m in zip(img.GetSpacing(), img.GetSize(), size, strict=True)]
        out = sitk.Resample(
            img,
            size,
            sitk.Transform(),
            sitk.sitkLinear,
            img.GetOrigin(),
            spacing,
            img.GetDirection(),
            0.0,
            sitk.sitkFloat32,
        )
        chans.append(sitk.GetArrayFromImage(out))
    t = torch.from_numpy(np.stack(chans)[None]).to(model.device)
    with torch.inference_mode():
        p = torch.softmax(model.module(t).float().reshape(1, -1), dim=1)[0].cpu().numpy()
    k = int(p.argmax())
    probs = {str(c.grade): round(float(p[c.index]), 6) for c in card.classes}
    value = str(card.classes[k].grade)
    return [
        ProposalDraft(
            "grade",
            value,
            float(p[k]),
            payload={"scale": card.scale, "value": value, "probabilities": probs},
        )
    ]


def input_domain_problems(volume: Volume, card: Any) -> list[str]:
    """What about ``volume`` lies outside the card's declared input domain (empty: inside).

    Checked before a run so the user is warned, naming each problem; nothing is refused.
    """
    dom = card.input_domain
    out: list[str] = []
    g = volume.geometry
    axes = ("z", "y", "x")[-len(g.spacing_zyx) :]
    for key, values, unit in (
        ("spacing_mm", g.spacing_zyx, "mm"),
        ("field_of_view_mm", np.multiply(volume.spatial_shape, g.spacing_zyx).tolist(), "mm"),
    ):
        for ax, v, rng in zip(axes, values, dom.get(key, []), strict=False):
            if not rng[0] <= v <= rng[1]:
                what = key.removesuffix("_mm").replace("_", " ")
                out.append(f"{what} along {ax} is {v:.4g} {unit}, trained on {rng[0]}–{rng[1]}")
    if "intensity_p50" in dom:
        arr = np.asarray(volume.array)
        sample = arr.reshape(-1)[:: max(1, arr.size // 1_000_000)]
        med = float(np.median(sample))
        lo, hi = dom["intensity_p50"]
        if not lo <= med <= hi:
            out.append(f"median intensity is {med:.4g}, trained on {lo}–{hi}")
    return out


def iter_run_model(
    volume: Volume,
    model: LoadedModel,
    batch_size: int = 4,
    overlap: float = 0.25,
    cancel: threading.Event | None = None,
) -> Generator[tuple[int, int], None, list[ProposalDraft]]:
    """Yield ``(done, total)`` progress; return the drafts (for napari's ``thread_worker``)."""
    if model.card.task == "interactive":
        raise ModelError(
            f"Model {model.card.name} is interactive: it needs prompts (points or a box); use the "
            "Interactive prompts widget, not a whole-image run."
        )
    if not model.is_torch:
        yield 0, 1
        drafts = model.module.detect(volume, cancel=cancel)
        yield 1, 1
        return drafts
    if model.card.task == "grading":
        yield 0, 1
        drafts = _grade(volume, model)
        yield 1, 1
        return drafts
    labels, conf = yield from iter_predict_labels(volume, model, batch_size, overlap, cancel)
    return drafts_from_labels(labels, conf, model, volume.geometry.voxel_volume_mm3)


def run_model(
    volume: Volume,
    model: LoadedModel,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    batch_size: int = 4,
    overlap: float = 0.25,
) -> list[ProposalDraft]:
    """Run ``model`` on ``volume``; one draft per component (segmentation), box or grade."""
    return _drain(iter_run_model(volume, model, batch_size, overlap, cancel), progress)
