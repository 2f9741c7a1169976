"""Parts of the Review widget: its key map, the grade chooser, the order / next-large row and
the decision buttons (no logic: the widget wires them to core's review queue)."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

KEYS = {
    Qt.Key.Key_A: "a",
    Qt.Key.Key_E: "e",
    Qt.Key.Key_R: "r",
    Qt.Key.Key_N: "n",
    Qt.Key.Key_P: "p",
    Qt.Key.Key_Up: "Up",
    Qt.Key.Key_Down: "Down",
}
DECISION_KEYS = ("a", "e", "r", "n", "p")
ORDER_LABELS = {"added": "as added", "size": "largest first", "score": "highest score first"}
LARGE_DEFAULT_VOXELS = 1000


class GradeChooser(QComboBox):
    """The grades of the scale; A/E/R/N/P pressed here still decide (never a keyboard search)."""

    def __init__(self, on_key: Any) -> None:
        super().__init__()
        self._on_key = on_key

    def fill(self, scale: Any, proposed: str) -> None:
        """List ``scale``'s grades (None: none), the proposed one marked and chosen; no signals."""
        self.blockSignals(True)
        self.clear()
        if scale is not None:
            for v in scale.values:
                mark = "  (proposed)" if v.value == proposed else ""
                self.addItem(f"{v.value} — {v.label}{mark}", v.value)
            self.setCurrentIndex(max(self.findData(proposed), 0))
        self.blockSignals(False)

    def step(self, step: int) -> None:
        """Choose the previous (-1) or next (+1) grade, stopping at the ends."""
        if self.count():
            self.setCurrentIndex(min(max(self.currentIndex() + step, 0), self.count() - 1))

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Decision keys go to the review; the rest (Up/Down, Home/End, …) choose a grade."""
        key = KEYS.get(event.key())
        if key in DECISION_KEYS and not event.modifiers():
            self._on_key(key)
            event.accept()
            return
        super().keyPressEvent(event)


class OrderRow(QWidget):
    """Review order (as added, largest first, highest score first) and "Next large ≥ N voxels"."""

    def __init__(self) -> None:
        super().__init__()
        self.order_combo = QComboBox()
        for key, text in ORDER_LABELS.items():
            self.order_combo.addItem(text, key)
        self.large_spin = QSpinBox()
        self.large_spin.setRange(1, 10**9)
        self.large_spin.setValue(LARGE_DEFAULT_VOXELS)
        self.large_spin.setSuffix(" voxels")
        self.large_btn = QPushButton("Next large ≥")
        self.large_btn.setToolTip("Show the next undecided proposal of at least this many voxels.")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Order"))
        row.addWidget(self.order_combo, 1)
        row.addWidget(self.large_btn)
        row.addWidget(self.large_spin)

    @property
    def order(self) -> str:
        """The order chosen (``added``, ``size`` or ``score``)."""
        return str(self.order_combo.currentData())


class DecisionButtons(QWidget):
    """Accept / Edit / Reject, Previous / Next, and Confirm / Discard while an edit is open."""

    def __init__(self) -> None:
        super().__init__()
        self.accept = QPushButton("Accept (A)")
        self.edit = QPushButton("Edit (E)")
        self.reject = QPushButton("Reject (R)")
        self.previous = QPushButton("Previous (P)")
        self.next = QPushButton("Next (N)")
        self.confirm = QPushButton("Confirm edit (E)")
        self.discard = QPushButton("Discard edit")
        self.edit.setToolTip(
            "Segment: edit it in the 'proposal edit' layer, then E again. Box: drag or resize the "
            "yellow box, then E. Grade: choose another grade (Up/Down), then E. Unchanged: use A."
        )
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        for widget, r, c, span in ((self.accept, 0, 0, 1), (self.edit, 0, 1, 1),
                                   (self.reject, 0, 2, 1), (self.previous, 1, 0, 1),
                                   (self.next, 1, 2, 1), (self.confirm, 2, 0, 2),
                                   (self.discard, 2, 2, 1)):  # fmt: skip
            grid.addWidget(widget, r, c, 1, span)

    def deciding(self) -> tuple[QPushButton, ...]:
        """The buttons that act on the proposal shown."""
        return (self.accept, self.edit, self.reject, self.previous, self.next)
