"""The sidecar log writer: format v2 lines, chain, objects, identity of the image, recovery."""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest

from napari_clinlabel.core.errors import LogError, LogIntegrityError
from napari_clinlabel.core.log.audit_log import (
    GENESIS,
    MAX_NESTING,
    AuditLog,
    atomic_write_bytes,
    iter_records,
    model_source,
    sidecar_paths,
)
from napari_clinlabel.core.log.identity import Actor

IMAGE = {"uid": "1.2.3", "sha256": "ab" * 32}
ALICE = Actor("alice", "Alice A", "annotator")


def _spec_hash(rec: dict) -> str:
    """The hash as DESIGN.md defines it, computed here independently of the package."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_records_are_v2_lines_chained_and_hashed_by_the_spec(tmp_path):
    log = AuditLog(
        tmp_path / "a.clinlabel.jsonl",
        IMAGE,
        ALICE,
        {"id": "s", "version": "1", "sha256": "c" * 64},
    )
    r0 = log.append("image.open", {"image": "a.nii.gz"}, {"shape": [2, 3, 4]})
    r1 = log.append("grade.set", {"item": "a"}, {"grade": "4A"}, model_source("m", "1", "d" * 64))
    recs = _lines(log.path)
    assert [r["seq"] for r in recs] == [0, 1]
    assert recs[0]["prev"] == GENESIS and recs[1]["prev"] == recs[0]["hash"]
    for rec, returned in zip(recs, (r0, r1), strict=True):
        assert rec == returned
        assert rec["hash"] == _spec_hash(rec)
        assert set(rec) == {
            "v",
            "seq",
            "time",
            "actor",
            "action",
            "image",
            "target",
            "data",
            "source",
            "schema",
            "prev",
            "hash",
        }
        assert rec["actor"] == {"id": "alice", "name": "Alice A", "role": "annotator"}
        assert rec["time"].endswith("Z") and rec["v"] == 2
    assert recs[1]["source"] == {"kind": "model", "name": "m", "version": "1", "sha256": "d" * 64}
    # v2: the hash covers the line's bytes before its final ,"hash":" followed by }; the
    # writer writes canonical JSON, so that is also the canonical hash checked above
    for line, rec in zip(log.path.read_bytes().splitlines(), recs, strict=True):
        cut = line.rfind(b',"hash":"')
        assert hashlib.sha256(line[:cut] + b"}").hexdigest() == rec["hash"]
        assert line[cut:] == b',"hash":"' + rec["hash"].encode() + b'"}'
    assert log.head().seq == 1 and log.head().hash == recs[1]["hash"]


def test_values_are_normalised_so_an_independent_verifier_agrees(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, ALICE)
    data = {
        "ml": {1: np.float64(2.5), 10: np.int64(3)},
        "bbox": (np.int32(1), 2),
        "ok": np.bool_(1),
    }
    rec = log.append("labels.measure", {"labels": "L"}, data)
    (line,) = _lines(log.path)
    assert line["data"] == {"ml": {"1": 2.5, "10": 3}, "bbox": [1, 2], "ok": True}
    assert line["hash"] == _spec_hash(line) == rec["hash"]


def test_non_json_values_are_refused_and_nothing_is_written(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, ALICE)
    log.append("image.open")
    before = log.path.read_bytes()
    with pytest.raises(LogError, match="not plain JSON"):
        log.append("labels.measure", None, {"ml": float("nan")})
    with pytest.raises(LogError, match="not plain JSON"):
        log.append("labels.measure", None, {"x": object()})
    with pytest.raises(LogError, match="name the model"):
        log.append("proposal.add", None, {}, {"kind": "model", "name": "m"})
    assert log.path.read_bytes() == before


def test_objects_are_content_addressed_and_checked_on_read(tmp_path):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, ALICE)
    digest = log.put_arrays(indices=np.arange(5), old=np.zeros(5, np.uint8))
    assert (log.objects.folder / digest).read_bytes()
    assert hashlib.sha256((log.objects.folder / digest).read_bytes()).hexdigest() == digest
    got = log.get_arrays(digest)
    np.testing.assert_array_equal(got["indices"], np.arange(5))
    assert log.put_object(b"abc") == hashlib.sha256(b"abc").hexdigest()
    (log.objects.folder / digest).write_bytes(b"tampered")
    with pytest.raises(LogIntegrityError, match="does not match its digest"):
        log.get_arrays(digest)
    with pytest.raises(LogIntegrityError, match="not an object digest"):
        log.objects.get("../../etc/passwd")
    with pytest.raises(LogError, match="not in"):
        log.append("label.paint", {"labels": "L"}, {"objects": {"diff": "0" * 64}})
    assert not log.path.exists() or log.path.read_bytes() == b""
    assert not [p for p in log.objects.folder.iterdir() if ".tmp-" in p.name]


def test_sidecar_paths_for_a_file_and_a_dicom_folder(tmp_path):
    f = tmp_path / "ct.nii.gz"
    assert sidecar_paths(f) == (
        tmp_path / "ct.nii.gz.clinlabel.jsonl",
        tmp_path / "ct.nii.gz.clinlabel" / "objects",
    )
    d = tmp_path / "series"
    d.mkdir()
    assert sidecar_paths(str(d) + "/")[0] == tmp_path / "series.clinlabel.jsonl"
    log = AuditLog.for_image(f, IMAGE, ALICE)
    log.append("image.open")
    assert (tmp_path / "ct.nii.gz.clinlabel.jsonl").is_file()


def test_a_log_of_another_image_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    AuditLog(path, IMAGE, ALICE).append("image.open")
    before = path.read_bytes()
    with pytest.raises(LogError, match="belongs to another image"):
        AuditLog(path, {"uid": "1.2.3", "sha256": "cd" * 32}, ALICE)
    assert path.read_bytes() == before


def test_a_corrupt_first_line_is_refused_on_open(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    path.write_bytes(b"{not json\n")
    with pytest.raises(LogIntegrityError, match="not valid JSON"):
        AuditLog(path, IMAGE, ALICE)
    assert path.read_bytes() == b"{not json\n"


def test_torn_tail_is_kept_aside_and_recorded_on_open(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    log = AuditLog(path, IMAGE, ALICE)
    for i in range(3):
        log.append("box.add", {"box": i})
    log.close()
    torn = b'{"action":"box.add","actor":{"id":"ali'
    with open(path, "ab") as fh:
        fh.write(torn)
    assert len(list(iter_records(path))) == 3  # readers skip the torn line
    bob = Actor("bob", "Bob", "reviewer")
    log2 = AuditLog(path, IMAGE, bob)
    recs = _lines(path)
    assert [r["action"] for r in recs] == ["box.add"] * 3 + ["log.recover"]
    rec = recs[-1]
    assert rec["actor"]["id"] == "bob" and rec["hash"] == _spec_hash(rec)
    assert rec["data"]["torn_bytes"] == len(torn)
    assert (tmp_path / rec["data"]["kept_as"]).read_bytes() == torn
    assert rec["data"]["torn_sha256"] == hashlib.sha256(torn).hexdigest()
    assert log2.append("box.add", {"box": 3})["seq"] == 4


def test_two_writers_in_one_process_and_threads_keep_one_chain(tmp_path):
    path = tmp_path / "a.clinlabel.jsonl"
    a, b = AuditLog(path, IMAGE, ALICE), AuditLog(path, IMAGE, Actor("bob", "Bob"))
    for i in range(5):
        a.append("box.add", {"i": i})
        b.append("box.add", {"i": i})

    def burst(k: int) -> None:
        for i in range(25):
            a.append("grade.set", {"thread": k, "i": i})

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = _lines(path)
    assert [r["seq"] for r in recs] == list(range(110))
    prev = GENESIS
    for r in recs:
        assert r["prev"] == prev and r["hash"] == _spec_hash(r)
        prev = r["hash"]


def test_atomic_write_replaces_whole_and_leaves_no_temp(tmp_path):
    p = tmp_path / "x.bin"
    atomic_write_bytes(p, b"one")
    atomic_write_bytes(p, b"two")
    assert p.read_bytes() == b"two"
    assert [q.name for q in tmp_path.iterdir()] == ["x.bin"]


@pytest.mark.parametrize("depth", [MAX_NESTING, 5000])
def test_a_record_nested_deeper_than_a_verifier_reads_is_refused(tmp_path, depth):
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", {"uid": None, "sha256": "ab" * 32},
                   Actor("ana", "Ana"))  # fmt: skip
    log.append("box.add", {"box": 1}, {"n": 1})
    before = log.path.read_bytes()
    deep: list = []
    for _ in range(depth):
        deep = [deep]
    with pytest.raises(LogError, match="nests deeper than"):
        log.append("box.add", {"box": 2}, {"n": deep})
    assert log.path.read_bytes() == before  # nothing written
    shallow: list = []
    for _ in range(MAX_NESTING - 3):  # record + data + n's own list: still checkable
        shallow = [shallow]
    log.append("box.add", {"box": 3}, {"n": shallow})
    from napari_clinlabel.core.log.verify import verify_log

    assert verify_log(log.path).ok
