"""The insider attacks of issue 12 against signatures, authority and witnesses, through the CLI:
each asserts the exit code and the one line it prints. Forgeries re-hash the chain by the
written rule (DESIGN.md: sha256 of the line's bytes before ``,"hash":"`` plus ``}``), and
signatures are checked against ``cryptography`` directly where the test signs by hand."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from support.agreement_fixtures import reader_maps, write_reader_log
from support.trusted_roster import sign_file, write_roster

from napari_clinlabel.cli import main
from napari_clinlabel.core.errors import PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor, owner_pin
from napari_clinlabel.core.log.signing import keys_folder
from napari_clinlabel.core.quality.adjudication import adjudicate, load_reads

IMAGE = {"uid": None, "sha256": "ab" * 32}
USERS = {
    "ann": ["annotator"],
    "rev": ["annotator", "reviewer"],
    "rev2": ["reviewer"],
    "adj": ["reviewer", "adjudicator"],
}


# -- a forger's tools, from the format's written rules only ---------------------------------------
def lines_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_bytes().splitlines()]


def body(rec: dict) -> str:
    return json.dumps({k: v for k, v in rec.items() if k != "hash"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)  # fmt: skip


def reseal(recs: list[dict], start: int) -> None:
    prev = recs[start - 1]["hash"] if start else "0" * 64
    for r in recs[start:]:
        r["prev"] = prev
        r["hash"] = hashlib.sha256(body(r).encode("utf-8")).hexdigest()
        prev = r["hash"]


def write(path: Path, recs: list[dict]) -> Path:
    text = "".join(body(r)[:-1] + f',"hash":"{r["hash"]}"}}\n' for r in recs)
    path.write_bytes(text.encode("utf-8"))
    return path


def private_key(user: str):
    pem = (keys_folder() / f"{user}.ed25519.pem").read_bytes()
    return serialization.load_pem_private_key(pem, password=None)


def statement(log: str, seq: int, h: str, meaning: str, signer: str, role: str, t: str) -> bytes:
    """The signed statement as DESIGN.md/signing.py document it (the test's own copy)."""
    fields = (("log", log), ("seq", seq), ("hash", h), ("meaning", meaning), ("signer", signer),
              ("role", role), ("time", t))  # fmt: skip
    return ("clinlabel-sign/2\n" + "".join(f"{k}={v}\n" for k, v in fields)).encode("utf-8")


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def ds(tmp_path, monkeypatch):
    """A dataset folder with a signed roster and one annotated log pinning its owner."""
    folder = tmp_path / "ds"
    write_roster(folder, USERS)
    log = AuditLog(folder / "img.png.clinlabel.jsonl", IMAGE, Actor("ann", "ann"))
    log.append("image.open", None, {"owner": owner_pin(folder / "img.png")})
    log.append("label.paint", {"labels": "L"}, {"voxels": 3})
    log.close()
    return folder


def act(monkeypatch, user: str, role: str | None = None) -> None:
    monkeypatch.setenv("CLINLABEL_USER", user)
    if role:
        monkeypatch.setenv("CLINLABEL_ROLE", role)
    else:
        monkeypatch.delenv("CLINLABEL_ROLE", raising=False)


def verify(capsys, path: Path, *extra: str) -> tuple[int, str]:
    rc = main(["log", "verify", str(path), *extra])
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    return rc, text


def sign(monkeypatch, capsys, ds: Path, user: str, role: str, meaning: str = "review") -> dict:
    act(monkeypatch, user, role)
    log = ds / "img.png.clinlabel.jsonl"
    assert main(["log", "sign", str(log), "--meaning", meaning]) == 0
    capsys.readouterr()
    return lines_of(log)[-1]


# -- signatures that bind -----------------------------------------------------------------------
def test_a_binding_signature_verifies_with_cryptography(ds, monkeypatch, capsys):
    rec = sign(monkeypatch, capsys, ds, "rev", "reviewer")
    recs = lines_of(ds / "img.png.clinlabel.jsonl")
    d = rec["data"]
    pub = private_key("rev").public_key()
    assert base64.b64encode(pub.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)).decode() == d["public_key"]  # fmt: skip
    msg = statement(
        recs[0]["hash"], 1, recs[1]["hash"], "review", "rev", "reviewer", d["signed_at"]
    )
    pub.verify(base64.b64decode(d["signature"]), msg)  # raises if not
    rc, text = verify(capsys, ds / "img.png.clinlabel.jsonl")
    assert rc == 0 and "valid: 3 records" in text and "1 signature(s) valid" in text


