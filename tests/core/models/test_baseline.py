"""The classical baseline finds the phantom's hypodense liver lesions (checked against the truth)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from napari_clinlabel.core.errors import ModelError
from napari_clinlabel.core.image.samples import LESION, ct_phantom_truth
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.models.baseline import BaselineDetector
from napari_clinlabel.core.models.loader import load_model
from napari_clinlabel.core.models.run import run_model


@pytest.fixture(scope="module")
def phantom():
    return ct_phantom_truth(seed=3)


def test_finds_the_large_lesions(phantom):
    vol, truth = phantom
    drafts = run_model(vol, load_model("builtin:baseline"))
    comps, n = ndimage.label(truth == LESION)
    sizes = np.bincount(comps.ravel())[1:]
    found = set()
    for d in drafts:
        assert d.kind == "segment" and d.label == LESION and 0 <= d.score <= 1
        hit = np.bincount(comps.reshape(-1)[d.indices], minlength=n + 1)
        assert hit[1:].sum() / d.indices.size > 0.8  # a candidate lies in a true lesion
        k = int(hit[1:].argmax()) + 1
        found.add(k)
        if sizes[k - 1] == sizes.max():  # the largest lesion is outlined, not just touched
            truth_idx = np.flatnonzero(comps.reshape(-1) == k)
            inter = np.intersect1d(truth_idx, d.indices).size
            assert 2 * inter / (truth_idx.size + d.indices.size) > 0.7
        z, y, x = np.unravel_index(d.indices, truth.shape)
        assert d.payload["box"] == {
            "zyx_min": [int(z.min()), int(y.min()), int(x.min())],
            "zyx_max": [int(z.max()), int(y.max()), int(x.max())],
        }
    big = {k + 1 for k, s in enumerate(sizes) if s * vol.geometry.voxel_volume_mm3 > 150}
    assert big <= found, f"missed lesions {big - found}"
    assert [d.score for d in drafts] == sorted((d.score for d in drafts), reverse=True)


def test_identity_follows_parameters():
    a, b = BaselineDetector(), BaselineDetector({"sigma_mm": 2.0})
    assert a.identity.sha256 != b.identity.sha256 and a.identity.name == "baseline"


def test_non_ct_uses_otsu_and_rgb_is_refused(phantom):
    vol, _ = phantom
    img = np.zeros((20, 40, 40), np.float32)
    img[5:10, 5:15, 5:15] = 100
    img[12:18, 25:35, 25:35] = 80
    grey = Volume(img, vol.geometry, {"modality": "MR"})
    drafts = BaselineDetector().detect(grey)
    assert len(drafts) == 2
    blocks = [np.flatnonzero(img.reshape(-1) == v) for v in (100, 80)]
    for d in drafts:  # each bright block lies inside exactly one candidate (smoothing widens it)
        inside = sorted(np.isin(b, d.indices).mean() for b in blocks)
        assert inside[0] == 0.0 and inside[1] > 0.95
    rgb = Volume(np.zeros((30, 30, 3), np.uint8), vol.geometry, {"rgb": True})
    with pytest.raises(ModelError, match="one grey"):
        BaselineDetector().detect(rgb)
