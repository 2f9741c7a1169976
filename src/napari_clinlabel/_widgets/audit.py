"""Audit widget: the current image's log as a filterable table, and a Verify button."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._session import get_session, image_sha256
from ..core.audit_log import iter_records
from ..core.errors import ClinlabelError
from .session import connect_while_alive

COLUMNS = ("seq", "time", "actor", "role", "action", "target", "source", "details")
_FILTERED = ("actor", "role", "action", "target", "details")
_OK_STYLE = "color: white; background: #2e7d32; padding: 4px; font-weight: bold;"
_BAD_STYLE = "color: white; background: #c62828; padding: 4px; font-weight: bold;"


def record_row(rec: dict[str, Any]) -> list[str]:
    """The table cells of one record (seq, time, actor, role, action, target, source, details)."""
    actor = rec.get("actor") or {}
    source = rec.get("source") or {}
    if source.get("kind") == "model":
        src = f"model {source.get('name')} {source.get('version')}"
    else:
        src = str(source.get("kind", ""))
    target = rec.get("target")
    return [
        str(rec.get("seq")),
        str(rec.get("time", "")).replace("T", " ").rstrip("Z")[:23],
        str(actor.get("id", "")),
        str(actor.get("role", "")),
        str(rec.get("action", "")),
        "" if target is None else json.dumps(target, separators=(",", ":"), ensure_ascii=False),
        src,
        _details(rec.get("data") or {}),
    ]


def _details(data: dict[str, Any]) -> str:
    """A short summary of a record's data: tool, label value, voxel count, undone seq."""
    parts = []
    if "tool" in data:
        parts.append(str(data["tool"]))
    if "label" in data:
        parts.append(f"label {data['label']}")
    if "voxels" in data:
        parts.append(f"{data['voxels']} voxels")
    for key in ("undoes", "redoes"):
        if key in data:
            parts.append(f"{key} {data[key]}")
    return " · ".join(parts)


class AuditWidget(QWidget):
    """The records of the image being worked on; Verify checks chain, objects and signatures."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(napari_viewer)
        self._viewer = viewer = self._session.viewer  # the viewer itself, not napari's proxy
        self._path: Path | None = None
        self._sha: str | None = None
        self._title = QLabel()
        self._title.setWordWrap(True)
        self._filter = QLineEdit()
        self._filter.setPlaceholderText("filter by actor, role, action, target or tool…")
        self._table = QTableWidget(0, len(COLUMNS))
        self._table.setHorizontalHeaderLabels(COLUMNS)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.verticalHeader().setVisible(False)
        self._table.setMinimumHeight(240)
        self._verify = QPushButton("Verify")
        self._result = QLabel()
        self._result.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self._verify)
        row.addWidget(self._result, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self._title)
        layout.addWidget(self._filter)
        layout.addWidget(self._table, 1)
        layout.addLayout(row)
        self._filter.textChanged.connect(self._on_filter)
        self._verify.clicked.connect(self._on_verify)
        connect_while_alive(
            self,
            [
                (self._session.record_appended, self._on_record),
                (self._session.changed, self._on_image_changed),
                (viewer.layers.selection.events.active, self._on_image_changed),
                (viewer.layers.events.inserted, self._on_image_changed),
                (viewer.layers.events.removed, self._on_image_changed),
            ],
        )
        self._on_image_changed()

    # -- handlers ----------------------------------------------------------------------------
    def _on_image_changed(self, *_: Any) -> None:
        image = self._session.active_image()
        path = None if image is None else self._session.log_path_for(image)
        if path == self._path and self._table.rowCount():
            return
        self._path, self._sha = path, None if image is None else image_sha256(image)
        self._title.setText("no image open" if path is None else f"<b>{path.name}</b>")
        self._result.clear()
        self._result.setStyleSheet("")
        self._table.setRowCount(0)
        if path is not None:
            self._add_rows(list(iter_records(path)))

    def _on_record(self, rec: dict[str, Any]) -> None:
        if self._sha is not None and (rec.get("image") or {}).get("sha256") == self._sha:
            self._add_rows([rec])

    def _on_filter(self, text: str) -> None:
        for r in range(self._table.rowCount()):
            self._table.setRowHidden(r, not self._matches(r, text))

    def _on_verify(self) -> None:
        from ..core.log_verify import verify_log

        if self._path is None or not self._path.exists():
            self._show(False, "no log for this image yet")
            return
        try:
            image = self._session.active_image()
            report = verify_log(self._path, roster=self._session.roster_for(image))
        except ClinlabelError as exc:
            self._show(False, str(exc))
            return
        self._show(report.ok, report.summary())

    # -- display -----------------------------------------------------------------------------
    def _add_rows(self, records: list[dict[str, Any]]) -> None:
        table = self._table
        text = self._filter.text()
        table.setUpdatesEnabled(False)
        try:
            for rec in records:
                r = table.rowCount()
                table.insertRow(r)
                for c, cell in enumerate(record_row(rec)):
                    table.setItem(r, c, QTableWidgetItem(cell))
                table.setRowHidden(r, not self._matches(r, text))
        finally:
            table.setUpdatesEnabled(True)
        table.resizeColumnsToContents()
        table.scrollToBottom()

    def _matches(self, r: int, text: str) -> bool:
        if not text:
            return True
        needle = text.lower()
        cells = (self._table.item(r, COLUMNS.index(c)) for c in _FILTERED)
        return any(item is not None and needle in item.text().lower() for item in cells)

    def _show(self, ok: bool, message: str) -> None:
        self._result.setText(message)
        self._result.setStyleSheet(_OK_STYLE if ok else _BAD_STYLE)
