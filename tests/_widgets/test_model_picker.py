"""The model picker both Interactive and Pre-label use: built-ins offered by their card's task (as
the shipped card files say), a model file chosen in the dialog, and the device choice."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFormLayout, QWidget

from napari_clinlabel._widgets import _model_picker
from napari_clinlabel._widgets._model_picker import INTERACTIVE_TASKS, RUN_TASKS, ModelPicker

pytestmark = pytest.mark.gui


def _shipped_tasks() -> dict[str, str]:
    """builtin:NAME → the task written in its shipped card file (read here as plain JSON)."""
    folder = resources.files("napari_clinlabel") / "models"
    cards = [f for f in folder.iterdir() if f.name.endswith(".json")]
    return {f"builtin:{f.name[:-5].replace('_', '-')}": json.loads(f.read_text())["task"]
            for f in cards}  # fmt: skip


def _items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_builtins_offered_by_card_task(qtbot):
    tasks = _shipped_tasks()
    parent = QWidget()
    qtbot.addWidget(parent)
    interactive = ModelPicker(parent, INTERACTIVE_TASKS, "t", devices=False)
    run = ModelPicker(parent, RUN_TASKS, "t")
    offered_i, offered_r = _items(interactive.model_combo), _items(run.model_combo)
    assert offered_i == [s for s, t in tasks.items() if t == "interactive"]
    assert not set(offered_i) & set(offered_r)
    assert {s for s, t in tasks.items() if t != "interactive"} <= set(offered_r)
    assert "builtin:baseline" in offered_r  # the classical baseline has no file; it segments
    assert interactive.device == "auto" and interactive.device_combo is None


def test_model_file_and_device(qtbot, tmp_path, monkeypatch):
    parent = QWidget()
    qtbot.addWidget(parent)
    picker = ModelPicker(parent, RUN_TASKS, "TorchScript model")
    form = QFormLayout(parent)
    picker.add_rows(form)
    assert form.rowCount() == 2  # Model, Device
    model = tmp_path / "net.pt"
    asked: list[str] = []

    def fake_dialog(_parent, title, *_args):
        asked.append(title)
        return str(model), ""

    monkeypatch.setattr(_model_picker.QFileDialog, "getOpenFileName", fake_dialog)
    qtbot.mouseClick(picker.file_btn, Qt.MouseButton.LeftButton)
    assert asked == ["TorchScript model"] and picker.spec == str(model)
    picker.set_model(str(model))  # chosen again: listed once
    assert _items(picker.model_combo).count(str(model)) == 1
    assert picker.device == "auto"
    picker.device_combo.setCurrentText("cpu")
    assert picker.device == "cpu"