@pytest.mark.parametrize(
    ("field", "value"),
    [("meaning", "approval"), ("meaning", "adjudication"), ("role", "adjudicator"),
     ("signer", "adj")],
)  # fmt: skip
def test_relabelled_meaning_role_or_signer_breaks_the_signature(
    ds, monkeypatch, capsys, field, value
):
    sign(monkeypatch, capsys, ds, "adj", "reviewer")
    recs = lines_of(ds / "img.png.clinlabel.jsonl")
    if field == "meaning":
        recs[2]["data"]["meaning"] = value
    elif field == "role":
        recs[2]["actor"]["role"] = value
    else:  # another reviewer's name on adj's signature, with adj's key listed as theirs? no:
        recs[2]["actor"] = {"id": "rev2", "name": "rev2", "role": "reviewer"}
        recs[2]["data"]["public_key"] = lines_of(ds / "img.png.clinlabel.jsonl")[2]["data"][
            "public_key"
        ]
    reseal(recs, 2)
    forged = write(ds / "img.png.clinlabel.jsonl", recs)
    rc, text = verify(capsys, forged)
    assert rc == 1 and len(text.splitlines()) == 1
    assert "broken at seq 2" in text
    # the signature no longer verifies (or the new meaning needs a role the signer lacked)
    assert any(x in text for x in ("does not verify", "does not list", "needs adjudicator"))


def test_a_signature_moved_to_another_log_is_broken(ds, monkeypatch, capsys):
    rec = sign(monkeypatch, capsys, ds, "rev", "reviewer")
    other = AuditLog(ds / "b.png.clinlabel.jsonl", IMAGE, Actor("ann", "ann"))
    other.append("image.open", None, {"owner": owner_pin(ds / "b.png")})
    other.append("label.paint", {"labels": "L"}, {"voxels": 3})
    other.close()
    recs = lines_of(other.path)
    recs[1] = json.loads(json.dumps(lines_of(ds / "img.png.clinlabel.jsonl")[1]))  # same paint
    moved = dict(rec)
    recs.append(moved)
    reseal(recs, 1)
    recs[2]["target"] = {"seq": 1, "hash": recs[1]["hash"]}
    recs[2]["data"]["head"] = {"seq": 1, "hash": recs[1]["hash"]}
    reseal(recs, 2)
    rc, text = verify(capsys, write(other.path, recs))
    assert rc == 1 and "broken at seq 2" in text and "does not verify" in text


# -- authority ----------------------------------------------------------------------------------
def test_own_roster_via_clinlabel_roster_is_refused_and_a_forged_role_fails(
    ds, tmp_path, monkeypatch, capsys
):
    mine = write_roster(tmp_path / "mine", {"ann": ["reviewer"]}, owner="ann")  # self-signed
    monkeypatch.setenv("CLINLABEL_ROSTER", str(mine))
    act(monkeypatch, "ann", "reviewer")
    log = ds / "img.png.clinlabel.jsonl"
    before = log.read_bytes()
    assert main(["log", "sign", str(log), "--meaning", "approval"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not the owner of the dataset roster" in err
    assert log.read_bytes() == before
    # she writes the approval by hand with her own key and re-hashes: the real roster says no
    monkeypatch.delenv("CLINLABEL_ROSTER")
    recs = lines_of(log)
    t = "2026-01-01T00:00:00Z"
    key = private_key("ann")
    sig = key.sign(statement(recs[0]["hash"], 1, recs[1]["hash"], "approval", "ann", "reviewer", t))
    pub = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)).decode()  # fmt: skip
    recs.append({**recs[1], "seq": 2, "action": "sign", "actor": {"id": "ann", "name": "ann",
                 "role": "reviewer"}, "target": {"seq": 1, "hash": recs[1]["hash"]},
                 "data": {"meaning": "approval", "form": "clinlabel-sign/2", "signed_at": t,
                          "signature": base64.b64encode(sig).decode(), "public_key": pub,
                          "head": {"seq": 1, "hash": recs[1]["hash"]}}})  # fmt: skip
    reseal(recs, 2)
    rc, text = verify(capsys, write(log, recs))
    assert rc == 1 and len(text.splitlines()) == 1
    assert "broken at seq 2" in text and "'ann' acted as reviewer" in text


def test_an_unsigned_or_swapped_roster_grants_nothing(ds, tmp_path, monkeypatch, capsys):
    sign(monkeypatch, capsys, ds, "rev", "reviewer")
    log = ds / "img.png.clinlabel.jsonl"
    roster = ds / "clinlabel-roster.toml"
    # the roster edited after signing (rev made adjudicator): its signature no longer holds
    roster.write_text(roster.read_text() + "\n# edited\n")
    rc, text = verify(capsys, log)
    assert rc == 1 and "broken at seq 2" in text and "NOT signed by its owner" in text
    # owner and roster swapped (ann now owns a roster she signed): the log pins the real owner
    write_roster(ds, USERS, owner="ann")
    rc, text = verify(capsys, log)
    assert rc == 1 and "broken at seq 0" in text and "pins owner 'owner'" in text


