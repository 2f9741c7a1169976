"""Audit widget: the current image's log as a filterable table, and a Verify button.

The table is a model over one tuple of cells per record, as ``core.log.present.record_cells``
writes them (``clinlabel log show`` prints the same cells). The log is read a time slice per
event-loop turn (a 100 000-record log shows its first rows at once and never freezes napari; a
reading thread would hold the GIL against the GUI's painting), records appended meanwhile are kept
aside and added after the last one read, each seq once. Verify runs in a napari ``thread_worker``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from napari.qt.threading import thread_worker
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel._widgets.session import connect_while_alive
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.present import COLUMNS, record_cells
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session, image_sha256

_FILTERED = ("actor", "role", "action", "target", "details")
_FILTERED_AT = tuple(COLUMNS.index(c) for c in _FILTERED)
_OK_STYLE = "color: white; background: #2e7d32; padding: 4px; font-weight: bold;"
_BAD_STYLE = "color: white; background: #c62828; padding: 4px; font-weight: bold;"
_SLICE_S = 0.02  # GUI-thread time per event-loop turn spent reading the log

Row = tuple[str, ...]


def _verify_report(path: Path, roster: Any) -> tuple[Path, bool, str]:
    """``(path, ok, the report's one line)``; an error that stops verification is a failure."""
    try:
        report = verify_log(path, roster=roster)
    except Exception as exc:
        return path, False, _error_text(exc)
    return path, report.ok, report.summary()


def _haystack(row: Row) -> str:
    """The filtered cells of a row, lower case, in one string (a separator no one types)."""
    return "\x1f".join(row[c] for c in _FILTERED_AT).lower()


class _RecordTable(QAbstractTableModel):
    """All rows of a log; shows those whose filtered cells contain the filter text (any case)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._hay: list[str] = []
        self._needle = ""
        self._shown: list[int] | None = None  # indices into _rows; None: all of them

    @property
    def total(self) -> int:
        """How many rows there are, shown or not."""
        return len(self._rows)

    def shown(self) -> list[Row]:
        """The rows the filter lets through, in order."""
        return self._rows if self._shown is None else [self._rows[i] for i in self._shown]

    def all_rows(self) -> list[Row]:
        """Every row, in order."""
        return self._rows

    def clear(self) -> None:
        self.beginResetModel()
        self._rows, self._hay = [], []
        self._shown = None if not self._needle else []
        self.endResetModel()

    def append(self, rows: list[Row]) -> None:
        """Add rows at the end; those matching the filter appear."""
        if not rows:
            return
        start = len(self._rows)
        hay = [_haystack(r) for r in rows]
        self._rows.extend(rows)
        self._hay.extend(hay)
        if self._shown is None:
            new: list[int] = list(range(start, start + len(rows)))
        else:
            new = [start + i for i, h in enumerate(hay) if self._needle in h]
        if not new:
            return
        first = self.rowCount()
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        if self._shown is not None:
            self._shown.extend(new)
        self.endInsertRows()

    def set_filter(self, text: str) -> None:
        """Show the rows whose filtered cells contain ``text`` (case-insensitive); "" shows all."""
        needle = text.lower()
        if needle == self._needle:
            return
        self.beginResetModel()
        self._needle = needle
        self._shown = None if not needle else [i for i, h in enumerate(self._hay) if needle in h]
        self.endResetModel()

    # -- QAbstractTableModel ---------------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return len(self._rows) if self._shown is None else len(self._shown)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        r = index.row()
        row = self._rows[r if self._shown is None else self._shown[r]]
        return row[index.column()]

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None


class AuditWidget(QWidget):
    """The records of the image being worked on; Verify checks chain, objects and signatures."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(napari_viewer)
        self._viewer = viewer = self._session.viewer  # the viewer itself, not napari's proxy
        self._path: Path | None = None
        self._sha: str | None = None
        self._last_seq = -1  # the table holds every record up to here, in seq order
        self._reader: Iterator[dict[str, Any]] | None = None  # the log being read; None once read
        self._arrived: dict[int, Row] = {}  # records appended while the log was being read
        self._title = QLabel()
        self._title.setWordWrap(True)
        self._filter = QLineEdit()
        self._filter.setPlaceholderText("filter by actor, role, action, target or tool…")
        self._model = _RecordTable(self)
        self._table = QTableView()
        self._table.setModel(self._model)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.verticalHeader().setVisible(False)
        # column widths from the rows in view, not from the first thousand of a long log
        self._table.verticalHeader().setResizeContentsPrecision(0)
        # a few rows at least; it scrolls, and a tab beside the task widgets must not make the
        # window taller than a 1080p screen (the mammogram demo was 1094 px with 240)
        self._table.setMinimumHeight(4 * self._table.verticalHeader().defaultSectionSize())
        self._count = QLabel()
        self._read_timer = QTimer(self)  # reads the log a slice per event-loop turn
        self._read_timer.setInterval(0)
        self._read_timer.timeout.connect(self._read_some)
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
        layout.addWidget(self._count)
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

    @property
    def loading(self) -> bool:
        """True while the log is still being read into the table."""
        return self._reader is not None

    def rows(self, visible_only: bool = False) -> list[list[str]]:
        """The table's cells, row by row (only those the filter shows with ``visible_only``)."""
        rows = self._model.shown() if visible_only else self._model.all_rows()
        return [list(r) for r in rows]

    # -- handlers ----------------------------------------------------------------------------
    def _on_image_changed(self, *_: Any) -> None:
        image = self._session.active_image()
        path = None if image is None else self._session.log_path_for(image)
        if path == self._path and (self.loading or self._model.total):
            return
        self._path, self._sha = path, None if image is None else image_sha256(image)
        self._title.setText("no image open" if path is None else f"<b>{path.name}</b>")
        self._result.clear()
        self._result.setStyleSheet("")
        self._stop_loading()
        self._model.clear()
        self._last_seq = -1
        if path is not None:
            self._start_loading(path)
        self._show_count()

    def _on_record(self, rec: dict[str, Any]) -> None:
        if self._sha is None or (rec.get("image") or {}).get("sha256") != self._sha:
            return
        seq = int(rec["seq"])
        if self.loading:  # it may or may not be among the lines still to read
            self._arrived[seq] = record_cells(rec)
        elif seq > self._last_seq + 1:  # records written past the session (an export's own
            self._catch_up()  # log, the CLI) came first: read them, this one included
        else:
            self._add_rows([(seq, record_cells(rec))])

    def _on_filter(self, text: str) -> None:
        self._model.set_filter(text)
        self._table.scrollToBottom()
        self._show_count()

    def _on_verify(self) -> None:
        if not self.loading:
            self._catch_up()  # the table shows every record Verify is about to check
        path = self._path
        if path is None or not path.exists():
            self._show(False, "no log for this image yet")
            return
        try:
            roster = self._session.roster_for(self._session.active_image())
        except ClinlabelError as exc:
            self._show(False, str(exc))
            return
        worker = thread_worker(_verify_report, start_thread=False)(path, roster)
        worker.returned.connect(self._on_verified)
        worker.finished.connect(self._on_verify_finished)
        self._verify.setEnabled(False)
        self._result.setStyleSheet("")
        self._result.setText("verifying…")
        worker.start()

    def _on_verified(self, result: tuple[Path, bool, str]) -> None:
        path, ok, message = result
        if path == self._path:  # not an answer about a log the table no longer shows
            self._show(ok, message)

    def _on_verify_finished(self) -> None:
        self._verify.setEnabled(True)

    # -- reading the log ---------------------------------------------------------------------
    def _start_loading(self, path: Path) -> None:
        self._reader = iter_records(path)
        self._arrived = {}
        self._read_timer.start()

    def _stop_loading(self) -> None:
        self._read_timer.stop()
        if self._reader is not None:
            self._reader.close()  # closes the file
        self._reader = None
        self._arrived = {}

    def _read_some(self) -> None:
        """Read the log for one time slice of the GUI thread; finish when it is all read."""
        if self._reader is None:
            return
        end = time.perf_counter() + _SLICE_S
        batch: list[tuple[int, Row]] = []
        error: Exception | None = None
        try:
            for rec in self._reader:
                batch.append((int(rec["seq"]), record_cells(rec)))
                if len(batch) % 256 == 0 and time.perf_counter() > end:
                    self._add_rows(batch)
                    return
        except Exception as exc:  # shown below the table; the rows read so far stay
            error = exc
        arrived = sorted(self._arrived.items())
        self._stop_loading()
        self._add_rows(batch + arrived)
        self._table.resizeColumnsToContents()
        self._show_count()
        if error is not None:
            self._show(False, _error_text(error))

    def _catch_up(self) -> None:
        """Add the records the log file holds past the last one shown (written by another log
        object or process, so never announced to the session)."""
        if self._path is None or not self._path.exists():
            return
        last = self._last_seq
        try:
            rows = [(int(r["seq"]), record_cells(r)) for r in iter_records(self._path)
                    if int(r["seq"]) > last]  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - shown below the table, as a failed read is
            self._show(False, _error_text(exc))
            return
        self._add_rows(rows)

    # -- display -----------------------------------------------------------------------------
    def _add_rows(self, rows: list[tuple[int, Row]]) -> None:
        """Append the rows past the last seq shown (a record read and also announced: once)."""
        fresh, last = [], self._last_seq
        for seq, cells in rows:
            if seq > last:
                fresh.append(cells)
                last = seq
        if not fresh:
            return
        first = self._model.total == 0
        self._last_seq = last
        self._model.append(fresh)
        if first or not self.loading:
            self._table.resizeColumnsToContents()
        self._table.scrollToBottom()
        self._show_count()

    def _show_count(self) -> None:
        total, shown = self._model.total, self._model.rowCount()
        text = f"{total:,} records" if shown == total else f"{shown:,} of {total:,} shown"
        self._count.setText(text + (" (reading the log…)" if self.loading else ""))

    def _show(self, ok: bool, message: str) -> None:
        self._result.setText(message)
        self._result.setStyleSheet(_OK_STYLE if ok else _BAD_STYLE)


def _error_text(exc: BaseException) -> str:
    """What a failed read or verification says (the message alone for the package's errors)."""
    if isinstance(exc, ClinlabelError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
