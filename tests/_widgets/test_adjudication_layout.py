"""Adjudication dock layout with two reads and a grade dispute loaded: nothing clipped or
overlapping, every metric column in view, at the width napari docks it and at the narrowest
width the dock allows.

The oracle is Qt's own size hints: a button or one-line label narrower than its ``sizeHint``
clips its text; a word-wrapped label lower than ``heightForWidth`` hides a line.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from qtpy.QtCore import QRect, Qt
from qtpy.QtWidgets import QComboBox, QDockWidget, QLabel, QLineEdit, QPushButton, QWidget
from support.agreement_fixtures import ellipsoid, write_reader_log
from support.trusted_roster import write_roster
from support.viewer_helpers import SHAPE, add_ct

from napari_clinlabel._widgets.adjudication import AdjudicationWidget
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session, image_sha256

pytestmark = pytest.mark.gui
NARROW_DOCK_PX = 480  # the dock may be made this narrow: the metrics table's own width


def _loaded(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    monkeypatch.setenv("CLINLABEL_USER", "carol")
    monkeypatch.setenv("CLINLABEL_ROLE", "adjudicator")
    write_roster(tmp_path, {"ann": ["annotator"], "ben": ["annotator"], "carol": ["adjudicator"]})
    (tmp_path / "adj").mkdir()
    viewer = make_napari_viewer(show=True)
    image = add_ct(viewer, tmp_path / "adj")
    geom = Geometry.from_dict(image.metadata["clinlabel"]["geometry"])
    labels = np.zeros(SHAPE, np.uint8)
    labels[ellipsoid(SHAPE, (6, 30, 30), (4, 12, 12))] = 1
    logs = []
    for reader, grade in (("ann", "4A"), ("ben", "2")):
        (tmp_path / reader).mkdir()
        logs.append(write_reader_log(tmp_path / reader / "ct.nii.gz.clinlabel.jsonl", labels,
                                     reader, image_sha=image_sha256(image), geom=geom,
                                     grades={"assessment": grade}, schema=load_schema("birads")))  # fmt: skip
    widget = AdjudicationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Adjudication")
    errors: list[str] = []
    monkeypatch.setattr(get_session(viewer), "report_error", lambda exc: errors.append(str(exc)))
    widget.load_reads(logs)
    assert errors == [] and widget._table.rowCount() == 1 and "assessment" in widget._grade_pick
    qtbot.wait(50)
    return viewer, widget


def _controls(widget: QWidget) -> list[QWidget]:
    kinds = (QPushButton, QComboBox, QLineEdit, QLabel)
    return [w for w in widget.findChildren(QWidget) if isinstance(w, kinds) and w.isVisible()
            and not isinstance(w.parentWidget(), QComboBox)]  # fmt: skip


def _problems(widget: QWidget) -> list[str]:
    found = []
    controls = _controls(widget)
    for w in controls:
        name = f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}"
        if isinstance(w, QPushButton | QLabel) and not (isinstance(w, QLabel) and w.wordWrap()):
            if w.width() < w.sizeHint().width():
                found.append(f"{name} clipped: {w.width()} < {w.sizeHint().width()} px")
        elif isinstance(w, QLabel) and w.height() < w.heightForWidth(w.width()):
            found.append(f"{name} loses a line: {w.height()} < {w.heightForWidth(w.width())} px")
    table = widget._table
    if table.viewport().width() < table.horizontalHeader().length():
        found.append("metrics table: a column is behind the scroll bar")
    rects = {w: QRect(w.mapTo(widget, w.rect().topLeft()), w.size()) for w in controls}
    for a, b in itertools.combinations(controls, 2):
        if rects[a].intersects(rects[b]):
            found.append(f"{type(a).__name__} {a.objectName()} overlaps {type(b).__name__}")
    return found


def _settled(qtbot, widget: QWidget) -> list[str]:
    """The problems left once the dock has settled (napari resizes a new dock in steps)."""
    try:
        qtbot.waitUntil(lambda: not _problems(widget), timeout=3000)
    except qtbot.TimeoutError:  # report what is still wrong
        pass
    return _problems(widget)


def test_adjudication_dock_neither_clips_nor_overlaps(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    viewer, widget = _loaded(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    assert _settled(qtbot, widget) == []  # as docked
    # the BI-RADS chooser's long items do not widen the dock (only the metrics table does)
    narrowest = widget.minimumSizeHint().width()
    assert narrowest <= NARROW_DOCK_PX
    dock = widget.parentWidget()
    while not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    viewer.window._qt_window.resizeDocks([dock], [narrowest], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: widget.width() <= narrowest)
    assert _settled(qtbot, widget) == []
    # ... and the chooser's list still shows each grade in full
    box = widget._grade_pick["assessment"]
    box.showPopup()
    try:
        assert box.view().width() >= box.view().sizeHintForColumn(0)
    finally:
        box.hidePopup()
