"""Grades on schema scales: records, validation, history, mark done."""

from __future__ import annotations

import pytest

from napari_clinlabel.core.annotate.grading import (
    grade_item,
    is_done,
    load_grades,
    mark_done,
    require_scale,
    set_grade,
)
from napari_clinlabel.core.errors import ClinlabelError, SchemaError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema

IMAGE = {"uid": None, "sha256": "0" * 64}
ACTOR = Actor("dr.b", "Dr B", "annotator")


def _log(tmp_path, schema):
    return AuditLog(tmp_path / "mg.clinlabel.jsonl", IMAGE, ACTOR, schema.ref() if schema else None)


def test_birads_grades_and_done(tmp_path):
    schema = load_schema("birads")
    log = _log(tmp_path, schema)
    with pytest.raises(ClinlabelError, match="required grade.*BI-RADS assessment.*density"):
        mark_done(log, schema)
    rec = set_grade(log, schema.scales["assessment"], "4B", note="spiculated mass")
    assert rec["action"] == "grade.set"
    assert rec["target"] == {"scale": "assessment", "item": "image"}
    assert rec["data"] == {
        "value": "4B",
        "label": "Moderate suspicion for malignancy",
        "scale_kind": "ordinal",
        "note": "spiculated mass",
    }
    assert rec["schema"] == schema.ref()
    with pytest.raises(ClinlabelError, match="missing.*density") as exc:
        mark_done(log, schema)
    assert "assessment" not in str(exc.value).split("missing")[1]
    set_grade(log, schema.scales["density"], "b")
    set_grade(log, schema.scales["density"], "c")
    done = mark_done(log, schema)
    assert done["action"] == "image.done"
    assert done["data"]["grades"] == {"assessment:image": "4B", "density:image": "c"}
    grades = load_grades(log.path)
    assert grades[("density", "image")].value == "c"
    assert [g.value for g in grades[("density", "image")].history] == ["b"]
    assert is_done(log.records())
    set_grade(log, schema.scales["density"], "d")
    assert not is_done(log.records())


def test_bad_value_is_refused_and_nothing_logged(tmp_path):
    schema = load_schema("icdr")
    log = _log(tmp_path, schema)
    set_grade(log, schema.scales["dr"], "2")
    with pytest.raises(
        ClinlabelError, match=r"'7' is not a grade of Diabetic retinopathy.*0 \(key 0\)"
    ):
        set_grade(log, schema.scales["dr"], "7")
    assert len(log.records()) == 1


def test_grade_without_schema_is_refused(tmp_path):
    log = _log(tmp_path, None)
    scale = load_schema("icdr").scales["dr"]
    with pytest.raises(SchemaError, match="no grading schema"):
        set_grade(log, scale, "2")
    with pytest.raises(SchemaError, match="no grading schema is chosen"):
        require_scale(None, "dr")
    with pytest.raises(SchemaError, match="has no scale 'xx'"):
        require_scale(load_schema("icdr"), "xx")
    assert not log.path.exists()


def test_tile_items(tmp_path):
    schema = load_schema("isup")
    log = _log(tmp_path, schema)
    set_grade(log, schema.scales["isup"], "benign", item="r000c001")
    set_grade(log, schema.scales["isup"], "3", item="r000c002")
    g = load_grades(log.path)
    assert g[("isup", "r000c001")].value == "benign" and g[("isup", "r000c002")].grader == "dr.b"


def test_study_scale_item(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(
        "id: study-demo\nversion: '1'\ntitle: Study grade\n"
        "signed_off_by: {name: Board, date: '2026-11-01'}\n"
        "scales:\n  overall:\n    name: Overall\n    kind: ordinal\n    per: study\n"
        "    values:\n      - {value: low, key: l, label: Low}\n"
        "      - {value: high, key: h, label: High}\n"
    )
    schema = load_schema(path)
    scale = schema.scales["overall"]
    assert grade_item(scale, "1.2.3") == "study:1.2.3" and grade_item(scale, None) == "image"
    log = _log(tmp_path, schema)
    set_grade(log, scale, "h", item=grade_item(scale, "1.2.3"))  # a key works as the value
    rec = mark_done(log, schema, where="img.dcm")
    assert rec["data"]["grades"] == {"overall:study:1.2.3": "high"} and is_done(log.records())
