"""Pre-label widget: run a model on an image off the GUI thread; its output arrives as proposals.

The model (``builtin:baseline``, ``builtin:phantom-unet`` or a local TorchScript file with its
card) loads and runs in a napari ``thread_worker`` generator that yields ``(done, total)``
windows to a progress bar; Cancel stops it at the next window (and sets the core cancel event,
which the baseline checks between its steps). Only when the run returns does the GUI thread log
the drafts with core :func:`~napari_clinlabel.core.proposals.lifecycle.add_proposals` (each a
``proposal.add`` record: actor = the session's human, source = the model) and draw them in the
pending layers (see ``_proposal_layers``), never in the final labels layer. Before the run, the
image is checked against the card's input domain (read without loading the network): each property
outside it is one napari warning and a line in the status, and the run goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel._widgets._common import (
    display_name,
    image_layers,
    image_named,
    refill_image_combo,
    volume_of,
)
from napari_clinlabel._widgets._model_picker import RUN_TASKS, ModelPicker
from napari_clinlabel._widgets._proposal_layers import ProposalLayers
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.models import load_model
from napari_clinlabel.core.models.inference import InferenceCancelled
from napari_clinlabel.core.models.run import iter_run_model
from napari_clinlabel.core.proposals.lifecycle import Proposal, add_proposals, load_proposals
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session, image_sha256

if TYPE_CHECKING:
    import napari

LOG_SLICE_S = 0.05  # GUI-thread time per event-loop turn spent logging proposals
LABELS_NAME = "segmentation"  # the final labels layer accepted segment proposals go into


@dataclass
class _Logging:
    """Drafts of a finished run still to be logged, and the proposals logged so far."""

    model: Any
    drafts: list[Any]
    log: Any
    added: list[Proposal] = field(default_factory=list)
    failed: bool = False


def _run(volume: Any, spec: str, device: str, cancel: threading.Event) -> Generator[Any, None, Any]:
    """Worker body: load the model, run it; yields ``(done, total)``, returns ``(model, drafts)``."""
    yield 0, 1
    model = load_model(spec, device=device)
    drafts = yield from iter_run_model(volume, model, cancel=cancel)
    return model, drafts


class PrelabelWidget(QWidget):
    """Choose an image and a model, run it with progress and cancel; proposals land pending."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(viewer)
        self._viewer = viewer = self._session.viewer  # the viewer itself, not napari's proxy
        self._worker: Any = None
        self._cancel: threading.Event | None = None
        self._run_image: Any = None
        self._logging: _Logging | None = None
        self._proposals: list[Proposal] = []
        self._warnings: list[str] = []  # input-domain warnings of the last run, one per property

        self._image_combo = QComboBox()
        self._picker = ModelPicker(
            self, RUN_TASKS, "TorchScript model (card beside it as .pt.json or .json)"
        )
        self._model_combo, self._device_combo = self._picker.model_combo, self._picker.device_combo
        self._run_btn = QPushButton("Run")
        self._cancel_btn = QPushButton("Cancel")
        self._cancel_btn.setEnabled(False)
        self._progress = QProgressBar()
        self._progress.setRange(0, 1)
        self._progress.setValue(0)
        self._status = QLabel("Choose an image and a model, then Run.")
        self._status.setWordWrap(True)
        self._build()
        self._wire()
        self._refresh_images()

    # -- layout and wiring ---------------------------------------------------------------
    def _build(self) -> None:
        form = QFormLayout()
        form.addRow("Image", self._image_combo)
        self._picker.add_rows(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self._run_btn)
        buttons.addWidget(self._cancel_btn)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self._progress)
        lay.addWidget(self._status)
        # take only the height it needs: the Review widget docked below gets the rest
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

    def _wire(self) -> None:
        self._run_btn.clicked.connect(self._on_run)
        self._cancel_btn.clicked.connect(self._on_cancel)
        self._viewer.layers.events.inserted.connect(self._refresh_images)
        self._viewer.layers.events.removed.connect(self._refresh_images)
        self.destroyed.connect(self._disconnect_viewer)

    def _refresh_images(self, _event: Any = None) -> None:
        current = self._image_combo.currentText()
        names = [lay.name for lay in image_layers(self._viewer)]
        refill_image_combo(self._image_combo, names, current, self._session)

    def _disconnect_viewer(self, *_: Any) -> None:
        for sig in (self._viewer.layers.events.inserted, self._viewer.layers.events.removed):
            try:
                sig.disconnect(self._refresh_images)
            except (TypeError, ValueError, RuntimeError):
                pass

    def _image(self) -> Any:
        name = self._image_combo.currentText()
        return image_named(self._viewer, name)

    # -- handlers ------------------------------------------------------------------------
    def set_model(self, spec: str) -> None:
        """Choose ``builtin:NAME`` or a local model file (added to the list)."""
        self._picker.set_model(spec)

    def _on_run(self) -> None:
        image = self._image()
        if image is None:
            self._session.report_error(ClinlabelError("Open an image first, then run a model."))
            return
        try:
            volume = volume_of(image)
            self._session.log_for(image)  # refuse before the long work when nothing can be logged
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        spec = self._picker.spec
        try:
            self._warnings = self._picker.domain_warnings(volume)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        for line in self._warnings:  # before the run: the reader knows what to expect
            show_warning(line)
        self._run_image = image
        self._cancel = threading.Event()
        worker = thread_worker(_run, start_thread=False, ignore_errors=True)(
            volume, spec, self._picker.device, self._cancel
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._run_btn.setEnabled(False)
        self._cancel_btn.setEnabled(True)
        self._progress.setRange(0, 0)  # busy until the first window is done
        warned = "".join(f"\n⚠ {w}" for w in self._warnings)
        self._status.setText(f"Running {spec} on {display_name(image)}…{warned}")
        worker.start()

    def _on_cancel(self) -> None:
        if self._worker is None:
            return
        self._cancel.set()
        self._worker.quit()
        self._status.setText("Cancelling…")

    def _on_progress(self, step: tuple[int, int]) -> None:
        done, total = step
        if total > 1 or done:
            self._progress.setRange(0, max(int(total), 1))
            self._progress.setValue(int(done))

    def _on_done(self, result: tuple[Any, list[Any]]) -> None:
        """Log the drafts on the GUI thread, a slice per event-loop turn (each record is fsynced)."""
        model, drafts = result
        try:
            schema_id = getattr(model.card, "schema", None)
            if schema_id and self._session.schema_for(self._run_image) is None:
                # the proposals and their decisions in Review name the labels' schema, so a SEG
                # of the accepted labels has named, coded segments and layers its colours
                self._session.set_schema(self._run_image, load_schema(schema_id))
            log = self._session.log_for(self._run_image)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._logging = _Logging(model, list(drafts), log)
        self._cancel_btn.setEnabled(False)  # a model's work, once finished, is logged whole
        self._progress.setRange(0, max(len(drafts), 1))
        self._progress.setValue(0)
        self._status.setText(f"Logging {len(drafts)} proposal(s)…")
        self._log_some()

    def _log_some(self) -> None:
        job = self._logging
        end = time.perf_counter() + LOG_SLICE_S
        try:
            while job.drafts and time.perf_counter() < end:
                chunk, job.drafts = job.drafts[:4], job.drafts[4:]
                job.added += add_proposals(job.log, chunk, job.model, labels_name=LABELS_NAME)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            job.drafts = []
            job.failed = True
        self._progress.setValue(len(job.added))
        if job.drafts:
            QTimer.singleShot(0, self._log_some)
            return
        self._logging = None
        self._show_proposals(job)
        self._set_idle()

    def _show_proposals(self, job: _Logging) -> None:
        image = self._run_image
        self._proposals = load_proposals(job.log.path)
        shape = volume_of(image).spatial_shape
        ProposalLayers(self._viewer, image, job.log, image_sha256(image), shape).show_all(
            self._proposals
        )
        self._viewer.layers.selection.active = image
        ident = job.model.identity
        pending = sum(p.pending for p in self._proposals)
        stop = " (stopped: see the error)" if job.failed else ""
        self._status.setText(
            f"{ident.name} {ident.version}: {len(job.added)} proposal(s) added{stop}; {pending} "
            "pending review (Review proposals widget)."
        )

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, InferenceCancelled):
            self._status.setText("Cancelled; no proposals were made.")
            return
        self._status.setText("Failed; nothing was logged.")
        self._session.report_error(exc)

    def _on_aborted(self) -> None:
        self._status.setText("Cancelled; no proposals were made.")

    def _on_finished(self) -> None:
        self._worker = None
        if self._logging is None:
            self._set_idle()

    def _set_idle(self) -> None:
        self._run_btn.setEnabled(True)
        self._cancel_btn.setEnabled(False)
        done = self._progress.maximum() if "added" in self._status.text() else 0
        self._progress.setValue(done)

    # -- for tests and scripts -------------------------------------------------------------
    @property
    def worker(self) -> Any:
        """The running worker (None when idle)."""
        return self._worker

    @property
    def warnings(self) -> list[str]:
        """Input-domain warnings shown before the last run (one line per property)."""
        return list(self._warnings)

    @property
    def busy(self) -> bool:
        """True while a model runs or its proposals are being logged."""
        return self._worker is not None or self._logging is not None

    @property
    def proposals(self) -> list[Proposal]:
        """The image's proposals after the last completed run (all states, in order added)."""
        return list(self._proposals)
