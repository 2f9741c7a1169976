"""Verifying a log in parts checked by forked processes gives the single pass's report,
tampering included."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from napari_clinlabel.core.log import checks as chk
from napari_clinlabel.core.log import verify as ver
from napari_clinlabel.core.log.identity import load_roster
from napari_clinlabel.core.log.trust import Trust
from napari_clinlabel.core.log.verify import verify_against_anchor, verify_log

pytestmark = pytest.mark.skipif(
    "fork" not in __import__("multiprocessing").get_all_start_methods(), reason="needs fork"
)
IMAGE = {"uid": "1.2.3", "sha256": "ab" * 32}
KEY = Ed25519PrivateKey.generate()
PUB = base64.b64encode(
    KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
).decode()


# -- an independent writer, from DESIGN.md alone ----------------------------------------------
def spec_hash(rec: dict) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build(n: int, *, signs: tuple[int, ...] = (), heads: dict[int, int] | None = None) -> list:
    """``n`` records; ``signs``: seqs that sign seq 1; ``heads``: seq -> the seq its data.head
    names; every 7th record by a reviewer; times step back now and then."""
    recs: list[dict] = []
    prev = "0" * 64
    for i in range(n):
        actor = {"id": "rev" if i % 7 == 3 else "ana", "name": "Ana Ñ", "role": "annotator"}
        if i % 7 == 3:
            actor["role"] = "reviewer"
        rec = {
            "v": 2, "seq": i, "time": f"2026-11-26T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 7}Z",
            "actor": actor, "action": "box.add", "image": IMAGE, "target": {"box": i},
            "data": {"size_mm": [3.5, 2.0], "note": "naïve ✓"}, "source": {"kind": "human"},
            "schema": None, "prev": prev,
        }  # fmt: skip
        if i % 50 == 49:
            rec["time"] = "2026-11-26T09:00:00Z"  # a clock stepped back: a warning
        if i in (heads or {}):
            s = heads[i]
            rec["action"], rec["data"] = "export", {"head": {"seq": s, "hash": recs[s]["hash"]}}
        if i in signs:
            target = {"seq": 1, "hash": recs[1]["hash"]}
            sig = base64.b64encode(KEY.sign(target["hash"].encode("ascii"))).decode()
            rec["action"], rec["target"] = "sign", target
            rec["data"] = {"meaning": "review", "head": {"seq": i - 1, "hash": prev},
                           "public_key": PUB, "signature": sig}  # fmt: skip
        rec["hash"] = spec_hash(rec)
        prev = rec["hash"]
        recs.append(rec)
    return recs


def write(path: Path, recs: list[dict]) -> Path:
    """The writer's layout: canonical JSON with ``hash`` last (v2: the hash covers these bytes)."""
    with open(path, "wb") as fh:
        for r in recs:
            body = {k: v for k, v in r.items() if k != "hash"}
            text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            fh.write((text[:-1] + f',"hash":"{r["hash"]}"}}\n').encode())
    return path


def reseal(recs: list[dict], start: int) -> None:
    prev = recs[start - 1]["hash"]
    for r in recs[start:]:
        r["prev"] = prev
        r["hash"] = spec_hash(r)
        prev = r["hash"]


def boundary_seqs(path: Path, n: int) -> list[int]:
    """The seq of the first record of each chunk after the first."""
    data = path.read_bytes()
    with open(path, "rb") as fh:
        bounds = ver._boundaries(fh, len(data), n)
    return [data[:b].count(b"\n") for b in bounds[1:-1]]


def both(path: Path, workers: int, may_fall_back: bool = False, **kw):
    """(single-pass report, split report); the split one must not have fallen back, unless
    ``may_fall_back`` (the line before the only boundary is not a record: no part starts there)."""
    single = verify_log(path, workers=1, **kw)
    ctx = chk.Context(path.with_suffix("") / "objects", False, Trust(kw.get("roster")))
    with open(path, "rb") as fh:
        runs = ver._verify_parts(fh, path.stat().st_size, workers, ctx)
    assert runs is not None or may_fall_back, "the split path fell back to a single pass"
    chunked = verify_log(path, workers=workers, **kw)
    if runs is not None:
        assert ver.merge(runs, ctx)[0] == chunked
    return single, chunked


