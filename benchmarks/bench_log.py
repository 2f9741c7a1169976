"""Audit-log benchmarks: verify throughput, append cost, stroke logging vs volume size."""

from __future__ import annotations

import hashlib
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_clinlabel.core.annotate.label_edits import diff_in_region, record_label_change
from napari_clinlabel.core.log import audit_log as audit_log_module
from napari_clinlabel.core.log.audit_log import GENESIS, AuditLog, canonical_bytes
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.verify import verify_log

IMAGE = {"uid": "1.2.826.0.1.3680043.8.498.10368416360734871432", "sha256": "3f" * 32}
ACTOR = {"id": "rad01", "name": "Dr A. Radiologist", "role": "annotator"}
SCHEMA = {"id": "abdomen-ct", "version": "1.0", "sha256": "5e" * 32}
AuditLogActor = Actor(ACTOR["id"], ACTOR["name"], ACTOR["role"])


def _write_log(path: Path, n: int) -> None:
    """A realistic log written in the writer's layout (canonical JSON, hash last), no fsyncs."""
    rng = np.random.default_rng(0)
    prev = GENESIS
    with open(path, "wb") as fh:
        for seq in range(n):
            kind = seq % 10
            if kind < 8:
                lo = rng.integers(0, 400, 3)
                action, target = "label.paint", {"labels": "Labels"}
                data = {
                    "label": int(rng.integers(1, 6)),
                    "voxels": int(rng.integers(50, 40000)),
                    "bbox": [lo.tolist(), (lo + rng.integers(1, 40, 3)).tolist()],
                    "objects": {"diff": hashlib.sha256(seq.to_bytes(8, "little")).hexdigest()},
                }
            elif kind == 8:
                action, target = "box.add", {"box": f"b{seq}"}
                data = {"class": "malignant", "confidence": 0.8, "size_mm": [12.5, 9.25, 6.0]}
            else:
                action, target, data = (
                    "grade.set",
                    {"item": "image"},
                    {"scale": "birads", "grade": "4A"},
                )
            rec = {
                "v": 2, "seq": seq, "time": f"2026-11-26T10:{seq // 60000 % 60:02d}:"
                f"{seq // 1000 % 60:02d}.{seq % 1000:03d}000Z", "actor": ACTOR, "action": action,
                "image": IMAGE, "target": target, "data": data, "source": {"kind": "human"},
                "schema": SCHEMA, "prev": prev,
            }  # fmt: skip
            body = canonical_bytes(rec)
            prev = hashlib.sha256(body).hexdigest()
            fh.write(body[:-1] + b',"hash":"' + prev.encode() + b'"}\n')


