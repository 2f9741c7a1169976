"""Packaging contracts: the npe2 manifest, the core/Qt boundary, the console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import npe2

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_validates_with_imports():
    manifest = npe2.PluginManifest.from_file(ROOT / "src" / "napari_clinlabel" / "napari.yaml")
    manifest.validate_imports()
    assert manifest.name == "napari-clinlabel"
    assert {r.command for r in manifest.contributions.readers} == {"napari-clinlabel.get_reader"}


def test_manifest_is_registered_entry_point():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == "napari-clinlabel"]
    assert eps and eps[0].value == "napari_clinlabel:napari.yaml"


def test_core_never_imports_qt_or_napari():
    """At run time, in a clean interpreter (import-linter's static contracts: test_architecture)."""
    code = (
        "import sys, pkgutil, importlib, napari_clinlabel.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, c.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [n for n in sys.modules if n.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt6', 'PyQt5', 'PySide6', 'magicgui')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_core_keeps_heavy_optional_imports_lazy():
    """Importing core (every module but the torch network itself) loads no torch, matplotlib,
    highdicom or dask: they load in the function that needs them, so the CLI and the plugin
    start fast and a missing extra fails only the feature that uses it."""
    code = (
        "import sys, pkgutil, importlib, napari_clinlabel.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, c.__name__ + '.'):\n"
        "    if m.name != 'napari_clinlabel.core.models.unet':\n"
        "        importlib.import_module(m.name)\n"
        "heavy = ('torch', 'matplotlib', 'highdicom', 'dask', 'distributed')\n"
        "bad = sorted({n.split('.')[0] for n in sys.modules if n.split('.')[0] in heavy})\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "napari_clinlabel.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "clinlabel" in out.stdout


def test_cli_output_piped_into_head_ends_quietly(tmp_path):
    """`clinlabel log show LOG | head -1` must not end in a BrokenPipeError traceback."""
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import Actor

    log = AuditLog(tmp_path / "x.clinlabel.jsonl", {"uid": None, "sha256": "ab" * 32},
                   Actor("ann", "Ann"))  # fmt: skip
    for i in range(3000):
        log.append("grade.set", {"item": f"t{i}"}, {"value": "1"})
    cmd = f"{sys.executable} -m napari_clinlabel.cli log show {log.path} | head -1"
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr
    assert out.stdout.strip()
