"""DICOM SR TID 1500 export: read back by highdicom and by dcmqi's tid1500reader; dciodvfy clean."""

from __future__ import annotations

import json
import shutil
import subprocess

import highdicom as hd
import numpy as np
import pytest
from pydicom.sr.codedict import codes
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel.core.annotate.boxes import LesionBox, add_box, with_slices
from napari_clinlabel.core.annotate.grading import set_grade
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.export.sr import grade_code
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, accept, add_proposals
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann Reader", "annotator")
MODEL = {"name": "lesiondet", "version": "3.2", "sha256": "ef" * 32}
LESIONS = load_schema("lesions")
BIRADS = load_schema("birads")


def dciodvfy_errors(path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [ln for ln in r.stderr.splitlines() if ln.startswith("Error")]


def tid1500reader(path, tmp_path):
    exe = shutil.which("tid1500reader")
    if exe is None:
        pytest.skip("dcmqi (tid1500reader) is not installed")
    out = tmp_path / "sr.json"
    r = subprocess.run([exe, "--inputDICOM", str(path), "--outputMetadata", str(out)],
                       capture_output=True, text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.read_text())


@pytest.fixture
def annotated(tmp_path):
    """A 5-slice CT series with a hand-drawn 2D box, a model box accepted by Ann, and grades."""
    s = write_series(tmp_path / "ct", phantom_stored((5, 20, 16)), spacing=(0.7, 0.8, 2.5))
    vol = read_volumes(tmp_path / "ct")[0]
    log = AuditLog.for_image(tmp_path / "ct", vol.image_ref(), ANN, LESIONS.ref())
    box = LesionBox((2, 3.5, 2.5), (2, 9.5, 8.5), "malignant", 4,
                    {"finding": "mass", "location": "liver", "margin": "spiculated"}, "hand1")  # fmt: skip
    add_box(log, box, vol, LESIONS)
    add_box(log, with_slices(LesionBox((0, 10, 4), (0, 14, 10), "benign", 2, {}, "hand3d"), 1, 3),
            vol, LESIONS)  # fmt: skip
    payload = {"zyx_min": [1, 10, 4], "zyx_max": [1, 14, 10], "class": "benign",
               "confidence": None, "attributes": {}, "id": "model1"}  # fmt: skip
    prop = add_proposals(log, [ProposalDraft("box", "benign", 0.8, payload=payload)], MODEL)[0]
    accept(log, prop)
    log.schema = BIRADS.ref()
    set_grade(log, BIRADS.scales["assessment"], "4B")
    set_grade(log, BIRADS.scales["density"], "c")
    log.close()
    return s, vol, tmp_path


def test_sr_export_read_back_by_highdicom_and_dcmqi(annotated):
    s, vol, tmp_path = annotated
    res = export(tmp_path / "ct", "dicom-sr", tmp_path / "report", actor=ANN)
    path = res.outputs[0].path
    assert path.name == "report.dcm" and res.record["data"]["format"] == "dicom-sr"
    assert dciodvfy_errors(path) == []
    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR (PS3.4)
    content = sr.content
    # observer context: the human who confirmed, the model as device
    person = content.get_observer_contexts(observer_type=codes.DCM.Person)
    assert str(person[0].observer_identifying_attributes[0].value) == "Reader^Ann"
    device = content.get_observer_contexts(observer_type=codes.DCM.Device)
    assert device, "the model that proposed a box is the device observer"
    planar = content.get_planar_roi_measurement_groups()
    volumetric = content.get_volumetric_roi_measurement_groups()
    assert [str(g.tracking_identifier) for g in planar] == ["box hand1", "box model1"]
    assert [str(g.tracking_identifier) for g in volumetric] == ["box hand3d"]
    p = planar[0]
    assert p.finding_type == codes.SCT.Mass
    assert p.finding_sites[0].value == codes.SCT.Liver
    sizes = {m.name.meaning: m.value for m in p.get_measurements()}
    # the hand box: 6 rows × 0.8 mm, 6 columns × 0.7 mm (sizes from the series' own spacing)
    assert sizes == {"Width": pytest.approx(6 * 0.7), "Height": pytest.approx(6 * 0.8)}
    evals = {e.name.meaning: e.value for e in p.get_qualitative_evaluations()}
    assert evals["Lesion class"] == codes.SCT.Malignant
    region = p.roi
    assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    np.testing.assert_allclose(region.value[0], [3.0, 4.0])  # (column, row) of the top-left corner
    algo = {str(i.ConceptNameCodeSequence[0].CodeMeaning): str(i.TextValue)
            for i in planar[1][0].ContentSequence if i.ValueType == "TEXT"}  # fmt: skip
    assert (algo["Algorithm Name"], algo["Algorithm Version"]) == ("lesiondet", "3.2")
    assert "Algorithm Name" not in str(planar[0])  # drawn by hand: no algorithm
    v = volumetric[0]
    vsizes = {m.name.meaning: m.value for m in v.get_measurements()}
    assert vsizes["Depth"] == pytest.approx(3 * 2.5)
    assert vsizes["Volume"] == pytest.approx(6 * 0.7 * 4 * 0.8 * 7.5 / 1000)
    assert len(v.roi) == 3  # one rectangle per slice 1..3
    # grades: BI-RADS 4B has no code in CID 6026 -> private; density c -> SNOMED CT
    groups = content.get_image_measurement_groups()
    grades = {e.name.meaning: e.value for g in groups for e in g.get_qualitative_evaluations()}
    assert grades["Breast composition"] == hd.sr.CodedConcept(
        "129718006", "SCT", "Heterogeneously dense"
    )
    assert grades["Assessment Category"].scheme_designator == "99CLINLABEL"
    # dcmqi as a second oracle
    meta = tid1500reader(path, tmp_path)
    ids = sorted(m["TrackingIdentifier"] for m in meta["Measurements"])
    assert ids == ["box hand1", "box hand3d", "box model1", "grade assessment", "grade density"]
    mass = next(m for m in meta["Measurements"] if m["TrackingIdentifier"] == "box hand1")
    assert mass["Finding"]["CodeValue"] == "4147007"
    assert meta["observerContext"]["PersonObserverName"] == "Reader^Ann"


def test_grade_codes_from_the_standard_tables():
    assert grade_code("assessment", "3", "x")[1].value == "397143007"
    assert grade_code("density", "a", "x")[1].value == "129716005"
    assert grade_code("isup", "2", "x")[1].value == "1279714001"
    name, value = grade_code("dr", "3", "Severe NPDR")
    assert (name.scheme_designator, value.scheme_designator) == ("99CLINLABEL", "99CLINLABEL")


def test_sr_refusals(tmp_path):
    import SimpleITK as sitk

    img = tmp_path / "x.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 8), np.int16)), str(img))
    vol = read_volumes(img)[0]
    log = AuditLog.for_image(img, vol.image_ref(), ANN, LESIONS.ref())
    add_box(log, LesionBox((1, 1, 1), (1, 3, 3), "benign", None, {}, "b"), vol, LESIONS)
    log.close()
    with pytest.raises(ExportError, match="not read from DICOM"):
        export(img, "dicom-sr", tmp_path / "r.dcm", actor=ANN)
    assert not (tmp_path / "r.dcm").exists()
    s = write_series(tmp_path / "ct", phantom_stored((3, 8, 8)))
    v2 = read_volumes(tmp_path / "ct")[0]
    log = AuditLog.for_image(tmp_path / "ct", v2.image_ref(), ANN, LESIONS.ref())
    add_box(log, LesionBox((1, 1, 1), (1, 3, 3), "benign", None, {}, "b"), v2, LESIONS)
    log.actor = Actor("bob", "Bob Other", "annotator")
    add_box(log, LesionBox((0, 1, 1), (0, 3, 3), "benign", None, {}, "c"), v2, LESIONS)
    log.close()
    with pytest.raises(ExportError, match="2 different people"):
        export(tmp_path / "ct", "dicom-sr", tmp_path / "r.dcm", actor=ANN)
    assert not (tmp_path / "r.dcm").exists() and s.files


def test_cli_export_dicom_sr_and_labelmap_flag(annotated, capsys):
    from napari_clinlabel.cli import main

    _, _, tmp_path = annotated
    assert main(["export", str(tmp_path / "ct"), "--format", "dicom-sr", "-o",
                 str(tmp_path / "r.dcm")]) == 0  # fmt: skip
    assert hd.sr.srread(tmp_path / "r.dcm").content.get_planar_roi_measurement_groups()
    with pytest.raises(SystemExit):  # argparse refuses an unknown SEG type
        main(["export", str(tmp_path / "ct"), "--format", "dicom-seg", "--seg-type", "x",
              "-o", str(tmp_path / "s.dcm")])  # fmt: skip
    assert "invalid choice" in capsys.readouterr().err


def test_sr_on_a_single_2d_dicom_image(tmp_path):
    """A 2D DICOM image (one file): boxes are planar regions on that image; BI-RADS grades coded."""
    from support.dicom_factory import write_secondary_capture

    path = write_secondary_capture(tmp_path / "mg.dcm", spacing_tag="PixelSpacing")
    vol = read_volumes(path)[0]
    assert vol.geometry.ndim == 2
    log = AuditLog.for_image(path, vol.image_ref(), ANN, LESIONS.ref())
    add_box(log, LesionBox((2.5, 3.5), (10.5, 13.5), "benign", 2, {}, "b2d"), vol, LESIONS)
    log.schema = BIRADS.ref()
    set_grade(log, BIRADS.scales["assessment"], "2")
    log.close()
    res = export(path, "dicom-sr", tmp_path / "mg_sr.dcm", actor=ANN)
    assert dciodvfy_errors(res.outputs[0].path) == []
    sr = hd.sr.srread(res.outputs[0].path)
    (g,) = sr.content.get_planar_roi_measurement_groups()
    np.testing.assert_allclose(g.roi.value[0], [4.0, 3.0])  # (column, row) = (x + 0.5, y + 0.5)
    sizes = {m.name.meaning: m.value for m in g.get_measurements()}
    assert sizes == {"Width": pytest.approx(10 * 0.25), "Height": pytest.approx(8 * 0.25)}
    grades = {e.name.meaning: e.value for grp in sr.content.get_image_measurement_groups()
              for e in grp.get_qualitative_evaluations()}  # fmt: skip
    assert grades["Assessment Category"] == hd.sr.CodedConcept(
        "397141009", "SCT", "Mammography assessment (Category 2) - Benign finding"
    )
