"""Pre-label → review → DICOM SEG carries the schema (issue 14 item 3): the baseline's proposals
and their acceptance in Review name the model's schema (abdomen-ct), so the SEG's segments are
named and coded from it, read back by pydicom; never "label 6"."""

from __future__ import annotations

import pydicom
from qtpy.QtCore import Qt
from support.dicom_factory import write_ct_series

from napari_clinlabel._widgets.prelabel import PrelabelWidget
from napari_clinlabel._widgets.review import ReviewWidget
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session

LEFT = Qt.MouseButton.LeftButton


def test_prelabel_accept_seg_segments_named_from_schema(make_napari_viewer, qtbot, tmp_path):
    vol = ct_phantom(shape=(24, 96, 96))
    folder = tmp_path / "ct"
    write_ct_series(folder, vol.array, vol.geometry)
    viewer = make_napari_viewer(show=True)
    [image] = viewer.open(str(folder), plugin="napari-clinlabel")
    session = get_session(viewer)
    log_path = session.log_path_for(image)
    pre = PrelabelWidget(viewer)
    review = ReviewWidget(viewer)
    qtbot.addWidget(pre)
    qtbot.addWidget(review)
    assert pre._model_combo.currentText() == "builtin:baseline"  # its card: schema abdomen-ct
    pre._device_combo.setCurrentText("cpu")
    qtbot.mouseClick(pre._run_btn, LEFT)
    qtbot.waitUntil(lambda: not pre.busy, timeout=60_000)
    assert " 0 proposal" not in pre._status.text(), pre._status.text()
    qtbot.waitUntil(lambda: review.current is not None, timeout=10_000)

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_A)  # the reader accepts the first proposal
    recs = list(iter_records(log_path))
    [acc] = [r for r in recs if r["action"] == "proposal.accept"]
    adds = [r for r in recs if r["action"] == "proposal.add"]
    schema = load_schema("abdomen-ct")
    assert all(r["schema"]["id"] == "abdomen-ct" for r in [*adds, acc])

    # the final labels layer takes the schema's colour for the accepted label (napari's own map)
    import numpy as np
    from napari.utils.colormaps.standardize_color import transform_color

    layer = viewer.layers[adds[0]["data"]["labels"]]
    value = adds[0]["data"]["label"]
    want = next(lab.color for lab in schema.labels if lab.value == value)
    np.testing.assert_allclose(layer.colormap.map(value), transform_color(want)[0], atol=1e-6)

    out = tmp_path / "seg.dcm"
    res = export(
        str(folder), "dicom-seg", out, labels_name=adds[0]["data"]["labels"], exclude_pending=True
    )
    assert not any("names no schema" in n for n in res.notes)
    seg = pydicom.dcmread(out)
    value = adds[0]["data"]["label"]
    [entry] = [lab for lab in schema.labels if lab.value == value]
    [segment] = seg.SegmentSequence
    assert segment.SegmentLabel == entry.name and "label" not in segment.SegmentLabel.lower()
    code = segment.SegmentedPropertyTypeCodeSequence[0]
    assert (code.CodingSchemeDesignator, code.CodeValue) == (entry.type.scheme, entry.type.value)
