"""``clinlabel log verify|show|replay`` and ``clinlabel keys init`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import SimpleITK as sitk
from support.trusted_roster import sign_file, write_roster

from napari_clinlabel.cli import main
from napari_clinlabel.core.annotate.label_edits import (
    diff_between,
    record_label_change,
    record_labels_create,
)
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, model_source
from napari_clinlabel.core.log.identity import Actor, owner_pin
from napari_clinlabel.core.log.signing import init_keys, sign_head

IMAGE = {"uid": None, "sha256": "ab" * 32}
GEOM = Geometry((0.5, 0.5, 3.0), (1.0, -2.0, 7.0), tuple(np.eye(3).ravel().tolist()))


USERS = {"ann": ["annotator"], "rev": ["annotator", "reviewer"]}


def _log(tmp_path):
    """A log beside the dataset's signed roster (ann annotates, rev reviews), pinning its owner."""
    write_roster(tmp_path, USERS)
    log = AuditLog(tmp_path / "ct.nii.gz.clinlabel.jsonl", IMAGE, Actor("ann", "Ann"))
    log.append("image.open", {"image": "ct.nii.gz"},
               {"shape": [3, 4, 5], "dtype": "int16", "geometry": GEOM.to_dict(),
                "owner": owner_pin(tmp_path / "ct.nii.gz")})  # fmt: skip
    record_labels_create(log, "L", (3, 4, 5), np.uint8)
    lab = np.zeros((3, 4, 5), np.uint8)
    before = lab.copy()
    lab[1, 1:3, 1:4] = 2
    record_label_change(log, lab, "L", *diff_between(before, lab))
    log.append(
        "proposal.add",
        {"proposal": "p1"},
        {"label": 2},
        model_source("liver-net", "1.2", "e" * 64),
        actor=Actor("rev", "Rev", "reviewer"),
    )
    return log, lab


def test_verify_ok_and_broken(tmp_path, capsys):
    log, _ = _log(tmp_path)
    assert main(["log", "verify", str(log.path)]) == 0
    out = capsys.readouterr().out
    assert "valid: 4 records" in out and log.head().hash in out
    head = log.head()
    assert main(["log", "verify", str(log.path), "--anchor", f"{head.seq}:{head.hash}"]) == 0
    capsys.readouterr()
    lines = log.path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["data"]["voxels"] = 1
    lines[2] = json.dumps(rec).encode() + b"\n"
    log.path.write_bytes(b"".join(lines))
    assert main(["log", "verify", str(log.path)]) == 1
    # v2: re-serialised by json.dumps, the line's bytes (and its last member) changed
    assert "broken at seq 2: hash" in capsys.readouterr().out


