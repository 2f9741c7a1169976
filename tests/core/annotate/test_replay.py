"""Replay: every past state of the labels, rebuilt from the log, written with the geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel.core.annotate.label_edits import (
    diff_between,
    record_label_change,
    record_labels_create,
    record_labels_save,
)
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.errors import ClinlabelError, LogIntegrityError
from napari_clinlabel.core.export.labelmap import write_replay
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor

IMAGE = {"uid": "1.2.3", "sha256": "ab" * 32}
SHAPE = (6, 9, 7)
C, S = np.cos(0.3), np.sin(0.3)
GEOM = Geometry((0.7, 0.8, 2.5), (-10.0, 20.0, 5.5), (C, -S, 0.0, S, C, 0.0, 0.0, 0.0, 1.0))


def _session(tmp_path):
    """A session of opens, strokes, erases, an undo and a save; the arrays after every seq."""
    rng = np.random.default_rng(7)
    log = AuditLog(tmp_path / "ct.nii.gz.clinlabel.jsonl", IMAGE, Actor("ann", "Ann"))
    states: dict[int, dict[str, np.ndarray]] = {}
    cur: dict[str, np.ndarray] = {}

    def keep(rec):
        states[rec["seq"]] = {k: v.copy() for k, v in cur.items()}

    keep(log.append("image.open", {"image": "ct.nii.gz"},
                    {"shape": list(SHAPE), "dtype": "int16", "geometry": GEOM.to_dict(),
                     "modality": "CT"}))  # fmt: skip
    cur["L"] = np.zeros(SHAPE, np.uint8)
    keep(record_labels_create(log, "L", SHAPE, np.uint8))
    history = []
    for step in range(8):
        before = cur["L"].copy()
        c = rng.integers(0, SHAPE)
        lo, hi = np.maximum(c - 2, 0), c + 2
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        cur["L"][box] = 0 if step == 5 else int(rng.integers(1, 4))  # step 5 erases
        idx, old, new = diff_between(before, cur["L"])
        history.append((idx, old, new))
        keep(record_label_change(log, cur["L"], "L", idx, old, new))
        if step == 3:
            keep(record_labels_save(log, cur["L"], "L"))
    idx, old, new = history[-1]  # undo the last stroke: a new record with the diff reversed
    cur["L"].reshape(-1)[idx] = old
    keep(record_label_change(log, cur["L"], "L", idx, new, old, action="label.undo"))
    cur["L2"] = np.zeros(SHAPE, np.uint16)
    keep(record_labels_create(log, "L2", SHAPE, np.uint16))
    before = cur["L2"].copy()
    cur["L2"][1, 2:5, 3] = 300
    keep(record_label_change(log, cur["L2"], "L2", *diff_between(before, cur["L2"])))
    keep(log.append("grade.set", {"item": "ct"}, {"grade": 2}))
    return log, states


def test_replay_reproduces_the_labels_at_every_seq(tmp_path):
    log, states = _session(tmp_path)
    assert sorted(states) == list(range(len(log.records())))
    for seq, expected in states.items():
        res = replay_labels(log.path, at_seq=seq)
        assert res.seq == seq
        assert sorted(res.labels) == sorted(expected)
        for name, arr in expected.items():
            assert res.labels[name].dtype == arr.dtype
            np.testing.assert_array_equal(res.labels[name], arr, err_msg=f"{name} at seq {seq}")
        assert res.geometry == GEOM and res.image == IMAGE and not res.warnings
    assert replay_labels(log.path).seq == max(states)


def test_write_replay_carries_the_image_geometry(tmp_path):
    log, states = _session(tmp_path)
    seq = max(s for s in states if "L" in states[s] and states[s]["L"].any())
    out = write_replay(log.path, seq, tmp_path / "out.nii.gz", "L")
    img = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), states[seq]["L"])
    np.testing.assert_allclose(img.GetSpacing(), GEOM.spacing, atol=1e-6)
    np.testing.assert_allclose(img.GetOrigin(), GEOM.origin, atol=1e-4)
    np.testing.assert_allclose(img.GetDirection(), GEOM.direction, atol=1e-6)
    with pytest.raises(ClinlabelError, match="several label layers"):
        write_replay(log.path, None, tmp_path / "o2.nii.gz")
    with pytest.raises(ClinlabelError, match="no labels exist at seq 0"):
        write_replay(log.path, 0, tmp_path / "o3.nii.gz")
    with pytest.raises(ClinlabelError, match="ends at seq"):
        replay_labels(log.path, at_seq=999)
    assert not (tmp_path / "o2.nii.gz").exists() and not (tmp_path / "o3.nii.gz").exists()


def test_a_diff_that_does_not_start_from_the_replayed_state_is_caught(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("ann", "Ann"))
    record_labels_create(log, "L", (4, 4), np.uint8)
    d = log.put_arrays(indices=np.array([3]), old=np.array([2], np.uint8),
                       new=np.array([1], np.uint8))  # fmt: skip
    log.append("label.paint", {"labels": "L"}, {"objects": {"diff": d}})
    assert replay_labels(log.path, at_seq=0).labels["L"].sum() == 0
    with pytest.raises(LogIntegrityError, match="record 1's diff does not start") as err:
        replay_labels(log.path)
    assert err.value.seq == 1


def test_missing_objects_and_broken_logs_are_refused(tmp_path):
    log, states = _session(tmp_path)
    recs = log.records()
    paint = next(r for r in recs if r["action"] == "label.paint")
    (log.objects.folder / paint["data"]["objects"]["diff"]).unlink()
    assert replay_labels(log.path, at_seq=paint["seq"] - 1).seq == paint["seq"] - 1
    with pytest.raises(LogIntegrityError, match=f"record {paint['seq']}") as err:
        replay_labels(log.path)
    assert err.value.seq == paint["seq"]
    lines = log.path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[4])
    rec["actor"]["id"] = "eve"
    lines[4] = json.dumps(rec).encode() + b"\n"
    log.path.write_bytes(b"".join(lines))
    with pytest.raises(LogIntegrityError, match="broken at seq 4"):
        replay_labels(log.path, at_seq=6)
    with pytest.raises(LogIntegrityError, match="broken at seq 4"):
        replay_labels(log.path)  # "the latest state" of a broken log is refused too
    assert replay_labels(log.path, at_seq=1).seq == 1  # before the break is still readable


def test_an_empty_log_replays_to_no_labels(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    path.write_bytes(b"")
    res = replay_labels(path)
    assert res.labels == {} and res.seq == -1


def test_edits_to_labels_that_were_never_created_are_refused(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("ann", "Ann"))
    d = log.put_arrays(indices=np.array([0]), old=np.array([0]), new=np.array([1]))
    log.append("label.paint", {"labels": "ghost"}, {"objects": {"diff": d}})
    with pytest.raises(LogIntegrityError, match="no earlier labels.create"):
        replay_labels(log.path)
