"""DICOM SR TID 1500 read back into boxes: round trip, placement against the DICOM standard's
pixel-to-patient formula (PS3.3 C.7.6.2.1.1), one import record, refusals."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel.core.annotate.boxes import LesionBox, add_box, load_boxes, with_slices
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.export.sr import sr_bytes
from napari_clinlabel.core.export.sr_read import (
    import_boxes,
    place_boxes,
    read_sr,
    sr_files,
)
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, accept, add_proposals
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann Reader", "annotator")
BOB = Actor("bob", "Bob Importer", "annotator")
MODEL = {"name": "lesiondet", "version": "3.2", "sha256": "ef" * 32}
LESIONS = load_schema("lesions")


@pytest.fixture
def exported(tmp_path):
    """An oblique 6-slice series, three boxes (one 3D, one a model's accepted by Ann), its SR."""
    iop = (np.cos(0.3), np.sin(0.3), 0.0, -np.sin(0.3), np.cos(0.3), 0.0)
    write_series(tmp_path / "ct", phantom_stored((6, 24, 20)), spacing=(0.7, 0.8, 2.5), iop=iop)
    vol = read_volumes(tmp_path / "ct")[0]
    log = AuditLog.for_image(tmp_path / "ct", vol.image_ref(), ANN, LESIONS.ref())
    boxes = [
        LesionBox((2, 3.5, 2.5), (2, 9.5, 8.5), "malignant", 4,
                  {"finding": "mass", "location": "liver", "margin": "spiculated"}, "hand1"),
        with_slices(LesionBox((0, 10.5, 4.5), (0, 14.5, 10.5), "benign", 2, {}, "hand3d"), 1, 4),
    ]  # fmt: skip
    for b in boxes:
        add_box(log, b, vol, LESIONS)
    payload = {"zyx_min": [5, 10, 4], "zyx_max": [5, 14, 10], "class": "benign",
               "confidence": None, "attributes": {}, "id": "model1"}  # fmt: skip
    accept(
        log, add_proposals(log, [ProposalDraft("box", "benign", 0.8, payload=payload)], MODEL)[0]
    )
    log.close()
    (tmp_path / "out").mkdir()
    res = export(tmp_path / "ct", "dicom-sr", tmp_path / "out" / "report", actor=ANN)
    return vol, load_boxes(sidecar(tmp_path)), res.outputs[0].path, tmp_path


def sidecar(tmp_path):
    return tmp_path / "ct.clinlabel.jsonl"


def pixel_to_patient(ds, col, row):
    """PS3.3 C.7.6.2.1.1: the patient position of pixel (column, row) of one image."""
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)  # row spacing, column spacing
    return ipp + iop[:3] * dc * col + iop[3:] * dr * row


def test_export_then_read_gives_the_same_boxes(exported):
    vol, before, path, tmp_path = exported
    report = read_sr(path)
    assert report.person == "Reader^Ann" and report.device == "lesiondet"
    assert report.referenced_series_uids == [vol.series_uid]
    back = {b.id: b for b in place_boxes(report, vol.meta["sop_instance_uids"], 3)}
    assert set(back) == set(before) == {"hand1", "hand3d", "model1"}
    for bid, b in before.items():
        got = back[bid]
        np.testing.assert_allclose(got.zyx_min, b.zyx_min, atol=1e-6)
        np.testing.assert_allclose(got.zyx_max, b.zyx_max, atol=1e-6)
        assert (got.cls, got.confidence, got.attributes) == (b.cls, b.confidence, b.attributes)
    f = {x.box_id: x for x in report.findings}
    assert f["model1"].algorithm == {"name": "lesiondet", "version": "3.2"}
    assert f["hand1"].algorithm is None and f["hand3d"].volumetric
    # the oracle for "same boxes in mm": the standard's pixel->patient formula on the referenced
    # file's own header gives the world corner that the series' geometry gives the read box
    headers = {str(d.SOPInstanceUID): d for d in
               (pydicom.dcmread(p, stop_before_pixels=True) for p in (tmp_path / "ct").iterdir()
                if not p.name.startswith("."))}  # fmt: skip
    for bid in before:
        outline = f[bid].outlines[0]
        ds = headers[outline.sop_instance_uid]
        col, row = outline.points.min(axis=0)  # DICOM pixel coordinates of the top-left corner
        world = pixel_to_patient(ds, col - 0.5, row - 0.5)  # the pixel centre convention
        b = back[bid]
        k = b.zyx_min[0] if not b.is_3d else b.zyx_min[0] + 0.5
        ours = vol.geometry.index_to_world([[k, b.zyx_min[1], b.zyx_min[2]]])[0][::-1]
        np.testing.assert_allclose(ours, world, atol=1e-4)
        w = f[bid].sizes_mm
        assert w["Width"] == pytest.approx((b.zyx_max[2] - b.zyx_min[2]) * 0.7)
        assert w["Height"] == pytest.approx((b.zyx_max[1] - b.zyx_min[1]) * 0.8)


