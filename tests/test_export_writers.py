"""npe2 export writers: call core.export with the layer's source; refuse unlogged layer state."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel._export_writers import (
    write_boxes_coco,
    write_boxes_csv,
    write_labels_dicom_seg,
    write_labels_nifti,
    write_labels_nrrd,
)
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor


@pytest.fixture
def image(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    path = tmp_path / "img.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 9), np.int16)), str(path))
    vol = read_volumes(path)[0]
    log = AuditLog.for_image(path, vol.image_ref(), Actor("ann", "Ann"))
    labels = np.zeros((3, 8, 9), np.uint8)
    record_labels_create(log, "reader1", labels.shape, labels.dtype)
    idx = np.arange(5, 25, dtype=np.int64)
    labels.reshape(-1)[idx] = 3
    record_label_change(
        log, labels, "reader1", idx, np.zeros(20, np.uint8), labels.reshape(-1)[idx]
    )
    add_box(log, LesionBox((1, 1, 1), (1, 4, 5), "benign", None, {}, "b1"), vol)
    attrs = {"name": "reader1 [labels]",
             "metadata": {"clinlabel": {"source_path": str(path)}, "clinlabel_labels": {"name": "reader1"}}}  # fmt: skip
    return path, labels, attrs


def test_label_writers(tmp_path, image):
    path, labels, attrs = image
    written = write_labels_nifti(str(tmp_path / "o.nii.gz"), labels, attrs)
    assert written == [str(tmp_path / "o.nii.gz"), str(tmp_path / "o.nii.gz.json")]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(written[0])), labels)
    assert write_labels_nrrd(str(tmp_path / "o.nrrd"), labels, attrs)[0].endswith("o.nrrd")
    changed = labels.copy()
    changed[0, 0, 0] = 9  # a change the log never saw
    with pytest.raises(ExportError, match="does not record"):
        write_labels_nifti(str(tmp_path / "x.nii.gz"), changed, attrs)
    with pytest.raises(ExportError, match="not read from DICOM"):
        write_labels_dicom_seg(str(tmp_path / "x.dcm"), labels, attrs)
    with pytest.raises(ExportError, match="source_path"):
        write_labels_nifti(str(tmp_path / "x.nii.gz"), labels, {"name": "l", "metadata": {}})
    assert not list(tmp_path.glob("x*"))


def test_shape_writers(tmp_path, image):
    path, labels, attrs = image
    out = write_boxes_csv(str(tmp_path / "b.csv"), None, attrs)
    assert [p.rsplit("/", 1)[-1] for p in out] == ["b.csv", "b.grades.csv"]
    out = write_boxes_coco(str(tmp_path / "b.coco.json"), None, attrs)
    assert json.loads(open(out[0]).read())["annotations"][0]["bbox"] == [1.0, 1.0, 4.0, 3.0]
