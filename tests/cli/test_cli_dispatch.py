"""The dispatcher imports only the module a command needs, and knows every command."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from napari_clinlabel import cli


def test_command_table_matches_what_the_modules_register():
    full = cli.build_parser()
    sub = next(a for a in full._actions if a.dest == "command")
    assert set(sub.choices) == set(cli.COMMAND_MODULES)
    for command, module in cli.COMMAND_MODULES.items():
        import argparse

        parser = argparse.ArgumentParser()
        mod = importlib.import_module(f"napari_clinlabel.cli.{module}")
        mod.register(parser.add_subparsers(dest="command"))
        assert command in parser._subparsers._group_actions[0].choices, (command, module)


@pytest.mark.parametrize("argv", [["--help"], ["nonsense"]])
def test_help_and_unknown_commands_still_see_every_command(argv, capsys):
    with pytest.raises(SystemExit):
        cli.main(argv)
    out = capsys.readouterr()
    text = out.out + out.err
    for command in ("log", "export", "phi-scan", "gold-panel"):
        assert command in text


def test_log_verify_loads_no_imaging_stack(tmp_path):
    log = tmp_path / "a.clinlabel.jsonl"
    log.write_bytes(b"")
    code = (
        "import sys\nfrom napari_clinlabel.cli import main\n"
        f"rc = main(['log', 'verify', {str(log)!r}])\n"
        "heavy = sorted(m for m in ('SimpleITK', 'scipy', 'torch', 'napari', 'highdicom')"
        " if m in sys.modules)\nprint(rc, heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip().splitlines()[-1] == "0 []", res.stdout + res.stderr
