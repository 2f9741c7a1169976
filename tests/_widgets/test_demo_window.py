"""`clinlabel demo` fits a 1080p laptop screen: the window it opens is at most 1000 px tall.

A layout check, not a timing one: Qt's own minimum size of the main window (what a window
manager can shrink it to) and the size the demo asks for, once the docks are laid out.
"""

from __future__ import annotations

from qtpy.QtWidgets import QApplication, QScrollArea

from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.cli.demo import WINDOW_SIZE, set_up

MAX_HEIGHT_PX = 1000  # 1080 px screen less a taskbar and the title bar


def test_ct_demo_window_fits_1000px(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer(show=True)
    set_up(viewer, "ct", tmp_path)
    window = viewer.window._qt_window
    window.layout().activate()
    QApplication.processEvents()
    assert WINDOW_SIZE[1] <= MAX_HEIGHT_PX
    assert window.minimumSizeHint().height() <= MAX_HEIGHT_PX
    assert window.geometry().height() <= MAX_HEIGHT_PX
    # the segmentation tools scroll; the label table stays out of the scroll area, every row shown
    (seg,) = [w for w in window.findChildren(SegmentationWidget)]
    table = seg._label_table
    assert not any(isinstance(p, QScrollArea) for p in _parents(table, seg))
    assert any(isinstance(p, QScrollArea) for p in _parents(seg.tools, seg))
    assert table.rowCount() == len(seg._schema.labels) > 0
    shown = table.horizontalHeader().height() + sum(
        table.rowHeight(r) for r in range(table.rowCount())
    )
    assert table.viewport().height() + table.horizontalHeader().height() >= shown


def _parents(widget, stop):
    parent = widget.parentWidget()
    while parent is not None and parent is not stop:
        yield parent
        parent = parent.parentWidget()


def test_mammogram_demo_window_fits_1000px(make_napari_viewer, tmp_path):
    """The tallest task docks (Lesion boxes with the mammogram's header rows, BI-RADS grading)
    beside the Session/Audit log tabs: the window still fits (it was 1094 px)."""
    viewer = make_napari_viewer(show=True)
    set_up(viewer, "mammogram", tmp_path)
    window = viewer.window._qt_window
    window.layout().activate()
    QApplication.processEvents()
    assert window.minimumSizeHint().height() <= MAX_HEIGHT_PX
    assert window.geometry().height() <= MAX_HEIGHT_PX
