"""``clinlabel roster sign|check``: only the owner signs, with the key keys init made; the
signature is Ed25519 over ``clinlabel-roster/1`` LF + the file's bytes (checked with
cryptography); refusals are one line, exit 2, and write nothing."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from support.trusted_roster import roster_text

from napari_clinlabel.cli import main


def test_the_owner_signs_and_check_says_so(tmp_path, monkeypatch, capsys):
    roster = tmp_path / "clinlabel-roster.toml"
    roster.write_text(roster_text({"ann": ["annotator"]}, owner="olga"))
    assert main(["roster", "check", str(roster)]) == 1
    assert "NOT signed by its owner (no signature file" in capsys.readouterr().out
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    assert main(["roster", "sign", str(roster)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"{roster}: signed by its owner 'olga'; signature in {roster}.sig"
    owner_key = roster.read_text().split('public_key = "', 1)[1].split('"', 1)[0]
    sig = base64.b64decode(roster.with_name(roster.name + ".sig").read_text().strip())
    Ed25519PublicKey.from_public_bytes(base64.b64decode(owner_key)).verify(
        sig, b"clinlabel-roster/1\n" + roster.read_bytes()
    )
    assert main(["roster", "check", str(roster)]) == 0
    assert "signed by its owner 'olga'" in capsys.readouterr().out


def test_refusals_are_one_line_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys):
    roster = tmp_path / "clinlabel-roster.toml"
    sig = roster.with_name(roster.name + ".sig")
    roster.write_text('[[users]]\nid = "ann"\n')
    cases = [("ann", "has no [owner] table")]
    for user, message in cases:
        monkeypatch.setenv("CLINLABEL_USER", user)
        assert main(["roster", "sign", str(roster)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    roster.write_text(roster_text({"ann": ["annotator", "reviewer"]}, owner="olga"))
    monkeypatch.setenv("CLINLABEL_USER", "ann")  # an annotator signing the owner's roster
    assert main(["roster", "sign", str(roster)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "its owner is 'olga', you act as 'ann'" in err
    assert main(["roster", "sign", str(roster), "--user", "olga"]) == 0  # olga's own key: fine
    capsys.readouterr()
    sig.unlink()
    # [owner] names olga with ann's key: olga's key does not match it
    ann_key = roster.read_text().split('id = "ann"', 1)[1].split('public_key = "', 1)[1][:44]
    text = roster.read_text()
    olga_key = text.split('public_key = "', 1)[1].split('"', 1)[0]
    roster.write_text(text.replace(olga_key, ann_key, 1))
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    assert main(["roster", "sign", str(roster)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not the key of 'olga'" in err
    assert not sig.exists()
    assert main(["roster", "sign", str(tmp_path / "missing.toml")]) == 2
    assert "roster file not found" in capsys.readouterr().err
