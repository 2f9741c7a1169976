"""Pre-label warns before a run on an image outside the model card's input domain (one line per
property: status and a napari warning), runs on, and the card's post-processing bounds what lands."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct

from napari_clinlabel._widgets import prelabel as prelabel_mod
from napari_clinlabel._widgets.prelabel import PrelabelWidget
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui


def test_warns_before_run_and_bounds_proposals(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=(24, 96, 96))  # 60 × 77 × 77 mm: fields too small
    w = PrelabelWidget(viewer)
    qtbot.addWidget(w)
    shown: list[str] = []
    monkeypatch.setattr(prelabel_mod, "show_warning", shown.append)
    w.set_model("builtin:phantom-unet")
    w._device_combo.setCurrentText("cpu")
    qtbot.mouseClick(w._run_btn, Qt.MouseButton.LeftButton)
    # synchronously, before the worker has produced anything
    assert len(shown) == 3 and shown == w.warnings
    assert any("field of view along z is 60 mm, trained on 80–180" in s for s in shown)
    assert any("field of view along x is 76.8 mm" in s for s in shown)
    assert "⚠ Outside builtin:phantom-unet's input domain" in w._status.text()
    qtbot.waitUntil(lambda: not w.busy, timeout=120_000)
    adds = [r for r in iter_records(get_session(viewer).log_path_for(image))
            if r["action"] == "proposal.add"]  # fmt: skip
    names = [r["data"]["name"] for r in adds]
    assert all(names.count(n) <= 1 for n in ("liver", "spleen", "aorta"))
    assert names.count("lesion") <= 10


def test_in_domain_image_no_warning(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer = make_napari_viewer()
    add_ct(viewer, tmp_path, shape=(40, 144, 144))  # 100 × 115 × 115 mm, like training
    w = PrelabelWidget(viewer)
    qtbot.addWidget(w)
    shown: list[str] = []
    monkeypatch.setattr(prelabel_mod, "show_warning", shown.append)
    w.set_model("builtin:phantom-unet")
    w._device_combo.setCurrentText("cpu")
    qtbot.mouseClick(w._run_btn, Qt.MouseButton.LeftButton)
    assert shown == [] and w.warnings == []
    qtbot.waitUntil(lambda: not w.busy, timeout=120_000)
