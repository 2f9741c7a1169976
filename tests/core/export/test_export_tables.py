"""Boxes and grades to JSON/CSV/COCO, world coordinates checked against SimpleITK."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel.core.annotate.boxes import LesionBox, with_slices
from napari_clinlabel.core.annotate.grading import Grade
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.tables import boxes_csv, coco, grades_csv, tables_json
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.samples import _rotation

G = Geometry((0.7, 0.8, 2.5), (-10.0, 20.0, 5.0), tuple(_rotation(20.0, 5.0).ravel()))


def _itk_world(zyx):
    img = sitk.Image(40, 30, 10, sitk.sitkUInt8)
    G.apply_to_itk(img)
    return list(
        reversed(img.TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]]))
    )


def _boxes():
    a = with_slices(
        LesionBox((0, 2, 3), (0, 12, 9), "malignant", 4, {"density": "solid"}, "b1"), 2, 5
    )
    b = LesionBox((3, 1, 1), (3, 4, 6), "benign", None, {}, "b2",
                  {"kind": "model", "name": "det", "version": "1", "sha256": "a" * 64}, "ann")  # fmt: skip
    return [a, b]


def test_boxes_json_world_and_size():
    doc = json.loads(tables_json(_boxes(), [], G, {"schema": None}))
    a, b = doc["boxes"]
    assert a["voxel_min_zyx"] == [1.5, 2.0, 3.0] and a["slice_first"] == 2 and a["slice_last"] == 5
    np.testing.assert_allclose(a["world_min_zyx_mm"], _itk_world([1.5, 2, 3]), atol=1e-3)
    np.testing.assert_allclose(a["world_max_zyx_mm"], _itk_world([5.5, 12, 9]), atol=1e-3)
    np.testing.assert_allclose(a["size_mm"], [4 * 2.5, 10 * 0.8, 6 * 0.7], atol=1e-6)
    assert a["volume_ml"] == pytest.approx(4 * 2.5 * 10 * 0.8 * 6 * 0.7 / 1000)
    assert a["attributes"] == {"density": "solid"} and a["confidence"] == 4
    assert b["volume_ml"] is None and b["model"] == "det 1" and b["confirmed_by"] == "ann"


def test_csv_round_trip():
    rows = list(csv.DictReader(io.StringIO(boxes_csv(_boxes(), G).decode())))
    assert rows[0]["class"] == "malignant" and rows[0]["attributes"] == "density=solid"
    assert float(rows[0]["world_max_x_mm"]) == pytest.approx(_itk_world([5.5, 12, 9])[2], abs=1e-3)
    assert rows[1]["confidence"] == "not set" and rows[1]["volume_ml"] == ""  # nobody chose one
    g = Grade("birads", "image", "4A", "Suspicious", "ann", "2026-11-26T10:00:00Z", 7)
    grow = list(csv.DictReader(io.StringIO(grades_csv([g]).decode())))
    assert grow == [{"scale": "birads", "item": "image", "value": "4A", "label": "Suspicious",
                     "grader": "ann", "time": "2026-11-26T10:00:00Z", "seq": "7", "note": ""}]  # fmt: skip


def test_coco_boxes_and_tiles():
    two_d = [LesionBox((10, 20), (30, 60), "benign", 3, {}, "c1")]
    tiles = [Grade("isup", "r000c001", "3", "GG3", "pat", "t", 3),
             Grade("isup", "r001c000", "1", "GG1", "pat", "t", 4)]  # fmt: skip
    doc = json.loads(coco(two_d, tiles, (100, 150), "slide.tif", classes=["benign", "malignant"],
                          tile_size=64))  # fmt: skip
    assert doc["images"] == [{"id": 1, "file_name": "slide.tif", "width": 150, "height": 100}]
    ann = doc["annotations"]
    assert ann[0]["bbox"] == [20.0, 10.0, 40.0, 20.0] and ann[0]["area"] == 800.0
    assert ann[0]["category_id"] == 1
    assert ann[1]["bbox"] == [64, 0, 64, 64] and ann[2]["bbox"] == [0, 64, 64, 36]
    names = {c["id"]: c["name"] for c in doc["categories"]}
    assert names[ann[1]["category_id"]] == "isup:3"
    with pytest.raises(ExportError, match="2D boxes only"):
        coco(_boxes(), [], (10, 30, 40), "ct")
    per_slice = json.loads(coco(_boxes()[1:], [], (10, 30, 40), "ct"))
    assert per_slice["images"][0]["file_name"] == "ct#z0003"
