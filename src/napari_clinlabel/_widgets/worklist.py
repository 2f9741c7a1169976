"""Worklist widget: a reader's cases in a dataset (a programme), Next case, flag, review, adjudicate.

A thin translator over :mod:`napari_clinlabel.core.programme`. Open a dataset folder; the widget
acts as the signed-in user (``CLINLABEL_USER`` / login, roles from the dataset's owner-signed
roster) and shows what that user has to do:

- an annotator's **my cases** (not started / in progress / completed / flagged / returned) with
  progress; **Next case** opens the next one (a PACS series is pulled into the cache first) as
  an image plus the reader's own labels layer, logged to their read
  ``<dataset>/reads/<case>__<reader>.clinlabel.jsonl`` through the viewer's session;
  **Flag** records ``case.flag`` with the reason in the dataset log;
- a reviewer's **review queue**: Next case opens a completed read with its labels;
  **Approve (sign)** signs it (meaning approval), **Return** sends it back with a comment;
- an adjudicator's **adjudication queue**, filled by the design's triggers: Next case (or a double
  click on a row) opens the image and the Adjudication widget with the reads loaded.

Honeypots are never told apart. Every refusal is a napari notification with one line.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from napari.layers import Image
from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.programme.dataset import READS, Dataset
from napari_clinlabel.core.programme.reads import COMPLETED, IN_PROGRESS, NOT_STARTED, ReadIndex
from napari_clinlabel.core.programme.review import approve, return_read
from napari_clinlabel.core.programme.source import fetch
from napari_clinlabel.core.programme.status import (
    RETURNED,
    adjudication_queue,
    next_case,
    review_queue,
    worklist,
)
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.layers import volume_to_layer_data
from napari_clinlabel.glue.session import get_session

ADJUDICATION = ("napari-clinlabel", "Adjudication")  # plugin and widget display name


class WorklistWidget(QWidget):
    """A reader's worklist in a dataset: my cases, Next case, flag, review and adjudication queues."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(napari_viewer)
        self._viewer = self._session.viewer
        self.ds: Dataset | None = None
        self.user: str | None = None
        self.current: dict[str, Any] | None = None  # the entry of the case open now
        self.image: Any = None
        self.labels: Any = None
        self.adjudication: Any = None  # the Adjudication widget, once opened from the queue
        self.worker: Any = None  # the PACS pull running, if any
        self.failed: set[str] = set()  # cases whose PACS pull failed in this session: skipped
        self._folder = QLineEdit()
        self._folder.setPlaceholderText("dataset folder (holds clinlabel-dataset.json)")
        self._browse = QPushButton("Browse…")
        self._open = QPushButton("Open dataset")
        self._who = QLabel("no dataset open")
        self._who.setWordWrap(True)
        self._progress = QProgressBar()
        self._progress.setFormat("%v / %m completed")
        self._cases = _table(("case", "status", "note"))
        self._next = QPushButton("Next case")
        self._refresh = QPushButton("Refresh")
        self._reason = QLineEdit()
        self._reason.setPlaceholderText("why this case cannot be read as it is")
        self._flag = QPushButton("Flag case")
        self._review_label = QLabel("Review queue")
        self._reviews = _table(("case", "reader"))
        self._comment = QLineEdit()
        self._comment.setPlaceholderText("comments for the reader (to return the read)")
        self._approve = QPushButton("Approve (sign)")
        self._return = QPushButton("Return with comments")
        self._adj_label = QLabel("Adjudication queue")
        self._queue = _table(("case", "readers", "why"))
        self._adjudicate = QPushButton("Adjudicate selected")
        self._status = QLabel("")
        self._status.setWordWrap(True)
        self._build()
        self._browse.clicked.connect(self._on_browse)
        self._open.clicked.connect(self._on_open)
        self._refresh.clicked.connect(self.refresh)
        self._next.clicked.connect(self._on_next)
        self._flag.clicked.connect(self._on_flag)
        self._approve.clicked.connect(self._on_approve)
        self._return.clicked.connect(self._on_return)
        self._adjudicate.clicked.connect(self._on_adjudicate_selected)
        self._queue.cellDoubleClicked.connect(lambda *_: self._on_adjudicate_selected())
        self._cases.cellDoubleClicked.connect(lambda *_: self._on_open_selected())
        self._show_roles(())

    def _build(self) -> None:
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self._folder, 1)
        row.addWidget(self._browse)
        row.addWidget(self._open)
        lay.addLayout(row)
        lay.addWidget(self._who)
        lay.addWidget(self._progress)
        lay.addWidget(self._cases, 2)
        row = QHBoxLayout()
        row.addWidget(self._next, 1)
        row.addWidget(self._refresh)
        lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self._reason, 1)
        row.addWidget(self._flag)
        lay.addLayout(row)
        lay.addWidget(self._review_label)
        lay.addWidget(self._reviews, 1)
        lay.addWidget(self._comment)
        row = QHBoxLayout()
        row.addWidget(self._approve)
        row.addWidget(self._return)
        lay.addLayout(row)
        lay.addWidget(self._adj_label)
        lay.addWidget(self._queue, 1)
        lay.addWidget(self._adjudicate)
        lay.addWidget(self._status)

    def _show_roles(self, roles: Any) -> None:
        annot, review, adj = "annotator" in roles, "reviewer" in roles, "adjudicator" in roles
        for w in (self._progress, self._cases, self._reason, self._flag):
            w.setVisible(annot)
        for w in (self._review_label, self._reviews, self._comment, self._approve, self._return):
            w.setVisible(review)
        for w in (self._adj_label, self._queue, self._adjudicate):
            w.setVisible(adj)
        self._next.setEnabled(annot or review or adj)  # the owner role alone reads nothing
        self._refresh.setEnabled(self.ds is not None)
        if not (annot or review or adj):  # say why the panel is empty, and where to look instead
            self._status.setText(
                "You hold no reading role here (owner only): no cases to read, review or "
                "adjudicate. The programme's progress: 'clinlabel dataset status' or "
                "'clinlabel report'."
            )

    # -- dataset -----------------------------------------------------------------------------
    def open_dataset(self, folder: str | Path) -> None:
        """Open the dataset in ``folder`` as the signed-in user and show their worklist."""
        self._folder.setText(str(folder))
        self._on_open()

    def _on_browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if path:
            self.open_dataset(path)

    def _on_open(self) -> None:
        try:
            ds = Dataset(self._folder.text().strip())
            user = ds.actor().id
            if not ds.roster.roles_of(user):  # the owner named only in [owner] is in it
                raise InputError(f"{ds.roster.path}: {user!r} is not in the roster; check the id")
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self.ds, self.user = ds, user
        self.refresh()

    def refresh(self) -> None:
        """Re-read the dataset log and the reads; fill the tables."""
        ds, user = self.ds, self.user
        if ds is None or user is None:
            return
        try:
            st = ds.state()
            roles = ds.roster.roles_of(user)
            index = ReadIndex(ds.folder / READS)
            mine = worklist(ds, user, st, index) if "annotator" in roles else []
            reviews = review_queue(ds, user, st, index) if "reviewer" in roles else []
            queue = adjudication_queue(ds, user, st) if "adjudicator" in roles else []
            index.save()
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._show_roles(roles)
        g = ds.guideline
        cal = ""
        if "annotator" in roles:
            cal = "; calibrated" if st.calibrated(user, ds.major) else (
                f"; NOT calibrated for guideline {g['version']}: no cases until the gold panel is passed"
            )  # fmt: skip
        self._who.setText(f"{user} ({', '.join(roles)}) in {ds.folder.name}: guideline "
                          f"{g.get('name', '')} {g['version']}{cal}")  # fmt: skip
        self.rows, self.reviews, self.queue = mine, reviews, queue
        _fill(self._cases, [(r["case"], r["status"], r["note"]) for r in mine])
        done = sum(r["status"] == COMPLETED for r in mine)
        self._progress.setRange(0, max(len(mine), 1))
        self._progress.setValue(done)
        _fill(self._reviews, [(r["case"], r["reader"]) for r in reviews])
        _fill(self._queue, [(q["case"], ", ".join(q["readers"]), "; ".join(q["why"]))
                            for q in queue])  # fmt: skip

    # -- next case ---------------------------------------------------------------------------
    def _on_next(self) -> None:
        if self.ds is None or self.user is None:
            self._status.setText("open a dataset first")
            return
        try:
            entry = self._next_entry()
            if entry is None:
                skipped = f" ({len(self.failed)} skipped: PACS pull failed)" if self.failed else ""
                roles = self.ds.roster.roles_of(self.user)
                what = [w for r, w in (("annotator", "every case of yours is done or flagged"),
                                       ("reviewer", "no read waits for your review"),
                                       ("adjudicator", "no case waits for adjudication"))
                        if r in roles]  # fmt: skip
                self._status.setText(f"nothing to do: {'; '.join(what)}{skipped}")
                return
            self.open_entry(entry)  # refreshes the tables once the case is open
        except ClinlabelError as exc:
            self._session.report_error(exc)

    def _next_entry(self) -> dict[str, Any] | None:
        """``next_case``, passing over the reads whose PACS pull failed in this session."""
        assert self.ds is not None and self.user is not None
        entry = next_case(self.ds, self.user)
        if entry is None or entry["case"] not in self.failed or entry["task"] != "read":
            return entry
        rows = worklist(self.ds, self.user, self.ds.state(), ReadIndex(self.ds.folder / READS))
        for wanted in ((IN_PROGRESS, RETURNED), (NOT_STARTED,)):  # next_case's order
            for row in rows:
                if row["status"] in wanted and row["case"] not in self.failed:
                    found = {"case": row["case"], "task": "read", "status": row["status"]}
                    if row["status"] == RETURNED:
                        found["returned"] = row["note"]
                    return found
        return None

    def _on_open_selected(self) -> None:
        case_id = self._selected_case()
        if case_id is None or self.ds is None or self.user is None:
            return
        row = next(r for r in self.rows if r["case"] == case_id)
        entry = {"case": case_id, "task": "read", "status": row["status"]}
        if row["status"] == "returned":
            entry["returned"] = row["note"]
        try:
            self.open_entry(entry)
        except ClinlabelError as exc:
            self._session.report_error(exc)

    def open_entry(self, entry: dict[str, Any]) -> None:
        """Open a case as ``next_case`` describes it (read, review or adjudicate)."""
        assert self.ds is not None and self.user is not None
        task, case_id = entry["task"], entry["case"]
        if task == "read":
            base = self.ds.folder / READS / self.ds.read_name(case_id, self.user)
        elif task == "review":
            base = Path(entry["read"].removesuffix(".clinlabel.jsonl"))
        else:
            base = self.ds.folder / READS / self.ds.read_name(case_id, self.user)
        base = Path(str(base).removesuffix(".clinlabel.jsonl"))
        case = self.ds.state().cases[case_id]
        if case.pacs is not None:  # pulled into the cache off the GUI thread, then opened
            self._status.setText(f"{case_id}: pulling the series from PACS…")
            self._next.setEnabled(False)
            worker = thread_worker(fetch, start_thread=False, ignore_errors=True)(self.ds, case)
            worker.returned.connect(lambda path: self._opened(entry, path, base))
            worker.errored.connect(lambda exc: self._pull_failed(case_id, exc))
            worker.finished.connect(lambda: self._next.setEnabled(True))
            self.worker = worker
            worker.start()
            return
        self._status.setText(f"{case_id}: opening…")
        self._opened(entry, fetch(self.ds, case), base)

    def _pull_failed(self, case_id: str, exc: BaseException) -> None:
        """The PACS pull of ``case_id`` failed: say so, and let Next case move on past it."""
        self.failed.add(case_id)
        self._session.report_error(exc)
        self._status.setText(f"{case_id}: PACS pull failed; Next case skips it in this session "
                             "(double-click its row to try again)")  # fmt: skip

    def _opened(self, entry: dict[str, Any], path: Path, base: Path) -> None:
        """Show the case's image (on this machine at ``path``) for its task."""
        task, case_id = entry["task"], entry["case"]
        try:
            self._open_image(case_id, path, base, task)
            self.current = entry
            if task == "adjudicate":
                self._open_adjudication(entry["reads"])
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        if task == "adjudicate":
            self._status.setText(f"{case_id}: adjudicate ({'; '.join(entry['why'])})")
        elif task == "review":
            self._status.setText(f"{case_id}: review {entry['reader']}'s read; approve or return")
        else:
            note = f" — returned: {entry['returned']}" if entry.get("returned") else ""
            self._status.setText(f"{case_id}: {entry['status']}{note}")
        self.refresh()

    def _open_image(self, case_id: str, path: Path, log_base: Path, task: str) -> None:
        volumes = read_volumes(path)
        if len(volumes) != 1:
            raise InputError(f"{case_id}: holds {len(volumes)} images; a case is one series")
        data, kwargs, _ = volume_to_layer_data(volumes[0])
        kwargs["name"] = case_id  # never the series description: the case id is PHI-free
        kwargs["metadata"]["clinlabel"]["log_base"] = str(log_base)
        kwargs["metadata"]["clinlabel"]["case"] = case_id
        self._close_current()
        image = Image(data, **kwargs)
        # The design's schema is a programme setting: in force before the layer is inserted, so
        # the Grading widget (which picks the schema when the image appears) grades on it at once.
        schemas = (self.ds.manifest.get("schemas") if self.ds else None) or []
        if schemas:
            self._session.set_schema(image, load_schema(schemas[0]["name"]))
        self.image = self._viewer.add_layer(image)
        self._viewer.layers.selection.active = self.image
        if task == "adjudicate":
            self.labels = None  # the Adjudication widget shows the reads and the draft
            return
        labels = self._session.labels_layer_for(self.image, create=task == "read")
        if labels is not None:
            owner = self.user if task == "read" else Path(log_base).name.split("__")[-1]
            labels.name = f"{case_id} labels ({owner})"
        self.labels = labels

    def _close_current(self) -> None:
        """Take the previous case's layers out of the viewer (one case at a time)."""
        layers = self._viewer.layers
        gone = [
            layer for layer in layers
            if ((layer.metadata or {}).get("clinlabel") or {}).get("log_base")
            or layer is self.labels or layer.name.startswith("read: ")
            or layer.name in ("adjudication draft", "disagreement")
        ]  # fmt: skip
        # one batch: napari cleans its scene graph (a full gc.collect) once, not per layer
        batch = getattr(layers, "batched_update", contextlib.nullcontext)
        with batch():
            for layer in gone:
                layers.remove(layer)
        self.image = self.labels = None

    def _open_adjudication(self, reads: list[str]) -> None:
        window = getattr(self._viewer, "window", None)
        if self.adjudication is None and window is not None:
            _dock, self.adjudication = window.add_plugin_dock_widget(*ADJUDICATION)
        if self.adjudication is None:
            raise InputError("open the Adjudication widget (Plugins menu) to adjudicate")
        self.adjudication.load_reads([Path(p) for p in reads])

    def _on_adjudicate_selected(self) -> None:
        row = self._queue.currentRow()
        if self.ds is None or not 0 <= row < len(self.queue):
            self._status.setText("pick a case of the adjudication queue first")
            return
        q = self.queue[row]
        entry = {"case": q["case"], "task": "adjudicate", "status": "to adjudicate",
                 "reads": q["reads"], "why": q["why"]}  # fmt: skip
        try:
            self.open_entry(entry)
        except ClinlabelError as exc:
            self._session.report_error(exc)

    # -- flag, review ------------------------------------------------------------------------
    def _selected_case(self) -> str | None:
        row = self._cases.currentRow()
        if 0 <= row < len(getattr(self, "rows", [])):
            return str(self.rows[row]["case"])
        if self.current is not None and self.current["task"] == "read":
            return str(self.current["case"])
        return None

    def _on_flag(self) -> None:
        case_id = self._selected_case()
        if self.ds is None or case_id is None:
            self._status.setText("pick one of your cases (or open it) to flag it")
            return
        try:
            rec = self.ds.flag(case_id, self._reason.text())
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._reason.clear()
        self._status.setText(f"{case_id}: flagged (dataset log seq {rec['seq']})")
        self.refresh()

    def _review_log(self) -> Any:
        if self.current is None or self.current["task"] != "review" or self.image is None:
            raise InputError("open a read to review first (Next case)")
        return self._session.log_for(self.image)

    def _on_approve(self) -> None:
        try:
            rec = approve(self._review_log())
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        assert self.current is not None
        self._status.setText(f"{self.current['case']}: {self.current['reader']}'s read approved "
                             f"(sign seq {rec['seq']})")  # fmt: skip
        self.refresh()

    def _on_return(self) -> None:
        try:
            log = self._review_log()
            assert self.current is not None
            rec = return_read(log, self.current["reader"], self._comment.text())
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._comment.clear()
        self._status.setText(f"{self.current['case']}: returned to {self.current['reader']} "
                             f"(seq {rec['seq']})")  # fmt: skip
        self.refresh()


def _table(columns: tuple[str, ...]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def _fill(table: QTableWidget, rows: list[tuple[str, ...]]) -> None:
    table.setRowCount(0)
    for row in rows:
        r = table.rowCount()
        table.insertRow(r)
        for col, text in enumerate(row):
            item = QTableWidgetItem(str(text))
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            table.setItem(r, col, item)
    table.resizeColumnsToContents()
