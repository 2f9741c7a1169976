"""Screenshots of the lesion-box, grading and tile-grading widgets in use on the sample data.

Run under a display (e.g. ``xvfb-run -s "-screen 0 1600x1000x24" python scripts/screenshots_annotation.py``);
writes docs/img/lesion_boxes.png, docs/img/grading.png and docs/img/tile_grading.png. Logs go to
a temporary workspace, so nothing is written beside real data.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"
SIZE = (1500, 900)


def _viewer():
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    return viewer


def _settle(viewer, ms: int = 400) -> None:
    from qtpy.QtCore import QCoreApplication, QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    QCoreApplication.processEvents()


def _rect(z: float, y0: float, x0: float, y1: float, x1: float) -> np.ndarray:
    return np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], dtype=float)


def lesion_boxes() -> None:
    from napari_clinlabel._widgets._common import add_volume
    from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
    from napari_clinlabel.core.image.samples import ct_phantom

    viewer = _viewer()
    image = add_volume(viewer, ct_phantom(), name="CT phantom")
    w = LesionBoxWidget(viewer)
    viewer.window.add_dock_widget(w, name="Lesion boxes", area="right")
    layer = w.layer
    # lesion 1: the large liver lesion (≈ 20 mm) drawn on slice 31, extended over 25..33
    viewer.dims.set_point(0, float(image.data_to_world((31, 0, 0))[0]))
    w._class.setCurrentText("malignant")
    w._confidence.setCurrentText("4")
    w._attrs["finding"].setCurrentText("nodule")
    w._attrs["density"].setCurrentText("hypodense")
    w._attrs["margin"].setCurrentText("ill-defined")
    w._attrs["location"].setCurrentText("liver")
    layer.add_rectangles([_rect(31, 53.5, 33.5, 80.5, 60.5)])
    _settle(viewer, 100)
    first = next(iter(w.boxes))
    w.select_box(first, jump=False)
    w._z_from.setValue(25)
    w._z_to.setValue(33)
    w._apply_3d.click()
    _settle(viewer, 100)
    # lesion 2: the splenic lesion on the same slice, benign, 2D
    layer.selected_data = set()
    w._class.setCurrentText("benign")
    w._confidence.setCurrentText("2")
    w._attrs["finding"].setCurrentText("cyst")
    w._attrs["density"].setCurrentText("hypodense")
    w._attrs["margin"].setCurrentText("circumscribed")
    w._attrs["location"].setCurrentText("other")
    layer.add_rectangles([_rect(31, 90.5, 110.5, 103.5, 123.5)])
    _settle(viewer, 100)
    w._table.selectRow(0)
    w.select_box(first, jump=False)
    viewer.reset_view()
    _settle(viewer)
    viewer.screenshot(str(OUT / "lesion_boxes.png"), canvas_only=False)
    viewer.close()


def grading() -> None:
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from napari_clinlabel._widgets._common import add_volume
    from napari_clinlabel._widgets.grading import GradingWidget
    from napari_clinlabel.core.image.samples import mammogram_phantom

    viewer = _viewer()
    image = add_volume(viewer, mammogram_phantom(), name="Mammogram phantom")
    w = GradingWidget(viewer)
    viewer.window.add_dock_widget(w, name="Grading", area="right")
    w._schema_combo.setCurrentText("birads")
    viewer.layers.selection.active = image
    w._note.setText("spiculated mass upper outer quadrant; calcification cluster")
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    for key in (Qt.Key.Key_B, Qt.Key.Key_C):  # 4B, then density c — keyboard only
        QTest.keyClick(canvas, key)
    viewer.reset_view()
    _settle(viewer)
    viewer.screenshot(str(OUT / "grading.png"), canvas_only=False)
    viewer.close()


def tile_grading() -> None:
    import shutil

    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    from napari_clinlabel._sample_data import slide_sample_path
    from napari_clinlabel._widgets.tile_grading import TileGradingWidget
    from napari_clinlabel.core.image.slide import open_slide
    from napari_clinlabel.glue.layers import volume_to_layer_data

    # a private copy of the sample slide, so the grades' log lands in the temporary workspace
    slide = Path(os.environ["CLINLABEL_WORKSPACE"]) / "slide.tif"
    shutil.copyfile(slide_sample_path(), slide)
    viewer = _viewer()
    data, kwargs, _ = volume_to_layer_data(open_slide(slide))
    viewer.add_image(data, **kwargs)
    w = TileGradingWidget(viewer)
    viewer.window.add_dock_widget(w, name="Tile grading", area="right")
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    keys = [Qt.Key.Key_B, Qt.Key.Key_B, Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_B, Qt.Key.Key_3,
            Qt.Key.Key_1, Qt.Key.Key_B, Qt.Key.Key_4, Qt.Key.Key_2, Qt.Key.Key_5, Qt.Key.Key_B,
            Qt.Key.Key_1, Qt.Key.Key_1, Qt.Key.Key_3, Qt.Key.Key_B, Qt.Key.Key_2, Qt.Key.Key_B,
            Qt.Key.Key_4, Qt.Key.Key_B]  # fmt: skip
    for key in keys:
        QTest.keyClick(canvas, key)
    viewer.reset_view()
    _settle(viewer, 1500)
    viewer.screenshot(str(OUT / "tile_grading.png"), canvas_only=False)
    viewer.close()


def main() -> int:
    os.environ.setdefault("CLINLABEL_USER", "demo.reader")
    os.environ["CLINLABEL_WORKSPACE"] = tempfile.mkdtemp(prefix="clinlabel-shots-")
    OUT.mkdir(parents=True, exist_ok=True)
    which = sys.argv[1:] or ["lesion_boxes", "grading", "tile_grading"]
    for name in which:
        globals()[name]()
        print(f"wrote {OUT / (name + '.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
