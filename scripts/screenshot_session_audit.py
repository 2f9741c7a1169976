"""Re-create docs/img/session_audit.png: the Session and Audit widgets on the CT phantom.

A few brush strokes and an undo are logged, the filter is empty, and Verify has checked the log
(green, with the head). Run under a display (``xvfb-run -a python scripts/screenshot_session_audit.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel.core.image import samples
from napari_clinlabel.glue.session import get_session


def _settle(until=lambda: True, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while True:
        for _ in range(10):
            QApplication.processEvents()
            time.sleep(0.01)
        if until() or time.monotonic() > end:
            return


def main(out: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["CLINLABEL_WORKSPACE"] = str(tmp / "workspace")
    os.environ.setdefault("CLINLABEL_USER", "rad01")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 950)
    vol = samples.ct_phantom()
    vol.meta["source_path"] = str(tmp / "ct.nii.gz")
    image = add_volume(viewer, vol, name="CT phantom")
    image.contrast_limits = (-160, 240)
    labels = get_session(viewer).labels_layer_for(image)
    nz, ny, nx = labels.data.shape
    z = nz // 2
    for i, (fy, fx) in enumerate(
        [(0.4, 0.35), (0.42, 0.37), (0.44, 0.39), (0.6, 0.62), (0.62, 0.64)]
    ):
        labels.paint((z, int(fy * ny), int(fx * nx)), 1 + (i > 2))
    labels.undo()
    viewer.window.add_plugin_dock_widget("napari-clinlabel", "Session")
    _dock, audit = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Audit log")
    _settle(lambda: not audit.loading)
    audit._verify.click()
    _settle(lambda: audit._verify.isEnabled() and "verifying" not in audit._result.text())
    viewer.dims.set_current_step(0, z)
    viewer.screenshot(out, canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else str(Path(__file__).resolve().parents[1] / "docs" / "img" / "session_audit.png")
    )