def test_import_is_one_record_by_the_importer_naming_the_sr(exported, tmp_path_factory):
    vol, before, path, tmp_path = exported
    # a fresh copy of the series (its own log) opened by Bob, who imports the report
    other = tmp_path_factory.mktemp("other")
    import shutil

    shutil.copytree(tmp_path / "ct", other / "ct", ignore=shutil.ignore_patterns(".*"))
    vol2 = read_volumes(other / "ct")[0]
    log = AuditLog.for_image(other / "ct", vol2.image_ref(), BOB, LESIONS.ref())
    report = read_sr(path)
    boxes = place_boxes(report, vol2.meta["sop_instance_uids"], 3)
    n0 = len(list(iter_records(log.path)))
    rec = import_boxes(log, report, boxes, vol2, LESIONS)
    assert rec is not None and rec["action"] == "box.import"
    assert rec["actor"]["id"] == "bob"
    assert rec["source"]["kind"] == "tool"
    assert rec["source"]["sop_instance_uid"] == str(pydicom.dcmread(path).SOPInstanceUID)
    assert import_boxes(log, report, boxes, vol2, LESIONS) is None  # same report: not again
    log.close()
    assert len(list(iter_records(other / "ct.clinlabel.jsonl"))) == n0 + 1
    imported = load_boxes(other / "ct.clinlabel.jsonl")
    assert set(imported) == set(before)
    assert imported["hand1"].created_by == "bob"
    assert imported["hand1"].source["name"] == "dicom-sr"
    assert imported["model1"].attributes == {}
    prov = {d["id"]: d["sr"] for d in rec["data"]["boxes"]}
    assert prov["model1"]["algorithm"]["name"] == "lesiondet"
    assert prov["hand1"]["person_observer"] == "Reader^Ann"
    # the imported boxes export again: the importer is now the observer
    res = export(other / "ct", "dicom-sr", other / "again", actor=BOB)
    assert {f.box_id for f in read_sr(res.outputs[0].path).findings} == set(before)


def test_read_refusals(exported, tmp_path):
    vol, _before, path, root = exported
    assert sr_files(path) == [path] and sr_files(root / "ct") == []
    with pytest.raises(InputError, match="not a DICOM structured report"):
        read_sr(next(p for p in (root / "ct").iterdir() if p.suffix == ".dcm" or not p.suffix))
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    with pytest.raises(InputError, match="not a readable DICOM file"):
        read_sr(bad)
    report = read_sr(path)
    with pytest.raises(InputError, match="not in this series"):
        place_boxes(report, vol.meta["sop_instance_uids"][:2], 3)


