"""Re-create docs/img/prelabel_review.png: model proposals pending review on the CT phantom.

The Pre-label widget runs ``builtin:phantom-unet`` (off the GUI thread); the Review widget then
shows the proposals in their pending layer (orange outlines; the one under review in yellow), with
the first decision already made (accepted into the final "segmentation" labels).
Run under a display (e.g. ``xvfb-run -a python scripts/screenshot_prelabel_review.py``).
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


def _wait(predicate, timeout_s: float = 300.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the model run did not finish")
        QApplication.processEvents()
        time.sleep(0.02)


def main(out: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["CLINLABEL_WORKSPACE"] = str(tmp / "workspace")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 950)
    vol = samples.ct_phantom()
    vol.meta["source_path"] = str(tmp / "ct.nii.gz")
    image = add_volume(viewer, vol, name="CT phantom")
    image.contrast_limits = (-160, 240)
    _dock, prelabel = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Pre-label")
    prelabel.set_model("builtin:phantom-unet")
    prelabel._device_combo.setCurrentText("cpu")
    prelabel._run_btn.click()
    _wait(lambda: not prelabel.busy)
    _dock, review = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Review proposals")
    review._on_load()
    review._on_accept()  # the first proposal (the liver) accepted: it moves to "segmentation"
    for _ in range(20):
        QApplication.processEvents()
    viewer.layers.selection.active = image
    viewer.scene.camera.zoom *= (
        0.75  # the review centred the view on the spleen; show the whole body
    )
    viewer.screenshot(out, canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else str(Path(__file__).resolve().parents[1] / "docs" / "img" / "prelabel_review.png")
    )
