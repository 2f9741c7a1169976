"""RECIST long/short axes and distances in the DICOM SR: lengths read back by highdicom, checked
against the standard's pixel spacing (PS3.3 C.7.6.2.1.1) applied to the SCOORD lines; dcmqi's
tid1500reader reads the file; dciodvfy without errors."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from support.dicom_series_factory import phantom_stored, write_series
from test_sr import dciodvfy_errors, tid1500reader

from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.measurements import (
    distance_data,
    recist_data,
    record_measurement,
)
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.export.sr_read import read_sr
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann Reader", "annotator")


def test_recist_and_distance_in_the_sr(tmp_path):
    write_series(tmp_path / "ct", phantom_stored((5, 30, 24)), spacing=(0.7, 0.8, 2.5))
    vol = read_volumes(tmp_path / "ct")[0]
    g = vol.geometry
    log = AuditLog.for_image(tmp_path / "ct", vol.image_ref(), ANN, load_schema("lesions").ref())
    add_box(log, LesionBox((2, 3.5, 2.5), (2, 9.5, 8.5), "malignant", 4, {}, "b1"), vol)
    # RECIST on slice 2: long axis along x (10 columns), short axis along y (6 rows)
    long_ = g.index_to_world([[2, 15, 5], [2, 15, 15]])
    short = g.index_to_world([[2, 12, 10], [2, 18, 10]])
    recist = record_measurement(log, recist_data(long_, short, True, {"axis": 0, "index": 2}))
    # a distance drawn in a coronal view: its end points are on different slices
    dist_pts = g.index_to_world([[1, 10, 4], [3, 10, 4]])
    dist = record_measurement(log, distance_data(dist_pts, True, {"axis": 1, "index": 10}))
    log.close()
    res = export(tmp_path / "ct", "dicom-sr", tmp_path / "r", actor=ANN)
    path = res.outputs[0].path
    assert dciodvfy_errors(path) == []
    sr = hd.sr.srread(path)
    planar = sr.content.get_planar_roi_measurement_groups()
    assert [str(gr.tracking_identifier) for gr in planar] == ["box b1"]
    groups = {str(gr.tracking_identifier): gr for gr in sr.content.get_image_measurement_groups()}
    rid, did = recist["target"]["measurement"], dist["target"]["measurement"]
    assert set(groups) == {f"measurement {rid}", f"measurement {did}"}
    r = {m.name: m for m in groups[f"measurement {rid}"].get_measurements()}
    # the codes of DICOM CID 7470 (Linear Measurements), from pydicom's copy of the standard
    assert set(r) == {codes.cid7470.LongAxis, codes.cid7470.ShortAxis}
    assert r[codes.cid7470.LongAxis].unit == codes.UCUM.Millimeter
    headers = {str(d.SOPInstanceUID): d for d in
               (pydicom.dcmread(p, stop_before_pixels=True)
                for p in (tmp_path / "ct").iterdir() if not p.name.startswith("."))}  # fmt: skip
    for name, truth in ((codes.cid7470.LongAxis, 10 * 0.7), (codes.cid7470.ShortAxis, 6 * 0.8)):
        m = r[name]
        assert m.value == pytest.approx(truth, abs=1e-4)
        (coords,) = m.referenced_coordinates
        cr = np.asarray(coords.value, float)  # (column, row) of the line's two ends
        ref = coords.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        ds = headers[str(ref)]
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
        d = np.diff(cr, axis=0)[0]
        assert np.hypot(d[0] * col_mm, d[1] * row_mm) == pytest.approx(m.value, abs=1e-4)
        # the line is on slice 2's image: its patient z is slice 2's (world is napari z, y, x)
        assert float(ds.ImagePositionPatient[2]) == pytest.approx(
            g.index_to_world([[2, 0, 0]])[0][0]
        )
    (length,) = groups[f"measurement {did}"].get_measurements()
    assert length.name == codes.cid7470.Length
    assert length.value == pytest.approx(2 * 2.5, abs=1e-4)
    (c3d,) = length.referenced_coordinates
    assert c3d.value_type.value == "SCOORD3D"  # drawn off the acquisition plane: patient mm
    lps = np.asarray(c3d.value, float)
    assert np.linalg.norm(lps[1] - lps[0]) == pytest.approx(length.value, abs=1e-4)
    # our reader lists them (they are not boxes)
    assert {m["id"]: m["lengths_mm"] for m in read_sr(path).measurements} == {
        rid: {"Long axis": pytest.approx(7.0), "Short axis": pytest.approx(4.8)},
        did: {"Length": pytest.approx(5.0)},
    }
    # dcmqi reads it as well
    meta = tid1500reader(path, tmp_path)
    by_id = {m["TrackingIdentifier"]: m for m in meta["Measurements"]}
    items = by_id[f"measurement {rid}"]["measurementItems"]
    got = {i["quantity"]["CodeValue"]: float(i["value"]) for i in items}
    assert got == pytest.approx({"103339001": 7.0, "103340004": 4.8}, abs=1e-3)
