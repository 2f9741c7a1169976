"""Verifying logs: spec-only logs verify, every tampering fails at the right seq and why."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_clinlabel.core.errors import LogError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.verify import verify_against_anchor, verify_log

IMAGE = {"uid": None, "sha256": "ab" * 32}
SNIPPET = Path(__file__).with_name("readme_verify_snippet.py")


# -- an independent writer, from DESIGN.md alone ----------------------------------------------
def spec_hash(rec: dict) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def spec_record(seq: int, prev: str, **over) -> dict:
    rec = {
        "v": 1, "seq": seq, "time": f"2026-11-26T10:00:{seq % 60:02d}Z",
        "actor": {"id": "ana", "name": "Ana Ñúñez", "role": "annotator"},
        "action": "box.add", "image": IMAGE, "target": {"box": seq},
        "data": {"size_mm": [3.5, 2.0], "note": "naïve \"quoted\" \\ text"},
        "source": {"kind": "human"}, "schema": None, "prev": prev,
    }  # fmt: skip
    rec.update(over)
    rec["hash"] = spec_hash(rec)
    return rec


def spec_lines(n: int) -> list[dict]:
    recs, prev = [], "0" * 64
    for i in range(n):
        recs.append(spec_record(i, prev))
        prev = recs[-1]["hash"]
    return recs


def write(path: Path, recs: list[dict], **dump) -> Path:
    path.write_text("".join(json.dumps(r, **dump) + "\n" for r in recs), encoding="utf-8")
    return path


def reseal(recs: list[dict], start: int) -> None:
    """Recompute hashes and links from ``start`` on, as a forger would."""
    prev = recs[start - 1]["hash"] if start else "0" * 64
    for r in recs[start:]:
        r["prev"] = prev
        r["hash"] = spec_hash(r)
        prev = r["hash"]


# -- tests --------------------------------------------------------------------------------------
def test_a_log_written_from_the_spec_alone_verifies(tmp_path):
    # plain json.dumps layout: spaces, hash in the middle, non-ASCII escaped: still valid
    p = write(tmp_path / "spec.jsonl", spec_lines(6))
    rep = verify_log(p)
    assert rep.ok, rep.reason
    assert rep.records == 6 and rep.head.seq == 5
    p2 = write(
        tmp_path / "spec2.jsonl",
        spec_lines(6),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    assert verify_log(p2).ok and verify_log(p2, strict=True).ok


def test_our_log_verifies_in_fast_and_strict_mode(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("u", "Ü"))
    d = log.put_arrays(x=np.arange(3))
    for i in range(20):
        log.append("label.paint", {"labels": "L"}, {"objects": {"diff": d}, "i": i, "t": "é"})
    for strict in (False, True):
        rep = verify_log(log.path, strict=strict)
        assert rep.ok and rep.records == 20 and rep.head == log.head()


@pytest.mark.parametrize(
    "tamper, bad_seq, reason",
    [
        ("edit", 3, "hash does not match"),
        ("delete", 3, "seq is 4, expected 3"),
        ("swap", 3, "seq is 4, expected 3"),
        ("reseal_one", 4, "prev is not the previous record's hash"),
        ("actor", 3, "hash does not match"),
        ("actor_resealed", 3, "actor role"),
        ("hash_field", 3, "hash does not match"),
        ("bad_json", 3, "not valid JSON"),
        ("extra_field", 3, "unexpected"),
        ("model_unnamed", 3, "model source must name"),
        ("other_image", 3, "image differs"),
        ("v2", 3, "v is 2"),
        ("no_actor", 3, "missing actor"),
    ],
)
def test_each_tampering_is_caught_at_its_seq(tmp_path, tamper, bad_seq, reason):
    recs = spec_lines(8)
    if tamper == "edit":
        recs[3]["data"]["size_mm"] = [9.9, 2.0]
    elif tamper == "delete":
        del recs[3]
    elif tamper == "swap":
        recs[3], recs[4] = recs[4], recs[3]
    elif tamper == "reseal_one":
        recs[3]["target"] = {"box": 99}
        recs[3]["hash"] = spec_hash(recs[3])
    elif tamper == "actor":
        recs[3]["actor"] = {"id": "eve", "name": "Eve", "role": "annotator"}
    elif tamper == "actor_resealed":
        recs[3]["actor"] = {"id": "eve", "name": "Eve", "role": "admin"}
        reseal(recs, 3)
    elif tamper == "hash_field":
        recs[3]["hash"] = "f" * 64
    elif tamper == "extra_field":
        recs[3]["note"] = "x"
        reseal(recs, 3)
    elif tamper == "model_unnamed":
        recs[3]["source"] = {"kind": "model", "name": "m", "version": "1"}
        reseal(recs, 3)
    elif tamper == "other_image":
        recs[3]["image"] = {"uid": None, "sha256": "cd" * 32}
        reseal(recs, 3)
    elif tamper == "v2":
        recs[3]["v"] = 2
        reseal(recs, 3)
    elif tamper == "no_actor":
        del recs[3]["actor"]
        reseal(recs, 3)
    p = write(tmp_path / "t.jsonl", recs, sort_keys=True, separators=(",", ":"))
    if tamper == "bad_json":
        lines = p.read_bytes().splitlines(keepends=True)
        lines[3] = lines[3][:40] + b"\n"
        p.write_bytes(b"".join(lines))
    rep = verify_log(p)
    assert not rep.ok
    assert rep.first_bad_seq == bad_seq, rep.reason
    assert reason in rep.reason
    assert rep.records == bad_seq


def test_a_fully_resealed_tail_or_truncation_is_caught_by_an_anchor(tmp_path):
    recs = spec_lines(10)
    anchor = {"seq": 6, "hash": recs[6]["hash"]}  # e.g. recorded by an export
    recs[4]["data"] = {"size_mm": [1.0, 1.0], "note": "rewritten"}
    reseal(recs, 4)
    p = write(tmp_path / "t.jsonl", recs)
    assert verify_log(p).ok  # the chain alone cannot tell
    rep = verify_against_anchor(p, anchor)
    assert not rep.ok and rep.first_bad_seq == 6 and "rewritten" in rep.reason
    # truncated below the anchor (and maybe regrown shorter)
    p2 = write(tmp_path / "t2.jsonl", spec_lines(5))
    rep = verify_against_anchor(p2, {"seq": 6, "hash": spec_lines(10)[6]["hash"]})
    assert not rep.ok and rep.first_bad_seq == 5 and "truncated" in rep.reason
    # the genuine log still holds the anchor
    p3 = write(tmp_path / "t3.jsonl", spec_lines(10))
    assert verify_against_anchor(p3, {"seq": 6, "hash": spec_lines(10)[6]["hash"]}).ok


def test_heads_carried_in_data_must_be_records_of_this_chain(tmp_path):
    recs = spec_lines(4)
    recs.append(
        spec_record(
            4, recs[3]["hash"], action="export", data={"head": {"seq": 2, "hash": recs[2]["hash"]}}
        )
    )
    assert verify_log(write(tmp_path / "a.jsonl", recs)).ok
    recs[4]["data"]["head"]["hash"] = "e" * 64
    reseal(recs, 4)
    rep = verify_log(write(tmp_path / "b.jsonl", recs))
    assert rep.first_bad_seq == 4 and "data.head" in rep.reason


def test_time_going_backwards_warns_but_does_not_fail(tmp_path):
    recs = spec_lines(4)
    recs[2]["time"] = "2026-11-26T09:59:59.5Z"
    reseal(recs, 2)
    rep = verify_log(write(tmp_path / "a.jsonl", recs))
    assert rep.ok and any("seq 2" in w and "before" in w for w in rep.warnings)
    recs[2]["time"] = "yesterday"
    reseal(recs, 2)
    rep = verify_log(write(tmp_path / "b.jsonl", recs))
    assert rep.first_bad_seq == 2 and "ISO 8601" in rep.reason


def test_missing_or_altered_objects_fail_at_the_record_naming_them(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("u", "U"))
    log.append("image.open")
    d1 = log.put_arrays(x=np.arange(4))
    d2 = log.put_object(b"second")
    log.append("label.paint", {"labels": "L"}, {"objects": {"diff": d1}})
    log.append("label.paint", {"labels": "L"}, {"objects": {"diff": d2}})
    assert verify_log(log.path).ok
    (log.objects.folder / d2).write_bytes(b"changed")
    rep = verify_log(log.path)
    assert rep.first_bad_seq == 2 and "does not match its digest" in rep.reason
    (log.objects.folder / d1).unlink()
    rep = verify_log(log.path)
    assert rep.first_bad_seq == 1 and "missing" in rep.reason
    assert verify_log(log.path, check_objects=False).ok


def test_a_torn_last_line_is_reported_not_failed(tmp_path):
    p = write(tmp_path / "a.jsonl", spec_lines(3))
    with open(p, "ab") as fh:
        fh.write(b'{"v":1,"seq":3,"ti')
    rep = verify_log(p)
    assert rep.ok and rep.records == 3 and rep.torn_tail_present


def test_a_hash_over_non_canonical_bytes_is_rejected_in_every_mode(tmp_path):
    # a buggy writer hashes its own spaced-out bytes instead of the canonical JSON
    rec = {k: v for k, v in spec_record(0, "0" * 64).items() if k != "hash"}
    body = json.dumps(rec, sort_keys=True, separators=(", ", ": "), ensure_ascii=False).encode()
    line = body[:-1] + b', "hash": "' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'
    p = tmp_path / "a.jsonl"
    p.write_bytes(line)
    for strict in (True, False):
        rep = verify_log(p, strict=strict)
        assert not rep.ok and rep.first_bad_seq == 0 and "hash does not match" in rep.reason
    # compact but unsorted keys, hash last, hashed as written: the layout the fast path reads,
    # but not the canonical bytes, so it must fail in the default mode too
    body = json.dumps(dict(reversed(list(rec.items()))), separators=(",", ":")).encode()
    p.write_bytes(body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n')
    for strict in (True, False):
        rep = verify_log(p, strict=strict)
        assert not rep.ok and rep.first_bad_seq == 0 and "hash does not match" in rep.reason
    # the snippet from the README, with no part of this package, agrees
    res = subprocess.run([sys.executable, str(SNIPPET), str(p)], capture_output=True, text=True)
    assert res.returncode != 0 and "broken at seq 0" in res.stderr


def test_empty_and_missing_logs(tmp_path):
    p = tmp_path / "empty.jsonl"
    p.write_bytes(b"")
    rep = verify_log(p)
    assert rep.ok and rep.records == 0 and rep.head is None
    with pytest.raises(LogError, match="no such log"):
        verify_log(tmp_path / "nope.jsonl")


def test_readme_snippet_verifies_a_log_without_this_package(tmp_path):
    text = SNIPPET.read_text()
    assert len(text.strip().splitlines()) <= 10 and "napari_clinlabel" not in text
    readme = (Path(__file__).parents[3] / "README.md").read_text(encoding="utf-8")
    assert text.strip() in readme  # the README shows exactly the snippet tested here
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("zoë", "Zoë"))
    for i in range(5):
        log.append("box.add", {"box": i}, {"note": "ünïcode"})
    good = write(tmp_path / "spec.jsonl", spec_lines(4))
    for p, n in ((log.path, 5), (good, 4)):
        res = subprocess.run([sys.executable, str(SNIPPET), str(p)], capture_output=True, text=True)
        assert res.returncode == 0 and f"valid: {n} records" in res.stdout
    recs = spec_lines(4)
    recs[2]["target"] = {"box": 7}
    bad = write(tmp_path / "bad.jsonl", recs)
    res = subprocess.run([sys.executable, str(SNIPPET), str(bad)], capture_output=True, text=True)
    assert res.returncode == 1 and "broken at seq 2" in res.stderr