# -- tests --------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [2, 3, 5])
def test_chunked_report_equals_single_pass_on_a_valid_log(tmp_path, workers):
    recs = build(1200, heads={650: 10, 1000: 999, 1150: 640})
    p = write(tmp_path / "a.clinlabel.jsonl", recs)
    roster = tmp_path / "r.toml"
    roster.write_text(f'[[users]]\nid = "ana"\nroles = ["annotator"]\npublic_key = "{PUB}"\n')
    single, chunked = both(p, workers, check_objects=False)
    assert single.ok and single.records == 1200 and single.head.hash == recs[-1]["hash"]
    assert chunked == single  # warnings (time), signatures, head: all the same
    assert any("before the previous" in w for w in single.warnings)
    # a roster that does not grant 'rev' reviewer: a failure at rev's first record (DESIGN.md
    # Authority), the same split or not
    single, chunked = both(p, workers, check_objects=False, roster=load_roster(roster))
    assert not single.ok and "'rev' acted as reviewer" in single.reason
    assert chunked == single


def test_a_torn_tail_and_an_anchor_through_the_chunked_path(tmp_path):
    recs = build(900)
    p = write(tmp_path / "a.jsonl", recs)
    with open(p, "ab") as fh:
        fh.write(b'{"v":1,"seq":900,"ti')
    single, chunked = both(p, 3, check_objects=False)
    assert chunked == single and single.ok and single.torn_tail_present and single.records == 900
    anchor = {"seq": 800, "hash": recs[800]["hash"]}
    assert verify_against_anchor(p, anchor, workers=3, check_objects=False).ok
    bad = {"seq": 800, "hash": "e" * 64}
    rep = verify_against_anchor(p, bad, workers=3, check_objects=False)
    assert rep == verify_against_anchor(p, bad, workers=1, check_objects=False)
    assert rep.first_bad_seq == 800 and not rep.ok


@pytest.mark.parametrize(
    "tamper, reason",
    [
        ("edit", "hash does not match"),
        ("delete", "expected"),
        ("reseal_one", "prev is not"),
        ("bad_json", "not valid JSON"),
        ("head_before_chunk", "data.head names record 10"),
        ("sign_target_before_chunk", "sign target names record 1"),
        ("other_image", "image differs"),
    ],
)
def test_tampering_in_the_second_chunk_is_caught_at_its_seq(tmp_path, tamper, reason):
    recs = build(1000, signs=(720,), heads={30: 10})
    p = write(tmp_path / "a.jsonl", recs)
    at = boundary_seqs(p, 2)[0] + 150  # well inside the second chunk
    if tamper in ("head_before_chunk", "sign_target_before_chunk"):
        at = 720
    if tamper == "edit":
        recs[at]["data"]["size_mm"] = [9.5, 2.0]
    elif tamper == "delete":
        del recs[at]
    elif tamper == "reseal_one":
        recs[at]["target"] = {"box": -1}
        recs[at]["hash"] = spec_hash(recs[at])
    elif tamper == "head_before_chunk":  # only the parent knows seq 10's hash
        recs[at]["action"] = "export"
        recs[at]["data"] = {"head": {"seq": 10, "hash": "e" * 64}}
        reseal(recs, at)
    elif tamper == "sign_target_before_chunk":  # and the signature is bad too: target first
        recs[at]["target"]["hash"] = "e" * 64
        reseal(recs, at)
    elif tamper == "other_image":
        recs[at]["image"] = {"uid": "1.2.3", "sha256": "cd" * 32}
        reseal(recs, at)
    p = write(tmp_path / "t.jsonl", recs)
    if tamper == "bad_json":
        lines = p.read_bytes().splitlines(keepends=True)
        lines[at] = lines[at][:40] + b"\n"
        p.write_bytes(b"".join(lines))
    assert boundary_seqs(p, 2)[0] < at
    single, chunked = both(p, 2, check_objects=False)
    expected = at + 1 if tamper == "reseal_one" else at  # resealed: the next link breaks
    assert not chunked.ok and chunked.first_bad_seq == expected, chunked.reason
    assert reason in chunked.reason
    assert chunked == single


