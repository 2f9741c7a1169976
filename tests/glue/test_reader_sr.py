"""The npe2 reader opens a DICOM SR (TID 1500) as a Shapes layer of its boxes: over the referenced
series when it is open (imported into its log as one record), or alone on the series found beside
the file (shown, nothing recorded)."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel._reader import get_reader, read_layers
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box, with_slices
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann Reader", "annotator")


@pytest.fixture
def sr_beside(tmp_path):
    """study/ct (a 5-slice series without PHI) and study/sr/report.dcm with two boxes on it."""
    s = write_series(
        tmp_path / "study" / "ct", phantom_stored((5, 20, 16)), spacing=(0.7, 0.8, 2.5)
    )
    for f in s.files:  # no patient identifiers: the viewer's PHI guard lets it be annotated
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "ANONYMOUS", "ANON", ""
        ds.save_as(f)
    vol = read_volumes(tmp_path / "study" / "ct")[0]
    log = AuditLog.for_image(tmp_path / "study" / "ct", vol.image_ref(), ANN,
                             load_schema("lesions").ref())  # fmt: skip
    add_box(log, LesionBox((2, 3.5, 2.5), (2, 9.5, 8.5), "malignant", 4, {}, "b2d"), vol)
    add_box(log, with_slices(LesionBox((0, 10.5, 4.5), (0, 14.5, 10.5), "benign", 2, {}, "b3d"),
                             1, 3), vol)  # fmt: skip
    log.close()
    (tmp_path / "study" / "sr").mkdir()
    res = export(tmp_path / "study" / "ct", "dicom-sr", tmp_path / "study" / "sr" / "report",
                 actor=ANN)  # fmt: skip
    return vol, res.outputs[0].path, tmp_path / "study" / "ct.clinlabel.jsonl"


def test_sr_alone_opens_on_the_series_beside_it(sr_beside):
    vol, path, log_path = sr_beside
    n = len(list(iter_records(log_path)))
    assert get_reader(str(path)) is not None
    [(rects, kwargs, kind)] = read_layers(str(path))
    assert kind == "shapes"
    np.testing.assert_allclose(kwargs["affine"], vol.geometry.napari_affine())
    by_id: dict[str, list] = {}
    for bid, r in zip(kwargs["features"]["box_id"], rects, strict=True):
        by_id.setdefault(bid, []).append(r)
    assert sorted(by_id) == ["b2d", "b3d"]
    assert [r[0][0] for r in by_id["b3d"]] == [1, 2, 3]  # one rectangle per slice of the 3D box
    (r,) = by_id["b2d"]
    np.testing.assert_allclose(r.min(axis=0), [2, 3.5, 2.5])
    np.testing.assert_allclose(r.max(axis=0), [2, 9.5, 8.5])
    assert kwargs["metadata"]["clinlabel_sr"]["imported"] is False
    assert len(list(iter_records(log_path))) == n  # no image open: nothing recorded


def test_sr_without_its_series_is_refused_in_one_line(sr_beside, tmp_path_factory):
    _vol, path, _log = sr_beside
    lonely = tmp_path_factory.mktemp("lonely") / "only" / "report.dcm"
    lonely.parent.mkdir()
    lonely.write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="neither open nor beside"):
        read_layers(str(lonely))


@pytest.mark.gui
def test_sr_opened_over_its_open_series_is_imported_once(sr_beside, make_napari_viewer,
                                                         monkeypatch, qtbot):  # fmt: skip
    monkeypatch.setenv("CLINLABEL_USER", "bob")
    vol, path, _log = sr_beside
    fresh = path.parents[2] / "pulled" / "ct"  # the same series without its log (as from a PACS)
    shutil.copytree(path.parents[1] / "ct", fresh)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(fresh), plugin="napari-clinlabel")
    boxes_widget = LesionBoxWidget(viewer)  # already showing the image's (no) boxes
    qtbot.addWidget(boxes_widget)
    assert boxes_widget.boxes == {}
    [shapes] = viewer.open(str(path), plugin="napari-clinlabel")
    # the imported boxes are the widget's editable boxes now, as drawn ones would be
    assert sorted(boxes_widget.boxes) == ["b2d", "b3d"]
    assert sorted(set(boxes_widget.layer.features["box_id"])) == ["b2d", "b3d"]
    assert boxes_widget.boxes["b2d"].cls == "malignant"
    assert shapes.__class__.__name__ == "Shapes"
    np.testing.assert_allclose(shapes.affine.affine_matrix, image.affine.affine_matrix)
    assert shapes.metadata["clinlabel_sr"]["imported"] is True
    recs = [r for r in iter_records(fresh.parent / "ct.clinlabel.jsonl")
            if r["action"] == "box.import"]  # fmt: skip
    assert len(recs) == 1 and recs[0]["actor"]["id"] == "bob"
    assert recs[0]["source"]["sop_instance_uid"] == str(pydicom.dcmread(path).SOPInstanceUID)
    assert sorted(b["id"] for b in recs[0]["data"]["boxes"]) == ["b2d", "b3d"]
    viewer.open(str(path), plugin="napari-clinlabel")  # opened again: not imported again
    recs = [r for r in iter_records(fresh.parent / "ct.clinlabel.jsonl")
            if r["action"] == "box.import"]  # fmt: skip
    assert len(recs) == 1


@pytest.mark.gui
def test_own_sr_opened_over_its_own_series_changes_nothing(sr_beside, make_napari_viewer,
                                                          monkeypatch, qtbot):  # fmt: skip
    """The series with Ann's log open, its own export opened on it: the boxes are recognised (no
    box.import, no duplicate, still Ann's), one info line says so."""
    import napari_clinlabel._reader as reader

    monkeypatch.setenv("CLINLABEL_USER", "ann")
    said: list[str] = []
    monkeypatch.setattr(reader, "show_info", said.append)
    _vol, path, log_path = sr_beside
    viewer = make_napari_viewer()
    viewer.open(str(path.parents[1] / "ct"), plugin="napari-clinlabel")
    boxes_widget = LesionBoxWidget(viewer)
    qtbot.addWidget(boxes_widget)
    assert sorted(boxes_widget.boxes) == ["b2d", "b3d"]
    n0 = len(list(iter_records(log_path)))
    [shapes] = viewer.open(str(path), plugin="napari-clinlabel")
    assert shapes.metadata["clinlabel_sr"]["imported"] is False
    recs = list(iter_records(log_path))
    assert len(recs) == n0  # nothing recorded
    assert not [r for r in recs if r["action"] == "box.import"]
    assert sorted(boxes_widget.boxes) == ["b2d", "b3d"]  # no duplicate
    assert {b.source.get("kind") for b in boxes_widget.boxes.values()} == {"human"}
    assert {b.created_by for b in boxes_widget.boxes.values()} == {"ann"}
    assert len(said) == 1 and "already in this image's log" in said[0]