DCMQI_META = {
    "SeriesDescription": "Measurements", "SeriesNumber": "1001", "InstanceNumber": "1",
    "compositeContext": ["liver.dcm"], "imageLibrary": ["01.dcm", "02.dcm", "03.dcm"],
    "observerContext": {"ObserverType": "PERSON", "PersonObserverName": "Reader^One"},
    "VerificationFlag": "UNVERIFIED", "CompletionFlag": "COMPLETE",
    "activitySession": "1", "timePoint": "1",
    "Measurements": [{
        "TrackingIdentifier": "liver group", "ReferencedSegment": 1,
        "Finding": {"CodeValue": "113343008", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Organ"},
        "FindingSite": {"CodeValue": "10200004", "CodingSchemeDesignator": "SCT",
                        "CodeMeaning": "Liver"},
        "measurementItems": [{
            "value": "37.3749",
            "quantity": {"CodeValue": "122713", "CodingSchemeDesignator": "DCM",
                         "CodeMeaning": "Attenuation Coefficient"},
            "units": {"CodeValue": "[hnsf'U]", "CodingSchemeDesignator": "UCUM",
                      "CodeMeaning": "Hounsfield unit"},
        }],
    }],
}  # fmt: skip


def test_an_sr_written_by_dcmqi_is_read_and_its_segment_groups_skipped(shared_data, tmp_path):
    """dcmqi's tid1500writer (an Enhanced SR whose group measures a SEG segment, no outline):
    read through highdicom, observer found, the group listed as skipped, no box invented."""
    import json
    import shutil
    import subprocess

    exe = shutil.which("tid1500writer")
    if exe is None:
        pytest.skip("dcmqi (tid1500writer) is not installed")
    data = shared_data / "dcmqi_ct3slice_seg"
    seg = pydicom.dcmread(data / "liver.dcm", stop_before_pixels=True)
    meta = json.loads(json.dumps(DCMQI_META))
    group = meta["Measurements"][0]
    group["segmentationSOPInstanceUID"] = str(seg.SOPInstanceUID)
    group["SourceSeriesForImageSegmentation"] = str(
        seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    )
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    r = subprocess.run([exe, "--inputMetadata", str(tmp_path / "meta.json"),
                        "--inputImageLibraryDirectory", str(data / "ct-3slice"),
                        "--inputCompositeContextDirectory", str(data),
                        "--outputDICOM", str(tmp_path / "dcmqi_sr.dcm")],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = read_sr(tmp_path / "dcmqi_sr.dcm")
    assert pydicom.dcmread(tmp_path / "dcmqi_sr.dcm").SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.22"
    assert report.person == "Reader^One"
    assert report.findings == []
    assert len(report.skipped) == 1 and "liver group" in report.skipped[0]
    # its evidence: the SEG's series and the CT series the SEG was made on
    assert str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID) in report.referenced_series_uids
    assert str(seg.SeriesInstanceUID) in report.referenced_series_uids


def test_sr_bytes_are_pydicoms_own_encoding(exported):
    """The faster writing (one ambiguous-VR pass, items marked as encoded) gives byte for byte
    what pydicom's writer gives for the same dataset built fresh."""
    import copy
    import io

    _vol, _before, path, _root = exported
    ds = pydicom.dcmread(path)
    fresh = pydicom.Dataset()  # the same content as a tree built in memory (no original encoding)
    for elem in copy.deepcopy(ds):
        fresh.add(elem)
    plain = copy.deepcopy(fresh)
    for item in _walk(plain):
        item.set_original_encoding(None, None, None)
    fresh.file_meta = plain.file_meta = ds.file_meta
    buf = io.BytesIO()
    plain.save_as(buf, enforce_file_format=True)
    assert sr_bytes(fresh) == buf.getvalue()


def _walk(ds):
    yield ds
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)


# -- round trip of the z extent (issue: a 0..2 box came back -0.5..2.5, 50 % deeper) ----------
def _box_rows(log_path, action):
    return {d["id"]: d for r in iter_records(log_path) if r["action"] == action
            for d in ([r["data"]] if action == "box.add" else r["data"]["boxes"])}  # fmt: skip


def _export_and_import(folder, boxes, tmp_path):
    """Boxes drawn by Ann on ``folder``'s series, exported as SR, imported by Bob into a fresh
    copy of the series; returns (Ann's box.add rows, Bob's box.import rows, the report)."""
    import shutil

    vol = read_volumes(folder)[0]
    log = AuditLog.for_image(folder, vol.image_ref(), ANN, LESIONS.ref())
    for b in boxes:
        add_box(log, b, vol, LESIONS)
    log.close()
    (tmp_path / "out").mkdir()
    res = export(folder, "dicom-sr", tmp_path / "out" / "sr", actor=ANN)
    fresh = tmp_path / "fresh" / folder.name
    shutil.copytree(folder, fresh, ignore=shutil.ignore_patterns(".*", "*.jsonl"))
    vol2 = read_volumes(fresh)[0]
    report = read_sr(res.outputs[0].path)
    placed = place_boxes(report, vol2.meta["sop_instance_uids"], 3, vol2.geometry.spacing_zyx[0])
    log2 = AuditLog.for_image(fresh, vol2.image_ref(), BOB, LESIONS.ref())
    assert import_boxes(log2, report, placed, vol2, LESIONS) is not None
    log2.close()
    before = _box_rows(folder.parent / f"{folder.name}.clinlabel.jsonl", "box.add")
    after = _box_rows(fresh.parent / f"{fresh.name}.clinlabel.jsonl", "box.import")
    return before, after, report


