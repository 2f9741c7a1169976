"""The schema's labels as a table: colour swatch, value and name, code, voxel count and mL.

On an image whose pixel size is unknown (PNG, JPEG, a TIFF without resolution tags) the mL
column hides and counts are the only size (pixels on a 2D image): pixels are never called mL.
On a 2D image with a known pixel size (a fundus photo, a mammogram) that column is the area in
mm², not a volume.

Picking a row picks the label to paint (:attr:`LabelTable.value_selected`); values found on the
layer that the schema does not define get their own grey row, so no voxel goes uncounted.

The table is as tall as its rows (up to :data:`MAX_ROWS_SHOWN`, then it scrolls): a dock never
squeezes the label list to one visible row, and it never stretches into empty rows.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QEvent, Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from napari_clinlabel.core.schema import LabelDef

_VALUE = Qt.ItemDataRole.UserRole
MAX_ROWS_SHOWN = 12  # a longer label list scrolls; every built-in schema has fewer labels
_REFIT = (QEvent.Type.Polish, QEvent.Type.StyleChange, QEvent.Type.FontChange, QEvent.Type.Show)
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


def swatch(color: str) -> QIcon:
    """A small square icon of ``color``."""
    pix = QPixmap(14, 14)
    pix.fill(QColor(color))
    return QIcon(pix)


class LabelTable(QTableWidget):
    """Rows of label value, name, code, voxels and mL; one row selected at a time."""

    value_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self._labels: list[LabelDef] = []
        self._flat = False  # True on a 2D image: the size column is an area (mm²)
        self.setHorizontalHeaderLabels(["Label", "Code", "Voxels", "mL"])
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.setToolTip("Pick the label to paint; volumes follow the layer live")
        # names elide (full text in the tooltip) rather than a scroll bar hiding the last row
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrap(False)
        self._fit_rows()
        self.currentCellChanged.connect(self._on_current)

    def set_labels(self, labels: list[LabelDef], extra: list[int] | tuple[int, ...] = ()) -> None:
        """Show ``labels`` (a schema's) and then ``extra`` values; keeps the selected value."""
        current = self.current_value()
        self._labels = list(labels)
        rows = [
            (lab.value, lab.name, lab.color, f"{lab.type.scheme} {lab.type.value}",
             f"{lab.type.meaning}; category {lab.category.meaning} "
             f"({lab.category.scheme} {lab.category.value})")
            for lab in labels
        ]  # fmt: skip
        rows += [(v, "(not in schema)", "#808080", "", "not defined by the schema") for v in extra]
        self.blockSignals(True)
        self.setRowCount(len(rows))
        for r, (value, name, color, code, tip) in enumerate(rows):
            first = QTableWidgetItem(swatch(color), f"{value} {name}")
            first.setData(_VALUE, value)
            cells = [first, QTableWidgetItem(code), QTableWidgetItem("0"), QTableWidgetItem("0.00")]
            for c, cell in enumerate(cells):
                cell.setToolTip(tip)
                if c >= 2:
                    cell.setTextAlignment(_RIGHT)
                self.setItem(r, c, cell)
        self.blockSignals(False)
        self._fit_rows()
        if current is not None and current in self.values():
            self.select_value(current)
        elif rows:
            self.selectRow(0)

    def _fit_rows(self) -> None:
        """Height for every row (at least one, at most ``MAX_ROWS_SHOWN``) plus the header."""
        heights = [self.rowHeight(r) for r in range(self.rowCount())]
        row = max(heights, default=self.verticalHeader().defaultSectionSize())
        shown = sum(heights[:MAX_ROWS_SHOWN]) if heights else row
        frame = self.horizontalHeader().sizeHint().height() + 2 * self.frameWidth()
        self.setMinimumHeight(frame + shown)
        self.setMaximumHeight(frame + (sum(heights) if heights else shown))
        scroll = len(heights) > MAX_ROWS_SHOWN  # only a long list scrolls
        self.setVerticalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAsNeeded
            if scroll
            else Qt.ScrollBarPolicy.ScrollBarAlwaysOff
        )

    def event(self, event: QEvent) -> bool:
        """Qt's event hook: re-measure the rows when napari's stylesheet sets their heights
        (the table is polished or shown in a dock), not only when the rows change."""
        handled = super().event(event)
        if event.type() in _REFIT:
            self._fit_rows()
        return handled

    def rows_visible(self) -> int:
        """How many rows the table shows whole at its current size (for checks and docs)."""
        view = self.viewport().height()
        return sum(
            1
            for r in range(self.rowCount())
            if self.rowViewportPosition(r) >= 0
            and self.rowViewportPosition(r) + self.rowHeight(r) <= view
        )

    def values(self) -> list[int]:
        """Label values in row order."""
        return [int(self.item(r, 0).data(_VALUE)) for r in range(self.rowCount())]

    def current_value(self) -> int | None:
        """The selected label value, or None."""
        row = self.currentRow()
        item = self.item(row, 0) if row >= 0 else None
        return None if item is None else int(item.data(_VALUE))

    def select_value(self, value: int) -> bool:
        """Select the row of ``value``; False when it is not listed."""
        values = self.values()
        if value not in values:
            return False
        if self.currentRow() != values.index(value):
            self.selectRow(values.index(value))
        return True

    def set_counts(self, counts: np.ndarray, voxel_mm3: float | None) -> None:
        """Show voxel counts (index = value) and mL; adds rows for values the schema lacks.

        ``voxel_mm3`` None: the pixel size is unknown, so no mL (the column hides).
        """
        schema_values = [lab.value for lab in self._labels]
        extra = [int(v) for v in np.flatnonzero(counts) if v and int(v) not in schema_values]
        if self.values() != schema_values + extra:
            self.set_labels(self._labels, extra)
        self.setColumnHidden(3, voxel_mm3 is None)
        for r, value in enumerate(self.values()):
            n = int(counts[value]) if value < counts.size else 0
            self.item(r, 2).setText(str(n))
            size = None if voxel_mm3 is None else n * voxel_mm3 / (1.0 if self._flat else 1000.0)
            self.item(r, 3).setText("" if size is None else f"{size:.2f}")

    def set_flat(self, flat: bool) -> None:
        """A 2D image (``flat``): the size column shows areas in mm²; else volumes in mL."""
        self._flat = bool(flat)
        self.horizontalHeaderItem(3).setText("mm²" if flat else "mL")

    def set_count_title(self, title: str) -> None:
        """Title of the count column ("Voxels", or "Pixels" on a 2D image of unknown pixel size)."""
        self.horizontalHeaderItem(2).setText(title)

    def counts(self) -> dict[int, int]:
        """Counts as shown: label value → voxels (pixels)."""
        return {v: int(self.item(r, 2).text()) for r, v in enumerate(self.values())}

    def volumes_ml(self) -> dict[int, float]:
        """Volumes as shown: label value → mL (empty when the pixel size is unknown or 2D)."""
        if self.isColumnHidden(3) or self._flat:
            return {}
        return {v: float(self.item(r, 3).text()) for r, v in enumerate(self.values())}

    def areas_mm2(self) -> dict[int, float]:
        """Areas as shown on a 2D image: label value → mm² (empty for volumes or no pixel size)."""
        if self.isColumnHidden(3) or not self._flat:
            return {}
        return {v: float(self.item(r, 3).text()) for r, v in enumerate(self.values())}

    def _on_current(self, row: int, *_: int) -> None:
        if row >= 0 and self.item(row, 0) is not None:
            self.value_selected.emit(int(self.item(row, 0).data(_VALUE)))
