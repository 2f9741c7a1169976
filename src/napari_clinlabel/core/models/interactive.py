"""Interactive prompts: positive/negative points and an optional box → one object's mask → a proposal.

A model card of task ``interactive`` describes a TorchScript network called as
``net(image, points, labels, box)`` (see :class:`~napari_clinlabel.core.models.unet.PromptUNet`
and README): ``image`` is a crop of ``patch_size`` voxels on the card's ``input_spacing`` grid
(normalised as the card says), centred on the box centre, else on the mean of the positive points;
``points`` are (N, ndim) voxel coordinates on that crop, ``labels`` 1 (positive) or 0 (negative);
``box`` is (2, ndim) min/max corner on the crop, or all -1. It returns (1, 1, …) logits (sigmoid)
or (1, 2, …) scores (softmax, channel 1 is the object).

The crop and its way back to the image are per-axis affine maps in voxel index space (the crop
keeps the image's direction), so only the region under the crop is ever read or normalised: a
prompt on a 512³ CT costs what a prompt on a 128³ crop does. The mask kept is the components
holding a positive point (the largest when none does). A 2D model on a 3D image works on the
slice of the prompts. The result is one segment :class:`ProposalDraft` carrying the prompts, and
:func:`propose` logs it as one ``proposal.add`` record (source = the model) — decided later like
any proposal (accept, edit, reject), one record per decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from napari_clinlabel.core.errors import ClinlabelError, ModelError
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.models.card import ModelCard
from napari_clinlabel.core.models.inference import normalize_intensity
from napari_clinlabel.core.models.loader import LoadedModel
from napari_clinlabel.core.proposals.lifecycle import Proposal, add_proposals
from napari_clinlabel.core.proposals.model import ProposalDraft

TASK = "interactive"
MAX_POINTS = 64


@dataclass(frozen=True)
class Prompt:
    """What the human pointed at, in image voxel coordinates (z, y, x), float.

    ``positive`` (N, ndim) inside the object, ``negative`` (M, ndim) outside it, ``box``
    (2, ndim) its min and max corner (inclusive) or None.
    """

    positive: np.ndarray
    negative: np.ndarray
    box: np.ndarray | None = None

    @classmethod
    def make(
        cls, positive: Any = (), negative: Any = (), box: Any = None, shape: tuple[int, ...] = ()
    ) -> Prompt:
        """Validate prompts against the image ``shape``; a clear error for each kind of bad one."""
        ndim = len(shape)
        pos = _points(positive, ndim, "positive")
        neg = _points(negative, ndim, "negative")
        b = None
        if box is not None:
            b = np.asarray(box, dtype=np.float64)
            if b.shape != (2, ndim) or not np.all(np.isfinite(b)):
                raise ClinlabelError(
                    f"A box prompt is two corners of {ndim} coordinates; draw one rectangle."
                )
            b = np.sort(b, axis=0)
        if pos.shape[0] == 0 and b is None:
            raise ClinlabelError("Give at least one positive point or a box on the object.")
        if pos.shape[0] + neg.shape[0] > MAX_POINTS:
            raise ClinlabelError(f"At most {MAX_POINTS} prompt points; remove some.")
        for name, arr in (("positive point", pos), ("negative point", neg)):
            bad = (arr < -0.5) | (arr > np.asarray(shape) - 0.5)
            if arr.size and bad.any():
                raise ClinlabelError(f"A {name} lies outside the image; place it on the image.")
        if b is not None and (np.any(b[1] < -0.5) or np.any(b[0] > np.asarray(shape) - 0.5)):
            raise ClinlabelError("The box lies outside the image; draw it on the image.")
        return cls(pos, neg, b)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, logged with the proposal (the human chose these)."""
        r = lambda a: [[round(float(v), 2) for v in p] for p in a]  # noqa: E731
        d: dict[str, Any] = {"positive": r(self.positive), "negative": r(self.negative)}
        if self.box is not None:
            d["box"] = r(self.box)
        return d


def _points(value: Any, ndim: int, what: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, ndim))
    if a.ndim != 2 or a.shape[1] != ndim or not np.all(np.isfinite(a)):
        raise ClinlabelError(f"The {what} points must be {ndim} coordinates each (z, y, x).")
    return a