@pytest.mark.parametrize("offset", [0, -1])
@pytest.mark.parametrize("tamper", ["edit", "bad_json", "seq"])
def test_tampering_exactly_at_a_chunk_boundary(tmp_path, offset, tamper):
    recs = build(800)
    p = write(tmp_path / "a.jsonl", recs)
    at = boundary_seqs(p, 2)[0] + offset  # the first record of chunk 2, or the last of chunk 1
    lines = p.read_bytes().splitlines(keepends=True)
    if tamper == "edit":  # same length: the boundaries stay where they were
        lines[at] = lines[at].replace(b'"size_mm":[3.5,', b'"size_mm":[9.5,')
    elif tamper == "seq":
        lines[at] = lines[at].replace(f'"seq":{at},'.encode(), f'"seq":{at + 1},'.encode())
    else:
        lines[at] = b"{" + b"x" * (len(lines[at]) - 2) + b"\n"
    p.write_bytes(b"".join(lines))
    assert boundary_seqs(p, 2)[0] + offset == at
    fall_back = tamper == "bad_json" and offset == -1
    single, chunked = both(p, 2, fall_back, check_objects=False)
    assert not chunked.ok and chunked.first_bad_seq == at, chunked.reason
    assert chunked == single


def test_a_deferred_head_before_a_later_failure_in_the_same_chunk_wins(tmp_path):
    recs = build(1000, heads={700: 5})
    recs[700]["data"]["head"]["hash"] = "e" * 64  # wrong, and only the parent can tell
    reseal(recs, 700)
    recs[800]["data"]["size_mm"] = [1.0, 1.0]  # edited, caught by the worker itself
    p = write(tmp_path / "a.jsonl", recs)
    single, chunked = both(p, 2, check_objects=False)
    assert chunked.first_bad_seq == 700 and "data.head" in chunked.reason
    assert chunked == single and chunked.records == 700