def test_round_trip_keeps_z_extent_size_and_volume(tmp_path):
    """Planar, drawn 3-slice (whole slices) and API 3-slice (``a..b``) boxes come back with the
    same extent, size and volume; the oracle is the series' own spacing (0.7, 0.8, 2.5 mm)."""
    write_series(tmp_path / "ct", phantom_stored((6, 24, 20)), spacing=(0.7, 0.8, 2.5))
    boxes = [
        LesionBox((2, 3.5, 2.5), (2, 9.5, 8.5), "malignant", 4, {}, "planar"),
        with_slices(LesionBox((0, 10.5, 4.5), (0, 14.5, 10.5), "benign", 2, {}, "drawn3"), 0, 2),
        LesionBox((1, 4, 3), (3, 12, 9), "benign", None, {}, "api3"),  # slices 1..3, 2 deep
        LesionBox((0.2, 4, 3), (1.8, 12, 9), None, None, {}, "apithin"),
    ]
    before, after, report = _export_and_import(tmp_path / "ct", boxes, tmp_path)
    assert set(after) == set(before) == {"planar", "drawn3", "api3", "apithin"}
    depth_of = {f.box_id: f.sizes_mm.get("Depth") for f in report.findings}
    expected_depth = {"planar": 2.5, "drawn3": 3 * 2.5, "api3": 2 * 2.5, "apithin": 1.6 * 2.5}
    for bid, b in before.items():
        a = after[bid]
        assert a["zyx_min"] == pytest.approx(b["zyx_min"], abs=1e-6)
        assert a["zyx_max"] == pytest.approx(b["zyx_max"], abs=1e-6)
        assert a["size_mm"] == pytest.approx(b["size_mm"], abs=1e-4)
        assert a["size_mm"][0] == pytest.approx(expected_depth[bid])
        (y0, x0), (y1, x1) = b["zyx_min"][1:], b["zyx_max"][1:]
        if bid == "planar":
            assert a["volume_ml"] is None and depth_of[bid] is None  # TID 1410: no depth
        else:
            assert depth_of[bid] == pytest.approx(expected_depth[bid])  # what the SR states
            vol_ml = expected_depth[bid] * (y1 - y0) * 0.8 * (x1 - x0) * 0.7 / 1000
            assert a["volume_ml"] == pytest.approx(vol_ml, rel=1e-5)
            assert a["volume_ml"] == pytest.approx(b["volume_ml"], rel=1e-5)


def test_off_centre_box_keeps_its_size_and_volume(tmp_path):
    """A box not centred on the slices it touches (0.3..2.0: slices 0–2) comes back as deep and
    as large (its Depth), centred on those slices: it moves by under half a slice."""
    write_series(tmp_path / "ct", phantom_stored((4, 16, 16)), spacing=(0.7, 0.8, 2.5))
    box = LesionBox((0.3, 4, 3), (2.0, 12, 9), "benign", None, {}, "offc")
    before, after, _report = _export_and_import(tmp_path / "ct", [box], tmp_path)
    a, b = after["offc"], before["offc"]
    assert a["size_mm"] == pytest.approx(b["size_mm"], abs=1e-4)
    assert a["size_mm"][0] == pytest.approx(1.7 * 2.5)
    assert a["volume_ml"] == pytest.approx(b["volume_ml"], rel=1e-5)
    assert abs(a["zyx_min"][0] - 0.3) < 0.5 and a["zyx_min"][1:] == b["zyx_min"][1:]


