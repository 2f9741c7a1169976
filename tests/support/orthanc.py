"""A real PACS for tests: Orthanc with its DICOMweb plugin on 127.0.0.1, a free port, a temporary
storage folder, HTTP basic auth on; stopped (and its folder removed) after the test.

Skips the test when the Orthanc binary or the DICOMweb plugin is not installed (Debian packages
``orthanc`` and ``orthanc-dicomweb``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "reader", "test-only-secret"


@dataclass
class Orthanc:
    """A running test Orthanc: its DICOMweb base URL and the credentials it accepts."""

    url: str  # DICOMweb base, e.g. http://127.0.0.1:PORT/dicom-web
    rest: str  # Orthanc's own REST root
    username: str = USER
    password: str = PASSWORD

    def connection(self, **kw):
        """A :class:`PacsConnection` to this server (keyword arguments override)."""
        from napari_clinlabel.core.pacs import PacsConnection

        args = {"url": self.url, "username": self.username, "password": self.password, **kw}
        return PacsConnection(**args)

    def instance_count(self) -> int:
        """Instances stored (Orthanc REST, independent of the DICOMweb code under test)."""
        r = requests.get(f"{self.rest}/statistics", auth=(self.username, self.password), timeout=10)
        r.raise_for_status()
        return int(r.json()["CountInstances"])


def _binary() -> str | None:
    return shutil.which("Orthanc") or next(
        (p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if Path(p).is_file()), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_orthanc(folder: Path) -> tuple[subprocess.Popen, Orthanc]:
    """Start Orthanc storing under ``folder``; returns the process and its endpoint."""
    binary = _binary()
    if binary is None or not PLUGIN.is_file():
        pytest.skip(
            "Orthanc with the DICOMweb plugin is not installed (apt: orthanc orthanc-dicomweb)"
        )
    port = _free_port()
    storage = folder / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    cfg = {
        "Name": "clinlabel-test",
        "HttpPort": port,
        "DicomServerEnabled": False,
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "StableAge": 1,
    }
    cfg_path = folder / "orthanc.json"
    cfg_path.write_text(json.dumps(cfg))
    log = open(folder / "orthanc.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([binary, str(cfg_path)], stdout=log, stderr=subprocess.STDOUT)
    rest = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            tail = (folder / "orthanc.log").read_text(errors="replace")[-400:]
            pytest.fail(f"Orthanc exited at start: {tail}")
        try:
            if requests.get(f"{rest}/system", auth=(USER, PASSWORD), timeout=1).ok:
                return proc, Orthanc(f"{rest}/dicom-web", rest)
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    proc.kill()
    pytest.fail("Orthanc did not answer within 20 s")


def stop_orthanc(proc: subprocess.Popen) -> None:
    """Stop a test Orthanc at once: its storage is thrown away with it, so nothing is lost by
    not waiting for its ~2 s orderly shutdown (which every PACS test used to pay)."""
    proc.kill()
    proc.wait(10)


@pytest.fixture
def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
    """A fresh, empty Orthanc for one test."""
    folder = tmp_path_factory.mktemp("orthanc")
    proc, server = start_orthanc(folder)
    try:
        yield server
    finally:
        stop_orthanc(proc)
        shutil.rmtree(folder, ignore_errors=True)
