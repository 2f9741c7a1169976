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
    assert verify_log(p2).ok


def test_our_log_is_v2_and_verifies(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("u", "Ü"))
    d = log.put_arrays(x=np.arange(3))
    for i in range(20):
        log.append("label.paint", {"labels": "L"}, {"objects": {"diff": d}, "i": i, "t": "é"})
    rep = verify_log(log.path)
    assert rep.ok and rep.records == 20 and rep.head == log.head()
    lines = log.path.read_bytes().splitlines()
    for line in lines:  # DESIGN's v2 rule, from the bytes alone
        assert b'"v":2' in line and line.rfind(b',"hash":"') == len(line) - 75
        h = hashlib.sha256(line[: line.rfind(b',"hash":"')] + b"}").hexdigest()
        assert line.endswith(b',"hash":"' + h.encode() + b'"}')


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
        ("v3", 3, "v is 3"),
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
    elif tamper == "v3":
        recs[3]["v"] = 3
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


def test_a_v1_hash_over_non_canonical_bytes_is_rejected(tmp_path):
    # a buggy writer hashes its own spaced-out bytes instead of the canonical JSON
    rec = {k: v for k, v in spec_record(0, "0" * 64).items() if k != "hash"}
    body = json.dumps(rec, sort_keys=True, separators=(", ", ": "), ensure_ascii=False).encode()
    line = body[:-1] + b', "hash": "' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'
    p = tmp_path / "a.jsonl"
    p.write_bytes(line)
    rep = verify_log(p)
    assert not rep.ok and rep.first_bad_seq == 0 and "hash does not match" in rep.reason
    # compact but unsorted keys, hash last, hashed as written: a v1 record's hash is over the
    # canonical bytes, so it must fail
    body = json.dumps(dict(reversed(list(rec.items()))), separators=(",", ":")).encode()
    p.write_bytes(body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n')
    rep = verify_log(p)
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


# -- format v2: the hash covers the line's bytes -----------------------------------------------
def v2_line(rec: dict, body: bytes | None = None) -> bytes:
    """DESIGN.md's v2 rule applied to ``body`` (default: canonical JSON of the record without
    hash): hash = sha256(body), the line = body minus its ``}`` + ``,"hash":"…"}``."""
    fields = {k: v for k, v in rec.items() if k != "hash"}
    if body is None:
        body = json.dumps(
            fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    h = hashlib.sha256(body).hexdigest()
    rec["hash"] = h
    return body[:-1] + b',"hash":"' + h.encode() + b'"}\n'


def v2_log(path: Path, recs: list[dict], start: int = 0, bodies: dict | None = None) -> Path:
    """Write ``recs`` (v1 lines before ``start``, v2 from there), chaining them as it goes."""
    out, prev = [], "0" * 64
    for i, r in enumerate(recs):
        r["prev"] = prev
        if i < start:
            r["v"] = 1
            r["hash"] = spec_hash(r)
            out.append(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                       .encode() + b"\n")  # fmt: skip
        else:
            r["v"] = 2
            body = (bodies or {}).get(i)
            out.append(v2_line(r, body(r) if body else None))
        prev = r["hash"]
    path.write_bytes(b"".join(out))
    return path


def snippet_says(path: Path) -> str:
    res = subprocess.run([sys.executable, str(SNIPPET), str(path)], capture_output=True, text=True)
    return (res.stdout + res.stderr).strip().splitlines()[-1]


def test_v2_hash_is_over_the_bytes_as_written_not_a_reserialisation(tmp_path):
    # spaces, unsorted keys, escaped non-ASCII: any bytes whose hash is the line's own verify
    def loose(r):
        return json.dumps({k: v for k, v in reversed(r.items()) if k != "hash"}).encode()

    p = v2_log(tmp_path / "a.jsonl", spec_lines(4), bodies={2: loose})
    rep = verify_log(p)
    assert rep.ok and rep.records == 4, rep.reason
    assert snippet_says(p).startswith("valid: 4 records")
    # one byte changed inside the hashed part, with the JSON still valid: broken at that seq
    lines = p.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"box": 2', b'"box": 3')
    p.write_bytes(b"".join(lines))
    rep = verify_log(p)
    assert rep.first_bad_seq == 2 and "does not match the record's bytes" in rep.reason
    assert snippet_says(p) == "broken at seq 2"


def test_v2_hash_must_be_the_last_member(tmp_path):
    recs = spec_lines(3)
    p = v2_log(tmp_path / "a.jsonl", recs)
    lines = p.read_bytes().splitlines(keepends=True)
    # a member after hash is not covered by it: refused even though the hash matches
    lines[1] = lines[1][:-2] + b',"seq":1}\n'
    p.write_bytes(b"".join(lines))
    rep = verify_log(p)
    assert rep.first_bad_seq == 1 and "last member" in rep.reason
    assert snippet_says(p) == "broken at seq 1"


def test_v1_records_followed_by_v2_verify_and_never_the_reverse(tmp_path):
    p = v2_log(tmp_path / "mixed.jsonl", spec_lines(6), start=3)  # an old log appended to
    rep = verify_log(p)
    assert rep.ok and rep.records == 6, rep.reason
    assert snippet_says(p).startswith("valid: 6 records")
    recs = spec_lines(6)
    p2 = v2_log(tmp_path / "back.jsonl", recs, start=0)
    lines = p2.read_bytes().splitlines(keepends=True)
    recs[4]["v"] = 1  # a v1 record after v2 ones, chained and hashed by the v1 rule
    recs[4]["prev"] = recs[3]["hash"]
    recs[4]["hash"] = spec_hash(recs[4])
    lines[4] = json.dumps(recs[4], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    lines = [*lines[:4], lines[4].encode() + b"\n"]
    p2.write_bytes(b"".join(lines))
    rep = verify_log(p2)
    assert rep.first_bad_seq == 4 and "never goes back" in rep.reason


def test_the_writer_appends_v2_to_an_old_v1_log(tmp_path):
    p = write(tmp_path / "old.clinlabel.jsonl", spec_lines(3), sort_keys=True,
              separators=(",", ":"), ensure_ascii=False)  # fmt: skip
    log = AuditLog(p, IMAGE, Actor("ana", "Ana Ñúñez"))
    log.append("box.add", {"box": 3}, {"note": "new"})
    rep = verify_log(p)
    assert rep.ok and rep.records == 4, rep.reason
    assert [json.loads(x)["v"] for x in p.read_bytes().splitlines()] == [1, 1, 1, 2]
    assert snippet_says(p).startswith("valid: 4 records")


@pytest.mark.parametrize("version", [1, 2])
def test_readme_snippet_on_intact_and_tampered_logs(tmp_path, version):
    recs = spec_lines(5)
    p = v2_log(tmp_path / "a.jsonl", recs, start=5 if version == 1 else 0)
    assert snippet_says(p) == f"valid: 5 records, head {recs[4]['hash']}"
    assert verify_log(p).head.hash == recs[4]["hash"]
    for k, (old, new) in enumerate([(b'"box":1', b'"box":9'), (b'"seq":2', b'"seq":7')]):
        q = tmp_path / f"t{k}.jsonl"
        q.write_bytes(p.read_bytes().replace(old, new, 1))
        bad = 1 if k == 0 else 2
        assert snippet_says(q) == f"broken at seq {bad}"
        assert verify_log(q).first_bad_seq == bad