def test_real_ct_api_box_round_trip_is_exact(shared_data, tmp_path):
    """The reported case: dcmqi's 3-slice CT, a box z 0..2 (Depth 2.0 mm) and a planar one;
    the oracle for mm is the files' own PixelSpacing and ImagePositionPatient (pydicom)."""
    import shutil

    src = shared_data / "dcmqi_ct3slice_seg" / "ct-3slice"
    shutil.copytree(src, tmp_path / "ct")
    heads = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in (tmp_path / "ct").iterdir()
                    if p.is_file()), key=lambda d: float(d.ImagePositionPatient[2]))  # fmt: skip
    dz = abs(float(heads[1].ImagePositionPatient[2]) - float(heads[0].ImagePositionPatient[2]))
    dr, dc = (float(v) for v in heads[0].PixelSpacing)
    boxes = [LesionBox((0, 100, 120), (2, 160, 200), "malignant", 3, {}, "vol"),
             LesionBox((1, 200, 210), (1, 240, 260), "benign", None, {}, "flat")]  # fmt: skip
    before, after, report = _export_and_import(tmp_path / "ct", boxes, tmp_path)
    assert {f.box_id: f.volumetric for f in report.findings} == {"vol": True, "flat": False}
    a = after["vol"]
    assert a["zyx_min"] == [0.0, 100.0, 120.0] and a["zyx_max"] == [2.0, 160.0, 200.0]
    assert a["size_mm"][0] == pytest.approx(2 * dz, abs=1e-4)  # 2.0 mm, not 3.0
    assert a["volume_ml"] == pytest.approx(2 * dz * 60 * dr * 80 * dc / 1000, rel=1e-5)
    assert a["volume_ml"] == pytest.approx(before["vol"]["volume_ml"], rel=1e-5)
    assert after["flat"]["zyx_min"] == before["flat"]["zyx_min"]
    assert after["flat"]["size_mm"] == pytest.approx(before["flat"]["size_mm"], abs=1e-4)


# -- importing a report into a log that already holds its boxes -------------------------------
def test_own_sr_imported_into_its_own_log_changes_nothing(exported):
    vol, before, path, tmp_path = exported
    n0 = len(list(iter_records(sidecar(tmp_path))))
    report = read_sr(path)
    placed = place_boxes(report, vol.meta["sop_instance_uids"], 3, vol.geometry.spacing_zyx[0])
    log = AuditLog.for_image(tmp_path / "ct", vol.image_ref(), BOB, LESIONS.ref())
    assert import_boxes(log, report, placed, vol, LESIONS) is None  # all known: nothing recorded
    log.close()
    assert len(list(iter_records(sidecar(tmp_path)))) == n0
    after = load_boxes(sidecar(tmp_path))
    assert set(after) == set(before)  # no duplicate, no renamed copy
    for bid, b in before.items():  # not re-attributed to the dicom-sr tool
        assert (after[bid].source, after[bid].created_by) == (b.source, b.created_by)
    assert after["hand1"].source == {"kind": "human"} and after["hand1"].created_by == "ann"
    assert after["model1"].source["name"] == "lesiondet"


def test_only_boxes_not_in_the_log_are_imported(exported, tmp_path_factory):
    """Bob's copy already holds hand1 (same id, drawn by Bob) and, from an earlier import, a box
    with model1's tracking UID under another id: only hand3d is imported."""
    import shutil
    from dataclasses import replace

    vol, _before, path, tmp_path = exported
    other = tmp_path_factory.mktemp("partial")
    shutil.copytree(tmp_path / "ct", other / "ct", ignore=shutil.ignore_patterns(".*"))
    vol2 = read_volumes(other / "ct")[0]
    log = AuditLog.for_image(other / "ct", vol2.image_ref(), BOB, LESIONS.ref())
    add_box(log, LesionBox((3, 1, 1), (3, 5, 5), "benign", None, {}, "hand1"), vol2, LESIONS)
    report = read_sr(path)
    f_model = next(f for f in report.findings if f.box_id == "model1")
    earlier = replace(report, sop_instance_uid="1.2.3.4", findings=[replace(f_model, box_id="m1x")])
    placed = place_boxes(earlier, vol2.meta["sop_instance_uids"], 3, 2.5)
    assert import_boxes(log, earlier, placed, vol2, LESIONS) is not None  # model1's UID, as m1x
    rec = import_boxes(log, report, place_boxes(report, vol2.meta["sop_instance_uids"], 3, 2.5),
                       vol2, LESIONS)  # fmt: skip
    log.close()
    assert rec is not None
    assert [d["id"] for d in rec["data"]["boxes"]] == ["hand3d"]
    assert rec["data"]["sr"]["already_in_log"] == ["hand1", "model1"]
    boxes = load_boxes(other / "ct.clinlabel.jsonl")
    assert sorted(boxes) == ["hand1", "hand3d", "m1x"]
    assert boxes["hand1"].source == {"kind": "human"} and boxes["hand1"].zyx_min == (3, 1, 1)
    assert boxes["hand3d"].source["name"] == "dicom-sr"
