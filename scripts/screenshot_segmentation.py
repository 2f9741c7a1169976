"""Re-create docs/img/segmentation.png: the Segmentation widget in use on the CT phantom.

Run under a display (e.g. ``xvfb-run -a python scripts/screenshot_segmentation.py``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.image import samples

# (label, seed (z, y, x), window low, high) for region growing
GROWS = [
    (samples.LIVER, (24, 80, 50), 56, 66),
    (samples.SPLEEN, (24, 96, 118), 46, 56),
    (samples.KIDNEY_R, (24, 109, 54), 120, 180),
    (samples.KIDNEY_L, (24, 109, 106), 120, 180),
    (samples.AORTA, (24, 97, 84), 170, 230),
    (samples.LESION, (24, 58, 62), 0, 40),
]


def main(out: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["CLINLABEL_WORKSPACE"] = str(tmp / "workspace")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    vol = samples.ct_phantom()
    vol.meta["source_path"] = str(tmp / "ct.nii.gz")
    image = add_volume(viewer, vol, name="CT phantom")
    image.contrast_limits = (-160, 240)
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right", name="Segmentation")
    widget._start_btn.click()
    widget._grow_window.setChecked(True)
    for value, seed, low, high in GROWS:
        widget._label_table.select_value(value)
        widget._low.setValue(low)
        widget._high.setValue(high)
        widget.grow_at(seed)
    widget._label_table.select_value(samples.LIVER)
    widget._holes_per_slice.setChecked(True)
    widget._holes_btn.click()
    widget._low.setValue(56)
    widget._high.setValue(66)
    widget._window_check.setChecked(True)
    labels = widget._labels
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
