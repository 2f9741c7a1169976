"""The shipped phantom UNet finds the organs of a phantom it never saw (seed 11), via the loader."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

pytest.importorskip("torch")

from napari_clinlabel.core.image.samples import ct_phantom_truth  # noqa: E402
from napari_clinlabel.core.models.loader import load_model  # noqa: E402
from napari_clinlabel.core.models.run import predict_labels, run_model  # noqa: E402

SHIPPED = resources.files("napari_clinlabel") / "models" / "phantom_unet.pt"


@pytest.fixture(scope="module")
def model():
    if not SHIPPED.is_file():
        pytest.skip("phantom_unet.pt not built (run scripts/train_phantom_unet.py)")
    return load_model("builtin:phantom-unet", device="cpu")


def test_shipped_files_small_and_identity(model):
    data = SHIPPED.read_bytes()
    assert len(data) < 2_000_000
    assert model.identity.sha256 == hashlib.sha256(data).hexdigest()
    assert model.identity.name == "phantom-unet" and model.card.schema == "abdomen-ct"


def test_dice_on_unseen_phantom(model):
    vol, truth = ct_phantom_truth(seed=11)
    pred, conf = predict_labels(vol, model)
    assert pred.shape == truth.shape and conf.dtype == np.float16
    value_of = {c.index: c.label for c in model.card.classes if c.label}
    lab = np.zeros_like(truth)
    for idx, value in value_of.items():
        lab[pred == idx] = value
    for value in (1, 2, 3, 4):  # liver, spleen, right kidney, left kidney
        a, b = lab == value, truth == value
        dice = 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
        assert dice > 0.7, f"label {value}: Dice {dice:.3f}"


def test_run_model_gives_one_segment_per_organ(model):
    vol, truth = ct_phantom_truth(seed=12)
    drafts = run_model(vol, model)
    by_label = {}
    for d in drafts:
        assert d.kind == "segment" and 0 < d.score <= 1
        by_label.setdefault(d.label, []).append(d)
    for value in (1, 2, 3, 4):
        biggest = max(by_label[value], key=lambda d: d.indices.size)
        t = np.flatnonzero(truth.reshape(-1) == value)
        inter = np.intersect1d(t, biggest.indices).size
        assert 2 * inter / (t.size + biggest.indices.size) > 0.7


@pytest.mark.gpu
@pytest.mark.skipif(not pytest.importorskip("torch").cuda.is_available(), reason="needs CUDA")
def test_dice_on_cuda_with_mixed_precision():
    if not SHIPPED.is_file():
        pytest.skip("phantom_unet.pt not built")
    model = load_model("builtin:phantom-unet", device="cuda")
    vol, truth = ct_phantom_truth(seed=11)
    pred, _ = predict_labels(vol, model)
    for value in (1, 2, 3, 4):
        a, b = pred == value, truth == value  # class index == label value for this model
        assert 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()) > 0.7
