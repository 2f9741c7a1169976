"""Open from PACS / Send to PACS: a thin translator over :mod:`napari_clinlabel.core.pacs`.

Search (accession, patient ID, study date, modality) and downloads run in napari
``thread_worker``s with an ``errored`` handler (a server error is a notification, never a
traceback). A download reports progress per instance and Cancel stops it between instances. The
series is written into the local cache (``$CLINLABEL_WORKSPACE/pacs-cache/<SeriesInstanceUID>``)
as it arrives and opened from the bytes in memory (:func:`pull_series_volumes`: the same volumes,
voxel digest and ``source_path`` as this plugin's reader gives for that folder), so the layers
carry the reader's metadata and the session writes the same ``image.open`` into the same sidecar
log beside the cached folder that a later File > Open of it continues. SEG and SR series, which
the reader opens as labels and boxes, are pulled and then opened from the folder by the reader.
A cancelled or failed download removes the instances it wrote, so no short series is left to
open as if whole. Patient ID and accession are shown here to the credentialed user only:
nothing of them is logged or notified (the Python log carries UIDs and counts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.layers import Layer
from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel.core.errors import ClinlabelError, PacsError
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.pacs import (
    PacsConnection,
    PullProgress,
    StudySummary,
    cache_root,
    find_studies,
    pull,
    pull_series_volumes,
    push,
    series_folder,
)
from napari_clinlabel.glue.layers import volume_to_layer_data
from napari_clinlabel.glue.session import get_session

if TYPE_CHECKING:
    import napari

MODALITIES = ("any", "CT", "MR", "MG", "CR", "DX", "US", "PT", "NM", "XA", "SEG", "SR", "SM")
_SERIES_ROLE = Qt.ItemDataRole.UserRole
_MODALITY_ROLE = Qt.ItemDataRole.UserRole + 1
_FROM_FILES = ("SEG", "SR")  # the reader opens these as labels / boxes from the files


@dataclass
class Pulled:
    """What a download left: the series folder, the volumes opened from memory (none for a SEG
    or SR series, which open from the folder), or ``cancelled`` with the instances removed."""

    folder: Path
    volumes: list[Volume] = field(default_factory=list)
    cancelled: bool = False
    removed: int = 0


def _dicom_names(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.dcm")} if folder.is_dir() else set()


def discard_new(folder: Path, before: set[str]) -> int:
    """Remove the instances (and temporary parts) written into ``folder`` since ``before`` (the
    ``.dcm`` names there then), and the folder when that leaves it empty; returns how many."""
    if not folder.is_dir():
        return 0
    removed = 0
    for p in folder.iterdir():
        new_instance = p.suffix == ".dcm" and p.name not in before
        if (new_instance or p.name.endswith(".part")) and p.is_file():
            p.unlink(missing_ok=True)
            removed += new_instance
    if not any(folder.iterdir()):
        folder.rmdir()
    return removed


def pull_for_viewer(
    conn: PacsConnection,
    series_uid: str,
    dest: Path,
    cancel: threading.Event,
    progress: Callable[[PullProgress], None] | None = None,
    from_files: bool = False,
) -> Pulled:
    """Worker body (Qt-free): pull one series into ``dest`` and open it from memory
    (``from_files``: pull only). Cancelled, or the transfer failed (:class:`PacsError`: the
    server went away, an instance did not arrive, the disk is full): the instances this pull
    wrote are removed again, so the cache never holds a short series that opens as if whole."""
    folder = series_folder(series_uid, dest)
    before = _dicom_names(folder)
    try:
        if from_files:
            pull(conn, dest, series_uid=series_uid, progress=progress, cancelled=cancel.is_set)
            volumes: list[Volume] = []
        else:
            volumes = pull_series_volumes(conn, dest, series_uid, progress=progress,
                                          cancelled=cancel.is_set)  # fmt: skip
    except PacsError:
        discard_new(folder, before)
        raise
    if cancel.is_set():  # also when it came after the last instance: nothing is opened
        return Pulled(folder, cancelled=True, removed=discard_new(folder, before))
    return Pulled(folder, volumes)


class PacsWidget(QWidget):
    """Search a DICOMweb server, download a series into the cache and open it; send exports back."""

    progressed = Signal(object)  # PullProgress, emitted on the download thread, shown on the GUI

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(viewer)
        self._viewer = self._session.viewer
        self._worker: Any = None
        self._pulling = False  # the running worker is a download (it stops on self._cancel)
        self._cancel = threading.Event()
        self.opened: list[Any] = []  # layers opened by the last download (for scripts and tests)

        self._url = QLineEdit()
        self._url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self._user = QLineEdit()
        self._secret = QLineEdit()
        self._secret.setEchoMode(QLineEdit.EchoMode.Password)
        self._is_token = QCheckBox("bearer token")
        self._verify = QCheckBox("verify TLS certificate")
        self._verify.setChecked(True)
        self._accession = QLineEdit()
        self._patient = QLineEdit()
        self._date = QLineEdit()
        self._date.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        self._modality = QComboBox()
        self._modality.addItems(MODALITIES)
        self._search_btn = QPushButton("Search")
        self._results = QTreeWidget()
        self._results.setHeaderLabels(["Study / series", "Date", "Patient ID", "Accession", "n"])
        self._open_btn = QPushButton("Open series")
        self._cancel_btn = QPushButton("Cancel")
        self._send_btn = QPushButton("Send to PACS…")
        self._progress = QProgressBar()
        self._progress.setRange(0, 1)
        self._status = QLabel("Enter the server and search.")
        self._status.setWordWrap(True)
        self._build()
        self._wire()
        self._set_idle()

    # -- layout and wiring ---------------------------------------------------------------
    def _build(self) -> None:
        secret_row = QHBoxLayout()
        secret_row.addWidget(self._secret, 1)
        secret_row.addWidget(self._is_token)
        form = QFormLayout()
        form.addRow("DICOMweb URL", self._url)
        form.addRow("User", self._user)
        form.addRow("Password", secret_row)
        form.addRow("", self._verify)
        form.addRow("Accession", self._accession)
        form.addRow("Patient ID", self._patient)
        form.addRow("Study date", self._date)
        form.addRow("Modality", self._modality)
        buttons = QHBoxLayout()
        buttons.addWidget(self._open_btn)
        buttons.addWidget(self._cancel_btn)
        buttons.addWidget(self._send_btn)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self._search_btn)
        lay.addWidget(self._results, 1)
        lay.addLayout(buttons)
        lay.addWidget(self._progress)
        lay.addWidget(self._status)

    def _wire(self) -> None:
        self._search_btn.clicked.connect(self._on_search)
        self._open_btn.clicked.connect(self._on_open)
        self._cancel_btn.clicked.connect(self._on_cancel)
        self._send_btn.clicked.connect(self._on_send_clicked)
        self._results.itemSelectionChanged.connect(self._set_idle)
        self.progressed.connect(self._on_progress)

    # -- helpers -------------------------------------------------------------------------
    def connection(self) -> PacsConnection:
        """The connection the form describes."""
        secret = self._secret.text() or None
        token = secret if self._is_token.isChecked() else None
        return PacsConnection(
            url=self._url.text().strip(),
            username=(self._user.text().strip() or None) if token is None else None,
            password=secret if token is None else None,
            token=token,
            verify=self._verify.isChecked(),
        )

    def selected_series(self) -> str | None:
        """The Series Instance UID of the selected series row, if any."""
        items = self._results.selectedItems()
        return items[0].data(0, _SERIES_ROLE) if items else None

    def _selected_modality(self) -> str:
        items = self._results.selectedItems()
        return str(items[0].data(0, _MODALITY_ROLE) or "") if items else ""

    def _busy(self, text: str) -> None:
        for b in (self._search_btn, self._open_btn, self._send_btn):
            b.setEnabled(False)
        self._cancel_btn.setEnabled(True)
        self._progress.setRange(0, 0)
        self._status.setText(text)

    def _set_idle(self) -> None:
        if self._worker is not None:
            return
        self._search_btn.setEnabled(True)
        self._open_btn.setEnabled(self.selected_series() is not None)
        self._send_btn.setEnabled(True)
        self._cancel_btn.setEnabled(False)

    def _start(self, worker: Any, on_done: Any) -> None:
        worker.returned.connect(on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    # -- handlers ------------------------------------------------------------------------
    def _on_search(self) -> None:
        conn = self.connection()
        mod = self._modality.currentText()
        kwargs = {
            "modality": None if mod == "any" else mod,
            "patient_id": self._patient.text().strip() or None,
            "accession": self._accession.text().strip() or None,
            "study_date": self._date.text().strip() or None,
        }
        self._cancel = threading.Event()
        self._busy("Searching…")
        worker = thread_worker(find_studies, start_thread=False, ignore_errors=True)(conn, **kwargs)
        self._start(worker, self._on_found)

    def _on_found(self, studies: list[StudySummary]) -> None:
        self._results.clear()
        for st in studies:
            top = QTreeWidgetItem(
                [st.description or f"study …{st.study_uid[-10:]}", st.date, st.patient_id,
                 st.accession, str(len(st.series))]
            )  # fmt: skip
            top.setToolTip(0, st.study_uid)
            top.setFlags(top.flags() & ~Qt.ItemFlag.ItemIsSelectable)
            for se in st.series:
                num = f"#{se.number} " if se.number is not None else ""
                child = QTreeWidgetItem(
                    [f"{se.modality} {num}{se.description}".strip(), "", "", "",
                     "" if se.instances is None else str(se.instances)]
                )  # fmt: skip
                child.setData(0, _SERIES_ROLE, se.series_uid)
                child.setData(0, _MODALITY_ROLE, se.modality)
                child.setToolTip(0, se.series_uid)
                top.addChild(child)
            self._results.addTopLevelItem(top)
            top.setExpanded(True)
        self._results.setColumnWidth(0, 170)  # date, patient ID and accession stay in view
        n = sum(len(s.series) for s in studies)
        self._status.setText(f"{len(studies)} studies, {n} series. Pick a series and Open.")

    def _on_open(self) -> None:
        uid = self.selected_series()
        if uid is None:
            self._status.setText("Pick a series first.")
            return
        self._cancel = threading.Event()
        worker = thread_worker(pull_for_viewer, start_thread=False, ignore_errors=True)(
            self.connection(), uid, cache_root(), self._cancel, self.progressed.emit,
            self._selected_modality().upper() in _FROM_FILES,
        )  # fmt: skip
        self._busy("Downloading…")
        self._pulling = True
        self._start(worker, self._on_pulled)

    def _on_progress(self, p: PullProgress) -> None:
        if self._cancel.is_set():  # a late report must not overwrite "Cancelling…"
            return
        self._progress.setRange(0, max(p.total, 1))
        self._progress.setValue(p.done)
        self._status.setText(f"{p.done}/{p.total} instances ({p.skipped} already in the cache)")

    def _on_pulled(self, pulled: Pulled) -> None:
        self.opened = []
        if pulled.cancelled:
            self._status.setText(
                f"Download cancelled: nothing opened; the {pulled.removed} instance(s) it had "
                "written were removed from the cache."
            )
            return
        try:
            if pulled.volumes:  # opened from memory: the reader's layers, without a reread
                for v in pulled.volumes:
                    self.opened.append(self._viewer.add_layer(
                        Layer.create(*volume_to_layer_data(v))))  # fmt: skip
            else:
                self.opened = list(self._viewer.open(str(pulled.folder), plugin="napari-clinlabel"))
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._status.setText(str(exc))
            return
        self._status.setText(f"Opened {len(self.opened)} layer(s); the series is in the cache.")

    def _on_cancel(self) -> None:
        self._cancel.set()
        if self._worker is not None and not self._pulling:  # a pull stops itself and says so
            self._worker.quit()
        self._status.setText("Cancelling…")

    def _on_send_clicked(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "DICOM files to send (SEG, SR, series)")
        if paths:
            self.send([Path(p) for p in paths])

    def send(self, paths: list[Path]) -> None:
        """STOW ``paths`` (files or folders) off the GUI thread."""
        self._cancel = threading.Event()
        self._busy(f"Sending {len(paths)} item(s)…")
        worker = thread_worker(push, start_thread=False, ignore_errors=True)(
            self.connection(), paths
        )
        self._start(worker, lambda res: self._status.setText(
            f"Sent: {len(res.stored)} instance(s) stored on the server."))  # fmt: skip

    def _on_error(self, exc: BaseException) -> None:
        self._session.report_error(exc)
        self._status.setText(
            str(exc) if isinstance(exc, ClinlabelError) else "Failed (see notification)."
        )

    def _on_finished(self) -> None:
        if self._cancel.is_set() and not self._pulling:  # a quit search or send returns nothing
            self._status.setText("Cancelled.")
        self._worker = None
        self._pulling = False
        self._progress.setRange(0, 1)
        self._progress.setValue(1 if not self._cancel.is_set() else 0)
        self._set_idle()
