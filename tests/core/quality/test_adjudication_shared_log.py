"""Adjudication of readers who shared a folder: one sidecar log holding each reader's own array
(``segmentation``, ``segmentation (<id>)``) gives one read per array.

Oracles: SimpleITK's LabelOverlapMeasuresImageFilter (Dice per label) and numpy (voxel counts,
where the maps differ) on the arrays the readers painted.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel import api
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.log.audit_log import sidecar_paths
from napari_clinlabel.core.quality.adjudication import (
    disagreement_map,
    load_reads,
    pairwise_agreement,
)

SHAPE = (5, 12, 14)
ANA = api.Actor("ana", "Ana Ruiz", "annotator")
BEA = api.Actor("bea", "Bea Lind", "annotator")


@pytest.fixture(autouse=True)
def _no_env_identity(monkeypatch):
    for var in ("CLINLABEL_USER", "CLINLABEL_ROLE", "CLINLABEL_ROSTER"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def nifti(tmp_path):
    img = sitk.GetImageFromArray(np.zeros(SHAPE, np.int16))
    img.SetSpacing((0.7, 0.7, 2.5))
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


def _maps():
    a = np.zeros(SHAPE, np.uint8)
    a[1:4, 2:8, 2:9] = 1
    a[2:5, 8:11, 9:13] = 2
    b = np.zeros(SHAPE, np.uint8)
    b[1:5, 3:9, 3:10] = 1
    b[2:4, 7:11, 10:13] = 2
    return a, b


def _paint(path, actor, labels):
    with api.open_image(path, actor) as image:
        for value in (1, 2):
            image.paint(labels == value, value)


def _sitk_dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.GetImageFromArray(a), sitk.GetImageFromArray(b))
    return f.GetDiceCoefficient(label)


def test_two_readers_of_one_folder_are_two_reads_of_the_one_log(nifti):
    a, b = _maps()
    _paint(nifti, ANA, a)
    _paint(nifti, BEA, b)
    log_path = sidecar_paths(nifti)[0]
    reads = load_reads([log_path])
    assert [(r.reader, r.reader_name, r.labels_name) for r in reads] == [
        ("ana", "Ana Ruiz", "segmentation"),
        ("bea", "Bea Lind", "segmentation (bea)"),
    ]
    np.testing.assert_array_equal(reads[0].labels, a)
    np.testing.assert_array_equal(reads[1].labels, b)
    assert {r.citation()["log"] for r in reads} == {log_path.name}
    assert [r.citation()["labels"] for r in reads] == ["segmentation", "segmentation (bea)"]
    np.testing.assert_array_equal(disagreement_map(reads), (a != b).astype(np.uint8))
    pair = pairwise_agreement(reads)["ana vs bea"]
    assert sorted(pair) == ["1", "2"]
    for label in (1, 2):
        m = pair[str(label)]
        assert m["dice"] == pytest.approx(_sitk_dice(a, b, label), abs=1e-9)
        assert (m["voxels_a"], m["voxels_b"]) == (int((a == label).sum()), int((b == label).sum()))


def test_a_shared_log_with_one_read_is_not_enough(nifti):
    a, _b = _maps()
    _paint(nifti, ANA, a)
    with pytest.raises(InputError, match="at least two reads"):
        load_reads([sidecar_paths(nifti)[0]])


def test_a_shared_log_and_a_separate_reader_log_combine(nifti, tmp_path):
    a, b = _maps()
    _paint(nifti, ANA, a)
    _paint(nifti, BEA, b)
    other = tmp_path / "cy"
    other.mkdir()
    copy = other / nifti.name  # the same image, read by a third reader in her own folder
    copy.write_bytes(nifti.read_bytes())
    c = np.zeros(SHAPE, np.uint8)
    c[0:3, 0:6, 0:6] = 1
    _paint(copy, api.Actor("cy", "Cy Ono", "annotator"), c)
    reads = load_reads([sidecar_paths(nifti)[0], sidecar_paths(copy)[0]])
    assert [r.reader for r in reads] == ["ana", "bea", "cy"]
    np.testing.assert_array_equal(reads[2].labels, c)
    assert pairwise_agreement(reads)["ana vs cy"]["1"]["dice"] == pytest.approx(
        _sitk_dice(a, c, 1), abs=1e-9
    )
