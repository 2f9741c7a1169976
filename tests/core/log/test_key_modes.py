"""Private keys: refused when group/other-readable; key folders 0700 whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from napari_clinlabel.cli import main
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.signing import init_keys, keys_folder, load_private_key


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


def test_key_folder_is_0700_and_key_0600_under_umask_000(tmp_path, umask_000):
    folder = tmp_path / "home" / ".clinlabel" / "keys"
    path, _ = init_keys("ana", folder)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for d in (folder, folder.parent, folder.parent.parent):  # every folder it made
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_an_existing_loose_key_folder_is_tightened(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    os.chmod(folder, 0o755)
    init_keys("ana", folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_group_or_other_readable_key_is_refused_with_chmod_600(
    tmp_path, mode, monkeypatch, capsys
):
    path, _ = init_keys("ana", tmp_path)
    os.chmod(path, mode)
    with pytest.raises(ClinlabelError) as err:
        load_private_key("ana", tmp_path)
    msg = str(err.value)
    assert str(path) in msg and f"chmod 600 {path}" in msg and f"{mode:04o}" in msg
    assert "\n" not in msg
    # the CLI: one line, exit 2, nothing signed
    monkeypatch.setenv("CLINLABEL_KEYS", str(tmp_path))
    monkeypatch.setenv("CLINLABEL_USER", "ana")
    roster = tmp_path / "r.toml"
    roster.write_text(
        f'[owner]\nid = "ana"\npublic_key = "{(tmp_path / "ana.ed25519.pub").read_text().strip()}"\n'
    )
    assert main(["roster", "sign", str(roster)]) == 2
    err_line = capsys.readouterr().err.strip()
    assert err_line.count("\n") == 0 and "chmod 600" in err_line
    assert not roster.with_name("r.toml.sig").exists()
    os.chmod(path, 0o600)
    assert load_private_key("ana", tmp_path) is not None


def test_a_symlinked_key_is_refused(tmp_path):
    path, _ = init_keys("ana", tmp_path / "real")
    (tmp_path / "keys").mkdir()
    os.symlink(path, tmp_path / "keys" / "ana.ed25519.pem")
    with pytest.raises(ClinlabelError, match="cannot open the key"):
        load_private_key("ana", tmp_path / "keys")


def test_key_folder_follows_keys_then_home_then_the_user_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_KEYS", str(tmp_path / "k"))
    monkeypatch.setenv("CLINLABEL_HOME", str(tmp_path / "h"))
    assert keys_folder() == tmp_path / "k"
    monkeypatch.delenv("CLINLABEL_KEYS")
    assert keys_folder() == tmp_path / "h" / "keys"  # the home the witness files use
    monkeypatch.delenv("CLINLABEL_HOME")
    assert keys_folder() == Path.home() / ".clinlabel" / "keys"
    assert keys_folder(tmp_path / "given") == tmp_path / "given"
