"""Distances and RECIST axes against a hand computation through SimpleITK's index→physical map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel.core.annotate.measurements import (
    angle_deg,
    distance_data,
    measurements_csv,
    measurements_in_log,
    recist_data,
    record_measurement,
)
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor

ACTOR = Actor("dr.m", "Dr M", "annotator")
SPACING = (0.8, 0.7, 2.5)  # x, y, z mm


def _world(img: sitk.Image, ijk: tuple[int, int, int]) -> list[float]:
    """napari world (z, y, x) mm of ITK index (i, j, k), as SimpleITK computes it."""
    return list(reversed(img.TransformIndexToPhysicalPoint(ijk)))


@pytest.fixture
def img():
    im = sitk.Image(64, 64, 10, sitk.sitkInt16)
    im.SetSpacing(SPACING)
    im.SetOrigin((-20.0, 5.0, 100.0))
    return im


def test_distance_mm_hand_computed(img):
    # 30 px along x and 40 px along y on slice 3: sqrt((30*0.8)^2 + (40*0.7)^2) mm
    p0, p1 = _world(img, (10, 10, 3)), _world(img, (40, 50, 3))
    data = distance_data([p0, p1], True, {"axis": 0, "index": 3})
    assert data["length_mm"] == pytest.approx(math.hypot(30 * 0.8, 40 * 0.7))
    assert "length_px" not in data and data["kind"] == "distance"
    # and the plugin's own geometry maps indices to the same world points
    geom = Geometry.from_itk(img)
    np.testing.assert_allclose(geom.index_to_world([3, 10, 10]), p0)


def test_distance_px_without_pixel_size():
    data = distance_data([[0, 0, 0], [0, 3, 4]], False, None)
    assert data["length_px"] == 5.0 and "length_mm" not in data


def test_recist_long_short_perpendicular(img):
    long_ = [_world(img, (10, 30, 2)), _world(img, (50, 30, 2))]  # 40 px along x = 32 mm
    short = [_world(img, (30, 20, 2)), _world(img, (30, 40, 2))]  # 20 px along y = 14 mm
    data = recist_data(short, long_, True, {"axis": 0, "index": 2})
    assert data["length_mm"] == pytest.approx(40 * 0.8)
    assert data["short_axis_mm"] == pytest.approx(20 * 0.7)
    assert data["angle_deg"] == pytest.approx(90.0)
    assert data["points_world"][0] == [list(map(float, p)) for p in long_]


def test_recist_not_perpendicular_refused(img):
    a = [[0, 0, 0], [0, 0, 10]]
    b = [[0, 0, 0], [0, 10, 10]]  # 45°
    assert angle_deg(a, b) == pytest.approx(45.0)
    with pytest.raises(InputError, match="perpendicular"):
        recist_data(a, b, True, None)


def test_bad_lines_refused():
    with pytest.raises(InputError, match="two finite end points"):
        distance_data([[0, 0, 0]], True, None)
    with pytest.raises(InputError, match="two finite end points"):
        distance_data([[0, 0, np.nan], [0, 1, 1]], True, None)
    with pytest.raises(InputError, match="zero length"):
        distance_data([[1, 2, 3], [1, 2, 3]], True, None)
    with pytest.raises(InputError, match="zero length"):
        recist_data([[1, 2, 3], [1, 2, 3]], [[0, 0, 0], [0, 1, 0]], True, None)


def test_record_is_logged(tmp_path):
    log = AuditLog(tmp_path / "ct.clinlabel.jsonl", {"uid": None, "sha256": "ab" * 32}, ACTOR)
    data = distance_data([[0, 0, 0], [0, 3, 4]], True, {"axis": 0, "index": 0})
    record_measurement(log, data)
    (rec,) = [r for r in iter_records(log.path) if r["action"] == "measure.add"]
    assert rec["actor"]["id"] == "dr.m" and rec["data"]["length_mm"] == 5.0
    with pytest.raises(InputError, match="kind"):
        record_measurement(log, {"kind": "area"})


def test_rows_and_csv_from_the_log(tmp_path):
    import csv as csv_mod
    import io

    log = AuditLog(tmp_path / "ct.clinlabel.jsonl", {"uid": None, "sha256": "cd" * 32}, ACTOR)
    record_measurement(log, distance_data([[0, 0, 0], [0, 3, 4]], True, {"axis": 0, "index": 2}))
    record_measurement(
        log, recist_data([[0, 0, 0], [0, 0, 10]], [[0, -2, 5], [0, 2, 5]], False, None)
    )
    rows = measurements_in_log(log.path)
    assert [(r["kind"], r["length_mm"], r["length_px"]) for r in rows] == [
        ("distance", 5.0, None),
        ("recist", None, 10.0),
    ]
    assert rows[1]["short_axis_px"] == 4.0 and rows[0]["slice_index"] == 2
    table = list(csv_mod.DictReader(io.StringIO(measurements_csv(rows).decode())))
    assert table[0]["length_mm"] == "5.0" and table[0]["length_px"] == ""
    assert table[1]["short_axis_px"] == "4.0" and table[1]["measured_by"] == "dr.m"


def test_measurements_exported_in_json_and_csv(tmp_path):
    import csv as csv_mod
    import json

    from napari_clinlabel.core.export.gate import export
    from napari_clinlabel.core.image.io import read_volumes

    img_path = tmp_path / "ct.nii.gz"
    im = sitk.GetImageFromArray(np.zeros((4, 16, 16), np.int16))
    im.SetSpacing(SPACING)
    sitk.WriteImage(im, str(img_path))
    vol = read_volumes(img_path)[0]
    log = AuditLog.for_image(img_path, vol.image_ref(), ACTOR)
    p0, p1 = _world(im, (2, 2, 1)), _world(im, (12, 2, 1))  # 10 px along x = 8 mm
    record_measurement(log, distance_data([p0, p1], True, {"axis": 0, "index": 1}))
    res = export(img_path, "json", tmp_path / "t", actor=ACTOR)
    doc = json.loads(res.outputs[0].path.read_text())
    assert doc["measurements"][0]["length_mm"] == pytest.approx(10 * SPACING[0])
    res = export(img_path, "csv", tmp_path / "t.csv", actor=ACTOR)
    names = [o.path.name for o in res.outputs]
    assert names == ["t.csv", "t.grades.csv", "t.measurements.csv"]
    with open(tmp_path / "t.measurements.csv", newline="") as fh:
        (row,) = list(csv_mod.DictReader(fh))
    assert float(row["length_mm"]) == pytest.approx(8.0) and row["kind"] == "distance"
