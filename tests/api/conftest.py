"""Scripted readers in tests/api act as the Actor each test passes, never as the environment's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_env_identity(monkeypatch):
    for var in ("CLINLABEL_USER", "CLINLABEL_ROLE", "CLINLABEL_ROSTER"):
        monkeypatch.delenv(var, raising=False)
