"""Adjudication widget: readers' labels side by side, their disagreement, the metrics; decide, sign.

A thin translator over :mod:`napari_clinlabel.core.quality.adjudication`. The adjudicator loads the
readers' logs of the open image; each read becomes a read-only labels layer (``read: <id>``),
their disagreement a layer of its own, the pairwise Dice/HD95 a table (HD95 in px when the
image states no pixel size). The decision is drafted on
the ``adjudication draft`` layer — accept a reader, start from a majority merge, or paint — and
becomes final only through **Sign**, which writes one ``adjudicate`` record (the full change, the
reason, the reads cited) and one ``sign`` record. A reader opening this widget sees only their own
read until the image is adjudicated.

Each read's grades are listed; for each grade the reads disagree on, a chooser holds the final
grade (empty until the adjudicator picks it, or accepts a reader, which sets it to that reader's
grade in view before signing). Signing with a disputed grade unchosen is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_clinlabel.core.annotate.grading import scale_for_proposal
from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.quality import adjudication as adj
from napari_clinlabel.core.quality.metrics import MM_KEYS, PX_KEYS, distance_units
from napari_clinlabel.glue.session import get_session, image_sha256

DRAFT = "adjudication draft"
DISAGREEMENT = "disagreement"
# one colour no label map uses, so the disagreement stands out over the reads
DISAGREEMENT_COLORS = {None: "transparent", 0: "transparent", 1: "yellow"}
METRIC_COLUMNS = ("pair", "label", "Dice", "HD95 mm", "voxels A", "voxels B")
METRIC_COLUMNS_PX = ("pair", "label", "Dice", "HD95 px", "pixels A", "pixels B")


class AdjudicationWidget(QWidget):
    """Load the reads of the open image, compare them, draft the decision, give a reason, sign."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(napari_viewer)
        self._viewer = self._session.viewer  # the viewer itself, not napari's proxy
        self._reads: list[adj.Read] = []
        self._image: Any = None
        self._logs = QLineEdit()
        self._logs.setPlaceholderText("empty: the image's own shared log")
        self._logs.setToolTip(
            "The readers' logs of this image, separated by ';' (Add reader log… appends one); "
            "empty: the reads in the image's own shared log"
        )
        self._browse = QPushButton("Add reader log…")
        self._load = QPushButton("Load reads")
        self._reader = QComboBox()
        self._accept = QPushButton("Accept this reader")
        self._merge = QPushButton("Start from majority")
        self._table = QTableWidget(0, len(METRIC_COLUMNS))
        self._table.setHorizontalHeaderLabels(METRIC_COLUMNS)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.verticalHeader().setVisible(False)
        # as wide as its columns, so no metric is hidden behind a scroll bar
        self._table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self._grades = QLabel("")
        self._grades.setWordWrap(True)
        self._grade_form = QFormLayout()
        _wrapping(self._grade_form)
        self._grade_pick: dict[str, QComboBox] = {}  # disputed scale -> final grade chooser
        self._accepted: str | None = None  # the reader whose read was accepted into the draft
        self._reason = QLineEdit()
        self._reason.setPlaceholderText("why this decision (required)")
        self._sign = QPushButton("Sign adjudication")
        self._status = QLabel("load the readers' logs of the open image")
        self._status.setWordWrap(True)
        self._build_layout()
        self._browse.clicked.connect(self._on_browse)
        self._load.clicked.connect(self._on_load)
        self._accept.clicked.connect(self._on_accept)
        self._merge.clicked.connect(self._on_merge)
        self._sign.clicked.connect(self._on_sign)
        self._set_deciding(False)

    def _build_layout(self) -> None:
        """Labelled rows in two groups, narrow-dock safe: long rows wrap under their label,
        choosers shrink to their minimum (their lists still show in full), texts word-wrap."""
        _narrow(self._reader)
        self._table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        layout = QVBoxLayout(self)
        reads = _form(layout, "Reads")
        reads.addRow("Reader logs", self._logs)
        reads.addRow(_row(self._browse, self._load))
        reads.addRow(self._table)
        decide = _form(layout, "Decision")
        decide.addRow("Reader", self._reader)
        decide.addRow(_row(self._accept, self._merge))
        decide.addRow(self._grades)
        decide.addRow(self._grade_form)
        decide.addRow("Reason", self._reason)
        decide.addRow(self._sign)
        layout.addWidget(self._status)
        layout.addStretch(1)  # spare height below the controls, not inside the table

    def _set_deciding(self, on: bool) -> None:
        for w in (self._reader, self._accept, self._merge, self._reason, self._sign,
                  *self._grade_pick.values()):  # fmt: skip
            w.setEnabled(on)

    # -- handlers ----------------------------------------------------------------------------
    def _on_browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reader log", "", "Sidecar logs (*.jsonl)")
        if path:
            text = self._logs.text().strip()
            self._logs.setText(f"{text};{path}" if text else path)

    def _on_load(self) -> None:
        try:
            image = self._session.active_image()
            if image is None:
                raise InputError("open the image to adjudicate first")
            paths = [p.strip() for p in self._logs.text().split(";") if p.strip()]
            if not paths:  # readers who shared the folder: their reads are in the image's own log
                paths = [str(self._session.log_path_for(image))]
            reads = adj.load_reads(paths, image_sha=image_sha256(image))
            actor = self._session.actor
            if actor is None:
                raise InputError(self._session.actor_error or "no one is signed in")
            own = self._session.log_path_for(image)
            done = own.exists() and adj.is_adjudicated(own)
            if actor.role == "adjudicator":
                self._session.log_for(image)  # the adjudicator's log of the image (image.open)
            self._show(
                image, reads, adj.visible_reads(reads, actor, done), actor.role == "adjudicator"
            )
        except ClinlabelError as exc:
            self._session.report_error(exc)

    def _on_accept(self) -> None:
        read = next((r for r in self._reads if r.reader == self._reader.currentText()), None)
        if read is not None:
            self._draft().data = read.labels.copy()
            self._accepted = read.reader
            for scale, box in self._grade_pick.items():  # the read's grade, shown before signing
                value = read.grades.get(scale)
                if value is not None:
                    box.setCurrentIndex(max(box.findData(value), 0))

    def _on_merge(self) -> None:
        self._draft().data = adj.merge_reads(self._reads, "majority")
        self._accepted = None

    def _on_sign(self) -> None:
        try:
            log = self._session.log_for(self._image)
            result = np.asarray(self._draft().data)
            grades = {s: b.currentData() for s, b in self._grade_pick.items() if b.currentData()}
            rec, sig = adj.adjudicate(
                log, self._reads, result, self._reason.text(), grades=grades,
                grades_from=self._accepted,
            )  # fmt: skip
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return
        what = rec["data"]["decision"] + (
            f" {rec['data']['reader']}" if "reader" in rec["data"] else ""
        )
        final = rec["data"].get("grades") or {}
        if final:
            what += "; grade " + ", ".join(f"{k} {v}" for k, v in final.items())
        self._status.setText(f"signed: adjudicate seq {rec['seq']} ({what}), sign seq {sig['seq']}")
        self._set_deciding(False)

    # -- layers ------------------------------------------------------------------------------
    def _labels_layer(self, name: str, data: np.ndarray, **kwargs: Any) -> Labels:
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        img = self._image
        layer = Labels(data, name=name, affine=img.affine, scale=img.scale, translate=img.translate,
                       rotate=img.rotate, shear=img.shear, **kwargs)  # fmt: skip
        self._viewer.add_layer(layer)
        return layer

    def _draft(self) -> Labels:
        return self._viewer.layers[DRAFT]

    def _show(
        self, image: Any, reads: list[adj.Read], visible: list[adj.Read], deciding: bool
    ) -> None:
        self._image, self._reads = image, reads
        for r in visible:
            layer = self._labels_layer(f"read: {r.reader}", r.labels.copy(), opacity=0.5)
            layer.editable = False
        self._table.setRowCount(0)
        self._table.setMinimumWidth(0)
        self._reader.clear()
        if deciding:
            self._labels_layer(DISAGREEMENT, adj.disagreement_map(reads), opacity=0.7,
                               colormap=DirectLabelColormap(color_dict=DISAGREEMENT_COLORS))  # fmt: skip
            self._labels_layer(DRAFT, np.zeros_like(reads[0].labels))
            self._fill_table(adj.pairwise_agreement(reads))
            self._reader.addItems([r.reader for r in reads])
            self._fill_grades(reads)
            self._status.setText(
                f"{len(reads)} reads loaded; draft the decision, give a reason, sign"
            )
        else:
            self._status.setText(
                "blinded: you see your own read only until this image is adjudicated"
            )
        self._set_deciding(deciding)

    def _fill_grades(self, reads: list[adj.Read]) -> None:
        """Each read's grades; a chooser of the final grade for each scale they disagree on."""
        while self._grade_form.rowCount():
            self._grade_form.removeRow(0)
        self._grade_pick = {}
        self._accepted = None
        lines = [
            f"{r.reader}: " + (", ".join(f"{k} {v}" for k, v in r.grades.items()) or "no grade")
            for r in reads
        ]
        disputed = adj.grade_disagreements(reads)
        for scale, values in disputed.items():
            lines.append(
                f"DISAGREE on {scale}: "
                + " vs ".join(f"{u} {v or '(none)'}" for u, v in values.items())
                + " — choose the final grade"
            )
            box = QComboBox()
            _narrow(box)
            box.addItem("(choose)", None)
            given = [v for v in dict.fromkeys(values.values()) if v is not None]
            for v in given:
                who = ", ".join(u for u, x in values.items() if x == v)
                box.addItem(f"{v} ({who})", v)
            sc = scale_for_proposal({"scale": scale, "value": given[0] if given else ""})
            for v in sc.values if sc is not None and sc.id == scale else []:
                if v.value not in given:
                    box.addItem(f"{v.value} {v.label}".strip(), v.value)
            self._grade_form.addRow(f"final {scale}", box)
            self._grade_pick[scale] = box
        self._grades.setText("Grades:\n" + "\n".join(lines))

    def _fill_table(self, pairs: dict[str, dict[str, dict[str, Any]]]) -> None:
        px = any(distance_units(m) == "px" for p in pairs.values() for m in p.values())
        self._table.setHorizontalHeaderLabels(METRIC_COLUMNS_PX if px else METRIC_COLUMNS)
        hd_key = PX_KEYS[0] if px else MM_KEYS[0]
        for pair, per_label in pairs.items():
            for label, m in per_label.items():
                row = self._table.rowCount()
                self._table.insertRow(row)
                cells = [pair, label, f"{m['dice']:.3f}", f"{m[hd_key]:.2f}", str(m["voxels_a"]),
                         str(m["voxels_b"])]  # fmt: skip
                for col, text in enumerate(cells):
                    self._table.setItem(row, col, QTableWidgetItem(text))
        self._table.resizeColumnsToContents()
        # every metric in view: the dock is never narrower than the table's columns
        frame = 2 * self._table.frameWidth()
        self._table.setMinimumWidth(self._table.horizontalHeader().length() + frame)

    def load_reads(self, paths: list[Path]) -> None:
        """Load these readers' logs of the open image (what the Worklist does from its queue)."""
        self._logs.setText(";".join(str(p) for p in paths))
        self._on_load()

    def log_paths(self) -> list[Path]:
        """The reader logs named in the widget (for tests and scripting)."""
        return [Path(p.strip()) for p in self._logs.text().split(";") if p.strip()]


def _form(layout: QVBoxLayout, title: str) -> QFormLayout:
    """A titled group with a form whose long rows wrap under their label in a narrow dock."""
    box = QGroupBox(title)
    form = QFormLayout(box)
    _wrapping(form)
    layout.addWidget(box)
    return form


def _wrapping(form: QFormLayout) -> None:
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)


def _row(*buttons: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    for b in buttons:
        row.addWidget(b, 1)
    return row


def _narrow(box: QComboBox) -> None:
    """A chooser that does not widen the dock to its longest item (the list shows it in full)."""
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)
