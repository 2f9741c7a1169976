"""Crafted logs and files around them: each refused with one clear line, never a hang or a
traceback, by the core function and by the command line (exit code and message).

Attacks (issue 12): symlinked log and objects, a FIFO or /dev/zero as an object or a log, the log
replaced at its path while a writer holds it, a crash between keeping a torn tail aside and
recording it, a record nested 100 000 deep read by every reader, a re-hashed ``labels.create``
with shape 100000³, a line longer than the reader reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel.cli import main
from napari_clinlabel.core.annotate.label_edits import (
    diff_between,
    record_label_change,
    record_labels_create,
)
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.annotate.state import restore_state
from napari_clinlabel.core.errors import LogError, LogIntegrityError
from napari_clinlabel.core.log import checks, reader
from napari_clinlabel.core.log.audit_log import AuditLog, ObjectStore, iter_records, sidecar_paths
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.verify import verify_log

ANA = Actor("ana", "Ana")


# -- helpers: a real image, a real log, and lines crafted by the DESIGN.md v2 rule ----------------
def _image(tmp_path: Path, shape=(4, 5, 6)) -> tuple[Path, dict]:
    """A NIfTI written by SimpleITK and the image ref the session would log for it."""
    path = tmp_path / "ct.nii.gz"
    arr = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    return path, {"uid": None, "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}


def _log(tmp_path: Path, shape=(4, 5, 6)) -> AuditLog:
    image_path, image = _image(tmp_path, shape)
    log = AuditLog.for_image(image_path, image, ANA)
    log.append("image.open", {"image": image_path.name}, {"shape": list(shape), "dtype": "int16"})
    record_labels_create(log, "L", shape, np.uint8)
    lab = np.zeros(shape, np.uint8)
    before = lab.copy()
    lab[1, 1:3, 1:4] = 2
    record_label_change(log, lab, "L", *diff_between(before, lab))
    return log


def _v2_line(rec: dict) -> bytes:
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'


def _append_crafted(log_path: Path, action: str, data_json: bytes, target=None) -> int:
    """Append a v2 record chained and hashed by the rule, with ``data`` given as raw JSON."""
    last = json.loads(log_path.read_bytes().splitlines()[-1])
    rec = {k: last[k] for k in ("actor", "image", "schema", "source", "time")}
    rec.update(v=2, seq=last["seq"] + 1, action=action, target=target, data="@DATA@",
               prev=last["hash"])  # fmt: skip
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    body = body.replace(b'"@DATA@"', data_json)
    line = body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'
    with open(log_path, "ab") as fh:
        fh.write(line)
    return rec["seq"]


def _cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    got = capsys.readouterr()
    return code, (got.out + got.err).strip().splitlines()


DEEP = b"[" * 100_000 + b"]" * 100_000


# -- symlinks, FIFOs, devices ---------------------------------------------------------------------
def test_a_symlinked_log_is_refused_by_writer_verifier_and_readers(tmp_path, capsys):
    log = _log(tmp_path)
    real = tmp_path / "elsewhere.jsonl"
    os.replace(log.path, real)
    os.symlink(real, log.path)
    with pytest.raises(LogError, match="is a symbolic link"):
        AuditLog(log.path, log.image, ANA)
    with pytest.raises(LogError, match="is a symbolic link"):
        verify_log(log.path)
    with pytest.raises(LogError, match="is a symbolic link"):
        list(iter_records(log.path))
    for action in ("verify", "show"):
        code, lines = _cli(capsys, "log", action, log.path)
        assert code == 2 and len(lines) == 1 and "is a symbolic link" in lines[0]


def test_a_symlinked_objects_folder_is_refused(tmp_path, capsys):
    log = _log(tmp_path)
    folder = log.objects.folder
    os.replace(folder, tmp_path / "other")
    os.symlink(tmp_path / "other", folder)
    with pytest.raises(LogError, match="objects folder must be a real folder"):
        log.put_object(b"x")
    with pytest.raises(LogError, match="is a symbolic link"):
        verify_log(log.path)
    code, lines = _cli(capsys, "log", "verify", log.path)
    assert code == 2 and len(lines) == 1 and "is a symbolic link" in lines[0]


@pytest.mark.parametrize("kind", ["fifo", "dev_zero_link", "folder"])
def test_an_object_that_is_not_a_regular_file_fails_without_hanging(tmp_path, capsys, kind):
    log = _log(tmp_path)
    digest = next(r for r in log.records() if r["action"] == "label.paint")["data"]["objects"]
    digest = digest["diff"]
    obj = log.objects.folder / digest
    original = obj.read_bytes()
    obj.unlink()
    if kind == "fifo":
        os.mkfifo(obj)
    elif kind == "dev_zero_link":
        os.symlink("/dev/zero", obj)
    else:
        obj.mkdir()
    rep = verify_log(log.path)  # returns: a FIFO is opened non-blocking, never read
    assert not rep.ok and rep.first_bad_seq == 2
    assert "is a symbolic link" in rep.reason or "is not a regular file" in rep.reason
    code, lines = _cli(capsys, "log", "verify", log.path)
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"{log.path}: {rep.summary()}")
    with pytest.raises(LogIntegrityError, match="symbolic link|not a regular file"):
        ObjectStore(log.objects.folder).get(digest)
    with pytest.raises(LogError, match="not a regular file"):
        log.objects.put(original)  # its name is taken by a non-file: refused, not "stored"
    assert not log.objects.has(digest)


def test_a_fifo_as_the_log_is_refused_not_waited_on(tmp_path, capsys):
    p = tmp_path / "x.clinlabel.jsonl"
    os.mkfifo(p)
    with pytest.raises(LogError, match="not a regular file"):
        verify_log(p)
    with pytest.raises(LogError, match="not a regular file"):
        AuditLog(p, {"uid": None, "sha256": "ab" * 32}, ANA)
    for action in ("verify", "show"):
        code, lines = _cli(capsys, "log", action, p)
        assert code == 2 and len(lines) == 1 and "not a regular file" in lines[0]


# -- the log replaced under a writer --------------------------------------------------------------
@pytest.mark.parametrize("how", ["replaced", "deleted", "moved"])
def test_appends_after_the_log_was_swapped_are_refused(tmp_path, how):
    log = _log(tmp_path)
    n = len(log.records())
    saved = log.path.read_bytes()
    if how == "replaced":  # same bytes, another inode: a writer holding the old one must stop
        fresh = tmp_path / "fresh"
        fresh.write_bytes(saved)
        os.replace(fresh, log.path)
    elif how == "deleted":
        log.path.unlink()
    else:
        os.replace(log.path, tmp_path / "moved.jsonl")
    with pytest.raises(
        LogError, match="replaced, moved or deleted while open; nothing was recorded"
    ):
        log.append("box.add", {"box": 1})
    with pytest.raises(LogError, match="replaced, moved or deleted"):
        log.head()
    if how == "replaced":
        assert log.path.read_bytes() == saved  # nothing went to either file
        assert len(list(iter_records(log.path))) == n
    # a writer opened afresh on the new file appends to it normally
    if how == "replaced":
        assert AuditLog(log.path, log.image, ANA).append("box.add", {"box": 1})["seq"] == n


# -- a crash while recovering a torn tail ---------------------------------------------------------
_CRASH = """
import os, sys
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
def crash(self, *a, **k):
    os._exit(9)  # killed after the torn bytes were kept aside and the log cut back
