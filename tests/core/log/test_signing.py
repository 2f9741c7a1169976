"""Ed25519 keys and sign records: the binding statement (checked with ``cryptography`` against
the statement as documented), roles and keys required when signing, v1 signatures."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from support.trusted_roster import write_roster

from napari_clinlabel.core.errors import ClinlabelError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.authority import verify_trusted
from napari_clinlabel.core.log.identity import Actor, owner_pin
from napari_clinlabel.core.log.signing import (
    init_keys,
    load_private_key,
    sign_head,
    verify_signature,
)

IMAGE = {"uid": None, "sha256": "ab" * 32}
USERS = {"ann": ["annotator"], "rev": ["annotator", "reviewer"], "adj": ["adjudicator"]}


def documented_statement(log, seq, h, meaning, signer, role, time) -> bytes:
    """The statement as the module docstring and README describe it (the test's own copy)."""
    pairs = [("log", log), ("seq", seq), ("hash", h), ("meaning", meaning),
             ("signer", signer), ("role", role), ("time", time)]  # fmt: skip
    return ("clinlabel-sign/2\n" + "".join(f"{k}={v}\n" for k, v in pairs)).encode()


def _log(folder, who="rev", role="reviewer") -> AuditLog:
    log = AuditLog(folder / "img.png.clinlabel.jsonl", IMAGE, Actor("ann", "Ann"))
    log.append("image.open", None, {"owner": owner_pin(folder / "img.png")})
    log.append("label.paint", {"labels": "L"}, {"voxels": 10})
    log.actor = Actor(who, who, role)
    return log


def test_init_keys_makes_a_private_0600_key_and_never_overwrites(tmp_path, monkeypatch):
    path, pub = init_keys("rev1", tmp_path / "keys")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = base64.b64decode(pub)
    assert len(raw) == 32
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert (
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        == raw
    )
    before = path.read_bytes()
    with pytest.raises(ClinlabelError, match="exists already"):
        init_keys("rev1", tmp_path / "keys")
    assert path.read_bytes() == before
    monkeypatch.setenv("CLINLABEL_KEYS", str(tmp_path / "env"))
    p2, _ = init_keys("rev2")
    assert p2.parent == tmp_path / "env"
    assert load_private_key("rev2") is not None
    with pytest.raises(ClinlabelError, match="cannot name a key file"):
        init_keys("../evil", tmp_path)
    with pytest.raises(ClinlabelError, match="keys init --user nobody"):
        load_private_key("nobody", tmp_path)


def test_a_sign_record_signs_the_documented_statement(tmp_path):
    write_roster(tmp_path, USERS)
    log = _log(tmp_path)
    first, r1 = log.records()
    rec = sign_head(log, "review")
    assert rec["action"] == "sign" and rec["seq"] == 2
    assert rec["target"] == {"seq": 1, "hash": r1["hash"]}
    d = rec["data"]
    assert d["meaning"] == "review" and d["form"] == "clinlabel-sign/2"
    assert d["head"] == {"seq": 1, "hash": r1["hash"]}
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(d["public_key"]))
    msg = documented_statement(first["hash"], 1, r1["hash"], "review", "rev", "reviewer",
                               d["signed_at"])  # fmt: skip
    pub.verify(base64.b64decode(d["signature"]), msg)  # cryptography itself accepts it
    assert verify_signature(rec, d["public_key"], first["hash"])
    assert not verify_signature(rec, d["public_key"], "0" * 64)  # another log
    assert not verify_signature(rec, d["public_key"])  # no identity: a binding one cannot pass
    # an earlier record, signed later
    rec2 = sign_head(log, "approval", target_seq=0)
    assert rec2["target"] == {"seq": 0, "hash": first["hash"]} and rec2["data"]["head"]["seq"] == 2
    rep, trust = verify_trusted(log.path)
    assert rep.ok and rep.signatures_checked == 2 and not rep.warnings
    assert "signed by its owner 'owner'" in trust.authority()


