"""The log under crashes, concurrent writers, forks, read-only folders and full disks."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from napari_clinlabel.core.annotate.label_edits import diff_between, record_label_change
from napari_clinlabel.core.errors import LogError
from napari_clinlabel.core.log import audit_log as audit_log_module
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.verify import verify_log

IMAGE = {"uid": None, "sha256": "ab" * 32}
ALICE = Actor("alice", "Alice")

_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import Actor
    path, who, n, start_at, tear_after = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
        float(sys.argv[4]), int(sys.argv[5])
    log = AuditLog(path, {"uid": None, "sha256": "ab" * 32}, Actor(who, who))
    if tear_after >= 0:
        real_write, done = os.write, [0]
        def slow_write(fd, data):
            if fd == log._fd and done[0] >= tear_after:
                real_write(fd, data[: len(data) // 2])  # half the record reaches the disk ...
                print("HALF", flush=True)
                time.sleep(60)  # ... and the process is killed here
            done[0] += fd == log._fd
            return real_write(fd, data)
        os.write = slow_write
    while time.time() < start_at:
        time.sleep(0.005)
    i = 0
    while n < 0 or i < n:
        log.append("label.paint", {"labels": "L"}, {"i": i, "who": who, "pad": "x" * (i % 97)})
        i += 1
        if i == 20:
            print("BURST", flush=True)
    """
)


def _child(path: Path, who: str, n: int, start_at: float = 0.0, tear_after: int = -1):
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), who, str(n), str(start_at), str(tear_after)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline()
    assert line.strip() == word, f"child said {line!r}"


def test_sigkill_mid_burst_leaves_a_log_that_verifies(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    proc = _child(path, "burst", -1)
    _wait_for(proc, "BURST")
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    rep = verify_log(path)
    complete = path.read_bytes().count(b"\n")
    assert rep.ok and rep.records == complete >= 20
    AuditLog(path, IMAGE, ALICE).append("image.open")
    rep2 = verify_log(path)
    assert rep2.ok and not rep2.torn_tail_present
    assert rep2.records == complete + 1 + int(rep.torn_tail_present)


def test_sigkill_mid_write_leaves_a_torn_tail_recorded_on_next_open(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    proc = _child(path, "slowdisk", -1, tear_after=7)
    _wait_for(proc, "HALF")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    rep = verify_log(path)
    assert rep.ok and rep.records == 7 and rep.torn_tail_present
    torn = path.read_bytes().split(b"\n")[-1]
    assert torn.startswith(b'{"action":"label.paint"')
    log = AuditLog(path, IMAGE, ALICE)  # the next open keeps the torn bytes aside and says so
    rec = log.records()[-1]
    assert rec["seq"] == 7 and rec["action"] == "log.recover" and rec["actor"]["id"] == "alice"
    assert (tmp_path / rec["data"]["kept_as"]).read_bytes() == torn
    rep = verify_log(path)
    assert rep.ok and rep.records == 8 and not rep.torn_tail_present


def test_two_processes_appending_500_each_make_one_chain(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    start_at = time.time() + 2.0
    procs = [_child(path, who, 500, start_at) for who in ("p1", "p2")]
    for p in procs:
        assert p.wait(120) == 0
    rep = verify_log(path)
    assert rep.ok and rep.records == 1000, rep.reason
    recs = [json.loads(line) for line in path.read_bytes().splitlines()]
    for who in ("p1", "p2"):
        mine = [r["data"]["i"] for r in recs if r["actor"]["id"] == who]
        assert mine == list(range(500))
    times = [r["time"] for r in recs]
    assert times == sorted(times)  # timestamps taken under the lock


def test_a_forked_child_does_not_share_the_parents_lock(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, ALICE)
    log.append("image.open")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            for i in range(150):
                log.append("box.add", {"child": i})
        except BaseException:
            code = 1
        os._exit(code)
    for i in range(150):
        log.append("box.add", {"parent": i})
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    rep = verify_log(log.path)
    assert rep.ok and rep.records == 301, rep.reason


def _in_readonly_child(fn) -> dict:
    """Run ``fn`` in a forked child without write permission; return what it reports."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            if os.geteuid() == 0:  # root ignores file modes: act as 'nobody'
                os.setgid(65534)
                os.setuid(65534)
            out = fn()
        except BaseException as exc:
            out = {"unexpected": repr(exc)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def test_read_only_folder_refuses_the_action_and_loses_nothing():
    # Permission-style failure. Tests run as root, which bypasses file modes, so the writer runs
    # in a forked child that drops to uid 'nobody' before touching a 0555 folder.
    base = Path(tempfile.mkdtemp(prefix="clinlabel-ro-"))
    try:
        base.chmod(0o755)
        folder = base / "images"
        folder.mkdir()
        existing = folder / "a.nii.gz.clinlabel.jsonl"
        AuditLog(existing, IMAGE, ALICE).append("image.open")
        before = existing.read_bytes()
        existing.chmod(0o644)
        folder.chmod(0o555)

        def attempt() -> dict:
            out = {}
            try:
                AuditLog(folder / "new.clinlabel.jsonl", IMAGE, ALICE).append("image.open")
                out["new"] = "written"
            except LogError as exc:
                out["new"] = str(exc)
            try:
                AuditLog(existing, IMAGE, ALICE).append("label.paint")
                out["existing"] = "written"
            except LogError as exc:
                out["existing"] = str(exc)
            return out

        out = _in_readonly_child(attempt)
        assert "cannot open the audit log for writing" in out["new"], out
        assert "Permission denied" in out["new"]
        assert "cannot open the audit log for writing" in out["existing"], out
        assert existing.read_bytes() == before
        assert not (folder / "new.clinlabel.jsonl").exists()
    finally:
        (base / "images").chmod(0o755)
        for p in sorted(base.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        base.rmdir()


def test_disk_full_mid_record_is_refused_and_cut_back(tmp_path, monkeypatch):
    # Disk-full-style failure, simulated: os.write on the log puts half the bytes down, then
    # fails with ENOSPC (a real ENOSPC needs a full filesystem, which a test cannot make here).
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, ALICE)
    log.append("image.open")
    before = log.path.read_bytes()
    real_write = os.write

    def full_disk(fd, data):
        if fd == log._fd:
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(audit_log_module.os, "write", full_disk)
    with pytest.raises(LogError, match="No space left on device"):
        log.append("box.add", {"box": 1})
    assert log.path.read_bytes() == before  # the partial record was cut back

    # a label edit that cannot be logged is undone
    labels = np.zeros((8, 8, 8), np.uint8)
    painted = labels.copy()
    painted[2:5, 2:5, 2:5] = 3
    idx, old, new = diff_between(labels, painted)
    with pytest.raises(LogError):
        record_label_change(log, painted, "L", idx, old, new)
    assert not painted.any()
    monkeypatch.undo()
    assert log.append("box.add", {"box": 1})["seq"] == 1
    assert verify_log(log.path).ok


def test_object_store_full_refuses_the_edit(tmp_path, monkeypatch):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, ALICE)
    log.append("image.open")

    def no_space(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(audit_log_module, "atomic_write_bytes", no_space)
    labels = np.zeros((4, 4), np.uint8)
    labels[1, 1] = 1
    with pytest.raises(LogError, match="cannot write a log object"):
        record_label_change(log, labels, "L", np.array([5]), np.array([0]), np.array([1]))
    assert not labels.any()
    assert len(log.records()) == 1
