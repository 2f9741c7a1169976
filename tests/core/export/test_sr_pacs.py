"""An SR pulled from a PACS (a real Orthanc, DICOMweb) opens as its boxes on the pulled series."""

from __future__ import annotations

import numpy as np
from support.dicom_series_factory import phantom_stored, write_series
from support.orthanc import orthanc  # noqa: F401 - fixture

from napari_clinlabel._reader import read_layers
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box, with_slices
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.export.sr_read import sr_files
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.pacs import find_studies, pull, push
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann Reader", "annotator")


def test_sr_pulled_with_its_study_opens_as_boxes_on_the_pulled_series(orthanc, tmp_path):  # noqa: F811
    conn = orthanc.connection()
    write_series(tmp_path / "scanner", phantom_stored((4, 16, 12)), spacing=(0.7, 0.8, 2.5))
    vol = read_volumes(tmp_path / "scanner")[0]
    log = AuditLog.for_image(tmp_path / "scanner", vol.image_ref(), ANN,
                             load_schema("lesions").ref())  # fmt: skip
    add_box(log, LesionBox((2, 4.5, 2.5), (2, 9.5, 7.5), "malignant", 3, {}, "b1"), vol)
    add_box(log, with_slices(LesionBox((0, 1.5, 1.5), (0, 5.5, 4.5), "benign", 2, {}, "b2"), 0, 2),
            vol)  # fmt: skip
    log.close()
    (tmp_path / "out").mkdir()
    sr = export(tmp_path / "scanner", "dicom-sr", tmp_path / "out" / "sr.dcm", actor=ANN)
    push(conn, [tmp_path / "scanner", sr.outputs[0].path])
    study = find_studies(conn)[0]
    res = pull(conn, tmp_path / "cache", study_uid=study.study_uid)  # one folder per series
    by_modality = {("SR" if sr_files(folder) else "CT"): folder for folder in res.folders}
    assert len(by_modality) == 2
    pulled_ct = read_volumes(by_modality["CT"])[0]
    [(rects, kwargs, kind)] = read_layers(str(by_modality["SR"]))
    assert kind == "shapes"
    # placed on the pulled series' own affine, at the voxel extents drawn on the scanner's files
    np.testing.assert_allclose(kwargs["affine"], pulled_ct.geometry.napari_affine())
    got = {}
    for bid, r in zip(kwargs["features"]["box_id"], rects, strict=True):
        got.setdefault(bid, []).append(np.asarray(r))
    np.testing.assert_allclose(got["b1"][0].min(axis=0), [2, 4.5, 2.5])
    np.testing.assert_allclose(got["b1"][0].max(axis=0), [2, 9.5, 7.5])
    assert [r[0][0] for r in got["b2"]] == [0, 1, 2]
