"""core.export: the gate, final labels only, atomic outputs, one export record with digests."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from support.dicom_factory import write_ct_series

from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.errors import ExportError, LogError, PendingProposalsError
from napari_clinlabel.core.export import gate as export_mod
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, accept, add_proposals
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann Reader", "annotator")
MODEL = {"name": "organseg", "version": "2.1", "sha256": "cd" * 32}
SCHEMA = load_schema("abdomen-ct")
GEOM = Geometry((0.8, 0.9, 2.5), (-20.0, 10.0, 5.0), (1, 0, 0, 0, 0.6, -0.8, 0, 0.8, 0.6))


def make_image(tmp_path, shape=(6, 20, 24)):
    """A NIfTI image, its log with one painted organ, and the label array."""
    img_path = tmp_path / "ct.nii.gz"
    rng = np.random.default_rng(0)
    img = sitk.GetImageFromArray(rng.integers(-100, 100, shape).astype(np.int16))
    GEOM.apply_to_itk(img)
    sitk.WriteImage(img, str(img_path))
    vol = read_volumes(img_path)[0]
    log = AuditLog.for_image(img_path, vol.image_ref(), ANN, SCHEMA.ref())
    labels = np.zeros(shape, np.uint8)
    record_labels_create(log, "labels", shape, labels.dtype)
    paint(log, labels, 1, np.s_[1:4, 3:10, 4:12])
    return img_path, vol, log, labels


def paint(log, labels, value, region):
    after = labels.copy()
    after[region] = value
    idx = np.flatnonzero(labels.reshape(-1) != after.reshape(-1))
    old, new = labels.reshape(-1)[idx], after.reshape(-1)[idx]
    labels[...] = after
    return record_label_change(log, labels, "labels", idx, old, new)


def propose(log, labels, value, region):
    mask = np.zeros(labels.shape, bool)
    mask[region] = True
    draft = ProposalDraft("segment", value, 0.9, np.flatnonzero(mask.reshape(-1)), labels.shape)
    return add_proposals(log, [draft], MODEL)[0]


def export_records(img_path):
    log = str(img_path) + ".clinlabel.jsonl"
    return [r for r in iter_records(log) if r["action"] == "export"]


def test_nifti_export_geometry_intent_side_file_and_record(tmp_path):
    img_path, vol, log, labels = make_image(tmp_path)
    p = propose(log, labels, 2, np.s_[4:6, 10:15, 10:20])
    accept(log, p, labels, "labels")
    head_before = log.head()
    (tmp_path / "out").mkdir()
    res = export(img_path, "nifti", tmp_path / "out" / "labels", actor=ANN)
    out = tmp_path / "out" / "labels.nii.gz"
    assert [o.path for o in res.outputs] == [out, tmp_path / "out" / "labels.nii.gz.json"]
    back = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels)
    assert Geometry.from_itk(back).close_to(GEOM)
    assert back.GetPixelID() == sitk.sitkUInt8
    assert back.GetMetaData("intent_code") == "1002" and back.GetMetaData("intent_name") == "label"
    side = json.loads((tmp_path / "out" / "labels.nii.gz.json").read_text())
    assert [e["name"] for e in side["labels"]] == ["liver", "spleen"]
    assert side["labels"][0]["type"] == {"scheme": "SCT", "value": "10200004", "meaning": "Liver"}
    assert side["schema"] == SCHEMA.ref()
    assert side["log_head"] == head_before.to_dict()
    rec = export_records(img_path)[-1]
    assert rec["actor"]["id"] == "ann" and rec["seq"] == head_before.seq + 1
    assert rec["data"]["format"] == "nifti" and rec["data"]["head"] == head_before.to_dict()
    for o, f in zip(rec["data"]["outputs"], res.outputs, strict=True):
        data = f.path.read_bytes()
        assert o == {"name": f.path.name, "sha256": hashlib.sha256(data).hexdigest(),
                     "bytes": len(data)}  # fmt: skip
        assert f.path.stat().st_mode & 0o777 == 0o644  # a shareable file, not mkstemp's 0600
    assert rec["data"]["exclude_pending"] is False and rec["data"]["pending_left_out"] == 0


@pytest.mark.parametrize("fmt,suffix", [("nrrd", ".nrrd"), ("mha", ".mha")])
def test_nrrd_mha(tmp_path, fmt, suffix):
    img_path, vol, log, labels = make_image(tmp_path)
    res = export(img_path, fmt, tmp_path / f"l{suffix}", actor=ANN)
    back = sitk.ReadImage(str(res.outputs[0].path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels)
    assert Geometry.from_itk(back).close_to(GEOM)


def test_refused_while_pending_then_exclude_pending(tmp_path):
    img_path, vol, log, labels = make_image(tmp_path)
    propose(log, labels, 2, np.s_[4:6, 10:15, 10:20])
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(PendingProposalsError, match="1 proposal is still undecided") as ei:
        export(img_path, "nifti", tmp_path / "l.nii.gz", actor=ANN)
    assert ei.value.pending == 1
    assert sorted(os.listdir(tmp_path)) == before and export_records(img_path) == []
    res = export(img_path, "nifti", tmp_path / "l.nii.gz", actor=ANN, exclude_pending=True)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(res.outputs[0].path))), labels
    )
    assert (labels == 2).sum() == 0  # the pending proposal is not in the labels
    rec = export_records(img_path)[-1]
    assert rec["data"]["exclude_pending"] is True and rec["data"]["pending_left_out"] == 1
    assert res.pending_left_out == 1


def test_bad_input_clear_errors_nothing_left(tmp_path):
    img_path, vol, log, labels = make_image(tmp_path)
    with pytest.raises(ExportError, match="not read from DICOM.*NIfTI instead"):
        export(img_path, "dicom-seg", tmp_path / "s.dcm", actor=ANN)
    with pytest.raises(ExportError, match="does not exist"):
        export(img_path, "nifti", tmp_path / "nope" / "l.nii.gz", actor=ANN)
    record_labels_create(log, "reader2", labels.shape, labels.dtype)
    with pytest.raises(ExportError, match="several labels layers .*--labels NAME"):
        export(img_path, "nrrd", tmp_path / "l.nrrd", actor=ANN)
    with pytest.raises(ExportError, match="no labels layer named 'reader3'"):
        export(img_path, "nifti", tmp_path / "l.nii.gz", actor=ANN, labels_name="reader3")
    with pytest.raises(ExportError, match="Unknown export format"):
        export(img_path, "jpeg", tmp_path / "l.jpg", actor=ANN)
    paint(log, labels, 0, np.s_[:, :, :])  # erase everything
    with pytest.raises(ExportError, match="empty"):
        export(img_path, "nifti", tmp_path / "l.nii.gz", actor=ANN, labels_name="labels")
    assert not list(tmp_path.glob("l*")) and export_records(img_path) == []


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    img_path, vol, log, labels = make_image(tmp_path)
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(export_mod.os, "replace", flaky)
    with pytest.raises(ExportError, match="cannot write the export.*Nothing was written"):
        export(img_path, "nifti", tmp_path / "l.nii.gz", actor=ANN)
    monkeypatch.setattr(export_mod.os, "replace", real)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(("l", ".l"))]
    assert left == [] and export_records(img_path) == []


def test_no_record_no_export(tmp_path, monkeypatch):
    img_path, vol, log, labels = make_image(tmp_path)

    def broken(self, *a, **k):
        raise LogError("disk full")

    monkeypatch.setattr(AuditLog, "append", broken)
    with pytest.raises(LogError):
        export(img_path, "nrrd", tmp_path / "l.nrrd", actor=ANN)
    assert not (tmp_path / "l.nrrd").exists() and not (tmp_path / "l.nrrd.json").exists()


def test_tables_through_export(tmp_path):
    img_path, vol, log, labels = make_image(tmp_path)
    add_box(log, LesionBox((2, 3, 4), (2, 8, 9), "benign", 3, {}, "bx1"), vol, SCHEMA)
    res = export(img_path, "json", tmp_path / "t", actor=ANN)
    doc = json.loads(res.outputs[0].path.read_text())
    assert doc["boxes"][0]["id"] == "bx1" and doc["grades"] == []
    res = export(img_path, "csv", tmp_path / "t.csv", actor=ANN)
    assert [o.path.name for o in res.outputs] == ["t.csv", "t.grades.csv"]
    res = export(img_path, "coco", tmp_path / "c.json", actor=ANN)
    coco = json.loads(res.outputs[0].path.read_text())
    assert coco["annotations"][0]["bbox"] == [4.0, 3.0, 5.0, 5.0]
    assert [r["data"]["format"] for r in export_records(img_path)] == ["json", "csv", "coco"]


def test_dicom_seg_end_to_end_algorithm_types(tmp_path):
    import highdicom as hd

    g = Geometry((0.7, 0.7, 2.0), (-30.0, -20.0, 10.0), tuple(np.eye(3).ravel()))
    write_ct_series(tmp_path / "ct", np.zeros((4, 16, 16), np.int16), g, reverse_instances=True)
    vol = read_volumes(tmp_path / "ct")[0]
    log = AuditLog.for_image(tmp_path / "ct", vol.image_ref(), ANN, SCHEMA.ref())
    labels = np.zeros(vol.spatial_shape, np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    paint(log, labels, 1, np.s_[0:2, 2:6, 2:6])
    accept(log, propose(log, labels, 5, np.s_[2:4, 8:12, 8:12]), labels, "labels")
    from napari_clinlabel.core.proposals.lifecycle import edit

    p6 = propose(log, labels, 6, np.s_[1:3, 12:15, 1:4])
    m = np.zeros(labels.shape, bool)
    m[1:3, 12:15, 1:3] = True
    edit(log, p6, labels, "labels", m)
    res = export(tmp_path / "ct", "dicom-seg", tmp_path / "seg.dcm", actor=ANN)
    seg = hd.seg.segread(res.outputs[0].path)
    types = {d.SegmentLabel: d.SegmentAlgorithmType for d in seg.SegmentSequence}
    assert types == {"liver": "MANUAL", "aorta": "AUTOMATIC", "lesion": "SEMIAUTOMATIC"}
    assert str(seg.ContentCreatorName) == "Reader^Ann"
    vol_back = seg.get_volume(combine_segments=True, relabel=True)
    assert vol_back.array.shape[0] == 4
    assert export_records(tmp_path / "ct")[-1]["data"]["format"] == "dicom-seg"
    # a second reader's labels in the same layer: one SEG cannot have two creators
    log.actor = Actor("bob", "Bob Other", "annotator")
    paint(log, labels, 2, np.s_[3, 0:2, 0:2])
    with pytest.raises(ExportError, match="one content creator"):
        export(tmp_path / "ct", "dicom-seg", tmp_path / "seg2.dcm", actor=ANN)
    assert not (tmp_path / "seg2.dcm").exists()


def test_side_files_named_per_output_never_overwrite(tmp_path):
    """NIfTI then NRRD to one stem: two side files, each matching its export record's sha256."""
    img_path, _vol, _log, labels = make_image(tmp_path)
    export(img_path, "nifti", tmp_path / "l.nii.gz", actor=ANN)
    export(img_path, "nrrd", tmp_path / "l.nrrd", actor=ANN)
    sides = {"nifti": tmp_path / "l.nii.gz.json", "nrrd": tmp_path / "l.nrrd.json"}
    assert all(p.is_file() for p in sides.values()) and not (tmp_path / "l.json").exists()
    recs = export_records(img_path)
    assert [r["data"]["format"] for r in recs] == ["nifti", "nrrd"]
    for rec in recs:
        side = sides[rec["data"]["format"]]
        [entry] = [o for o in rec["data"]["outputs"] if o["name"] == side.name]
        assert entry["sha256"] == hashlib.sha256(side.read_bytes()).hexdigest()  # the file on disk
        assert entry["bytes"] == side.stat().st_size
    # each side file describes its own output, read back by SimpleITK
    for fmt, out in (("nifti", "l.nii.gz"), ("nrrd", "l.nrrd")):
        meta = json.loads(sides[fmt].read_text())
        back = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / out)))
        np.testing.assert_array_equal(back, labels)
        assert out in json.dumps(meta)


