"""STAPLE consensus of several readers' masks (SimpleITK), a reference to adjudicate FROM.

STAPLE (Warfield et al., 2004) estimates, by expectation-maximisation, each reader's sensitivity
and specificity and the probability that each voxel is truly foreground. Its output is evidence
for the adjudicator — where readers disagree and who tends to over- or under-segment — and is
never written as a final label: a senior reviewer decides, and signs, every adjudicated label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.errors import InputError

__all__ = ["StapleResult", "MultiLabelStapleResult", "staple", "multilabel_staple"]


class StapleResult(NamedTuple):
    """Per-voxel probability of foreground and each reader's estimated performance."""

    probability: np.ndarray  # float, same shape as the masks, 0..1
    sensitivities: list[float]
    specificities: list[float]


class MultiLabelStapleResult(NamedTuple):
    """Consensus label map and each reader's confusion matrix (rows: reader's label, cols: truth)."""

    labels: np.ndarray
    confusion_matrices: list[np.ndarray]


def _check(arrays: Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    arrs = [np.asarray(m) for m in arrays]
    if len(arrs) < 2:
        raise InputError(f"STAPLE needs the {what} of at least two readers, got {len(arrs)}")
    shapes = {m.shape for m in arrs}
    if len(shapes) != 1:
        raise InputError(
            f"the readers' {what} have different shapes {sorted(shapes)}; they must share one grid"
        )
    return arrs


def staple(
    masks: Sequence[np.ndarray],
    foreground: int = 1,
    max_iterations: int = 100,
    confidence_weight: float = 1.0,
) -> StapleResult:
    """Binary STAPLE over readers' masks (voxels equal to ``foreground`` are foreground).

    Returns ``(probability, sensitivities, specificities)``, one sensitivity/specificity per
    reader in input order. The probability map is a reference, not a label.
    """
    arrs = _check(masks, "masks")
    images = [sitk.GetImageFromArray((m == foreground).astype(np.uint8)) for m in arrs]
    f = sitk.STAPLEImageFilter()
    f.SetForegroundValue(1.0)
    f.SetMaximumIterations(int(max_iterations))
    f.SetConfidenceWeight(float(confidence_weight))
    prob = f.Execute(images)
    return StapleResult(
        sitk.GetArrayFromImage(prob).astype(np.float64),
        [float(s) for s in f.GetSensitivity()],
        [float(s) for s in f.GetSpecificity()],
    )


def multilabel_staple(
    label_maps: Sequence[np.ndarray], undecided_label: int | None = None
) -> MultiLabelStapleResult:
    """Multi-label STAPLE (Rohlfing 2004) over readers' label maps.

    Voxels whose posterior ties are set to ``undecided_label`` (default: one above the largest
    label present), so an adjudicator sees them as their own class.
    """
    arrs = _check(label_maps, "label maps")
    for m in arrs:
        if not np.issubdtype(m.dtype, np.integer) or (m.size and m.min() < 0):
            raise InputError("label maps for STAPLE must hold non-negative integers")
    top = max(int(m.max()) for m in arrs)
    if top > 65534:
        raise InputError(f"label value {top} is too large for multi-label STAPLE (at most 65534)")
    images = [sitk.GetImageFromArray(m.astype(np.uint16)) for m in arrs]
    f = sitk.MultiLabelSTAPLEImageFilter()
    f.SetLabelForUndecidedPixels(int(top + 1 if undecided_label is None else undecided_label))
    out = f.Execute(images)
    k = top + 1
    cms = [
        np.asarray(f.GetConfusionMatrix(i), dtype=float).reshape(k + 1, k)[:k]
        for i in range(len(arrs))
    ]
    return MultiLabelStapleResult(sitk.GetArrayFromImage(out), cms)
