"""Audit widget: one table row per record, live; filter; Verify says valid or where it broke."""

from __future__ import annotations

import json

import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct

from napari_clinlabel._widgets.audit import COLUMNS, AuditWidget
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.present import record_cells
from napari_clinlabel.glue.session import get_session

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
    qtbot.waitUntil(lambda: not widget.loading)  # the log is read off the GUI thread
    return viewer, session, image, labels, widget


def _rows(widget, visible_only=False):
    """The cells the table shows (every row, or only those the filter lets through)."""
    rows = widget.rows(visible_only=visible_only)
    assert all(len(r) == len(COLUMNS) for r in rows)
    model = widget._table.model()
    shown = [
        [model.index(r, c).data() for c in range(model.columnCount())]
        for r in range(model.rowCount())
    ]
    if visible_only:
        assert shown == rows  # what rows() reports is what the view's model hands the view
    return rows


def _verify(qtbot, widget):
    """Click Verify as a user does; the button is off and says so until the worker answers."""
    qtbot.mouseClick(widget._verify, Qt.MouseButton.LeftButton)
    assert not widget._verify.isEnabled() and widget._result.text() == "verifying…"
    qtbot.waitUntil(widget._verify.isEnabled, timeout=20_000)


def test_rows_are_the_records_and_follow_new_ones(audited, qtbot):
    viewer, session, image, labels, widget = audited
    path = session.log_path_for(image)
    recs = list(iter_records(path))
    rows = _rows(widget)
    assert [r[0] for r in rows] == [str(r["seq"]) for r in recs]
    assert rows == [list(record_cells(r)) for r in recs]  # the presenter `log show` prints too
    assert [r[4] for r in rows] == ["image.open", "labels.create", "label.paint", "label.paint"]
    assert all(r[2] == recs[0]["actor"]["id"] and r[3] == "annotator" for r in rows)
    assert rows[2][5] == '{"labels":"segmentation"}' and rows[2][6] == "human"
    assert rows[3][7] == f"brush · label 2 · {recs[3]['data']['voxels']} voxels"
    assert widget._count.text() == "4 records"
    labels.undo()
    assert len(_rows(widget)) == len(recs) + 1 and _rows(widget)[-1][4] == "label.paint"
    assert (
        _rows(widget)[-1][7].startswith("undo · label 0 ·") and "undoes 3" in _rows(widget)[-1][7]
    )

    qtbot.keyClicks(widget._filter, "create")
    assert [r[4] for r in _rows(widget, visible_only=True)] == ["labels.create"]
    assert widget._count.text() == f"1 of {len(recs) + 1} shown"
    widget._filter.clear()
    qtbot.keyClicks(widget._filter, "nobody-like-this")
    assert _rows(widget, visible_only=True) == []
    widget._filter.clear()
    qtbot.keyClicks(widget._filter, "UNDO")
    assert [r[0] for r in _rows(widget, visible_only=True)] == [str(len(recs))]
    widget._filter.clear()
    assert len(_rows(widget, visible_only=True)) == len(recs) + 1
    assert widget._count.text() == f"{len(recs) + 1} records"


def test_verify_shows_valid_then_where_a_tampered_log_breaks(audited, qtbot):
    viewer, session, image, labels, widget = audited
    path = session.log_path_for(image)
    _verify(qtbot, widget)
    head = session.log_for(image).head()
    assert widget._result.text().startswith(f"valid: 4 records, head seq {head.seq} {head.hash}")
    assert "2e7d32" in widget._result.styleSheet()  # green

    lines = path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["data"]["voxels"] += 1  # edited field, hash left as it was
    lines[2] = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
    path.write_bytes(b"".join(lines))
    _verify(qtbot, widget)
    assert widget._result.text().startswith("broken at seq 2:")
    assert "c62828" in widget._result.styleSheet()  # red

    del lines[2]  # a deleted record is caught where the chain breaks
    path.write_bytes(b"".join(lines))
    _verify(qtbot, widget)
    assert widget._result.text().startswith("broken at seq 2:")


def test_details_say_what_a_record_did():
    def details(action, data):
        return record_cells({"seq": 1, "action": action, "data": data})[-1]

    assert details("sign", {"meaning": "approval", "signature": "x"}) == "signs as approval"
    assert details("export", {"format": "nifti"}) == "nifti export"
    grade = {"value": "4B", "label": "4B: moderate suspicion", "scale_kind": "ordinal"}
    assert details("grade.set", grade) == "grade 4B"
    edited = {"label": "3", "edited": True, "as_grade": {"value": "3"}}
    assert details("proposal.edit", edited) == "grade 3 · edited"
    assert details("proposal.accept", {"label": 2, "voxels": 40}) == "label 2 · 40 voxels"


def test_table_catches_up_with_records_written_past_the_session(audited, qtbot, tmp_path):
    """An export writes its record through its own log (not announced): Verify and the next
    record both bring the table level with the file, each record once."""
    from napari_clinlabel.core.log.audit_log import AuditLog

    viewer, session, image, labels, widget = audited
    path = session.log_path_for(image)
    n0 = len(list(iter_records(path)))
    assert len(_rows(widget)) == n0
    log = session.log_for(image)  # the same file through a second AuditLog, as core export does
    other = AuditLog(path, log.image, log.actor, log.schema, log.objects.folder)
    other.append("note", {"image": "ct"}, {"text": "written past the session"})
    other.close()
    assert len(list(iter_records(path))) == n0 + 1
    _verify(qtbot, widget)
    assert [r[0] for r in _rows(widget)] == [str(r["seq"]) for r in iter_records(path)]
    # the next record through the session shows at once, after the caught-up one, once
    labels.paint((6, 50, 50), 1)
    recs = list(iter_records(path))
    assert [r[0] for r in _rows(widget)] == [str(r["seq"]) for r in recs]
    assert len(recs) >= n0 + 2