def test_dicom_seg_save_shows_no_person_name_warning(tmp_path):
    """A source whose names have one component ("ANONYMOUS"): highdicom's person-name
    UserWarning about them does not reach the user; the names are copied as stored."""
    import warnings

    import pydicom

    g = Geometry((0.7, 0.7, 2.0), (-30.0, -20.0, 10.0), tuple(np.eye(3).ravel()))
    files = write_ct_series(tmp_path / "ct", np.zeros((3, 12, 12), np.int16), g)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.PatientName = "ANONYMOUS"
        ds.ReferringPhysicianName = "REFDOC"
        ds.save_as(f)
    vol = read_volumes(tmp_path / "ct")[0]
    log = AuditLog.for_image(tmp_path / "ct", vol.image_ref(), ANN, SCHEMA.ref())
    labels = np.zeros(vol.spatial_shape, np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    paint(log, labels, 1, np.s_[0:2, 2:6, 2:6])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = export(tmp_path / "ct", "dicom-seg", tmp_path / "seg.dcm", actor=ANN)
    assert not [w for w in caught if "person name" in str(w.message)]
    seg = pydicom.dcmread(res.outputs[0].path)
    assert str(seg.PatientName) == "ANONYMOUS" and seg.SegmentSequence[0].SegmentLabel == "liver"
