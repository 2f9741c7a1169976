"""``clinlabel prelabel``: proposals logged per image, attributed to the human and the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel.cli import main
from napari_clinlabel.core.image.samples import ct_phantom_truth
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.models.baseline import BaselineDetector
from napari_clinlabel.core.proposals.lifecycle import load_proposals, pending_count


@pytest.fixture
def phantom(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "rita")
    monkeypatch.setenv("CLINLABEL_ROLE", "annotator")
    monkeypatch.delenv("CLINLABEL_ROSTER", raising=False)

    def write(name="phantom.nii.gz", seed=0):
        vol, truth = ct_phantom_truth(shape=(32, 128, 128), seed=seed)
        path = tmp_path / name
        sitk.WriteImage(vol.to_itk(), str(path))
        return path, truth

    return write


def test_prelabel_baseline_logs_proposals(phantom, capsys):
    path, truth = phantom()
    assert main(["prelabel", str(path), "--model", "builtin:baseline", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    log_path = sidecar_paths(path)[0]
    recs = list(iter_records(log_path))
    adds = [r for r in recs if r["action"] == "proposal.add"]
    assert recs[0]["action"] == "image.open" and recs[0]["data"]["shape"] == [32, 128, 128]
    assert adds and f"{len(adds)} proposals from baseline" in out
    ident = BaselineDetector().identity
    for r in adds:
        assert r["actor"]["id"] == "rita"
        assert r["source"] == {
            "kind": "model",
            "name": "baseline",
            "version": ident.version,
            "sha256": ident.sha256,
        }
    # every proposal overlaps a true lesion of the phantom (independent truth)
    store = sidecar_paths(path)[1]
    for p in load_proposals(log_path):
        with np.load(store / p.payload["mask"]) as z:
            idx = z["indices"]
        assert (truth.reshape(-1)[idx] == 6).mean() > 0.5
    assert pending_count(log_path) == len(adds)
    report = verify_log(log_path)
    assert report.ok, report.reason
    # a second run appends (opening is an action: its own image.open) and still verifies
    assert main(["prelabel", str(path), "--model", "builtin:baseline"]) == 0
    recs2 = list(iter_records(log_path))
    assert sum(r["action"] == "image.open" for r in recs2) == 2 and len(recs2) == 2 + 2 * len(adds)
    assert verify_log(log_path).ok


def test_bad_model_and_bad_image_change_nothing(phantom, tmp_path, capsys):
    path, _ = phantom()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    (tmp_path / "junk.pt.json").write_text(json.dumps({"name": "x"}))
    assert main(["prelabel", str(path), "--model", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "junk.pt.json" in err and "'version'" in err
    assert not sidecar_paths(path)[0].exists()
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    assert main(["prelabel", str(bad), str(path), "--model", "builtin:baseline"]) == 2
    cap = capsys.readouterr()
    assert "broken.nii.gz: error:" in cap.err and "phantom.nii.gz: " in cap.out
    assert not sidecar_paths(bad)[0].exists()
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        assert main(["prelabel", str(path), "--model", "builtin:baseline", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_prelabel_on_local_dask_cluster(phantom, capsys):
    pytest.importorskip("dask.distributed")
    a, _ = phantom("a.nii.gz", seed=1)
    b, _ = phantom("b.nii.gz", seed=2)
    assert main(["prelabel", str(a), str(b), "--model", "builtin:baseline", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    for p in (a, b):
        assert f"{p}: " in out
        recs = list(iter_records(sidecar_paths(p)[0]))
        assert recs[0]["action"] == "image.open" and recs[0]["actor"]["id"] == "rita"
        assert sum(r["action"] == "proposal.add" for r in recs) >= 1