@dataclass(frozen=True)
class CropGrid:
    """The model crop: model index i' ↔ image index ``centre + ratio * (i' - mid)`` per axis."""

    centre: np.ndarray
    ratio: np.ndarray  # model spacing / image spacing
    patch: tuple[int, ...]

    @property
    def mid(self) -> np.ndarray:
        return (np.asarray(self.patch, dtype=np.float64) - 1) / 2

    def to_model(self, idx: np.ndarray) -> np.ndarray:
        return (np.asarray(idx, dtype=np.float64) - self.centre) / self.ratio + self.mid

    def image_bounds(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive image index range under the crop, clipped to the image."""
        half = self.ratio * self.mid
        lo = np.maximum(np.floor(self.centre - half), 0).astype(int)
        hi = np.minimum(np.ceil(self.centre + half), np.asarray(shape) - 1).astype(int)
        return lo, hi


@dataclass
class InteractiveResult:
    """The object found: flat C-order ``indices`` on ``shape`` and the mean probability inside."""

    indices: np.ndarray
    shape: tuple[int, ...]
    score: float


def check_interactive(model: LoadedModel) -> None:
    """Refuse a model that is not an interactive one, naming what to use instead."""
    if model.card.task != TASK:
        raise ModelError(
            f"Model {model.card.name} is a {model.card.task} model; interactive prompts need a "
            "model card of task 'interactive' (e.g. builtin:phantom-interactive)."
        )
    if not model.is_torch:
        raise ModelError(f"Model {model.card.name} is not a network; it cannot take prompts.")


def crop_grid(prompt: Prompt, spacing: np.ndarray, card: ModelCard) -> CropGrid:
    """The model crop for ``prompt`` on an image of ``spacing`` (z, y, x) mm."""
    centre = prompt.box.mean(axis=0) if prompt.box is not None else prompt.positive.mean(axis=0)
    ratio = (
        np.asarray(card.input_spacing, dtype=np.float64) / spacing
        if card.input_spacing is not None
        else np.ones(len(card.patch_size))
    )
    return CropGrid(centre, ratio, tuple(card.patch_size))


def crop_to_model(sub: np.ndarray, lo: np.ndarray, grid: CropGrid) -> np.ndarray:
    """Image region ``sub`` (starting at ``lo``) resampled (linear) onto the model crop."""
    offset = grid.centre - grid.ratio * grid.mid - lo
    return ndimage.affine_transform(
        sub, grid.ratio, offset, output_shape=grid.patch, order=1, mode="constant", cval=0.0
    )


def _uncrop(prob: np.ndarray, lo: np.ndarray, hi: np.ndarray, grid: CropGrid) -> np.ndarray:
    """Model-crop probabilities resampled (linear) onto the image region [lo, hi]."""
    offset = grid.mid + (lo - grid.centre) / grid.ratio
    shape = tuple(int(v) for v in hi - lo + 1)
    return ndimage.affine_transform(
        prob, 1.0 / grid.ratio, offset, output_shape=shape, order=1, mode="constant", cval=0.0
    )


def _image_channels(volume: Volume, model: LoadedModel) -> tuple[Any, np.ndarray]:
    """The image as (C, *spatial) (lazily indexable) and its spacing (z, y, x)."""
    if volume.multiscale or volume.leading_axes:
        raise ModelError("Prompts work on one plain volume; open one level / one volume.")
    a = volume.base
    if volume.rgb:
        a = np.moveaxis(np.asarray(a), -1, 0)
    else:
        a = a[None]
    if a.shape[0] != model.card.in_channels:
        raise ModelError(
            f"Model {model.card.name} expects {model.card.in_channels} channel(s) but the image "
            f"has {a.shape[0]}; choose a model made for this kind of image."
        )
    return a, np.asarray(volume.geometry.spacing_zyx, dtype=np.float64)


def predict_mask(volume: Volume, model: LoadedModel, prompt: Prompt) -> InteractiveResult:
    """Run the interactive ``model`` on the crop the ``prompt`` defines; the object's voxels."""
    import torch  # lazy: torch takes seconds to import; only running a model needs it

    check_interactive(model)
    card = model.card
    arr, spacing = _image_channels(volume, model)
    shape = tuple(int(s) for s in arr.shape[1:])
    mdim = len(card.patch_size)
    plane: int | None = None
    if mdim == len(shape) - 1:  # a 2D model on a 3D image: the slice of the prompts
        zs = np.rint(
            np.concatenate([prompt.positive[:, 0], prompt.negative[:, 0],
                            prompt.box[:, 0] if prompt.box is not None else []])
        )  # fmt: skip
        if np.unique(zs).size != 1:
            raise ClinlabelError(
                f"Model {card.name} is 2D: put every prompt on one slice (they span {np.unique(zs).size})."
            )
        plane = int(zs[0])
        arr, spacing, shape = arr[:, plane], spacing[1:], shape[1:]
        prompt = Prompt(prompt.positive[:, 1:], prompt.negative[:, 1:],
                        None if prompt.box is None else prompt.box[:, 1:])  # fmt: skip
    elif mdim != len(shape):
        raise ModelError(
            f"Model {card.name} is {mdim}D but the image is {len(shape)}D; choose a model for it."
        )
    grid = crop_grid(prompt, spacing, card)
    lo, hi = grid.image_bounds(shape)
    region = (slice(None), *(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True)))
    sub = np.asarray(arr[region])
    if sub.dtype.kind == "f" and not np.all(np.isfinite(sub)):
        raise ModelError("Image holds NaN or infinite values; fix the image before prompting.")
    x = np.stack(
        [crop_to_model(normalize_intensity(ch, card.normalization), lo, grid) for ch in sub]
    )
    pts = np.concatenate([prompt.positive, prompt.negative])
    labels = np.r_[np.ones(len(prompt.positive)), np.zeros(len(prompt.negative))]
    box = grid.to_model(prompt.box) if prompt.box is not None else -np.ones((2, mdim))
    dev = model.device
    with torch.inference_mode():
        y = model.module(
            torch.from_numpy(x[None].astype(np.float32)).to(dev),
            torch.from_numpy(grid.to_model(pts).reshape(-1, mdim).astype(np.float32)).to(dev),
            torch.from_numpy(labels.astype(np.int64)).to(dev),
            torch.from_numpy(box.astype(np.float32)).to(dev),
        )
        y = y.float()
        prob = torch.sigmoid(y[0, 0]) if y.shape[1] == 1 else torch.softmax(y, 1)[0, 1]
        prob = prob.cpu().numpy()
    back = _uncrop(prob, lo, hi, grid)
    mask = _keep_prompted(back > 0.5, prompt, lo)
    if not mask.any():
        raise ClinlabelError(
            "The model found no object at these prompts; move the positive points inside it or "
            "draw a box around it."
        )
    score = float(back[mask].mean())
    full = np.zeros(shape, dtype=bool)
    full[region[1:]] = mask
    if plane is not None:
        vol_shape = tuple(int(s) for s in volume.spatial_shape)
        idx = np.flatnonzero(full.reshape(-1)) + plane * int(np.prod(shape))
        return InteractiveResult(idx.astype(np.int64), vol_shape, score)
    return InteractiveResult(np.flatnonzero(full.reshape(-1)).astype(np.int64), shape, score)