def test_auto_mode_splits_only_big_logs(tmp_path, monkeypatch):
    recs = build(2000)
    p = write(tmp_path / "a.jsonl", recs)
    size = p.stat().st_size
    # forking is only safe in a process with one thread (the CLI); other tests may have left
    # threads running in this one, so the thread count is pinned both ways here
    monkeypatch.setattr(ver.threading, "active_count", lambda: 1)
    assert size < ver.SPLIT_MIN_BYTES and ver.part_count(size, None) == 1
    assert ver.part_count(size, 1) == 1 and ver.part_count(size, 3) == 3
    calls = []
    real = ver._verify_parts
    monkeypatch.setattr(ver, "_verify_parts", lambda *a: calls.append(a[2]) or real(*a))
    monkeypatch.setattr(ver, "SPLIT_MIN_BYTES", size // 2)
    monkeypatch.setattr(ver.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert ver.part_count(size, None) == 2
    rep = verify_log(p, check_objects=False)
    assert calls == [2] and rep == verify_log(p, workers=1, check_objects=False) and rep.ok
    monkeypatch.setattr(ver.threading, "active_count", lambda: 3)
    assert ver.part_count(size, None) == 1  # e.g. inside napari: one pass, never a fork
    assert ver.part_count(size, 2) == 1


def _big_log(tmp_path):
    """A log just above the split threshold whose records name objects; one object is named
    only at seq n - 10 (in the last piece). Returns (log path, objects folder, digests, n)."""
    objects = tmp_path / "big.clinlabel" / "objects"
    objects.mkdir(parents=True)
    blobs = [f"stroke {i}".encode() for i in range(41)]
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    for d, b in zip(digests, blobs, strict=True):
        (objects / d).write_bytes(b)
    recs, prev, filler = [], "0" * 64, "x" * 1200
    n = ver.SPLIT_MIN_BYTES // 1400 + 200
    for i in range(n):
        rec = {"v": 2, "seq": i, "time": "2026-11-26T10:00:00Z",
               "actor": {"id": "ana", "name": "A", "role": "annotator"}, "action": "label.paint",
               "image": IMAGE, "target": {"labels": "L"},
               "data": {"objects": {"diff": digests[40 if i == n - 10 else i % 40]}, "pad": filler},
               "source": {"kind": "human"}, "schema": None, "prev": prev}  # fmt: skip
        rec["hash"] = prev = spec_hash(rec)
        recs.append(rec)
    p = write(tmp_path / "big.clinlabel.jsonl", recs)
    assert p.stat().st_size >= ver.SPLIT_MIN_BYTES
    return p, objects, digests, n


def test_a_log_above_the_threshold_verifies_in_chunks_with_objects(tmp_path):
    """Real threshold, default arguments, objects checked in the workers."""
    p, objects, digests, n = _big_log(tmp_path)
    if ver.part_count(p.stat().st_size, None) < 2:
        pytest.skip("one CPU or a threaded process: auto mode stays single-process here")
    rep = verify_log(p)
    assert rep.ok and rep.records == n and rep == verify_log(p, workers=1)
    (objects / digests[40]).write_bytes(b"altered")  # named only at seq n - 10: the last chunk
    rep = verify_log(p)
    assert rep.first_bad_seq == n - 10 and "does not match its digest" in rep.reason
    assert rep == verify_log(p, workers=1)


def test_cli_verifies_a_big_log_in_a_fresh_process(tmp_path):
    """The user's path: `clinlabel log verify` in its own single-threaded process (where the
    automatic split applies on a multi-core machine), valid then caught in the last piece."""
    import subprocess
    import sys

    p, objects, digests, n = _big_log(tmp_path)
    cmd = [sys.executable, "-m", "napari_clinlabel.cli", "log", "verify", str(p)]
    ok = subprocess.run(cmd, capture_output=True, text=True)
    assert ok.returncode == 0 and f"valid: {n} records" in ok.stdout
    (objects / digests[40]).write_bytes(b"altered")
    bad = subprocess.run(cmd, capture_output=True, text=True)
    assert bad.returncode == 1 and f"broken at seq {n - 10}" in bad.stdout


def test_reading_in_small_blocks_changes_nothing(tmp_path, monkeypatch):
    """Lines that straddle read blocks: the same reports, tampered or torn."""
    recs = build(300, heads={200: 3})
    recs[250]["data"]["size_mm"] = [1.0, 1.0]
    p = write(tmp_path / "a.jsonl", recs)
    with open(p, "ab") as fh:
        fh.write(b'{"v":1,"seq":300')
    torn = write(tmp_path / "b.jsonl", build(300))
    with open(torn, "ab") as fh:
        fh.write(b'{"v":1,"seq":300')
    expected = [verify_log(q, workers=1, check_objects=False) for q in (p, torn)]
    assert expected[0].first_bad_seq == 250 and expected[1].ok and expected[1].torn_tail_present
    for block in (777, 50):  # lines across two blocks; lines longer than a block
        monkeypatch.setattr(chk, "_BLOCK", block)
        for workers in (1, 3):
            got = [verify_log(q, workers=workers, check_objects=False) for q in (p, torn)]
            assert got == expected


# DESIGN.md's form, in ASCII digits (ISO 8601's)
TIME_SPEC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z", re.ASCII)


@pytest.mark.parametrize(
    "time, digest",
    [
        ("2026-11-26T10:00:00.Z", None),  # a dot with no fraction
        ("2026-11-26T10:00:00.1234567890Z", None),  # ten fraction digits
        ("2026-11-26T10:00:0xZ", None),
        ("2026-11-26 10:00:00Z", None),
        ("2026-11-26T10:00:00Z\n2026-11-26T10:00:00Z", None),  # two times in one
        ("２026-11-26T10:00:00Z", None),  # a full-width digit is not an ISO 8601 digit
        ("2026-11-26T10:00:00.5Z", None),  # another valid length amid the others
        (None, "AB" * 32),  # upper case
        (None, "a" * 63),
        (None, "a" * 64 + "\n" + "b" * 64),
        (None, 12345),
        (None, "ａ" * 64),
    ],
)
def test_times_and_digests_are_checked_exactly_as_the_pattern_says(tmp_path, time, digest):
    """The block-wise pattern check agrees with a per-record re.fullmatch oracle."""
    recs = build(400)
    at = 333
    if time is not None:
        recs[at]["time"] = time
    if digest is not None:
        recs[at]["data"]["objects"] = {"diff": digest}
    reseal(recs, at)
    p = write(tmp_path / "a.jsonl", recs)
    ok = TIME_SPEC.fullmatch(recs[at]["time"]) is not None
    if digest is not None:
        ok = type(digest) is str and re.fullmatch(r"[0-9a-f]{64}", digest) is not None
    for workers in (1, 2):
        rep = verify_log(p, workers=workers, check_objects=False)
        assert rep.ok == ok, rep.reason
        if not ok:
            assert rep.first_bad_seq == at
            assert ("ISO 8601" if time is not None else "sha256 digest") in rep.reason


def _verify_in_a_daemon(path: str, conn) -> None:
    rep = verify_log(path, workers=2, check_objects=False)
    conn.send((rep.ok, rep.records))


def test_a_daemon_process_that_may_not_fork_checks_in_one_pass(tmp_path):
    import multiprocessing

    p = write(tmp_path / "a.jsonl", build(300))
    recv, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    proc = multiprocessing.get_context("fork").Process(
        target=_verify_in_a_daemon, args=(str(p), send), daemon=True
    )
    proc.start()
    assert recv.recv() == (True, 300)
    proc.join()
