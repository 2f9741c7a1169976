"""Lesion boxes: sizes from geometry (checked by hand and against SimpleITK), records, rebuild."""

from __future__ import annotations

import pytest

from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    add_box,
    box_size_mm,
    box_volume_ml,
    box_world_corners_mm,
    delete_box,
    edit_box,
    load_boxes,
    with_slices,
)
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.log.audit_log import AuditLog, model_source
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema

ACTOR = Actor("dr.a", "Dr A", "annotator")


@pytest.fixture(scope="module")
def ct():
    return ct_phantom(shape=(16, 64, 64))


@pytest.fixture
def log(tmp_path, ct):
    schema = load_schema("lesions")
    return AuditLog(tmp_path / "ct.clinlabel.jsonl", ct.image_ref(), ACTOR, schema.ref())


def test_sizes_by_hand(ct):
    # spacing (x, y, z) = (0.8, 0.8, 2.5) mm
    box = LesionBox((5, 10, 20), (5, 30, 50))
    assert box_size_mm(box, ct.geometry) == pytest.approx((2.5, 16.0, 24.0))  # one slice deep
    assert box_volume_ml(box, ct.geometry) is None
    box3 = with_slices(box, 3, 7)  # 5 whole slices = 12.5 mm
    assert box3.slice_range == (3, 7)
    assert box_size_mm(box3, ct.geometry) == pytest.approx((12.5, 16.0, 24.0))
    assert box_volume_ml(box3, ct.geometry) == pytest.approx(12.5 * 16 * 24 / 1000)


def test_world_corners_match_simpleitk_on_oblique():
    vol = ct_phantom(oblique=True, shape=(16, 64, 64))
    img = vol.to_itk()
    box = with_slices(LesionBox((4, 10.5, 20.25), (4, 30, 50)), 2, 6)
    corners = box_world_corners_mm(box, vol.geometry)
    assert len(corners) == 8
    for (z, y, x), got in zip(
        [(a, b, c) for a in (1.5, 6.5) for b in (10.5, 30) for c in (20.25, 50)],
        corners,
        strict=True,
    ):
        want = img.TransformContinuousIndexToPhysicalPoint((x, y, z))[::-1]
        assert got == pytest.approx(want, abs=1e-3)
    # oblique: edge lengths are still index extent × spacing (direction is a rotation)
    p0 = img.TransformContinuousIndexToPhysicalPoint((20.25, 10.5, 1.5))
    p1 = img.TransformContinuousIndexToPhysicalPoint((50, 10.5, 1.5))
    edge_x = sum((a - b) ** 2 for a, b in zip(p0, p1, strict=True)) ** 0.5
    assert box_size_mm(box, vol.geometry)[2] == pytest.approx(edge_x)


def test_add_edit_delete_records_and_rebuild(log, ct):
    schema = load_schema("lesions")
    a = LesionBox((5, 10, 20), (5, 30, 50), "malignant", 4, {"margin": "spiculated"})
    b = LesionBox((8, 40, 5), (8, 50, 15), "benign", 2)
    ra = add_box(log, a, ct, schema)
    add_box(log, b, ct, schema)
    assert ra["action"] == "box.add" and ra["target"] == {"box": a.id}
    assert ra["data"]["size_mm"] == pytest.approx([2.5, 16.0, 24.0])
    assert len(ra["data"]["world_corners_mm"]) == 4
    a3, re = edit_box(log, a, {"zyx_min": (2.5, 10, 20), "zyx_max": (7.5, 30, 50)}, ct, schema)
    assert re["action"] == "box.edit" and re["data"]["volume_ml"] == pytest.approx(4.8)
    delete_box(log, b.id)
    boxes = load_boxes(log.path)
    assert list(boxes) == [a.id]
    got = boxes[a.id]
    assert got.zyx_min == (2.5, 10, 20) and got.cls == "malignant" and got.confidence == 4
    assert got.attributes == {"margin": "spiculated"} and got.created_by == "dr.a"


def test_box_outside_image_is_refused(log, ct):
    bad = LesionBox((5, 10, 20), (5, 30, 90))
    with pytest.raises(ClinlabelError, match=r"outside the image.*0\.\.63") as exc:
        add_box(log, bad, ct)
    assert "10..30" in str(exc.value) and "20..90" in str(exc.value)
    assert not log.path.exists() or log.records() == []


def test_schema_enumerations_are_enforced(log, ct):
    schema = load_schema("lesions")
    add_box(log, LesionBox((1, 1, 1), (1, 5, 5)), ct, schema)
    n = len(log.records())
    for box, msg in [
        (LesionBox((1, 1, 1), (1, 5, 5), "weird"), "class 'weird'"),
        (LesionBox((1, 1, 1), (1, 5, 5), confidence=9), "confidence 9"),
        (LesionBox((1, 1, 1), (1, 5, 5), attributes={"margin": "fuzzy"}), "margin 'fuzzy'"),
        (LesionBox((1, 1, 1), (1, 5, 5), attributes={"colour": "red"}), "attribute 'colour'"),
    ]:
        with pytest.raises(ClinlabelError, match=msg):
            add_box(log, box, ct, schema)
    assert len(log.records()) == n


def test_accepted_proposal_box_is_model_sourced(log, ct):
    box = LesionBox((3, 5, 5), (3, 9, 9), "indeterminate", 3)
    src = model_source("boxnet", "1.0", "ab" * 32)
    log.append("proposal.accept", {"proposal": "p1"}, {"box": box.to_dict()}, src)
    got = load_boxes(log.path)[box.id]
    assert got.source == src and got.created_by == "dr.a"


def test_model_box_in_voxel_indices_becomes_voxel_edges(log):
    """core.proposals logs model boxes as inclusive voxel indices (no size_mm)."""
    src = model_source("detector", "2.0", "cd" * 32)
    payload = {"zyx_min": [2, 10, 20], "zyx_max": [4, 19, 29], "class": "malignant", "label": 2}
    log.append("proposal.edit", {"proposal": "p9"}, {"proposal": "p9", "box": payload}, src)
    got = load_boxes(log.path)["p9"]
    assert got.zyx_min == (1.5, 9.5, 19.5) and got.zyx_max == (4.5, 19.5, 29.5)
    assert got.slice_range == (2, 4) and got.cls == "malignant" and got.source == src


def test_no_log_no_boxes(tmp_path):
    assert load_boxes(tmp_path / "none.jsonl") == {}