def test_verify_exit_codes_from_a_real_process(tmp_path):
    log, _ = _log(tmp_path)
    cmd = [sys.executable, "-m", "napari_clinlabel.cli", "log", "verify", str(log.path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    log.path.write_bytes(b"".join(log.path.read_bytes().splitlines(keepends=True)[1:]))
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1 and "broken at seq 0" in res.stdout


def test_verify_with_roster_and_anchor(tmp_path, capsys):
    log, _ = _log(tmp_path)
    rev = AuditLog(log.path, IMAGE, Actor("rev", "Rev", "reviewer"))
    sign_head(rev, "review")
    roster = tmp_path / "clinlabel-roster.toml"
    assert main(["log", "verify", str(log.path), "--roster", str(roster)]) == 0
    out = capsys.readouterr().out
    assert "1 signature(s) valid" in out and f"authority: roster {roster} signed by its" in out
    anchor = f"2:{'0' * 64}"
    assert main(["log", "verify", str(log.path), "--anchor", anchor]) == 1
    assert "broken at seq 2" in capsys.readouterr().out
    assert main(["log", "verify", str(log.path), "--anchor", "nonsense"]) == 2
    assert "SEQ:HASH" in capsys.readouterr().err
    assert main(["log", "verify", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such log" in capsys.readouterr().err


def test_show_table_json_and_filters(tmp_path, capsys):
    log, _ = _log(tmp_path)
    assert main(["log", "show", str(log.path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "seq", "time", "(UTC)", "actor", "role", "action", "target", "source", "details"
    ]  # fmt: skip
    assert len(out) == 5 and "model:liver-net@1.2" in out[4] and "reviewer" in out[4]
    assert main(["log", "show", str(log.path), "--json", "--action", "label.paint"]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in recs] == [2]
    assert main(["log", "show", str(log.path), "--json", "--actor", "rev"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [3]


def test_replay_writes_nifti_with_geometry(tmp_path, capsys):
    log, lab = _log(tmp_path)
    out = tmp_path / "at2.nii.gz"
    assert main(["log", "replay", str(log.path), "--at", "2", "-o", str(out)]) == 0
    img = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), lab)
    assert img.GetSpacing() == GEOM.spacing and img.GetOrigin() == GEOM.origin
    assert main(["log", "replay", str(log.path), "--at", "1", "-o", str(out)]) == 0
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(out))).any()
    assert (
        main(["log", "replay", str(log.path), "--at", "0", "-o", str(tmp_path / "x.nii.gz")]) == 2
    )
    assert "no labels exist" in capsys.readouterr().err


def test_keys_init_prints_the_roster_lines(tmp_path, capsys):
    assert main(["keys", "init", "--user", "rev", "--folder", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    pub = (tmp_path / "rev.ed25519.pub").read_text().strip()
    assert f'public_key = "{pub}"' in out and 'id = "rev"' in out
    assert main(["keys", "init", "--user", "rev", "--folder", str(tmp_path)]) == 2
    assert "exists already" in capsys.readouterr().err


def test_verify_finds_the_roster_beside_the_image(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLINLABEL_ROSTER", raising=False)
    log, _ = _log(tmp_path)
    rev = AuditLog(log.path, IMAGE, Actor("rev", "Rev", "reviewer"))
    sign_head(rev, "approval")
    _, other = init_keys("other", tmp_path / "keys")
    roster = tmp_path / "clinlabel-roster.toml"
    text = roster.read_text()
    rev_key = text.split('id = "rev"', 1)[1].split('public_key = "', 1)[1].split('"', 1)[0]
    roster.write_text(text.replace(rev_key, other))  # the owner lists another key for rev
    sign_file(roster, "owner")
    assert main(["log", "verify", str(log.path)]) == 1
    captured = capsys.readouterr()
    assert "broken at seq 4" in captured.out and "does not list for that user" in captured.out


def test_several_anchors_checked_in_one_pass(tmp_path, capsys, monkeypatch):
    """Two exports' heads: a log re-sealed after the first is caught at that seq, in one pass."""
    from napari_clinlabel.core.log import verify as log_verify

    log, _ = _log(tmp_path)
    first = log.head()  # e.g. an export at seq 3
    log.append("grade.set", {"scale": "assessment"}, {"value": "2"})
    second = log.head()
    anchors = ["--anchor", f"{first.seq}:{first.hash}", "--anchor", f"{second.seq}:{second.hash}"]
    passes = []
    real = log_verify._verify
    monkeypatch.setattr(log_verify, "_verify", lambda *a, **k: passes.append(1) or real(*a, **k))
    assert main(["log", "verify", str(log.path), *anchors]) == 0
    assert passes == [1]
    # rewrite history from seq 3 on and re-seal the whole tail: the chain alone cannot tell ...
    recs = [json.loads(x) for x in log.path.read_bytes().splitlines()]
    recs[3]["data"]["label"] = 5
    prev = recs[2]["hash"]
    for rec in recs[3:]:
        rec["prev"] = prev
        rec.pop("hash")
        canon = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        rec["hash"] = prev = __import__("hashlib").sha256(canon.encode()).hexdigest()
    lines = []  # the writer's layout: canonical bytes, hash last (format v2 hashes them)
    for r in recs:
        body = json.dumps({k: v for k, v in r.items() if k != "hash"}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False)  # fmt: skip
        lines.append(body[:-1] + ',"hash":"' + r["hash"] + '"}\n')
    log.path.write_text("".join(lines))
    capsys.readouterr()
    assert main(["log", "verify", str(log.path)]) == 0
    # ... but either export's anchor does, naming the first rewritten seq it covers
    assert main(["log", "verify", str(log.path), *anchors]) == 1
    assert "broken at seq 3" in capsys.readouterr().out


def test_sign_from_the_command_line(tmp_path, monkeypatch, capsys):
    log, _ = _log(tmp_path)  # the roster's keys are in CLINLABEL_KEYS
    keys = os.environ["CLINLABEL_KEYS"]
    monkeypatch.setenv("CLINLABEL_KEYS", str(tmp_path / "keys"))
    monkeypatch.setenv("CLINLABEL_USER", "rev")
    monkeypatch.setenv("CLINLABEL_ROLE", "reviewer")
    n = len(list(iter_records(log.path)))
    assert main(["log", "sign", str(log.path), "--meaning", "approval"]) == 2  # no key yet
    assert "clinlabel keys init --user rev" in capsys.readouterr().err
    assert main(["keys", "init"]) == 0  # a new key the roster does not list
    capsys.readouterr()
    assert main(["log", "sign", str(log.path), "--meaning", "approval"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lists no key" in err
    monkeypatch.setenv("CLINLABEL_KEYS", keys)
    assert main(["log", "sign", str(log.path), "--meaning", "approval"]) == 0
    assert f"signs seq {n - 1}" in capsys.readouterr().out
    rec = list(iter_records(log.path))[-1]
    assert rec["action"] == "sign" and rec["actor"]["id"] == "rev"
    assert rec["data"]["meaning"] == "approval" and rec["target"]["seq"] == n - 1
    assert main(["log", "verify", str(log.path)]) == 0
    out = capsys.readouterr().out
    assert "1 signature(s) valid" in out and "2 witnessed head(s) checked" in out
    monkeypatch.setenv("CLINLABEL_ROLE", "annotator")  # an annotator does not sign off
    assert main(["log", "sign", str(log.path), "--meaning", "review"]) == 2
    assert "needs the role reviewer or adjudicator" in capsys.readouterr().err
    assert main(["log", "sign", str(tmp_path / "none.jsonl"), "--meaning", "review"]) == 2
    assert len(list(iter_records(log.path))) == n + 1  # the refusals wrote nothing
