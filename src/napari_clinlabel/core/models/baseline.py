"""The built-in classical candidate detector (``builtin:baseline``): no weights, no download.

CT (modality CT): (modality CT, or no modality and air near -1000 HU) Gaussian
smoothing (σ in mm), an organ-parenchyma mask (smoothed HU within
``organ_hu``, holes filled slice by slice), then hypodense candidates inside it (smoothed HU within
``lesion_hu``), 26-connected components, each kept when at least ``min_volume_mm3``. Other images:
Otsu threshold of the smoothed image and its bright components. Each component becomes one segment
draft (mask + box + score); the score grows with the contrast to the surrounding parenchyma.

Identity: name ``baseline``, :data:`VERSION`, and the sha256 of the canonical JSON of the
parameters followed by this module's source bytes, so any change of behaviour changes the identity.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu

from napari_clinlabel.core.errors import ModelError
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.models.card import ModelCard, ModelIdentity, card_from_dict
from napari_clinlabel.core.models.inference import InferenceCancelled
from napari_clinlabel.core.proposals.model import ProposalDraft

VERSION = "1.0.0"
PARAMS: dict[str, Any] = {
    "sigma_mm": 1.5,
    "organ_hu": [42.0, 110.0],
    "lesion_hu": [-10.0, 38.0],
    "min_volume_mm3": 40.0,
    "contrast_ref_hu": 40.0,
    "max_candidates": 50,
    "label": 6,
    "label_name": "lesion",
}


class BaselineDetector:
    """Smoothing, threshold, connected components → one scored segment draft per candidate."""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = {**PARAMS, **(params or {})}
        canon = json.dumps(self.params, sort_keys=True, separators=(",", ":")).encode("utf-8")
        digest = hashlib.sha256(canon + Path(__file__).read_bytes()).hexdigest()
        self.identity = ModelIdentity("baseline", VERSION, digest)
        self.card: ModelCard = card_from_dict(
            {
                "name": "baseline",
                "version": VERSION,
                "task": "segmentation",
                "schema": "abdomen-ct",
                "description": "Classical hypodense-candidate detector (scikit-image).",
                "in_channels": 1,
                "patch_size": [1, 1, 1],
                "input_spacing": None,
                "normalization": {"kind": "none"},
                "classes": [
                    {"index": 0, "name": "background"},
                    {
                        "index": 1,
                        "label": int(self.params["label"]),
                        "name": str(self.params["label_name"]),
                    },
                ],
                "params": self.params,
            }
        )

    def detect(self, volume: Volume, cancel: threading.Event | None = None) -> list[ProposalDraft]:
        """Candidate drafts for ``volume`` (3D or 2D grey image), highest score first."""
        if volume.multiscale or volume.rgb or volume.leading_axes:
            raise ModelError(
                "builtin:baseline works on one grey 2D/3D image; open a single grey volume."
            )
        p = self.params
        a = np.asarray(volume.base, dtype=np.float32)
        if not np.all(np.isfinite(a)):
            raise ModelError("Image holds NaN or infinite values; fix the image first.")
        sigma = [p["sigma_mm"] / s for s in volume.geometry.spacing_zyx]
        smooth = gaussian(a, sigma=sigma, preserve_range=True).astype(np.float32)
        if cancel is not None and cancel.is_set():
            raise InferenceCancelled("Inference cancelled; no proposals were made.")
        modality = str(volume.meta.get("modality") or "").upper()
        # NIfTI/NRRD carry no modality: HU-like values (air near -1000) mean CT
        ct = modality == "CT" or (not modality and float(a.min()) <= -900.0)
        if ct:
            organ = (smooth >= p["organ_hu"][0]) & (smooth <= p["organ_hu"][1])
            organ = ndimage.binary_opening(organ, iterations=1)
            filled = (
                np.stack([ndimage.binary_fill_holes(s) for s in organ])
                if a.ndim == 3
                else ndimage.binary_fill_holes(organ)
            )
            cand = filled & ~organ & (smooth >= p["lesion_hu"][0]) & (smooth <= p["lesion_hu"][1])
        else:
            organ = np.ones(a.shape, dtype=bool)
            cand = smooth > threshold_otsu(smooth)
        lab, n = ndimage.label(cand, structure=np.ones((3,) * a.ndim, dtype=bool))
        if n == 0:
            return []
        vox_mm3 = volume.geometry.voxel_volume_mm3
        counts = np.bincount(lab.reshape(-1), minlength=n + 1)
        means = ndimage.mean(smooth, lab, index=np.arange(1, n + 1))
        slices = ndimage.find_objects(lab)
        drafts = []
        for k in range(1, n + 1):
            if counts[k] * vox_mm3 < p["min_volume_mm3"]:
                continue
            sl = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in slices[k - 1])
            local = lab[sl] == k
            ring = ndimage.binary_dilation(local, iterations=2) & ~local & organ[sl]
            around = float(smooth[sl][ring].mean()) if ring.any() else float(smooth.mean())
            contrast = abs(around - float(means[k - 1]))
            score = float(np.clip(contrast / p["contrast_ref_hu"], 0.0, 1.0))
            loc = np.nonzero(local)
            full = tuple(c + s.start for c, s in zip(loc, sl, strict=True))
            idx = np.ravel_multi_index(full, a.shape).astype(np.int64)
            idx.sort()
            box = {"zyx_min": [int(c.min()) for c in full], "zyx_max": [int(c.max()) for c in full]}
            drafts.append(
                ProposalDraft(
                    "segment",
                    int(p["label"]),
                    round(score, 4),
                    idx,
                    a.shape,
                    payload={"box": box},
                    name=str(p["label_name"]),
                )
            )
        drafts.sort(key=lambda d: -d.score)
        return drafts[: int(p["max_candidates"])]
