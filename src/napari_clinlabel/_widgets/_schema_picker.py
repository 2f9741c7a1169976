"""A schema chooser: built-in schemas by name or a YAML file, with id, version and sign-off shown.

Emits :attr:`SchemaPicker.schema_changed` with the loaded :class:`Schema`; a file with errors is
reported (file, line, problem) through ``on_error`` and the schema in force stays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.schema import Schema, builtin_schema_names, load_schema


class SchemaPicker(QWidget):
    """Combo of built-in schemas, a "Schema file…" button and a one-line description."""

    schema_changed = Signal(object)  # the new Schema

    def __init__(
        self,
        default: str,
        on_error: Callable[[BaseException], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_error = on_error
        self.schema: Schema = load_schema(default)
        self._combo = QComboBox()
        self._combo.addItems(builtin_schema_names())
        self._combo.setCurrentText(default)
        self._file_btn = QPushButton("Schema file…")
        self._info = QLabel(wordWrap=True)
        row = QHBoxLayout()
        row.addWidget(self._combo, 1)
        row.addWidget(self._file_btn)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self._info)
        self._combo.currentIndexChanged.connect(self._on_chosen)
        self._file_btn.clicked.connect(self._on_file)
        self._show()

    def load_file(self, path: str | Path) -> bool:
        """Use the schema file ``path``; False (and the error reported) when it has errors."""
        return self._use(Path(path))

    def _on_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Label schema", "", "Schema (*.yaml *.yml)")
        if path:
            self.load_file(path)

    def _on_chosen(self, index: int) -> None:
        path = self._combo.itemData(index)  # a file loaded earlier, else a built-in name
        self._use(Path(path) if path else self._combo.itemText(index))

    def _use(self, what: str | Path) -> bool:
        try:
            self.schema = load_schema(what)
        except ClinlabelError as exc:
            self._on_error(exc)
            self._select(self.schema)  # the combo names the schema still in force
            return False
        self._select(self.schema)
        self._show()
        self.schema_changed.emit(self.schema)
        return True

    def _select(self, schema: Schema) -> None:
        """Point the combo at ``schema``: its built-in name, or an entry for its file."""
        if schema.path is None:
            index = self._combo.findText(schema.id)
        else:
            index = self._combo.findData(str(schema.path))
            if index < 0:
                self._combo.addItem(
                    f"{schema.id} (file {Path(schema.path).name})", str(schema.path)
                )
                index = self._combo.count() - 1
        if index >= 0 and index != self._combo.currentIndex():
            self._combo.blockSignals(True)  # showing what is in force is not a new choice
            self._combo.setCurrentIndex(index)
            self._combo.blockSignals(False)

    def _show(self) -> None:
        s = self.schema
        self._info.setText(
            f"v{s.version} · signed off {s.signed_off_by.date} by {s.signed_off_by.name}"
        )
        tip = f"{s.title}\n{s.id} v{s.version}\nsha256 {s.sha256}"
        self._info.setToolTip(tip + (f"\nfile: {s.path}" if s.path else ""))
        self._combo.setToolTip(tip)
