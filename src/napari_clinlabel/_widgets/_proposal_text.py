"""What the Review widget says about a proposal: model, weights, label, score, size in mm / mL
(in pixels / voxels when the image states no pixel size: PNG, JPEG, a TIFF without resolution
tags), and which grades a grade proposal may be changed to (the scale's values, as the Grading
widget lists them)."""

from __future__ import annotations

from typing import Any

from napari_clinlabel.core.annotate.grading import scale_for_proposal
from napari_clinlabel.core.image.volume import spacing_known
from napari_clinlabel.core.proposals.lifecycle import Proposal


def describe(p: Proposal, geometry: Any) -> str:
    """Several lines about ``p``: the model that proposed it, its label and score, its size."""
    m = p.model
    lines = [
        f"Model: {m.get('name')} {m.get('version')}",
        f"Weights: sha256 {str(m.get('sha256'))[:12]}…",
        f"Label: {p.name or p.label} ({p.label})    Score: {p.score:.3f}",
    ]
    if p.kind == "segment":
        vox = int(p.payload.get("voxels", 0))
        if spacing_known(geometry):
            ml = vox * geometry.voxel_volume_mm3 / 1000.0
            lines.append(f"Size: {vox} voxels, {ml:.2f} mL")
        else:
            lines.append(f"Size: {vox} voxels (pixel size unknown: no mL)")
        lines.append(f"Extent: {extent_text(p.payload.get('bbox'), geometry)}")
    elif p.kind == "box":
        bbox = [p.payload.get("zyx_min"), p.payload.get("zyx_max")]
        lines.append(f"Box: {extent_text(bbox, geometry)}, class {p.payload.get('class', '')}")
        lines.append("Drag or resize the yellow box, then E; A accepts it as proposed.")
    else:
        probs = p.payload.get("probabilities", {})
        lines.append(
            f"Grade: {p.payload.get('value')} on {p.payload.get('scale')}; "
            + ", ".join(f"{k}: {v:.2f}" for k, v in probs.items())
        )
    return "\n".join(lines)


def extent_text(bbox: Any, geometry: Any) -> str:
    """``z × y × x mm`` of an inclusive voxel bounding box ``[[min…], [max…]]``; in ``px`` when
    the image states no pixel size (axes named ``y × x`` for a 2D box)."""
    if not bbox or not bbox[0]:
        return "no extent"
    known = spacing_known(geometry)
    spacing = geometry.spacing_zyx if known else (1.0,) * len(bbox[0])
    size = [(hi - lo + 1) * s for lo, hi, s in zip(bbox[0], bbox[1], spacing, strict=True)]
    if known:
        return " × ".join(f"{v:.1f}" for v in size) + " mm (z × y × x)"
    axes = " × ".join("zyx"[-len(size) :])
    return " × ".join(f"{v:g}" for v in size) + f" px ({axes})"


def grade_scale(p: Proposal, schema_ref: dict[str, Any] | None = None) -> Any:
    """The schema scale a grade proposal names (None when none matches); see
    :func:`..core.grading.scale_for_proposal`."""
    return scale_for_proposal({**p.payload, "value": p.payload.get("value", p.label)}, schema_ref)


def grade_hint(scale: Any, p: Proposal) -> str:
    """The line under a grade proposal: how to choose another grade."""
    if scale is None:
        return (
            f"Scale {p.payload.get('scale')!r} is not in any known schema: accept (A) or reject "
            "(R) this grade."
        )
    return f"{scale.name}: Up/Down (or the chooser) pick another grade, then E; A keeps it."
