"""The label table shows every label of a schema without scrolling (the demo's complaint: six
abdominal labels squeezed into one visible row); only a list longer than MAX_ROWS_SHOWN scrolls."""

from __future__ import annotations

import pytest

from napari_clinlabel._widgets._label_table import MAX_ROWS_SHOWN, LabelTable
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.schema import load_schema

pytestmark = pytest.mark.gui


def test_demo_layout_shows_every_label(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)  # the demo's window
    for name in ("Session", "Audit log"):  # the demo's first tab group above the task widget
        viewer.window.add_plugin_dock_widget("napari-clinlabel", name, tabify=name != "Session")
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    qtbot.wait(100)
    table = widget._label_table
    assert table.rowCount() == len(load_schema("abdomen-ct").labels) == 6
    assert table.rows_visible() == 6
    assert not table.verticalScrollBar().isVisible()


def test_long_label_list_scrolls_past_the_cap(qtbot):
    labels = load_schema("abdomen-ct").labels
    table = LabelTable()
    qtbot.addWidget(table)
    table.set_labels(labels, extra=list(range(100, 100 + MAX_ROWS_SHOWN)))  # 18 rows
    table.resize(500, table.minimumHeight())
    table.show()
    qtbot.wait(50)
    assert table.rows_visible() == MAX_ROWS_SHOWN
    assert table.verticalScrollBar().isVisible()
    table.set_labels(labels[:2])  # back to a short list: fits, no bar
    table.resize(500, table.maximumHeight())
    qtbot.wait(50)
    assert table.rows_visible() == 2 and not table.verticalScrollBar().isVisible()