def test_self_adjudication_under_a_second_id_is_refused_and_fails_verification(
    tmp_path, monkeypatch, capsys
):
    a, b = reader_maps()
    sha = "cd" * 32
    paths = []
    for r, labels in (("alice", a), ("bob", b)):
        (tmp_path / r).mkdir()
        paths.append(write_reader_log(tmp_path / r / "ct.nii.gz.clinlabel.jsonl", labels, r,
                                      image_sha=sha))  # fmt: skip
    reads = load_reads(paths, image_sha=sha)
    roster = write_roster(tmp_path, {"alice": ["annotator"], "bob": ["annotator"]})
    text = roster.read_text()
    alice_key = text.split('id = "alice"', 1)[1].split('public_key = "', 1)[1].split('"', 1)[0]
    roster.write_text(text + f'[[users]]\nid = "alice.adj"\nroles = ["adjudicator"]\n'
                             f'public_key = "{alice_key}"\n')  # fmt: skip
    sign_file(roster, "owner")
    (tmp_path / "adj").mkdir()
    log = AuditLog(tmp_path / "adj" / "ct.nii.gz.clinlabel.jsonl", {"uid": None, "sha256": sha},
                   Actor("alice.adj", "A", "adjudicator"))  # fmt: skip
    log.append("image.open", None, {"owner": owner_pin(tmp_path / "adj" / "ct.nii.gz")})
    with pytest.raises(PermissionRefused, match="are one person"):
        adjudicate(log, reads, a, "alice's outline is right")
    assert len(log.records()) == 1  # nothing recorded
    # written by hand past the refusal: verification names the seq
    log.append("adjudicate", {"labels": "adjudicated"},
               {"decision": "accept", "reader": "alice", "reason": "mine",
                "reads": [r.citation() for r in reads]})  # fmt: skip
    rc, out = verify(capsys, log.path)
    assert rc == 1 and len(out.splitlines()) == 1
    assert "broken at seq 1" in out and "one person" in out


# -- witnesses ----------------------------------------------------------------------------------
def test_truncation_past_a_witnessed_signature_fails_with_no_anchor(ds, monkeypatch, capsys):
    sign(monkeypatch, capsys, ds, "rev", "reviewer")
    log = ds / "img.png.clinlabel.jsonl"
    recs = lines_of(log)
    write(log, recs[:2])  # the signature cut off: a valid, shorter chain
    rc, text = verify(capsys, log)
    assert rc == 1 and len(text.splitlines()) == 1
    assert "broken at seq 2" in text and "log truncated: witness" in text and "saw seq 2" in text


def test_rehash_after_a_witnessed_point_fails_with_either_witness(ds, monkeypatch, capsys):
    from napari_clinlabel.core.log.witness import user_witness_path

    sign(monkeypatch, capsys, ds, "rev", "reviewer")
    log = ds / "img.png.clinlabel.jsonl"
    recs = lines_of(log)
    recs[1]["data"]["voxels"] = 300
    recs[2] = {**recs[1], "seq": 2, "data": {"voxels": 1}}  # the signature replaced by a paint
    reseal(recs, 1)
    write(log, recs)
    rc, text = verify(capsys, log)
    assert rc == 1 and len(text.splitlines()) == 1
    assert "broken at seq 2" in text and "record 2 is not the one witness" in text
    assert "rewritten at or before seq 2" in text
    user_witness_path().unlink()  # the dataset's witness beside the roster still holds it
    rc, text = verify(capsys, log)
    assert rc == 1 and "broken at seq 2" in text and "clinlabel-witness.jsonl" in text
    # a whole new history (seq 0 re-hashed too) at the same path is caught by the path
    recs[0]["data"]["owner"] = None
    reseal(recs, 0)
    write(log, recs)
    rc, text = verify(capsys, log)
    assert rc == 1 and "broken at seq 0" in text and "rewritten from its start" in text


