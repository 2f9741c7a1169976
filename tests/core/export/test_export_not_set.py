"""A class or confidence no human chose exports as not set (issue 14): ``not set`` in CSV and as
the COCO category, null in JSON, and no qualitative evaluation in DICOM SR — never ``None``.
Read back with the stdlib csv/json readers and with highdicom."""

from __future__ import annotations

import csv
import io
import json

import highdicom as hd
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.export.tables import boxes_csv, coco, tables_json
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema

G = Geometry((0.7, 0.8, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
ANN = Actor("ann", "Ann Reader", "annotator")


def _boxes():
    unset = LesionBox((2, 1, 1), (2, 5, 6), None, None, {}, "u1", created_by="ann")
    chosen = LesionBox((2, 8, 8), (2, 12, 14), "malignant", 4, {"margin": "spiculated"}, "c1")
    return [unset, chosen]


def test_csv_says_not_set():
    rows = list(csv.DictReader(io.StringIO(boxes_csv(_boxes(), G).decode())))
    assert (rows[0]["class"], rows[0]["confidence"], rows[0]["attributes"]) == (
        "not set", "not set", ""
    )  # fmt: skip
    assert (rows[1]["class"], rows[1]["confidence"]) == ("malignant", "4")
    assert "None" not in boxes_csv(_boxes(), G).decode()


def test_json_holds_null_for_not_set():
    doc = json.loads(tables_json(_boxes(), [], G, {}))
    unset, chosen = doc["boxes"]
    assert unset["class"] is None and unset["confidence"] is None and unset["attributes"] == {}
    assert chosen["class"] == "malignant"
    assert "None" not in json.dumps(doc)


def test_coco_category_not_set():
    doc = json.loads(coco(_boxes(), [], (5, 20, 20), "ct", classes=["benign", "malignant"]))
    names = {c["id"]: c["name"] for c in doc["categories"]}
    assert sorted(names.values()) == ["benign", "malignant", "not set"]
    assert all(isinstance(n, str) for n in names.values())
    by_box = {a["attributes"]["box_id"]: names[a["category_id"]] for a in doc["annotations"]}
    assert by_box == {"u1": "not set", "c1": "malignant"}
    assert "None" not in json.dumps(doc)


def test_sr_leaves_out_the_class_nobody_chose(tmp_path):
    write_series(tmp_path / "ct", phantom_stored((5, 20, 16)), spacing=(0.7, 0.8, 2.5))
    vol = read_volumes(tmp_path / "ct")[0]
    schema = load_schema("lesions")
    log = AuditLog.for_image(tmp_path / "ct", vol.image_ref(), ANN, schema.ref())
    add_box(log, LesionBox((2, 3.5, 2.5), (2, 9.5, 8.5), None, None, {}, "unset"), vol, schema)
    log.close()
    path = export(tmp_path / "ct", "dicom-sr", tmp_path / "report", actor=ANN).outputs[0].path
    sr = hd.sr.srread(path)
    [group] = sr.content.get_planar_roi_measurement_groups()
    assert str(group.tracking_identifier) == "box unset"
    names = [e.name.meaning for e in group.get_qualitative_evaluations()]
    assert "Lesion class" not in names
    assert "None" not in str(group)
