"""push → find → pull → open → annotate → export SEG + SR → push → find → read back (highdicom)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
from support.dicom_series_factory import phantom_stored, write_series
from support.orthanc import orthanc  # noqa: F401 - fixture

from napari_clinlabel._reader import read_layers
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.pacs import find_series, find_studies, pull, push
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann Reader", "annotator")
SCHEMA = load_schema("abdomen-ct")


def test_pacs_round_trip(orthanc, tmp_path):  # noqa: F811
    conn = orthanc.connection()
    src = write_series(tmp_path / "scanner", phantom_stored((4, 16, 12)), spacing=(0.7, 0.8, 2.5))
    push(conn, [tmp_path / "scanner"])
    study = find_studies(conn, modality="CT")[0]
    assert study.study_uid == src.meta["study_uid"]
    res = pull(conn, tmp_path / "cache", series_uid=study.series[0].series_uid)
    vol = read_volumes(res.folders[0])[0]
    np.testing.assert_array_equal(vol.array, src.array)
    # annotate: a liver region and a lesion box, logged beside the pulled series
    folder = res.folders[0]
    log = AuditLog.for_image(folder, vol.image_ref(), ANN, SCHEMA.ref())
    labels = np.zeros(vol.spatial_shape, np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    after = labels.copy()
    after[1:3, 4:10, 3:8] = 1
    idx = np.flatnonzero(after.reshape(-1))
    record_label_change(log, after, "labels", idx, labels.reshape(-1)[idx], after.reshape(-1)[idx])
    add_box(log, LesionBox((2, 4.5, 2.5), (2, 9.5, 7.5), "malignant", 3, {}, "b1"), vol, SCHEMA)
    log.close()
    (tmp_path / "out").mkdir()
    seg = export(folder, "dicom-seg", tmp_path / "out" / "seg.dcm", actor=ANN).outputs[0].path
    sr = export(folder, "dicom-sr", tmp_path / "out" / "sr.dcm", actor=ANN).outputs[0].path
    pushed = push(conn, [seg, sr])
    assert len(pushed.stored) == 2
    # the PACS now files SEG and SR in the same study
    series = find_series(conn, study.study_uid)
    assert sorted(s.modality for s in series) == ["CT", "SEG", "SR"]
    back = tmp_path / "back"
    for s in series:
        if s.modality in ("SEG", "SR"):
            pull(conn, back, series_uid=s.series_uid)
    seg_file = next(
        (back / next(s.series_uid for s in series if s.modality == "SEG")).glob("*.dcm")
    )
    sr_file = next((back / next(s.series_uid for s in series if s.modality == "SR")).glob("*.dcm"))
    # the pulled SEG series opens in napari as labels named after its segments
    layers = read_layers(seg_file.parent)
    assert [t[2] for t in layers] == ["labels"]
    assert list(layers[0][1]["features"]["label"]) == ["background", "liver"]
    seg_back = hd.seg.segread(seg_file)
    sops = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
            for f in sorted(folder.glob("*.dcm"))]  # fmt: skip
    assert {d.SegmentLabel for d in seg_back.SegmentSequence} == {"liver"}
    vol_seg = seg_back.get_volume(combine_segments=True, relabel=True)
    assert int(vol_seg.array.sum()) == int(after.sum())  # the liver voxels, all of them
    assert set(sops) >= {str(i.ReferencedSOPInstanceUID)
                         for i in seg_back.ReferencedSeriesSequence[0].ReferencedInstanceSequence}  # fmt: skip
    sr_back = hd.sr.srread(sr_file)
    groups = sr_back.content.get_planar_roi_measurement_groups()
    assert [str(g.tracking_identifier) for g in groups] == ["box b1"]
    assert str(sr_back.StudyInstanceUID) == study.study_uid
    _dcmqi_reads(seg_file, sr_file, int(after.sum()), tmp_path)


def _dcmqi_reads(seg_file, sr_file, liver_voxels, tmp_path):
    """dcmqi, the second oracle: its SEG converter and its TID 1500 reader."""
    import json
    import shutil
    import subprocess

    import pytest
    import SimpleITK as sitk

    seg_exe, sr_exe = shutil.which("segimage2itkimage"), shutil.which("tid1500reader")
    if seg_exe is None or sr_exe is None:
        pytest.skip("dcmqi is not installed (testing extra)")
    out = tmp_path / "dcmqi"
    out.mkdir()
    r = subprocess.run([seg_exe, "--inputDICOM", str(seg_file), "--outputDirectory", str(out),
                        "--outputType", "nrrd"], capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    nrrds = sorted(out.glob("*.nrrd"))
    assert len(nrrds) == 1
    assert (
        int(sitk.GetArrayFromImage(sitk.ReadImage(str(nrrds[0]))).astype(bool).sum())
        == liver_voxels
    )
    r = subprocess.run([sr_exe, "--inputDICOM", str(sr_file), "--outputMetadata",
                        str(out / "sr.json")], capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    meta = json.loads((out / "sr.json").read_text())
    assert [m["TrackingIdentifier"] for m in meta["Measurements"]] == ["box b1"]
