"""Pre-label widget driven by clicks: the baseline and a TorchScript model scripted here run off
the GUI thread; their proposals land in the pending layer (never the final labels) as
``proposal.add`` records naming the model; Cancel stops a run and logs nothing."""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest
import torch
from qtpy.QtCore import Qt
from scipy import ndimage
from support.viewer_helpers import add_ct

from napari_clinlabel._widgets._proposal_layers import PENDING
from napari_clinlabel._widgets.prelabel import PrelabelWidget
from napari_clinlabel._widgets.review import ReviewWidget
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.models.baseline import BaselineDetector
from napari_clinlabel.glue.session import get_session

SHAPE = (24, 96, 96)
LEFT = Qt.MouseButton.LeftButton


class _Threshold(torch.nn.Module):
    """Voxel-wise: class 1 where the CT-windowed intensity is above 0.7 (HU > 150)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fg = (x - 0.7) * 20.0
        return torch.cat([-fg, fg], dim=1)


def _scripted_model(folder, patch):
    path = folder / "thresh.pt"
    with warnings.catch_warnings():  # torch ≥ 2.9 flags TorchScript as deprecated; still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_Threshold()).save(str(path))
    card = {
        "name": "thresh-net",
        "version": "2.1",
        "task": "segmentation",
        "in_channels": 1,
        "patch_size": patch,
        "input_spacing": None,
        "normalization": {"kind": "ct_window", "low": -200, "high": 300},
        "classes": [{"index": 0, "name": "background"}, {"index": 1, "name": "bone", "label": 5}],
    }
    (folder / "thresh.pt.json").write_text(json.dumps(card))
    return path


def _open(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    widget = PrelabelWidget(viewer)
    qtbot.addWidget(widget)
    return viewer, image, widget, get_session(viewer).log_path_for(image)


def _run(qtbot, widget, device="cpu"):
    widget._device_combo.setCurrentText(device)
    qtbot.mouseClick(widget._run_btn, LEFT)
    assert widget.worker is not None and not widget._run_btn.isEnabled()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)


def _adds(log_path):
    return [r for r in iter_records(log_path) if r["action"] == "proposal.add"]


def test_baseline_proposals_land_pending(make_napari_viewer, qtbot, tmp_path):
    viewer, image, w, log_path = _open(make_napari_viewer, qtbot, tmp_path)
    review = ReviewWidget(viewer)  # open before the run: it picks the new proposals up
    qtbot.addWidget(review)
    assert review.current is None
    assert w._model_combo.currentText() == "builtin:baseline"
    _run(qtbot, w)
    adds = _adds(log_path)
    ident = BaselineDetector().identity
    assert adds and "added" in w._status.text()
    for r in adds:
        assert r["source"] == {
            "kind": "model",
            "name": "baseline",
            "version": ident.version,
            "sha256": ident.sha256,
        }
        assert r["actor"]["id"] and r["data"]["labels"] == "segmentation"
    assert [p.id for p in w.proposals] == [r["target"]["proposal"] for r in adds]
    # the pending layer shows exactly the logged masks; the final labels hold none of them
    union = np.zeros(int(np.prod(SHAPE)), bool)
    log = get_session(viewer).log_for(image)
    for r in adds:
        union[log.get_arrays(r["data"]["objects"]["mask"])["indices"]] = True
    pending = viewer.layers[PENDING]
    assert np.array_equal(pending.data.reshape(-1) > 0, union)
    assert pending.contour > 0 and not pending.editable
    assert "segmentation" not in viewer.layers or not viewer.layers["segmentation"].data.any()
    assert verify_log(log_path).ok
    qtbot.waitUntil(lambda: review.current is not None)
    assert review._count.text().startswith(f"0 of {len(adds)} decided")
    assert review.current.id == adds[0]["target"]["proposal"]


def test_scripted_model_from_file(make_napari_viewer, qtbot, tmp_path):
    viewer, image, w, log_path = _open(make_napari_viewer, qtbot, tmp_path)
    model = _scripted_model(tmp_path, [8, 32, 32])
    w.set_model(str(model))  # what choosing the file in the dialog does
    _run(qtbot, w)
    adds = _adds(log_path)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert adds and all(r["source"]["sha256"] == digest for r in adds)
    assert {r["source"]["name"] for r in adds} == {"thresh-net"}
    # oracle: scipy's 26-connected components of HU > 150, each of at least 10 mm³ (card default)
    hu = np.asarray(image.data, np.float32)
    lab, n = ndimage.label(hu > 150.0, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(lab.reshape(-1))[1:]
    voxel_mm3 = 0.8 * 0.8 * 2.5
    big = {k + 1 for k in range(n) if sizes[k] * voxel_mm3 >= 10.0}
    assert len(adds) == len(big)
    assert sorted(r["data"]["voxels"] for r in adds) == sorted(int(sizes[k - 1]) for k in big)
    assert all(r["data"]["label"] == 5 for r in adds)
    expected = np.isin(lab, list(big))
    assert np.array_equal(viewer.layers[PENDING].data > 0, expected)


def test_cancel_stops_and_logs_nothing(make_napari_viewer, qtbot, tmp_path):
    viewer, image, w, log_path = _open(make_napari_viewer, qtbot, tmp_path)
    w.set_model(str(_scripted_model(tmp_path, [2, 8, 8])))  # thousands of windows: slow enough
    w._device_combo.setCurrentText("cpu")
    qtbot.mouseClick(w._run_btn, LEFT)
    qtbot.waitUntil(lambda: w._progress.value() > 0, timeout=30_000)
    qtbot.mouseClick(w._cancel_btn, LEFT)
    qtbot.waitUntil(lambda: not w.busy, timeout=30_000)
    assert "Cancelled" in w._status.text()
    assert w._progress.value() < w._progress.maximum() or w._progress.maximum() <= 1
    assert w._run_btn.isEnabled() and not w._cancel_btn.isEnabled()
    assert not _adds(log_path)
    assert PENDING not in viewer.layers


def test_bad_model_file_is_reported(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer, image, w, log_path = _open(make_napari_viewer, qtbot, tmp_path)
    bad = _scripted_model(tmp_path, [8, 32, 32])  # a valid card beside …
    bad.write_bytes(b"not a torchscript archive")  # … a file that is no model
    errors = []
    monkeypatch.setattr(get_session(viewer), "report_error", errors.append)
    before = log_path.read_bytes() if log_path.exists() else b""
    w.set_model(str(bad))
    _run(qtbot, w)
    assert errors and "thresh.pt" in str(errors[0]) and "not a TorchScript" in str(errors[0])
    assert "nothing was logged" in w._status.text()
    assert not _adds(log_path)
    assert log_path.read_bytes().startswith(before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_cuda_requested_without_gpu(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer, image, w, log_path = _open(make_napari_viewer, qtbot, tmp_path)
    errors = []
    monkeypatch.setattr(get_session(viewer), "report_error", errors.append)
    w.set_model(str(_scripted_model(tmp_path, [8, 32, 32])))
    _run(qtbot, w, device="cuda")
    assert errors and "no CUDA device" in str(errors[0]) and "--device cpu" in str(errors[0])
    assert not _adds(log_path)


def test_run_without_image(make_napari_viewer, qtbot, monkeypatch):
    viewer = make_napari_viewer()
    w = PrelabelWidget(viewer)
    qtbot.addWidget(w)
    errors = []
    monkeypatch.setattr(get_session(viewer), "report_error", errors.append)
    qtbot.mouseClick(w._run_btn, LEFT)
    assert errors and "Open an image first" in str(errors[0])
    assert w.worker is None and w._run_btn.isEnabled()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_cuda_device(make_napari_viewer, qtbot, tmp_path):
    viewer, image, w, log_path = _open(make_napari_viewer, qtbot, tmp_path)
    w.set_model(str(_scripted_model(tmp_path, [8, 32, 32])))
    _run(qtbot, w, device="cuda")
    assert _adds(log_path)
