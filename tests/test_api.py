"""The public Python API (napari_clinlabel.api): headless annotation into a sidecar log.

Oracles: SimpleITK's reading of the image and of the exported map, numpy for the expected label
arrays; the log's own verifier and replay for what was recorded.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support.trusted_roster import write_roster

from napari_clinlabel import api
from napari_clinlabel.core.errors import ClinlabelError, ExportError, InputError, PermissionRefused
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths

SHAPE = (6, 20, 24)  # z, y, x
SPACING = (0.7, 0.8, 2.5)  # x, y, z (ITK order)


@pytest.fixture(autouse=True)
def _no_env_identity(monkeypatch):
    for var in ("CLINLABEL_USER", "CLINLABEL_ROLE", "CLINLABEL_ROSTER"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def nifti(tmp_path):
    rng = np.random.default_rng(0)
    img = sitk.GetImageFromArray(rng.integers(-100, 200, SHAPE).astype(np.int16))
    img.SetSpacing(SPACING)
    img.SetOrigin((-10.0, 5.0, 30.0))
    img.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


ANA = api.Actor("ana", "Ana Ruiz", "annotator")


def _records(path):
    return list(iter_records(sidecar_paths(path)[0]))


def test_open_records_the_image_as_simpleitk_reads_it(nifti):
    with api.open_image(nifti, ANA) as image:
        assert image.shape == SHAPE
    (rec,) = _records(nifti)
    ref = sitk.ReadImage(str(nifti))
    assert rec["action"] == "image.open" and rec["actor"] == ANA.to_dict()
    data = rec["data"]
    assert data["shape"] == list(reversed(ref.GetSize()))
    assert np.allclose(data["geometry"]["spacing"], ref.GetSpacing())
    assert np.allclose(data["geometry"]["origin"], ref.GetOrigin())
    assert np.allclose(data["geometry"]["direction"], ref.GetDirection())
    assert data["dtype"] == "int16" and data["source"] == "scan.nii.gz"
    assert data["spacing_known"] is True and data["modality"] in (None, "OT", "")


def test_paint_by_mask_indices_and_tuple_then_erase(nifti):
    expected = np.zeros(SHAPE, np.uint8)
    mask = np.zeros(SHAPE, bool)
    mask[2:4, 5:9, 6:12] = True
    coords = np.array([[0, 0, 0], [5, 19, 23], [1, 2, 3]])
    with api.open_image(nifti, ANA) as image:
        rec = image.paint(mask, 2)
        expected[mask] = 2
        assert rec["action"] == "label.paint" and rec["data"]["voxels"] == int(mask.sum())
        image.paint(coords, 3)
        expected[tuple(coords.T)] = 3
        image.paint(np.nonzero(mask), 0)  # erase the block again
        expected[mask] = 0
        assert image.paint(mask, 0) is None  # nothing changes: nothing recorded
        np.testing.assert_array_equal(image.labels(), expected)
    np.testing.assert_array_equal(api.final_labels(nifti), expected)
    actions = [r["action"] for r in _records(nifti)]
    assert actions == ["image.open", "labels.create", "label.paint", "label.paint", "label.paint"]
    assert api.verify_log(nifti).ok


@pytest.mark.parametrize(
    ("where", "label", "match"),
    [
        (np.zeros((3, 3), bool), 1, "not the image grid"),
        (np.array([[6, 0, 0]]), 1, "outside the image grid"),
        (np.array([[0, 0, -1]]), 1, "outside the image grid"),
        (np.array([[0.5, 1.0, 2.0]]), 1, "integer array"),
        (np.array([[0, 0, 0]]), 300, "does not fit"),
        ((np.array([0]), np.array([0])), 1, "Give 3 index arrays"),
    ],
)
def test_bad_paint_input_is_one_clear_error_and_records_nothing(nifti, where, label, match):
    with api.open_image(nifti, ANA) as image:
        before = len(_records(nifti))
        with pytest.raises(InputError, match=match):
            image.paint(where, label)
        after = [r["action"] for r in _records(nifti)]
    assert after.count("label.paint") == 0 and len(after) - before <= 1  # at most labels.create


def test_a_roster_beside_the_image_must_grant_the_role(nifti):
    (nifti.parent / "clinlabel-roster.toml").write_text(
        '[[users]]\nid = "ana"\nname = "Ana Ruiz"\nroles = ["annotator"]\n'
    )
    with pytest.raises(PermissionRefused, match="not 'reviewer'"):
        api.open_image(nifti, api.Actor("ana", "Ana Ruiz", "reviewer"))
    with pytest.raises(PermissionRefused, match="not in the roster"):
        api.open_image(nifti, api.Actor("bob", "Bob", "annotator"))
    assert not sidecar_paths(nifti)[0].exists()  # refused before anything was written
    with api.open_image(nifti, ANA) as image:
        assert image.actor == ANA


def test_grade_off_the_scale_or_without_schema_is_refused(nifti):
    with api.open_image(nifti, ANA) as image:
        with pytest.raises(ClinlabelError, match="no grading schema"):
            image.set_grade("assessment", "4C")
        with pytest.raises(ClinlabelError, match="not a grade of"):
            image.set_grade("assessment", "7", schema="birads")
        rec = image.set_grade("assessment", "b", schema="birads")  # a key gives its value
    assert rec["data"]["value"] == "4B" and rec["schema"]["id"] == "birads"
    assert [r["action"] for r in _records(nifti)] == ["image.open", "grade.set"]


def test_reopening_continues_from_the_log(nifti):
    with api.open_image(nifti, ANA) as image:
        image.paint(np.array([[1, 1, 1]]), 4)
    with api.open_image(nifti, ANA) as image:  # the same reader continues her own read
        assert image.labels()[1, 1, 1] == 4
        image.paint(np.array([[1, 1, 2]]), 5)
    labels = api.final_labels(nifti)
    assert labels[1, 1, 1] == 4 and labels[1, 1, 2] == 5 and labels.sum() == 9
    recs = _records(nifti)
    assert [r["action"] for r in recs].count("image.open") == 2  # each opening is an action
    assert [r["actor"]["id"] for r in recs if r["action"] == "label.paint"] == ["ana", "ana"]
    # (a second reader starts from her own empty array: tests/api/test_api_blinding.py)


def test_proposals_one_by_one_gate_the_export(tmp_path):
    path = api.write_sample("ct", tmp_path)
    with api.open_image(path, ANA, schema="abdomen-ct") as image:
        props = image.prelabel("builtin:baseline")
        assert len(props) >= 3 and all(p.pending for p in props)
        assert not hasattr(image, "accept_all")
        with pytest.raises(ExportError):
            image.export("nifti", tmp_path / "out.nii.gz")
        first, second, *rest = props
        image.accept(first)
        edited = image.proposal_mask(second)
        edited[np.nonzero(edited.any(axis=(1, 2)))[0][0]] = False  # the reader drops a slice
        image.edit(second, mask=edited)
        for p in rest:
            image.reject(p)
        assert image.proposals(pending=True) == []
        with pytest.raises(ClinlabelError, match="already"):
            image.accept(first)
        expected = image.proposal_mask(first) | edited
        result = image.export("nifti", tmp_path / "out.nii.gz")
    out = sitk.ReadImage(str(result.outputs[0].path))
    src = sitk.ReadImage(str(path))
    assert out.GetSize() == src.GetSize()
    assert np.allclose(out.GetSpacing(), src.GetSpacing())
    assert np.allclose(out.GetOrigin(), src.GetOrigin())
    labels = sitk.GetArrayFromImage(out)
    np.testing.assert_array_equal(labels > 0, expected)
    assert set(np.unique(labels[expected])) == {6}  # the baseline's lesion label
    recs = _records(path)
    decided = [
        r for r in recs if r["action"] in ("proposal.accept", "proposal.edit", "proposal.reject")
    ]
    assert len(decided) == len(props) and {r["source"]["name"] for r in decided} == {"baseline"}
    assert recs[-1]["action"] == "export" and api.verify_log(path).ok


def test_open_refuses_missing_file_and_unknown_sample(tmp_path):
    with pytest.raises(ClinlabelError):
        api.open_image(tmp_path / "nope.nii.gz", ANA)
    with pytest.raises(InputError, match="No sample"):
        api.write_sample("xray", tmp_path)


def test_a_new_logs_first_record_pins_the_signed_rosters_owner(nifti):
    roster = write_roster(nifti.parent, {"ana": ["annotator"]}, names={"ana": "Ana Ruiz"})
    owner_key = next(
        line.split('"')[1] for line in roster.read_text().splitlines() if "public_key" in line
    )  # the [owner] table comes first
    for _ in range(2):
        with api.open_image(nifti, ANA):
            pass
    first, second = _records(nifti)
    assert first["data"]["owner"] == {"id": "owner", "public_key": owner_key}
    assert "owner" not in second["data"]  # only the log's first record pins it
    assert api.verify_log(nifti).ok


def test_boxes_drawn_edited_and_deleted(nifti):
    with api.open_image(nifti, ANA, schema="abdomen-ct") as image:
        box = image.add_box((0.5, 2.5, 3.5), (2.5, 9.5, 11.5), cls="benign", confidence=2)
        with pytest.raises(ClinlabelError, match="not in schema"):
            image.add_box((0.5, 2.5, 3.5), (2.5, 9.5, 11.5), cls="tumour")
        with pytest.raises(ClinlabelError, match="outside the image"):
            image.add_box((0.5, 2.5, 3.5), (9.5, 9.5, 11.5))
        moved = image.edit_box(box.id, zyx_max=(3.5, 9.5, 11.5), cls="malignant")
        assert moved.cls == "malignant" and image.boxes()[box.id].zyx_max == (3.5, 9.5, 11.5)
        with pytest.raises(InputError, match="no box 'nope'"):
            image.delete_box("nope")
        image.delete_box(box.id)
        assert image.boxes() == {}
    recs = [r for r in _records(nifti) if r["action"].startswith("box.")]
    assert [r["action"] for r in recs] == ["box.add", "box.edit", "box.delete"]
    # sizes from the geometry: 3 slices of 2.5 mm, 7 rows of 0.8 mm, 8 columns of 0.7 mm
    assert np.allclose(recs[0]["data"]["size_mm"], (2 * 2.5, 7 * 0.8, 8 * 0.7))
    assert recs[1]["data"]["changed"] == ["class", "zyx_max"]
