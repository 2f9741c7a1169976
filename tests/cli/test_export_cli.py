"""``clinlabel export``: formats, the pending gate (exit non-zero) and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.cli import main
from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.core.schema import load_schema

ANN = Actor("ann", "Ann", "annotator")


def _image(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    path = tmp_path / "img.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 9), np.int16)), str(path))
    vol = read_volumes(path)[0]
    log = AuditLog.for_image(path, vol.image_ref(), ANN, load_schema("abdomen-ct").ref())
    labels = np.zeros((3, 8, 9), np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    idx = np.arange(10, 30, dtype=np.int64)
    labels.reshape(-1)[idx] = 1
    record_label_change(log, labels, "labels", idx, np.zeros(20, np.uint8), np.ones(20, np.uint8))
    return path, log, labels


def test_export_nifti_ok(tmp_path, monkeypatch, capsys):
    path, log, labels = _image(tmp_path, monkeypatch)
    assert main(["export", str(path), "--format", "nifti", "-o", str(tmp_path / "out.nii.gz")]) == 0
    out = capsys.readouterr().out
    assert "out.nii.gz" in out and "recorded as seq" in out
    back = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out.nii.gz")))
    np.testing.assert_array_equal(back, labels)
    assert [r["action"] for r in iter_records(log.path)][-1] == "export"


def test_pending_gate_exit_code_and_message(tmp_path, monkeypatch, capsys):
    path, log, labels = _image(tmp_path, monkeypatch)
    drafts = [ProposalDraft("segment", 2, 0.8, np.arange(40, 50), labels.shape) for _ in range(2)]
    add_proposals(log, drafts, {"name": "m", "version": "1", "sha256": "e" * 64})
    rc = main(["export", str(path), "--format", "nrrd", "-o", str(tmp_path / "o.nrrd")])
    err = capsys.readouterr().err
    assert (
        rc != 0 and "2 proposals are still undecided" in err and len(err.strip().splitlines()) == 1
    )
    assert not (tmp_path / "o.nrrd").exists()
    rc = main(["export", str(path), "--format", "nrrd", "-o", str(tmp_path / "o.nrrd"),
               "--exclude-pending"])  # fmt: skip
    assert rc == 0 and "2 undecided proposal(s) left out" in capsys.readouterr().out


def test_subprocess_dicom_seg_refused_for_nrrd(tmp_path, monkeypatch):
    path, log, labels = _image(tmp_path, monkeypatch)
    r = subprocess.run(
        [sys.executable, "-m", "napari_clinlabel.cli", "export", str(path), "--format",
         "dicom-seg", "-o", str(tmp_path / "s.dcm")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 2 and "not read from DICOM" in r.stderr and "NIfTI instead" in r.stderr
    assert not (tmp_path / "s.dcm").exists()