AuditLog.{method} = crash
AuditLog(sys.argv[1], {{"uid": None, "sha256": sys.argv[2]}}, Actor("bob", "Bob"))
"""


@pytest.mark.parametrize("method", ["_record_recovery", "_write_line"])
def test_a_crash_between_keeping_a_torn_tail_aside_and_recording_it(tmp_path, method):
    log = _log(tmp_path)
    n = len(log.records())
    log.close()
    torn = b'{"action":"box.add","actor":{"id":"ali'
    with open(log.path, "ab") as fh:
        fh.write(torn)
    code = subprocess.run([sys.executable, "-c", textwrap.dedent(_CRASH.format(method=method)),
                           str(log.path), log.image["sha256"]]).returncode  # fmt: skip
    assert code == 9
    pending = list(tmp_path.glob("ct.nii.gz.clinlabel.jsonl.torn-*.pending"))
    assert len(pending) == 1 and pending[0].read_bytes() == torn  # kept aside, not recorded
    assert log.path.read_bytes().endswith(b"\n") and len(log.records()) == n  # and cut back
    AuditLog(log.path, log.image, Actor("carol", "Carol"))  # the next open records it
    recs = log.records()
    assert len(recs) == n + 1 and recs[-1]["action"] == "log.recover"
    data = recs[-1]["data"]
    assert data["torn_sha256"] == hashlib.sha256(torn).hexdigest() and data["torn_bytes"] == len(
        torn
    )
    assert data["recorded_after_a_crash"] is True and data["at_offset"] is None
    assert (tmp_path / data["kept_as"]).read_bytes() == torn
    assert not list(tmp_path.glob("*.pending"))
    assert verify_log(log.path).ok
    AuditLog(log.path, log.image, ANA)  # recorded once, not at every open
    assert len(log.records()) == n + 1


def test_a_crash_after_recording_before_renaming_only_renames(tmp_path, monkeypatch):
    log = _log(tmp_path)
    log.close()
    torn = b'{"v":2,"seq":3'
    with open(log.path, "ab") as fh:
        fh.write(torn)

    real_replace = os.replace

    def no_rename(src, dst):
        if str(src).endswith(".pending"):
            raise OSError(5, "simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr("napari_clinlabel.core.log.audit_log.os.replace", no_rename)
    with pytest.raises(LogError, match="recorded, but cannot be renamed"):
        AuditLog(log.path, log.image, ANA)
    monkeypatch.undo()
    n = len(log.records())
    AuditLog(log.path, log.image, ANA)
    assert len(log.records()) == n and not list(tmp_path.glob("*.pending"))
    assert (tmp_path / log.records()[-1]["data"]["kept_as"]).read_bytes() == torn


# -- one bounded reader for every reader of a log -------------------------------------------------
def test_a_record_nested_100000_deep_gives_one_clear_line_everywhere(tmp_path, capsys):
    log = _log(tmp_path)
    seq = _append_crafted(log.path, "box.add", b'{"n":' + DEEP + b"}", {"box": "b1"})
    why = "record nests deeper than 500 levels"
    rep = verify_log(log.path)
    assert not rep.ok and rep.first_bad_seq == seq and why in rep.reason
    with pytest.raises(LogIntegrityError, match=f"line {seq + 1}: {why}"):
        list(iter_records(log.path))
    for reopen in (restore_state, replay_labels):  # what napari runs when reopening the image
        with pytest.raises(LogIntegrityError, match=why):
            reopen(log.path)
    with pytest.raises(LogIntegrityError, match=why):
        AuditLog(log.path, log.image, ANA).records()
    code, lines = _cli(capsys, "log", "verify", log.path)
    assert code == 1 and len(lines) == 1 and f"broken at seq {seq}: {why}" in lines[0]
    twin = tmp_path.parent / f"{tmp_path.name}-b.clinlabel.jsonl"  # another reader's log
    twin.write_bytes(log.path.read_bytes())
    for argv in (["agreement", twin, log.path],
                 ["log", "show", log.path], ["log", "replay", log.path, "-o", tmp_path / "r.nii"],
                 ["export", log.path.parent / "ct.nii.gz", "--format", "nifti", "-o",
                  tmp_path / "out.nii.gz"]):  # fmt: skip
        code, lines = _cli(capsys, *argv)
        assert code == 2 and len(lines) == 1 and why in lines[0], (argv, lines)
    code, lines = _cli(capsys, "report", tmp_path, "-o", tmp_path / "report.html")
    assert code == 1 and lines[-1] == "1 log(s) failed verification: ct.nii.gz.clinlabel.jsonl"
    assert why in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_a_line_longer_than_the_reader_reads_is_refused_by_name(tmp_path, monkeypatch):
    log = _log(tmp_path)
    monkeypatch.setattr(reader, "MAX_LINE_BYTES", 4096)
    monkeypatch.setattr(checks, "MAX_LINE_BYTES", 4096)
    seq = _append_crafted(log.path, "box.add", b'{"pad":"' + b"x" * 20_000 + b'"}', {"box": 1})
    why = "record line is longer than"
    with pytest.raises(LogIntegrityError, match=why):
        list(iter_records(log.path))
    monkeypatch.setattr(checks, "_BLOCK", 1024)  # also when the line spans read blocks
    rep = verify_log(log.path)
    assert not rep.ok and rep.first_bad_seq == seq and why in rep.reason


# -- shapes in records checked before anything is allocated ---------------------------------------
def test_a_rehashed_labels_create_of_100000_cubed_is_refused_before_allocating(tmp_path, capsys):
    log = _log(tmp_path)
    seq = _append_crafted(log.path, "labels.create",
                          b'{"dtype":"uint8","labels":"L","shape":[100000,100000,100000]}',
                          {"labels": "L"})  # fmt: skip
    assert verify_log(log.path).ok  # a well-formed record: only the image can tell
    with pytest.raises(LogIntegrityError, match=f"record {seq} creates labels of shape"):
        replay_labels(log.path)
    with pytest.raises(LogIntegrityError, match="but the image grid is"):
        replay_labels(log.path, image_shape=(4, 5, 6))
    code, lines = _cli(capsys, "export", log.path.parent / "ct.nii.gz", "--format", "nifti",
                       "-o", tmp_path / "out.nii.gz")  # fmt: skip
    assert code == 2 and len(lines) == 1 and f"record {seq} creates labels of shape" in lines[0]
    code, lines = _cli(capsys, "log", "replay", log.path, "-o", tmp_path / "r.nii.gz")
    assert code == 2 and len(lines) == 1 and "creates labels of shape" in lines[0]
    code, lines = _cli(capsys, "report", tmp_path, "-o", tmp_path / "report.html")
    assert code in (0, 1, 2) and len(lines) <= 1  # no MemoryError traceback


@pytest.mark.parametrize(
    "data",
    [
        b'{"dtype":"object","labels":"L","shape":[4,5,6]}',
        b'{"dtype":"uint8","labels":"L","shape":[4,-5,6]}',
        b'{"dtype":"uint8","labels":"L","shape":"4,5,6"}',
    ],
)
def test_a_labels_create_that_is_not_a_labels_array_is_refused(tmp_path, data):
    log = _log(tmp_path)
    _append_crafted(log.path, "labels.create", data, {"labels": "L"})
    with pytest.raises(LogIntegrityError, match="not a labels array"):
        replay_labels(log.path)


def test_an_object_that_unpacks_into_a_huge_array_is_refused_from_its_header(tmp_path):
    log = _log(tmp_path)
    # a tiny compressed object whose array is 50 million voxels: more than the 4×5×6 image
    digest = log.put_arrays(indices=np.zeros(50_000_000, np.int64), old=np.zeros(1, np.uint8),
                            new=np.ones(1, np.uint8))  # fmt: skip
    assert (log.objects.folder / digest).stat().st_size < 1_000_000
    log.append("label.paint", {"labels": "L"}, {"objects": {"diff": digest}})
    with pytest.raises(LogIntegrityError, match="log object is too large"):
        replay_labels(log.path)


def test_sidecar_paths_do_not_resolve_through_a_symlinked_image_name(tmp_path):
    # the writer's own path is what is refused; sidecar_paths itself is unchanged
    log, objects = sidecar_paths(tmp_path / "a.nii.gz")
    assert log.name == "a.nii.gz.clinlabel.jsonl" and objects.parent.name == "a.nii.gz.clinlabel"
