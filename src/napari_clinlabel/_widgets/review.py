"""Review widget: a human decides model proposals one at a time, one key and one log record each.

Keys (bound on the viewer and on the layer in use; the widget forwards its own key presses too):
``A`` accept as proposed, ``E`` edit, ``R`` reject, ``N`` / ``P`` next / previous undecided
proposal. What ``E`` does depends on the proposal:

- segment: the proposal is copied into the "proposal edit" layer and selected with the brush;
  change it with napari's tools, then ``E`` again or *Confirm edit*.
- box: the box under review is drawn in yellow and its layer is selected in select mode; drag or
  resize it on the slice in view (a 3D box keeps its slice range), then ``E`` accepts it as edited
  with the new ``zyx_min``/``zyx_max``. ``E`` on a box left as proposed records nothing and says
  to press ``A`` (an "edit" that changes nothing would misstate what the reviewer did). A change
  not confirmed is dropped when another proposal is shown.
- grade: the proposed grade is chosen in the grade chooser, which lists the scale's grades; pick
  another with ``Up``/``Down`` (or in the chooser, which passes A/E/R/N/P on), then ``E``. ``E``
  with the proposed grade still chosen records nothing and says to press ``A``.

Each decision is one core call
(:func:`~napari_clinlabel.core.proposals.lifecycle.accept`, ``edit`` or ``reject``) and so one record naming
the model. Segment decisions write into the managed final labels layer in place; the session's
recorder is told which voxels changed, so it never logs them a second time. After a decision the
next undecided proposal is shown at once: only the voxels of the two proposals concerned are
redrawn. There is deliberately no accept-all, no accept-by-score and no multi-select.

The order and the cursor are core's :class:`~napari_clinlabel.core.proposals.review_queue.ReviewQueue`:
the reviewer may review largest first or highest score first, and jump to the next undecided
proposal of at least N voxels ("Next large"); sorting changes only what is shown next.

*Retract run…* rejects, in one ``proposal.retract`` record with the reason typed, every undecided
proposal of the shown proposal's model (core ``retract_run``); it asks first and never accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel._widgets._common import (
    KeyBinder,
    image_layers,
    image_named,
    refill_image_combo,
    volume_of,
)
from napari_clinlabel._widgets._proposal_layers import ProposalLayers
from napari_clinlabel._widgets._proposal_text import describe
from napari_clinlabel._widgets._review_edits import ReviewEdits, is_grade
from napari_clinlabel._widgets._review_parts import KEYS, DecisionButtons, GradeChooser, OrderRow
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.proposals.lifecycle import Proposal, retract_run
from napari_clinlabel.core.proposals.review_queue import ReviewQueue, indices_centre
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session, image_sha256

if TYPE_CHECKING:
    import napari

LABELS_NAME = "segmentation"
RELOAD_DELAY_MS = 300


class ReviewWidget(ReviewEdits, QWidget):
    """Walk the undecided proposals of one image: accept, edit or reject each, by one key."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(viewer)
        self._viewer = viewer = self._session.viewer  # the viewer itself, not napari's proxy
        self._keys = KeyBinder(viewer)
        self._keys.follow_visibility(self)
        self._image: Any = None
        self._volume: Any = None
        self._log: Any = None
        self._layers: ProposalLayers | None = None
        self._queue: ReviewQueue | None = None
        self._editing: Proposal | None = None
        self._reload_due = False
        self._bound: tuple[Any, bool] | None = None  # (layer the keys are on, grade keys too)

        self._image_combo = QComboBox()
        self._reload_btn = QPushButton("Load proposals")
        self._retract_btn = QPushButton("Retract run…")
        self._retract_btn.setToolTip(
            "Reject every undecided proposal of the shown proposal's model run, with a reason "
            "(one record; nothing is accepted)"
        )
        self._order_row = OrderRow()
        self._count = QLabel("No proposals loaded.")
        self._info = QLabel("")
        self._info.setWordWrap(True)
        self._info.setTextFormat(Qt.TextFormat.PlainText)
        self._info.setMinimumHeight(8 * self._info.fontMetrics().lineSpacing())
        self._grade_combo = GradeChooser(lambda key: self._handlers()[key]())
        self._grade_row = QWidget()
        self._info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self._buttons = DecisionButtons()
        b = self._buttons
        self._accept_btn, self._edit_btn, self._reject_btn = b.accept, b.edit, b.reject
        self._prev_btn, self._next_btn = b.previous, b.next
        self._confirm_btn, self._discard_btn = b.confirm, b.discard
        self._build()
        self._wire()
        self._refresh_images()

    # -- layout and wiring ---------------------------------------------------------------
    def _build(self) -> None:
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self._image_combo, 1)
        row.addWidget(self._reload_btn)
        form.addRow("Image", row)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self._order_row)
        lay.addWidget(self._count)
        lay.addWidget(self._info)
        grade = QFormLayout(self._grade_row)
        grade.setContentsMargins(0, 0, 0, 0)
        grade.addRow("Grade", self._grade_combo)
        self._grade_row.setVisible(False)
        lay.addWidget(self._grade_row)
        lay.addWidget(self._buttons)
        lay.addWidget(self._retract_btn)
        lay.addStretch(1)
        self._show_edit_buttons(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def _wire(self) -> None:
        self._image_combo.activated.connect(lambda _i: self._on_load())
        self._reload_btn.clicked.connect(self._on_load)
        self._retract_btn.clicked.connect(self._on_retract)
        self._order_row.order_combo.currentIndexChanged.connect(self._on_order)
        self._order_row.large_btn.clicked.connect(self._on_next_large)
        for btn, fn in ((self._accept_btn, self._on_accept), (self._edit_btn, self._on_edit),
                        (self._reject_btn, self._on_reject), (self._prev_btn, self._on_previous),
                        (self._next_btn, self._on_next), (self._confirm_btn, self._on_confirm_edit),
                        (self._discard_btn, self._on_discard_edit)):  # fmt: skip
            btn.clicked.connect(fn)
        self._viewer.layers.events.inserted.connect(self._refresh_images)
        self._viewer.layers.events.removed.connect(self._refresh_images)
        self._session.record_appended.connect(self._on_record)
        self.destroyed.connect(self._disconnect_viewer)

    def _handlers(self) -> dict[str, Any]:
        return {"a": self._on_accept, "e": self._on_e_key, "r": self._on_reject,
                "n": self._on_next, "p": self._on_previous}  # fmt: skip

    def _bind_keys(self, layer: Any, grade: bool = False) -> None:
        """A/E/R/N/P on the viewer and ``layer`` (plus Up/Down while a grade is shown)."""
        if self._bound == (layer, grade):
            return
        keys = self._handlers()
        if grade:
            keys.update(Up=lambda: self._step_grade(-1), Down=lambda: self._step_grade(+1))
        self._keys.bind(keys, layer=layer)
        self._bound = (layer, grade)

    def _refresh_images(self, _event: Any = None) -> None:
        names = [lay.name for lay in image_layers(self._viewer)]
        current = self._image.name if self._image is not None else self._image_combo.currentText()
        refill_image_combo(self._image_combo, names, current, self._session)
        if self._image is None and names:
            self._on_load()

    def _disconnect_viewer(self, *_: Any) -> None:
        self._keys.release()
        self._session.record_appended.disconnect(self._on_record)
        for sig in (self._viewer.layers.events.inserted, self._viewer.layers.events.removed):
            try:
                sig.disconnect(self._refresh_images)
            except (TypeError, ValueError, RuntimeError):
                pass

    # -- loading -------------------------------------------------------------------------
    def _on_record(self, rec: dict[str, Any]) -> None:
        """New proposals for the image under review (e.g. from Pre-label): reload once, soon."""
        if rec.get("action") != "proposal.add" or self._image is None or self._reload_due:
            return
        if (rec.get("image") or {}).get("sha256") != image_sha256(self._image):
            return
        self._reload_due = True  # a model's proposals arrive in a burst: reload once it settles
        QTimer.singleShot(RELOAD_DELAY_MS, self._reload_when_idle)

    def _reload_when_idle(self) -> None:
        if self._editing is not None:  # never pull the edited proposal away: try again later
            QTimer.singleShot(500, self._reload_when_idle)
            return
        self._reload_due = False
        shown = self.current
        self._on_load()
        if shown is not None and self._queue.go_to(shown.id) is not None:
            self._show()

    def _on_load(self) -> None:
        """(Re)load the chosen image's proposals from its log and show the first undecided one."""
        image = image_named(self._viewer, self._image_combo.currentText())
        if image is None:
            return
        try:
            log = self._session.log_for(image)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._image, self._log = image, log
        self._volume = volume_of(image)
        self._queue = ReviewQueue(log)
        self._queue.order_by(self._order_row.order)
        self._layers = ProposalLayers(
            self._viewer, image, log, image_sha256(image), self._volume.spatial_shape
        )
        self._layers.show_all(self._queue.proposals)
        if any(p.pending and p.kind == "segment" for p in self._queue.proposals):
            try:  # the final labels layer decisions go into, shown beside the pending ones
                own = self._session.reader_labels_name(image, LABELS_NAME)  # blinded: the reader's
                self._colour_from_schema(self._session.labels_layer_for(image, own))
            except ClinlabelError as exc:
                self._session.report_error(exc)
        self._viewer.layers.selection.active = image
        self._bound = None
        self._bind_keys(image)
        self._show()

    def _colour_from_schema(self, layer: Any) -> None:
        """The final labels take the colours of the schema in force for the image (liver red…)."""
        ref = self._session.schema_for(self._image) if self._image is not None else None
        if not ref or not ref.get("id"):
            return
        schema = load_schema(ref["id"])
        if schema.labels:
            colors: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
            colors.update({lab.value: lab.color for lab in schema.labels})
            layer.colormap = DirectLabelColormap(color_dict=colors)

    # -- decisions -----------------------------------------------------------------------
    def _on_accept(self) -> None:
        if self._decidable() is not None:
            self._decide(lambda labels: self._queue.accept(*labels))

    def _on_reject(self) -> None:
        if self._decidable() is not None:
            self._decide(lambda _labels: self._queue.reject(), needs_labels=False)

    def _on_e_key(self) -> None:
        if self._editing is not None:
            self._on_confirm_edit()
        else:
            self._on_edit()

    def _warn(self, text: str) -> None:
        self._info.setText(self._info.text().split("\n⚠")[0] + "\n⚠ " + text)

    def _decidable(self) -> Proposal | None:
        if self._editing is not None:
            self._warn("Finish the edit first: E / Confirm edit, or Discard edit.")
            return None
        p = self.current
        return p if p is not None and p.pending else None

    def _decide(self, call: Any, needs_labels: bool = True, extra_idx: Any = None) -> bool:
        """Run one core decision on the proposal shown; keep the labels recorder in step; show
        the next proposal (the queue has moved on)."""
        p = self.current
        labels_layer, recorder, touched = None, None, None
        try:
            if needs_labels and p.kind == "segment":
                own = self._session.reader_labels_name(self._image, LABELS_NAME)  # the reader's
                labels_layer = self._session.labels_layer_for(self._image, own)
                recorder = self._session.recorder_for(labels_layer)
                touched = self._layers.indices(p) if extra_idx is None else extra_idx
                call((labels_layer.data, own))
            else:
                call((None, LABELS_NAME if p.kind != "grade" else None))
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return False
        if labels_layer is not None and recorder is not None:
            # the record is written: the recorder's shadow (the log's view) follows it
            recorder.shadow.reshape(-1)[touched] = labels_layer.data.reshape(-1)[touched]
        self._layers.drop(p, self._queue.proposals)
        self._show(labels_layer)
        return True

    # -- navigation ----------------------------------------------------------------------
    def _on_next(self) -> None:
        if self._editing is None and self.current is not None:
            self._queue.next()
            self._show()

    def _on_previous(self) -> None:
        if self._editing is None and self.current is not None:
            self._queue.previous()
            self._show()

    def _on_retract(self) -> None:
        """Retract the shown proposal's model run: confirm, ask why, one ``proposal.retract``."""
        p = self.current
        if self._editing is not None or p is None or not p.pending:
            self._warn("Show an undecided proposal of the run to retract.")
            return
        same = [q for q in self._queue.added if q.pending and q.model == p.model]
        m = p.model
        reason, ok = QInputDialog.getText(
            self,
            "Retract model run",
            f"Reject all {len(same)} undecided proposal(s) of {m['name']} {m['version']} "
            f"({m['sha256'][:12]}…)? Nothing is accepted; decided ones stay. Reason:",
        )
        if not ok or not reason.strip():
            self._warn("Not retracted (no reason given).")
            return
        try:
            retract_run(self._log, m, reason, proposals=self._queue.added)
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        self._on_load()  # the run's proposals leave the pending layers; the next run's show

    def _on_next_large(self) -> None:
        if self._editing is not None or self._queue is None:
            return
        min_voxels = self._order_row.large_spin.value()
        if self._queue.next_large(min_voxels) is None:
            self._warn(f"No undecided proposal of {min_voxels} voxels or more.")
            return
        self._show()

    def _on_order(self, _index: int = 0) -> None:
        if self._queue is not None and self._editing is None:
            self._queue.order_by(self._order_row.order)
            self._queue.first()  # a new order starts at its top: the largest, or the surest
            self._show()

    def _show(self, changed_labels: Any = None) -> None:
        """Centre the view on the proposal under review, highlight it and describe it.

        The layers' arrays are already up to date; a move to another slice re-slices every layer,
        so the changed layers are refreshed here only when the view stays on the same slice.
        """
        p = self.current
        self._layers.highlight(p)
        if p is not None and p.kind == "box":
            self._bind_keys(self._layers.arm_box())  # the box can be dragged at once
        else:
            self._layers.disarm_box()
            self._bind_keys(self._image, grade=is_grade(p))
        self._show_counts()
        moved = False
        if p is None:
            done = bool(self._queue.proposals)
            self._info.setText("All proposals decided." if done else "No proposals for this image.")
            self._set_buttons(False)
        else:
            self._set_buttons(True)
            self._info.setText(describe(p, self._volume.geometry))
            idx = self._layers.indices(p)
            if idx.size:
                moved = self._layers.centre_on(indices_centre(idx, self._volume.spatial_shape))
        self._show_grades(p)
        if not moved:
            self._layers.refresh()
            if changed_labels is not None:
                changed_labels.refresh()

    # -- text ----------------------------------------------------------------------------
    def _show_counts(self) -> None:
        q = self._queue
        at = "" if q.position is None else f" — showing #{q.position + 1}"
        self._count.setText(f"{q.decided} of {len(q.proposals)} decided{at}")

    def _set_buttons(self, enabled: bool) -> None:
        for b in (*self._buttons.deciding(), self._order_row.large_btn, self._retract_btn):
            b.setEnabled(enabled)

    def _show_edit_buttons(self, editing: bool) -> None:
        self._confirm_btn.setVisible(editing)
        self._discard_btn.setVisible(editing)
        self._set_buttons(not editing and self.current is not None)
        self._edit_btn.setEnabled(self.current is not None)

    # -- keys on the widget itself ---------------------------------------------------------
    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """A/E/R/N/P (and Up/Down on a grade) work while the widget has focus, too."""
        key = KEYS.get(event.key())
        if key is not None and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            if key in ("Up", "Down"):
                self._step_grade(-1 if key == "Up" else +1)
            else:
                self._handlers()[key]()
            event.accept()
            return
        super().keyPressEvent(event)

    # -- for tests and scripts -------------------------------------------------------------
    @property
    def proposals(self) -> list[Proposal]:
        """The image's proposals (all states, in order added)."""
        return [] if self._queue is None else list(self._queue.added)

    @property
    def queue(self) -> ReviewQueue | None:
        """The review queue (order, cursor, decisions) of the image loaded."""
        return self._queue

    @property
    def current(self) -> Proposal | None:
        """The proposal shown now (None when all are decided)."""
        return None if self._queue is None else self._queue.current

    @property
    def grade_choice(self) -> str | None:
        """The grade chosen in the chooser (None when no grade proposal is shown)."""
        return self._grade_combo.currentData() if not self._grade_row.isHidden() else None

    @property
    def edit_layer(self) -> Any:
        """The layer an edit happens in (None until the first edit)."""
        return None if self._layers is None else self._layers.edit
