"""Audit widget on a long log: 100 000 records load off the GUI thread, filter, live rows, Verify."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from qtpy.QtCore import Qt
from support.viewer_helpers import SHAPE, add_ct

from napari_clinlabel._widgets.audit import AuditWidget
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.log.audit_log import (
    GENESIS,
    canonical_bytes,
    iter_records,
    sidecar_paths,
)
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui

N_RECORDS = 100_000
ACTOR = {"id": "rad01", "name": "Dr A. Radiologist", "role": "annotator"}


def write_log(path: Path, image: dict[str, Any], n: int) -> None:
    """``n`` valid records in the writer's layout (canonical JSON, hash last), as
    ``benchmarks/bench_log.py`` writes them, without object digests: every tenth a ``grade.set``."""
    prev = GENESIS
    with open(path, "wb") as fh:
        for seq in range(n):
            if seq % 10 == 9:
                action, target, data = "grade.set", {"item": "image"}, {"scale": "birads"}
            else:
                action, target = "label.paint", {"labels": "segmentation"}
                data = {"tool": "brush", "label": seq % 5 + 1, "voxels": 50 + seq % 4000}
            rec = {
                "v": 1, "seq": seq, "time": f"2026-11-26T10:{seq // 60000 % 60:02d}:"
                f"{seq // 1000 % 60:02d}.{seq % 1000:03d}000Z", "actor": ACTOR, "action": action,
                "image": image, "target": target, "data": data, "source": {"kind": "human"},
                "schema": None, "prev": prev,
            }  # fmt: skip
            body = canonical_bytes(rec)
            prev = hashlib.sha256(body).hexdigest()
            fh.write(body[:-1] + b',"hash":"' + prev.encode() + b'"}\n')


def open_long_log(viewer: Any, folder: Path, n: int) -> Any:
    """A CT phantom whose sidecar already holds ``n - 1`` records; opening it logs the n-th."""
    vol = ct_phantom(shape=SHAPE)
    log_path = sidecar_paths(folder / "ct.nii.gz")[0]
    write_log(log_path, {"uid": vol.series_uid, "sha256": vol.sha256}, n - 1)
    return add_ct(viewer, folder)


def test_a_long_log_loads_whole_filters_and_verifies(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    image = open_long_log(viewer, tmp_path, N_RECORDS)  # the session logs image.open: 100 000
    widget = AuditWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.loading  # read off the GUI thread
    qtbot.waitUntil(lambda: not widget.loading, timeout=60_000)
    rows = widget.rows()
    assert len(rows) == N_RECORDS == len(list(iter_records(session.log_path_for(image))))
    assert [r[0] for r in rows] == [str(s) for s in range(N_RECORDS)]
    assert rows[-1][4] == "image.open" and rows[9][4] == "grade.set"
    assert widget._count.text() == "100,000 records"
    assert widget._table.model().rowCount() == N_RECORDS

    qtbot.keyClicks(widget._filter, "GRADE.SET")
    shown = widget.rows(visible_only=True)
    assert len(shown) == 9_999 and {r[4] for r in shown} == {"grade.set"}  # seq 9, 19 … 99 989
    assert [r[0] for r in shown[:2]] == ["9", "19"]
    assert widget._count.text() == "9,999 of 100,000 shown"
    widget._filter.clear()
    qtbot.keyClicks(widget._filter, "label 3")
    assert len(widget.rows(visible_only=True)) == 20_000  # the paints at seq 2, 7, 12 … 99 997
    widget._filter.clear()

    qtbot.mouseClick(widget._verify, Qt.MouseButton.LeftButton)
    assert not widget._verify.isEnabled() and widget._result.text() == "verifying…"
    qtbot.waitUntil(widget._verify.isEnabled, timeout=120_000)
    head = session.log_for(image).head()
    assert head.seq == N_RECORDS - 1
    assert widget._result.text().startswith(f"valid: {N_RECORDS} records, head seq {head.seq}")
    assert "2e7d32" in widget._result.styleSheet()


def test_records_appended_while_a_long_log_loads_show_once_in_order(
    make_napari_viewer, tmp_path, qtbot
):
    viewer = make_napari_viewer()
    session = get_session(viewer)
    image = open_long_log(viewer, tmp_path, N_RECORDS)
    widget = AuditWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.loading and not widget.rows()
    labels = session.labels_layer_for(image)  # labels.create, before the first row is read
    qtbot.waitUntil(lambda: len(widget.rows()) > 0, timeout=60_000)
    assert widget.loading and len(widget.rows()) < N_RECORDS
    labels.paint((6, 20, 20), 1)  # a paint while the table is half-read
    qtbot.waitUntil(lambda: not widget.loading, timeout=60_000)
    labels.paint((6, 40, 40), 2)  # and one once it is loaded
    recs = list(iter_records(session.log_path_for(image)))
    rows = widget.rows()
    assert len(rows) == len(recs) == N_RECORDS + 3
    assert [r[0] for r in rows] == [str(r["seq"]) for r in recs]  # seq order, no duplicates
    assert [r[4] for r in rows[-4:]] == [
        "image.open",
        "labels.create",
        "label.paint",
        "label.paint",
    ]
    assert widget._count.text() == f"{N_RECORDS + 3:,} records"
