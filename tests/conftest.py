"""Shared test settings: nothing a test does writes outside its tmp folders."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_clinlabel_env(tmp_path_factory, monkeypatch):
    """Keys, workspace and roster lookups go to per-test temporary folders."""
    base = tmp_path_factory.mktemp("clinlabel-home")
    monkeypatch.setenv("CLINLABEL_WORKSPACE", str(base / "workspace"))
    monkeypatch.setenv("CLINLABEL_KEYS", str(base / "keys"))
    monkeypatch.delenv("CLINLABEL_ROSTER", raising=False)


def pytest_collection_modifyitems(config, items):
    """Tests under tests/_widgets need a napari viewer: mark them ``gui``."""
    for item in items:
        if "_widgets" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.gui)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data (real scanner DICOM) is not present on this machine")
    return SHARED_DATA.resolve()
