"""The attribute form of the lesion-box widget: class, confidence and the schema's attributes."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QPushButton,
    QTableWidget,
    QWidget,
)

from napari_clinlabel.core.annotate.box_view import NOT_SET
from napari_clinlabel.core.annotate.boxes import LesionBox


class BoxForm(QWidget):
    """Combos for a box's class, confidence and attributes, filled from a lesion schema.

    ``changed`` fires when the user changes a value (not when :meth:`show_box` fills the form).
    Every combo starts on "not set" (recorded as null / left out): a box never gets a class,
    confidence or attribute that no human chose for it.
    """

    changed = Signal()

    def __init__(self, schema: Any, rows_before: list[tuple[str, QWidget]] = ()) -> None:
        super().__init__()
        self.cls_combo = QComboBox()
        self.confidence_combo = QComboBox()
        self.attr_combos: dict[str, QComboBox] = {}
        # attribute -> (value, why) the image header suggests; shown as a button, never set
        self._offers: dict[str, tuple[str, str]] = {}
        self.offer_buttons: dict[str, QPushButton] = {}
        self._filling = False
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 0, 0, 0)
        for label, widget in rows_before:
            self._form.addRow(label, widget)
        self._form.addRow("Class", self.cls_combo)
        self._form.addRow("Confidence", self.confidence_combo)
        for combo in (self.cls_combo, self.confidence_combo):
            combo.currentTextChanged.connect(self._on_changed)
        self.set_schema(schema)

    def set_schema(self, schema: Any) -> None:
        """Offer ``schema``'s classes, confidence levels and attributes (all unset; no ``changed``)."""
        self._filling = True
        try:
            for combo in self.attr_combos.values():
                self._form.removeRow(combo)
            for button in self.offer_buttons.values():
                self._form.removeRow(button)
            self.offer_buttons.clear()
            self.attr_combos.clear()  # cleared in place: callers may hold the dict
            self.cls_combo.clear()
            self.cls_combo.addItems([NOT_SET, *schema.lesion_classes])
            self.confidence_combo.clear()
            self.confidence_combo.addItems([NOT_SET] + [str(c) for c in schema.confidence])
            for name, values in schema.lesion_attributes.items():
                combo = QComboBox()
                combo.addItems([NOT_SET, *values])
                combo.currentTextChanged.connect(self._on_changed)
                self.attr_combos[name] = combo
                self._form.addRow(name.capitalize(), combo)
        finally:
            self._filling = False
        self._show_offers()

    def offer_header(self, meta: dict[str, Any]) -> None:
        """Offer the image header's laterality (ImageLaterality / Laterality) for the box.

        Only offered: the combo stays "not set" until the reader presses "Use header: …", which
        sets it like any other choice of theirs (so the record holds a value a human chose).
        """
        self._offers.clear()
        side = {"L": "left", "R": "right"}.get(str(meta.get("laterality") or "").upper())
        if side:
            view = f" {meta['view_position']}" if meta.get("view_position") else ""
            self._offers["laterality"] = (side, f"ImageLaterality {meta['laterality']}{view}")
        self._show_offers()

    def _show_offers(self) -> None:
        for button in self.offer_buttons.values():
            self._form.removeRow(button)
        self.offer_buttons.clear()
        for name, (value, why) in self._offers.items():
            combo = self.attr_combos.get(name)
            if combo is None or combo.findText(value) < 0:
                continue  # the schema in force has no such attribute or value
            button = QPushButton(f"Use header: {value}")
            button.setToolTip(f"From the image header ({why}); not set until you press this")
            button.clicked.connect(lambda _=False, c=combo, v=value: c.setCurrentText(v))
            row, _role = self._form.getWidgetPosition(combo)
            self._form.insertRow(row + 1, "", button)
            self.offer_buttons[name] = button

    def values(self) -> dict[str, Any]:
        """``cls``, ``confidence`` (None: not set) and ``attributes`` (unset ones left out)."""
        cls, conf = _chosen(self.cls_combo), _chosen(self.confidence_combo)
        return {
            "cls": cls,
            "confidence": int(conf) if conf else None,
            "attributes": {k: v for k, c in self.attr_combos.items() if (v := _chosen(c))},
        }

    def clear(self) -> None:
        """Put every combo back on "not set" (no ``changed``): the next box starts unset."""
        self._filling = True
        try:
            for combo in (self.cls_combo, self.confidence_combo, *self.attr_combos.values()):
                combo.setCurrentIndex(0)
        finally:
            self._filling = False

    def changes_from(self, box: LesionBox) -> dict[str, Any]:
        """The fields where the form differs from ``box``."""
        now = {"cls": box.cls, "confidence": box.confidence, "attributes": box.attributes}
        return {k: v for k, v in self.values().items() if v != now[k]}

    def show_box(self, box: LesionBox) -> None:
        """Fill the form from ``box`` without firing ``changed``."""
        self._filling = True
        try:
            self.cls_combo.setCurrentText(box.cls or NOT_SET)
            conf = NOT_SET if box.confidence is None else str(box.confidence)
            self.confidence_combo.setCurrentText(conf)
            for k, combo in self.attr_combos.items():
                combo.setCurrentText(box.attributes.get(k) or NOT_SET)
        finally:
            self._filling = False

    def _on_changed(self, _text: str) -> None:
        if not self._filling:
            self.changed.emit()


def _chosen(combo: QComboBox) -> str | None:
    """The combo's value, or None when it is on "not set"."""
    text = combo.currentText()
    return None if not text or text == NOT_SET else text


def lesion_table(header: list[str]) -> QTableWidget:
    """A read-only, row-selecting table with ``header``."""
    table = QTableWidget(0, len(header))
    table.setHorizontalHeaderLabels(header)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    return table
