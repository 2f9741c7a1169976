"""Audit widget: one table row per record, live; filter; Verify says valid or where it broke."""

from __future__ import annotations

import json

import pytest
from _viewer_helpers import add_ct
from qtpy.QtCore import Qt

from napari_clinlabel._session import get_session
from napari_clinlabel._widgets.audit import COLUMNS, AuditWidget
from napari_clinlabel.core.audit_log import iter_records

pytestmark = pytest.mark.gui


@pytest.fixture
def audited(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    labels.paint((6, 20, 20), 1)
    labels.paint((6, 40, 40), 2)
    widget = AuditWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, session, image, labels, widget


def _rows(widget, visible_only=False):
    t = widget._table
    return [
        [t.item(r, c).text() for c in range(len(COLUMNS))]
        for r in range(t.rowCount())
        if not (visible_only and t.isRowHidden(r))
    ]


def test_rows_are_the_records_and_follow_new_ones(audited, qtbot):
    viewer, session, image, labels, widget = audited
    path = session.log_path_for(image)
    recs = list(iter_records(path))
    rows = _rows(widget)
    assert [r[0] for r in rows] == [str(r["seq"]) for r in recs]
    assert [r[4] for r in rows] == ["image.open", "labels.create", "label.paint", "label.paint"]
    assert all(r[2] == recs[0]["actor"]["id"] and r[3] == "annotator" for r in rows)
    assert rows[2][5] == '{"labels":"segmentation"}' and rows[2][6] == "human"
    assert rows[3][7] == f"brush · label 2 · {recs[3]['data']['voxels']} voxels"
    labels.undo()
    assert len(_rows(widget)) == len(recs) + 1 and _rows(widget)[-1][4] == "label.paint"
    assert (
        _rows(widget)[-1][7].startswith("undo · label 0 ·") and "undoes 3" in _rows(widget)[-1][7]
    )

    qtbot.keyClicks(widget._filter, "create")
    assert [r[4] for r in _rows(widget, visible_only=True)] == ["labels.create"]
    widget._filter.clear()
    qtbot.keyClicks(widget._filter, "nobody-like-this")
    assert _rows(widget, visible_only=True) == []
    widget._filter.clear()
    qtbot.keyClicks(widget._filter, "UNDO")
    assert [r[0] for r in _rows(widget, visible_only=True)] == [str(len(recs))]
    widget._filter.clear()
    assert len(_rows(widget, visible_only=True)) == len(recs) + 1


def test_verify_shows_valid_then_where_a_tampered_log_breaks(audited, qtbot):
    viewer, session, image, labels, widget = audited
    path = session.log_path_for(image)
    qtbot.mouseClick(widget._verify, Qt.MouseButton.LeftButton)
    head = session.log_for(image).head()
    assert widget._result.text().startswith(f"valid: 4 records, head seq {head.seq} {head.hash}")
    assert "2e7d32" in widget._result.styleSheet()  # green

    lines = path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["data"]["voxels"] += 1  # edited field, hash left as it was
    lines[2] = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
    path.write_bytes(b"".join(lines))
    qtbot.mouseClick(widget._verify, Qt.MouseButton.LeftButton)
    assert widget._result.text().startswith("broken at seq 2:")
    assert "c62828" in widget._result.styleSheet()  # red

    del lines[2]  # a deleted record is caught where the chain breaks
    path.write_bytes(b"".join(lines))
    qtbot.mouseClick(widget._verify, Qt.MouseButton.LeftButton)
    assert widget._result.text().startswith("broken at seq 2:")
