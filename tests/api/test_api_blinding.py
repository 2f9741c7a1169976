"""Blinding in the Python API: two readers scripting in one folder share one sidecar log, and
each paints, accepts and reads back only their own labels array (``core.annotate.reads``).

Oracles: numpy masks for what each reader painted; SimpleITK's reading of the exported map.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support.trusted_roster import write_roster

from napari_clinlabel import api
from napari_clinlabel.cli import main
from napari_clinlabel.core.errors import PermissionRefused
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths
from napari_clinlabel.core.log.signing import load_private_key
from napari_clinlabel.core.quality.adjudication import adjudicate, load_reads

SHAPE = (4, 10, 12)  # z, y, x
ANA = api.Actor("ana", "Ana Ruiz", "annotator")
BEA = api.Actor("bea", "Bea Lind", "annotator")
REV = api.Actor("rev", "Rui Vaz", "reviewer")
CAROL = api.Actor("carol", "Carol Wu", "adjudicator")


@pytest.fixture
def nifti(tmp_path):
    img = sitk.GetImageFromArray(np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE))
    img.SetSpacing((0.8, 0.8, 2.0))
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


def _masks():
    a = np.zeros(SHAPE, bool)
    a[1:3, 2:6, 2:7] = True
    b = np.zeros(SHAPE, bool)
    b[1:4, 3:7, 4:9] = True
    return a, b


def _records(path):
    return list(iter_records(sidecar_paths(path)[0]))


def test_second_scripted_reader_starts_empty_and_never_gets_the_first_read(nifti, tmp_path):
    mask_a, mask_b = _masks()
    with api.open_image(nifti, ANA) as image:
        assert image.labels_name == "segmentation"
        image.paint(mask_a, 1)
    n_before = len(_records(nifti))
    with api.open_image(nifti, BEA) as image:
        assert image.labels_name == "segmentation (bea)"
        assert not image.labels().any()  # her own, empty array: not Ana's read
        with pytest.raises(PermissionRefused, match="hidden until the image is adjudicated"):
            image.labels("segmentation")
        with pytest.raises(PermissionRefused):
            image.other_reads()
        with pytest.raises(PermissionRefused, match="'ana'"):
            image.paint(mask_b, 2, labels="segmentation")
        with pytest.raises(PermissionRefused):
            image.export("nifti", tmp_path / "ana.nii.gz", labels="segmentation")
        assert len(_records(nifti)) == n_before + 1  # only her image.open: refusals write nothing
        image.paint(mask_b, 2)
        np.testing.assert_array_equal(image.labels(), np.where(mask_b, 2, 0))
        image.export("nifti", tmp_path / "bea.nii.gz")  # her own array by default
    exported = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "bea.nii.gz")))
    np.testing.assert_array_equal(exported, np.where(mask_b, 2, 0))  # none of Ana's voxels
    bea_records = [r for r in _records(nifti) if r["actor"]["id"] == "bea"]
    assert {r["target"]["labels"] for r in bea_records if r["action"].startswith("label")} == {
        "segmentation (bea)"
    }
    assert all(r["actor"] == BEA.to_dict() for r in bea_records)
    # Ana reopening continues her own read, untouched by Bea's strokes
    with api.open_image(nifti, ANA) as image:
        np.testing.assert_array_equal(image.labels(), np.where(mask_a, 1, 0))
    np.testing.assert_array_equal(api.final_labels(nifti, actor=ANA), np.where(mask_a, 1, 0))
    n_before = len(_records(nifti))
    with pytest.raises(PermissionRefused, match="another reader's read"):  # Bea, by script
        api.final_labels(nifti, actor=BEA)
    with pytest.raises(PermissionRefused, match="may not act as reviewer"):  # a claimed role
        api.final_labels(nifti, actor=api.Actor("bea", "Bea Lind", "reviewer"))
    assert not hasattr(api, "replay_labels")  # the API offers no unblinded replay
    np.testing.assert_array_equal(
        api.final_labels(nifti, "segmentation (bea)", actor=BEA), np.where(mask_b, 2, 0)
    )
    # the module-level export (what `clinlabel export` runs) keeps the same rule: Bea may not
    # name Ana's array, and without a name she gets her own read, not a list of the others
    with pytest.raises(PermissionRefused, match="another reader's read"):
        export(nifti, "nifti", tmp_path / "x.nii.gz", labels_name="segmentation", actor=BEA)
    assert len(_records(nifti)) == n_before  # refusals write nothing
    export(nifti, "nifti", tmp_path / "bea2.nii.gz", actor=BEA)
    again = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "bea2.nii.gz")))
    np.testing.assert_array_equal(again, np.where(mask_b, 2, 0))
    assert api.verify_log(nifti).ok


def test_cli_export_refuses_another_readers_read_to_an_annotator(nifti, tmp_path, monkeypatch,
                                                                  capsys):  # fmt: skip
    mask_a, mask_b = _masks()
    with api.open_image(nifti, ANA) as image:
        image.paint(mask_a, 1)
    with api.open_image(nifti, BEA) as image:
        image.paint(mask_b, 2)
    monkeypatch.setenv("CLINLABEL_USER", "bea")
    out = tmp_path / "ana.nii.gz"
    code = main(["export", str(nifti), "--format", "nifti", "-o", str(out),
                 "--labels", "segmentation"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another reader's read" in err[0], err
    assert not out.exists()
    assert main(["export", str(nifti), "--format", "nifti", "-o", str(out)]) == 0
    got = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    np.testing.assert_array_equal(got, np.where(mask_b, 2, 0))  # her own read by default
    log = str(sidecar_paths(nifti)[0])
    replayed = tmp_path / "replayed.nii.gz"
    code = main(["log", "replay", log, "-o", str(replayed), "--labels", "segmentation"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another reader's read" in err[0], err
    assert not replayed.exists()
    assert main(["log", "replay", log, "-o", str(replayed)]) == 0  # her own, the only one shown
    code = main(["agreement", log, log, "--labels", "segmentation"])  # Ana's read vs itself
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "another reader's read" in err[0], err
    assert "No agreement was computed" in err[0]
    monkeypatch.setenv("CLINLABEL_USER", "carl")  # read none of it (a researcher): may compare
    assert main(["agreement", log, log, "--labels", "segmentation", "--json"]) == 0
    assert '"dice"' in capsys.readouterr().out
    monkeypatch.setenv("CLINLABEL_USER", "bea")
    got = sitk.GetArrayFromImage(sitk.ReadImage(str(replayed)))
    np.testing.assert_array_equal(got, np.where(mask_b, 2, 0))


def test_a_role_that_may_see_gets_other_reads_only_on_request_and_readers_after_adjudication(
    nifti, tmp_path
):
    write_roster(
        tmp_path,
        {"ana": ["annotator"], "bea": ["annotator"], "rev": ["reviewer"], "carol": ["adjudicator"]},
    )
    mask_a, mask_b = _masks()
    for actor, mask, value in ((ANA, mask_a, 1), (BEA, mask_b, 1)):
        with api.open_image(nifti, actor) as image:
            image.paint(mask, value)
    with api.open_image(nifti, REV) as image:
        assert not image.labels().any()  # by default the reviewer's own (empty) array
        reads = image.other_reads()  # asked for: both readers' reads
        assert sorted(reads) == ["ana", "bea"]
        np.testing.assert_array_equal(reads["ana"], mask_a.astype(np.uint8))
        np.testing.assert_array_equal(image.labels("segmentation (bea)"), mask_b.astype(np.uint8))
        with pytest.raises(PermissionRefused):  # seeing is not writing
            image.paint(mask_a, 3, labels="segmentation (bea)")
    with api.open_image(nifti, BEA) as image, pytest.raises(PermissionRefused):
        image.other_reads()
    log_path = sidecar_paths(nifti)[0]
    reads = load_reads([log_path])  # one shared log: one read per reader's array
    with api.open_image(nifti, CAROL) as image:
        adjudicate(image.log, reads, reads[0].labels, "A's margin fits the lesion",
                   key=load_private_key("carol"))  # fmt: skip
    with api.open_image(nifti, BEA) as image:  # adjudicated: the reads may now be seen
        np.testing.assert_array_equal(image.other_reads()["ana"], mask_a.astype(np.uint8))
    assert api.verify_log(nifti).ok