def _best(fn, repeat: int = 3, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def bench_log_verify(quick: bool) -> dict:
    """``verify_log`` as ``clinlabel log verify --no-objects`` runs it on a 100 000-record v2 log,
    in two processes (the budget's terms; the default for a log of 8 MiB or more), vs hashlib's
    sha256 of the same file in one. ``single_ratio``: one process; ``*_cpu_ratio``: CPU time
    (steadier on a shared machine; ``total``: both processes together); ``records_s``: records
    verified per second, two processes; ``load``: the 1-minute load average before and after
    (the machine is shared: read the ratios with it)."""
    n = 10_000 if quick else 100_000
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "big.clinlabel.jsonl"
        _write_log(path, n)
        size = path.stat().st_size
        rep = verify_log(path, check_objects=False, workers=2)
        assert rep.ok and rep.records == n, rep.reason
        assert verify_log(path, check_objects=False, workers=1) == rep

        def anchor() -> None:
            with open(path, "rb") as fh:
                hashlib.file_digest(fh, "sha256").hexdigest()

        def single() -> None:
            verify_log(path, check_objects=False, workers=1)

        base = _best(anchor, 5)
        ours = _best(lambda: verify_log(path, check_objects=False, workers=2), 5)
        one = _best(single, 3)
        base = min(base, _best(anchor, 5))  # the anchor at its best, before and after
        anchor_cpu = _best(anchor, 5, time.process_time)
        cpu = _best(single, 3, time.process_time) / anchor_cpu
        total_cpu = min(_total_cpu(path) for _ in range(3)) / anchor_cpu
    return {"ours_s": ours, "anchor_s": base, "budget": 5.0, "records": n, "MB": size / 1e6,
            "workers": 2, "records_s": n / ours, "single_ratio": one / base,
            "single_cpu_ratio": cpu, "total_cpu_ratio": total_cpu,
            "ours_MB_s": size / 1e6 / ours, "single_MB_s": size / 1e6 / one,
            "sha256_MB_s": size / 1e6 / base,
            "load": f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"}  # fmt: skip


def _total_cpu(path: Path) -> float:
    """CPU seconds two processes spend in all (this process and its forked child)."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    verify_log(path, check_objects=False, workers=2)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(
        a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime
        for a, b in zip(after, before, strict=True)
    )


def bench_append_fsync(quick: bool) -> dict:
    """One locked, chained, fsynced append vs a bare os.write + fsync of the same bytes.

    Where the time goes: ``fsync_s`` is the median bare fsync alone; ``cpu_us`` the median
    append with fsync stubbed out (JSON normalisation and canonical encoding, sha256, flock,
    the same-file check, the write), i.e. what the append adds to the fsync both pay."""
    reps = 60 if quick else 300
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        log = AuditLog(Path(d) / "a.clinlabel.jsonl", IMAGE, AuditLogActor, SCHEMA)
        fd = os.open(Path(d) / "bare.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        data = {"label": 3, "voxels": 1234, "bbox": [[1, 2, 3], [40, 50, 60]]}
        ours, base, sync, cpu = [], [], [], []
        line: bytes | None = None
        try:
            for _ in range(reps):
                t0 = time.perf_counter()
                rec = log.append("label.paint", {"labels": "Labels"}, data)
                ours.append(time.perf_counter() - t0)
                if line is None:  # the same bytes our append wrote
                    line = _last_line(log.path)
                t0 = time.perf_counter()
                os.write(fd, line)
                t1 = time.perf_counter()
                os.fsync(fd)
                t2 = time.perf_counter()
                base.append(t2 - t0)
                sync.append(t2 - t1)
            assert rec["seq"] == reps - 1
            real_fsync = audit_log_module.os.fsync
            audit_log_module.os.fsync = lambda fd: None  # the append's own work, no disk wait
            try:
                for _ in range(reps):
                    t0 = time.perf_counter()
                    log.append("label.paint", {"labels": "Labels"}, data)
                    cpu.append(time.perf_counter() - t0)
            finally:
                audit_log_module.os.fsync = real_fsync
        finally:
            os.close(fd)
            log.close()
    return {"ours_s": statistics.median(ours), "anchor_s": statistics.median(base),
            "budget": 1.5, "appends": reps, "fsync_s": statistics.median(sync),
            "cpu_us": statistics.median(cpu) * 1e6,
            "load": f"{load0:.1f} -> {os.getloadavg()[0]:.1f}"}  # fmt: skip


def _last_line(path: Path) -> bytes:
    data = path.read_bytes()
    return data[data.rstrip(b"\n").rfind(b"\n") + 1 :]


def _stroke_seconds(n: int, strokes: int = 5, radius: int = 20) -> float:
    """Median time to diff and log one spherical brush stroke on an n³ uint8 labels volume."""
    labels = np.zeros((n, n, n), np.uint8)
    r = np.arange(-radius, radius + 1)
    ball = (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) <= radius**2
    rng = np.random.default_rng(n)
    times = []
    with tempfile.TemporaryDirectory() as d:
        log = AuditLog(Path(d) / "s.clinlabel.jsonl", IMAGE, AuditLogActor, SCHEMA)
        for k in range(strokes):
            c = rng.integers(radius, n - radius, 3)
            box = tuple(slice(int(x) - radius, int(x) + radius + 1) for x in c)
            before = labels[box].copy()  # what the viewer keeps to undo the stroke
            labels[box][ball] = k % 5 + 1  # the brush paints (not timed: that is napari's work)
            t0 = time.perf_counter()
            idx, old, new = _region_diff(labels, before, box)
            record_label_change(log, labels, "Labels", idx, old, new)
            times.append(time.perf_counter() - t0)
        log.close()
    return statistics.median(times)


def _region_diff(labels: np.ndarray, before: np.ndarray, box: tuple[slice, ...]):
    full_before = _RegionView(before, box, labels.shape)
    return diff_in_region(full_before, labels, box)


class _RegionView:
    """Read-only stand-in for the pre-stroke volume that only holds the stroke's box."""

    def __init__(self, region: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]):
        self.region, self.box, self.shape = region, box, shape

    def __getitem__(self, key):
        assert key == self.box
        return self.region


def bench_stroke_logging_scaling(quick: bool) -> dict:
    """Logging a 20-voxel-radius stroke on a 512³ (quick: 256³) volume vs on a 64³ one."""
    big = 256 if quick else 512
    base = _stroke_seconds(64)
    ours = _stroke_seconds(big)
    return {"ours_s": ours, "anchor_s": base, "budget": 2.0, "big": f"{big}^3", "small": "64^3"}


BENCHMARKS = [bench_log_verify, bench_append_fsync, bench_stroke_logging_scaling]
