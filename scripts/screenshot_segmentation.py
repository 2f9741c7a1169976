"""Re-create docs/img/segmentation.png: the Segmentation widget in use on the CT phantom.

Run under a display (e.g. ``xvfb-run -a python scripts/screenshot_segmentation.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.image import samples

# drawn in this order: the lesion last, inside the liver
LABELS = (samples.LIVER, samples.SPLEEN, samples.KIDNEY_R, samples.KIDNEY_L, samples.AORTA,
          samples.LESION)  # fmt: skip


def main(out: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["CLINLABEL_WORKSPACE"] = str(tmp / "workspace")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    vol, truth = samples.ct_phantom_truth()
    vol.meta["source_path"] = str(tmp / "ct.nii.gz")
    image = add_volume(viewer, vol, name="CT phantom")
    image.contrast_limits = (-160, 240)
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right", name="Segmentation")
    widget._start_btn.click()
    labels = widget._labels
    for value in LABELS:  # each organ painted as one logged edit (napari's data_setitem)
        labels.data_setitem(np.nonzero(truth == value), value)
    widget._label_table.select_value(samples.LIVER)
    widget.tools.select_tool("Local threshold")  # the tool a reader would click next
    liver = vol.array[truth == samples.LIVER]
    widget._low.setValue(round(float(np.percentile(liver, 2))))  # paint within the liver's HU
    widget._high.setValue(round(float(np.percentile(liver, 98))))
    widget._window_check.setChecked(True)
    labels.mode = "paint"
    labels.brush_size = 12
    viewer.dims.set_point(0, float(image.data_to_world((24, 0, 0))[0]))
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    widget._on_refresh_volumes()
    viewer.screenshot(out, canvas_only=False)
    viewer.close()


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else str(Path(__file__).resolve().parents[1] / "docs" / "img" / "segmentation.png")
    )