def _keep_prompted(mask: np.ndarray, prompt: Prompt, lo: np.ndarray) -> np.ndarray:
    """The components holding a positive point (or, with none holding one, the largest)."""
    lab, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))
    if n <= 1:
        return mask
    keep = set()
    for p in np.rint(prompt.positive - lo).astype(int):
        if np.all(p >= 0) and np.all(p < mask.shape) and lab[tuple(p)]:
            keep.add(int(lab[tuple(p)]))
    if not keep:
        keep = {int(np.argmax(np.bincount(lab.reshape(-1))[1:])) + 1}
    return np.isin(lab, sorted(keep))


def object_class(model: LoadedModel) -> tuple[int, str]:
    """The card's object label value and name (used when the human names no label)."""
    fg = [c for c in model.card.classes if not c.is_background]
    return int(fg[0].label), fg[0].name  # type: ignore[arg-type]


def interactive_draft(
    volume: Volume,
    model: LoadedModel,
    prompt: Prompt,
    label: int | None = None,
    name: str | None = None,
) -> ProposalDraft:
    """One segment draft for the prompted object, carrying the prompts (``payload["prompt"]``)."""
    res = predict_mask(volume, model, prompt)
    if label is None:
        label, name = object_class(model)
    if not isinstance(label, int) or isinstance(label, bool) or not 0 < label < 65536:
        raise ClinlabelError(f"Label {label!r} is not a label value 1…65535; pick a label.")
    return ProposalDraft(
        "segment", int(label), res.score, res.indices, res.shape,
        payload={"prompt": prompt.to_dict()}, name=name,
    )  # fmt: skip


def propose(
    log: AuditLog,
    volume: Volume,
    model: LoadedModel,
    prompt: Prompt,
    label: int | None = None,
    name: str | None = None,
    labels_name: str | None = None,
) -> Proposal:
    """Prompt → mask → ONE logged proposal (``proposal.add``, source = the model)."""
    draft = interactive_draft(volume, model, prompt, label, name)
    return add_proposals(log, [draft], model, labels_name=labels_name)[0]
