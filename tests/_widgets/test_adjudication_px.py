"""Adjudication of reads of a PNG (no pixel size): the metrics table says px, and signing works."""

from __future__ import annotations

import os

import numpy as np
import pytest
from qtpy.QtCore import Qt
from skimage import io as skio
from support.adjudication_widget import act_as, dock_adjudication, load_logs, write_reads

from napari_clinlabel.core.image.samples import fundus_phantom
from napari_clinlabel.core.image.volume import PixelGeometry
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.quality.metrics import label_map_agreement
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


def _disc(shape, centre, r) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= r * r


def test_adjudicating_png_reads_shows_px(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    roles = {"alice": ["annotator"], "bob": ["annotator"], "carol": ["adjudicator"]}
    act_as(monkeypatch, tmp_path, "carol", "adjudicator", roles)
    (tmp_path / "adj").mkdir()
    png = tmp_path / "adj" / "fundus.png"
    skio.imsave(png, np.asarray(fundus_phantom().array)[..., 1], check_contrast=False)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(png), plugin="napari-clinlabel")
    assert image.metadata["clinlabel"]["spacing_known"] is False
    shape = image.data.shape
    a = np.zeros(shape, np.uint8)
    b = np.zeros(shape, np.uint8)
    a[_disc(shape, (200, 260), 60)] = 1
    b[_disc(shape, (206, 250), 64)] = 1
    a[_disc(shape, (400, 120), 20)] = 2
    b[_disc(shape, (404, 126), 18)] = 2
    logs = write_reads(image, tmp_path, "fundus.png.clinlabel.jsonl", {"alice": a, "bob": b})
    widget, errors = dock_adjudication(viewer, monkeypatch)

    load_logs(qtbot, widget, logs)
    assert errors == []
    t = widget._table
    header = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    assert header == ["pair", "label", "Dice", "HD95 px", "pixels A", "pixels B"]
    expected = label_map_agreement(a, b, PixelGeometry.identity(2))
    assert t.rowCount() == 2
    for row, v in enumerate(("1", "2")):
        assert t.item(row, 1).text() == v
        assert t.item(row, 3).text() == f"{expected[v]['hd95_px']:.2f}"
        assert t.item(row, 4).text() == str(int((a == int(v)).sum()))
    shot = os.environ.get("CLINLABEL_SCREENSHOT")
    if shot:  # a picture of what the adjudicator sees, for a person to look at
        viewer.window._qt_window.resize(1400, 800)
        qtbot.waitExposed(viewer.window._qt_window)
        viewer.window._qt_window.grab().save(shot)

    widget._reader.setCurrentText("bob")
    qtbot.mouseClick(widget._accept, LEFT)
    qtbot.keyClicks(widget._reason, "bob's outline follows the disc margin")
    qtbot.mouseClick(widget._sign, LEFT)
    assert errors == []
    log_path = get_session(viewer).log_path_for(image)
    adj_rec, sign_rec = list(iter_records(log_path))[-2:]
    assert adj_rec["action"] == "adjudicate" and adj_rec["data"]["reader"] == "bob"
    assert sign_rec["data"]["meaning"] == "adjudication"
    assert verify_log(log_path).ok
