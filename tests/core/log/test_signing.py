"""Ed25519 keys and sign records, checked with the cryptography package directly."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from napari_clinlabel.core.errors import ClinlabelError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor, load_roster
from napari_clinlabel.core.log.signing import (
    init_keys,
    load_private_key,
    sign_head,
    verify_signature,
)
from napari_clinlabel.core.log.verify import verify_log

IMAGE = {"uid": None, "sha256": "ab" * 32}


def _spec_hash(rec: dict) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reseal(recs: list[dict], start: int) -> None:
    """Recompute hashes and links from ``start`` on, as a forger would (spec only)."""
    prev = recs[start - 1]["hash"]
    for r in recs[start:]:
        r["prev"] = prev
        r["hash"] = _spec_hash(r)
        prev = r["hash"]


def write(path, recs: list[dict], **dump):
    path.write_text("".join(json.dumps(r, **dump) + "\n" for r in recs), encoding="utf-8")
    return path


def _roster(path, **keys) -> object:
    text = "".join(
        f'[[users]]\nid = "{u}"\nroles = ["annotator", "reviewer", "adjudicator"]\n'
        f'public_key = "{k}"\n'
        for u, k in keys.items()
    )
    path.write_text(text)
    return load_roster(path)


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


def test_sign_record_carries_a_signature_cryptography_accepts(tmp_path):
    _, pub = init_keys("rev", tmp_path)
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("rev", "Rev", "reviewer"))
    log.append("image.open")
    r1 = log.append("label.paint", {"labels": "L"})
    rec = sign_head(log, "review", key=load_private_key("rev", tmp_path))
    assert rec["action"] == "sign" and rec["seq"] == 2
    assert rec["target"] == {"seq": 1, "hash": r1["hash"]}
    assert rec["data"]["meaning"] == "review" and rec["data"]["public_key"] == pub
    assert rec["data"]["head"] == {"seq": 1, "hash": r1["hash"]}
    # independent check with cryptography itself
    Ed25519PublicKey.from_public_bytes(base64.b64decode(pub)).verify(
        base64.b64decode(rec["data"]["signature"]), r1["hash"].encode("ascii")
    )
    assert verify_signature(rec, pub)
    _, other = init_keys("other", tmp_path)
    assert not verify_signature(rec, other)
    # an earlier record, signed later
    r0 = log.records()[0]
    rec2 = sign_head(log, "approval", target_seq=0, key=load_private_key("rev", tmp_path))
    assert rec2["target"] == {"seq": 0, "hash": r0["hash"]}
    assert rec2["data"]["head"]["seq"] == 2


def test_verify_checks_signatures_against_the_roster(tmp_path):
    init_keys("rev", tmp_path)
    _, eve_pub = init_keys("eve", tmp_path)
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("rev", "Rev", "reviewer"))
    log.append("image.open")
    sign_head(log, "approval", key=load_private_key("rev", tmp_path))
    rev_pub = log.records()[-1]["data"]["public_key"]
    rep = verify_log(log.path, roster=_roster(tmp_path / "r.toml", rev=rev_pub))
    assert rep.ok and rep.signatures_checked == 1 and not rep.warnings
    rep = verify_log(log.path)  # no roster: valid against the key it carries, and says so
    assert rep.ok and any("roster" in w for w in rep.warnings)
    rep = verify_log(log.path, roster=_roster(tmp_path / "r2.toml", rev=eve_pub))
    assert not rep.ok and rep.first_bad_seq == 1
    assert "'rev'" in rep.reason and rev_pub[:16] in rep.reason
    rep = verify_log(log.path, public_keys={"rev": [rev_pub]})
    assert rep.ok and rep.signatures_checked == 1


def test_a_forged_or_resealed_signature_fails_at_the_sign_record(tmp_path):
    init_keys("rev", tmp_path)
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("rev", "Rev", "reviewer"))
    log.append("image.open")
    log.append("label.paint", {"labels": "L"}, {"voxels": 10})
    sign_head(log, "review", key=load_private_key("rev", tmp_path))
    log.append("labels.save")
    lines = [json.loads(x) for x in log.path.read_bytes().splitlines()]

    # a forger edits seq 1 and re-seals the whole tail: the signed hash no longer matches
    lines[1]["data"]["voxels"] = 99
    reseal(lines, 1)
    rep = verify_log(write(tmp_path / "f1.jsonl", lines, sort_keys=True))
    assert not rep.ok and rep.first_bad_seq == 2 and "sign target names record 1" in rep.reason
    # ... and even pointing the sign record at the new hash, the signature does not follow
    lines[2]["target"]["hash"] = lines[2]["data"]["head"]["hash"] = lines[1]["hash"]
    reseal(lines, 2)
    rep = verify_log(write(tmp_path / "f1b.jsonl", lines, sort_keys=True))
    assert not rep.ok and rep.first_bad_seq == 2 and "does not verify" in rep.reason
    # a signature over something else
    lines = [json.loads(x) for x in log.path.read_bytes().splitlines()]
    sig = bytearray(base64.b64decode(lines[2]["data"]["signature"]))
    sig[0] ^= 1
    lines[2]["data"]["signature"] = base64.b64encode(bytes(sig)).decode()
    reseal(lines, 2)
    rep = verify_log(write(tmp_path / "f2.jsonl", lines))
    assert not rep.ok and rep.first_bad_seq == 2 and "does not verify" in rep.reason


def test_meaning_and_role_rules(tmp_path):
    init_keys("ann", tmp_path)
    log = AuditLog(tmp_path / "a.clinlabel.jsonl", IMAGE, Actor("ann", "Ann", "annotator"))
    key = load_private_key("ann", tmp_path)
    rev = AuditLog(log.path, IMAGE, Actor("ann", "Ann", "reviewer"))
    with pytest.raises(ClinlabelError, match="nothing to sign"):
        sign_head(rev, "review", key=key)
    log.append("image.open")
    with pytest.raises(PermissionRefused, match="only an adjudicator"):
        sign_head(log, "adjudication", key=key)
    for meaning in ("review", "approval"):  # an annotator does not sign off as reviewer
        with pytest.raises(PermissionRefused, match="signed by a reviewer or an adjudicator"):
            sign_head(log, meaning, key=key)
    with pytest.raises(ClinlabelError, match="not one of"):
        sign_head(log, "liked", key=key)
    with pytest.raises(ClinlabelError, match="no record seq 7"):
        sign_head(rev, "review", target_seq=7, key=key)
    assert len(log.records()) == 1