def test_an_export_witness_anchors_the_head_including_the_export(tmp_path, monkeypatch, capsys):
    import numpy as np
    import SimpleITK as sitk

    from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
    from napari_clinlabel.core.image.io import read_volumes
    from napari_clinlabel.core.log.witness import user_witness_path

    act(monkeypatch, "ann")
    path = tmp_path / "img.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 8, 9), np.int16)), str(path))
    vol = read_volumes(path)[0]
    log = AuditLog.for_image(path, vol.image_ref(), Actor("ann", "ann"))
    labels = np.zeros((3, 8, 9), np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    idx = np.arange(10, 30, dtype=np.int64)
    labels.reshape(-1)[idx] = 1
    record_label_change(log, labels, "labels", idx, np.zeros(20, np.uint8), np.ones(20, np.uint8))
    log.close()
    out = tmp_path / "out" / "labels.nii.gz"
    out.parent.mkdir()
    assert main(["export", str(path), "--format", "nifti", "-o", str(out)]) == 0
    capsys.readouterr()
    side = out.with_name("labels.witness.jsonl")
    (entry,) = [json.loads(x) for x in side.read_text().splitlines()]
    recs = lines_of(log.path)
    assert recs[-1]["action"] == "export"
    assert (entry["seq"], entry["hash"]) == (recs[-1]["seq"], recs[-1]["hash"])
    assert entry["identity"] == recs[0]["hash"]
    write(log.path, recs[:-1])  # cut back past the export record only
    user_witness_path().unlink()
    rc, text = verify(capsys, log.path)  # no witness found by itself now …
    assert rc == 0
    rc, text = verify(capsys, log.path, "--witness", str(side))  # … the export's side file
    assert rc == 1 and len(text.splitlines()) == 1
    assert f"broken at seq {entry['seq']}" in text and "log truncated" in text


def test_a_witness_file_of_another_log_is_refused(ds, tmp_path, capsys):
    other = tmp_path / "w.jsonl"
    other.write_text('{"v":1,"identity":"' + "0" * 64 + '","seq":0,"hash":"' + "1" * 64 + '"}\n')
    rc, text = verify(capsys, ds / "img.png.clinlabel.jsonl", "--witness", str(other))
    assert rc == 2 and len(text.splitlines()) == 1 and "holds no witnessed head" in text


# -- the report verifies as log verify does --------------------------------------------------------
def test_report_says_invalid_for_a_key_the_roster_does_not_list(ds, tmp_path, monkeypatch, capsys):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    log = ds / "img.png.clinlabel.jsonl"
    recs = lines_of(log)
    t = "2026-01-01T00:00:00Z"
    key = Ed25519PrivateKey.generate()  # rev's name, a key nobody listed
    sig = key.sign(statement(recs[0]["hash"], 1, recs[1]["hash"], "review", "rev", "reviewer", t))
    pub = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)).decode()  # fmt: skip
    recs.append({**recs[1], "seq": 2, "action": "sign",
                 "actor": {"id": "rev", "name": "rev", "role": "reviewer"},
                 "target": {"seq": 1, "hash": recs[1]["hash"]},
                 "data": {"meaning": "review", "form": "clinlabel-sign/2", "signed_at": t,
                          "signature": base64.b64encode(sig).decode(), "public_key": pub,
                          "head": {"seq": 1, "hash": recs[1]["hash"]}}})  # fmt: skip
    reseal(recs, 2)
    write(log, recs)
    rc, text = verify(capsys, log)
    assert rc == 1 and "broken at seq 2" in text and "which the roster does not list" in text
    out = tmp_path / "r.html"
    assert main(["report", str(ds), "-o", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "1 log(s) failed verification: img.png.clinlabel.jsonl" in printed
    assert "signed by its owner 'owner'" in printed  # the authority used
    html = out.read_text(encoding="utf-8")
    assert "BROKEN" in html and "does not list" in html and "1 signature(s) valid" not in html


def test_signatures_and_roles_checked_the_same_when_the_log_is_split(ds, monkeypatch, capsys):
    """Parts checked in other processes know seq 0 (identity, pinned owner) too."""
    from napari_clinlabel.core.log.authority import verify_trusted

    log = AuditLog(ds / "img.png.clinlabel.jsonl", IMAGE, Actor("ann", "ann"))
    for i in range(600):
        log.append("label.paint", {"labels": "L"}, {"voxels": i, "note": "x" * 40})
    log.close()
    sign(monkeypatch, capsys, ds, "rev", "reviewer")
    path = ds / "img.png.clinlabel.jsonl"
    one, _ = verify_trusted(path, workers=1)
    two, _ = verify_trusted(path, workers=2)
    assert one.ok and one.signatures_checked == 1 and two == one
    recs = lines_of(path)
    recs[-1]["data"]["meaning"] = "approval"
    reseal(recs, len(recs) - 1)
    write(path, recs)
    one, _ = verify_trusted(path, workers=1)
    two, _ = verify_trusted(path, workers=2)
    assert not one.ok and one.first_bad_seq == len(recs) - 1 and "does not verify" in one.reason
    assert two == one


def test_a_garbage_first_line_is_broken_at_seq_0_not_an_error(ds, monkeypatch, capsys):
    sign(monkeypatch, capsys, ds, "rev", "reviewer")  # witnesses exist for this log
    log = ds / "img.png.clinlabel.jsonl"
    log.write_bytes(b"not json\n" + log.read_bytes().split(b"\n", 1)[1])
    rc, text = verify(capsys, log)
    assert rc == 1 and len(text.splitlines()) == 1 and "broken at seq 0" in text
