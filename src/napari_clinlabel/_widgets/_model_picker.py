"""A model chooser shared by the Interactive and Pre-label widgets (no domain logic here).

Built-in models are offered by the task their card names (``interactive`` for prompts;
``segmentation``/``detection``/``grading`` for a pre-label run); *Model file…* adds a local
TorchScript file whose card lies beside it. An optional device chooser (auto, cpu, cuda) and the
card's input-domain warnings for an image complete it. The cards are read without loading a network.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QPushButton, QWidget

from napari_clinlabel.core.models.loader import BUILTIN_MODELS, card_for
from napari_clinlabel.core.models.run import input_domain_problems

DEVICES = ("auto", "cpu", "cuda")
INTERACTIVE_TASKS = ("interactive",)
RUN_TASKS = ("segmentation", "detection", "grading")  # what a pre-label run can make proposals of


def builtin_specs(tasks: Collection[str]) -> tuple[str, ...]:
    """``builtin:NAME`` of the shipped models whose card's task is one of ``tasks``, in order."""
    specs = (f"builtin:{name}" for name in BUILTIN_MODELS)
    return tuple(spec for spec in specs if card_for(spec).task in tasks)


class ModelPicker:
    """Model combo, a *Model file…* button and, with ``devices``, a device combo.

    The widget that owns it lays the controls out with :meth:`add_rows` (its own form rows, so
    they line up with its other rows) and reads :attr:`spec` and :attr:`device` when it runs.
    """

    def __init__(
        self,
        parent: QWidget,
        tasks: Collection[str],
        dialog_title: str,
        devices: bool = True,
    ) -> None:
        self._parent = parent
        self._dialog_title = dialog_title
        self.model_combo = QComboBox()
        self.model_combo.addItems(builtin_specs(tasks))
        self.file_btn = QPushButton("Model file…")
        self.device_combo: QComboBox | None = None
        if devices:
            self.device_combo = QComboBox()
            self.device_combo.addItems(DEVICES)
        self.file_btn.clicked.connect(self._on_file)

    def add_rows(self, form: QFormLayout) -> None:
        """Add the "Model" row (and the "Device" row when there is one) to ``form``."""
        row = QHBoxLayout()
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.file_btn)
        form.addRow("Model", row)
        if self.device_combo is not None:
            form.addRow("Device", self.device_combo)

    @property
    def spec(self) -> str:
        """The chosen ``builtin:NAME`` or model file path."""
        return self.model_combo.currentText()

    @property
    def device(self) -> str:
        """The chosen device (``auto`` when the picker offers no choice)."""
        return self.device_combo.currentText() if self.device_combo is not None else "auto"

    def set_model(self, spec: str) -> None:
        """Choose ``builtin:NAME`` or a local model file (added to the list)."""
        if self.model_combo.findText(spec) < 0:
            self.model_combo.addItem(spec)
        self.model_combo.setCurrentText(spec)

    def domain_warnings(self, volume: Any) -> list[str]:
        """One line per property of ``volume`` outside the chosen card's input domain.

        Raises the ClinlabelError of a missing or bad card.
        """
        spec = self.spec
        problems = input_domain_problems(volume, card_for(spec))
        return [f"Outside {spec}'s input domain: {p}" for p in problems]

    def _on_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self._parent, self._dialog_title, "", "TorchScript (*.pt *.pth *.ts);;All files (*)"
        )
        if path:
            self.set_model(path)
