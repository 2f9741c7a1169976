"""A PNG states no pixel size: the Lesion boxes widget, the Review widget and the Segmentation
widget show pixels (never mm or mL), and what lands in the log and the exports is in pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qtpy.QtCore import Qt
from skimage import io as skio
from support.viewer_helpers import box_records, layer_drag

from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel._widgets.review import ReviewWidget
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.samples import fundus_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")
LEFT = Qt.MouseButton.LeftButton
NBSP = "\u00a0"
MODEL = {"name": "test-net", "version": "0.3", "sha256": "ab" * 32}


def _fundus_png(tmp_path, grey=False):
    """The fundus sample's pixels saved as a PNG (no pixel size in the file)."""
    data = np.asarray(fundus_phantom().array)
    if grey:
        data = data[..., 1]
    path = tmp_path / ("fundus_grey.png" if grey else "fundus.png")
    skio.imsave(path, data, check_contrast=False)
    return path


def _header(table):
    cols = range(table.columnCount())
    return [table.horizontalHeaderItem(c).text() for c in cols if not table.isColumnHidden(c)]


def test_lesion_box_on_png_is_sized_in_pixels(make_napari_viewer, qtbot, tmp_path):
    path = _fundus_png(tmp_path)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    assert image.metadata["clinlabel"]["spacing_known"] is False
    w = LesionBoxWidget(viewer)
    qtbot.addWidget(w)
    w.show()
    log_path = get_session(viewer).log_path_for(image)
    assert _header(w._table) == ["#", "class", "conf", "y×x px", "by"]

    # a user draws a 120 × 80 pixel box (rows × columns) with the rectangle tool
    w._class.setCurrentText("indeterminate")
    qtbot.mouseClick(w._draw_btn, LEFT)
    layer_drag(viewer, w.layer, (300, 400), (420, 480))
    [rec] = box_records(log_path)
    d = rec["data"]
    assert rec["action"] == "box.add" and d["spacing_known"] is False
    assert d["size_px"] == [120.0, 80.0]
    assert d["size_mm"] is None and d["volume_ml"] is None and d["world_corners_mm"] is None
    assert w._size.text() == (
        f"Size: 120 × 80 px (y × x), area 9{NBSP}600 px² (pixel size unknown)"
    )
    qtbot.wait(10)
    assert w._table.item(0, 4).text() == "120×80"
    assert "mm" not in w._size.text() and "mm" not in " ".join(_header(w._table))

    # the export of that log says pixels too
    out = export(path, "json", tmp_path / "boxes.json").outputs[0].path
    (b,) = json.loads(out.read_text())["boxes"]
    assert b["size_px"] == [120.0, 80.0] and b["size_mm"] is None and b["spacing_known"] is False
    assert verify_log(log_path).ok
    opened = next(r for r in iter_records(log_path) if r["action"] == "image.open")
    assert opened["data"]["spacing_known"] is False  # the log itself says its sizes are pixels

    # reopened in a new viewer: the same pixel sizes, nothing logged
    n = len(list(iter_records(log_path)))
    viewer2 = make_napari_viewer()
    viewer2.open(str(path), plugin="napari-clinlabel")
    w2 = LesionBoxWidget(viewer2)
    qtbot.addWidget(w2)
    assert w2._table.item(0, 4).text() == "120×80" and len(list(iter_records(log_path))) == n


def test_review_box_proposal_on_png_says_px(make_napari_viewer, qtbot, tmp_path):
    path = _fundus_png(tmp_path)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    log = get_session(viewer).log_for(image)
    box = {"zyx_min": [100, 200], "zyx_max": [139, 259], "class": "malignant", "label": 1}
    add_proposals(log, [ProposalDraft("box", 1, 0.8, payload=box, name="lesion")], MODEL)
    w = ReviewWidget(viewer)
    qtbot.addWidget(w)
    assert w.current is not None and w.current.kind == "box"
    text = w._info.text()
    assert "Box: 40 × 60 px (y × x)" in text and "mm" not in text


def test_segmentation_on_grey_png_counts_pixels_not_ml(make_napari_viewer, qtbot, tmp_path):
    path = _fundus_png(tmp_path, grey=True)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    w = SegmentationWidget(viewer)
    qtbot.addWidget(w)
    qtbot.mouseClick(w._start_btn, LEFT)
    labels = w._labels
    assert labels is not None and labels.data.shape == image.data.shape
    table = w._label_table
    qtbot.waitUntil(lambda: table.isColumnHidden(3), timeout=2000)
    assert _header(table) == ["Label", "Code", "Pixels"]

    # one brush dab, as napari's paint tool makes it: logged, then counted in pixels
    value = w._current_value()
    labels.brush_size = 9
    labels.paint((105.0, 215.0), value)
    painted = int(np.count_nonzero(labels.data == value))
    assert painted > 40
    qtbot.waitUntil(lambda: w.counts().get(value, 0) == painted, timeout=3000)
    assert w.volumes_ml() == {} and table.isColumnHidden(3)
    log_path = get_session(viewer).log_path_for(image)
    qtbot.waitUntil(
        lambda: any(r["action"] == "label.paint" for r in iter_records(log_path)), timeout=3000
    )