def test_signing_needs_the_role_the_signed_roster_grants_and_its_key(tmp_path, monkeypatch):
    roster = write_roster(tmp_path, USERS)
    log = _log(tmp_path, "ann", "annotator")
    with pytest.raises(PermissionRefused, match="needs the role adjudicator"):
        sign_head(log, "adjudication")
    for meaning in ("review", "approval"):  # an annotator does not sign off as reviewer
        with pytest.raises(PermissionRefused, match="needs the role reviewer or adjudicator"):
            sign_head(log, meaning)
    log.actor = Actor("ann", "Ann", "reviewer")  # claims a role the roster does not grant
    with pytest.raises(PermissionRefused, match="does not grant 'ann' the role reviewer"):
        sign_head(log, "review")
    log.actor = Actor("rev", "rev", "reviewer")
    other, _ = init_keys("spare", tmp_path / "spare")
    with pytest.raises(PermissionRefused, match="lists no key"):
        sign_head(log, "review", key=load_private_key("spare", tmp_path / "spare"))
    with pytest.raises(ClinlabelError, match="not one of"):
        sign_head(log, "liked")
    with pytest.raises(ClinlabelError, match="no record seq 7"):
        sign_head(log, "review", target_seq=7)
    roster.with_name(roster.name + ".sig").unlink()  # unsigned: nobody above annotator
    with pytest.raises(PermissionRefused, match="NOT signed by its owner"):
        sign_head(log, "review")
    assert len(log.records()) == 2  # nothing recorded by any refusal


def test_without_any_roster_nobody_signs(tmp_path):
    init_keys("rev")
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("rev", "Rev", "reviewer"))
    log.append("image.open")
    with pytest.raises(PermissionRefused, match="no roster is in force"):
        sign_head(log, "review")
    assert len(log.records()) == 1


def _v1_line(rec: dict) -> tuple[bytes, str]:
    body = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    rec = {**rec, "hash": hashlib.sha256(body.encode()).hexdigest()}
    return (body[:-1] + f',"hash":"{rec["hash"]}"}}\n').encode(), rec["hash"]


def test_a_v1_signature_still_verifies_with_a_warning_and_a_v2_one_must_bind(tmp_path):
    write_roster(tmp_path, USERS)
    key = load_private_key("rev")
    pub_b64 = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()  # fmt: skip
    base = {"v": 1, "image": IMAGE, "source": {"kind": "human"}, "schema": None,
            "time": "2025-01-01T00:00:00.000000Z", "target": None, "data": {}}  # fmt: skip
    r0 = {**base, "seq": 0, "prev": "0" * 64, "action": "image.open",
          "actor": {"id": "ann", "name": "ann", "role": "annotator"}}  # fmt: skip
    l0, h0 = _v1_line(r0)
    sig = base64.b64encode(key.sign(h0.encode("ascii"))).decode()  # the v1 rule: the hash only
    r1 = {**base, "seq": 1, "prev": h0, "action": "sign",
          "actor": {"id": "rev", "name": "rev", "role": "reviewer"},
          "target": {"seq": 0, "hash": h0},
          "data": {"meaning": "review", "signature": sig, "public_key": pub_b64,
                   "head": {"seq": 0, "hash": h0}}}  # fmt: skip
    l1, _ = _v1_line(r1)
    path = tmp_path / "old.png.clinlabel.jsonl"
    path.write_bytes(l0 + l1)
    rep, _ = verify_trusted(path)
    assert rep.ok and rep.signatures_checked == 1, rep.summary()
    assert any("v1 signature covers the signed record's hash only" in w for w in rep.warnings)
    # the same old-style signature in a v2 record is refused
    r1v2 = {**r1, "v": 2}
    l1v2, _ = _v1_line(r1v2)
    path.write_bytes(l0 + l1v2)
    rep, _ = verify_trusted(path)
    assert not rep.ok and rep.first_bad_seq == 1 and "without a binding signature" in rep.reason
