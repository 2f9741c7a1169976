"""Re-create docs/img/linked_views_ct.png: the CT phantom with the abdomen window, a RECIST
measurement on a liver lesion, the lesion painted, and the linked coronal/sagittal views with
the crosshair through the lesion (the main view's crosshair layer listed, locked).

Run under a display::

    xvfb-run -a -s "-screen 0 1800x1100x24" python scripts/screenshot_linked_views.py [OUT.png]

Everything (sample file, log) is written to a temporary folder.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from _shot import shoot

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "linked_views_ct.png"
SIZE = (1700, 1000)


def main(out: Path = OUT) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="clinlabel-linked-shot-"))
    os.environ["CLINLABEL_WORKSPACE"] = str(tmp / "workspace")
    os.environ.setdefault("CLINLABEL_USER", "demo.reader")

    import napari
    from scipy import ndimage

    from napari_clinlabel.api import write_sample
    from napari_clinlabel.core.image.samples import LESION, ct_phantom_truth
    from napari_clinlabel.core.schema import load_schema
    from napari_clinlabel.glue.session import get_session

    _, truth = ct_phantom_truth()
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    [image] = viewer.open(str(write_sample("ct", tmp)), plugin="napari-clinlabel")
    get_session(viewer).set_schema(image, load_schema("abdomen-ct"))  # the schema's colours
    _, aids = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Reading aids")
    aids.apply_preset("abdomen")
    labels = get_session(viewer).labels_layer_for(image)
    comps, n = ndimage.label(truth == LESION)
    sizes = ndimage.sum_labels(np.ones_like(comps), comps, range(1, n + 1))
    lesion = comps == int(np.argmax(sizes)) + 1  # the largest liver lesion
    labels.selected_label = LESION
    labels.data_setitem(np.nonzero(lesion), LESION)  # napari's own edit path: one record
    z, y, x = (int(round(c)) for c in ndimage.center_of_mass(lesion))
    ys, xs = np.nonzero(lesion[z])
    _, linked = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Linked views")
    viewer.layers.selection.active = image
    linked.set_crosshair(image.data_to_world((z, y + 4, x - 6)))  # beside the RECIST axes
    # RECIST: the long axis across the lesion's slice, then the short axis across it
    long_ = [(z, y, xs.min()), (z, y, xs.max())]
    short = [(z, ys.min(), x), (z, ys.max(), x)]
    aids._kind.setCurrentText("recist")
    shapes = aids.start_measuring()  # a layer in world coordinates (mm)
    for line in (long_, short):
        shapes.add_lines(np.asarray([image.data_to_world(p) for p in line]))
    shapes.mode = "pan_zoom"
    viewer.layers.selection.active = image
    viewer.reset_view()
    return shoot(viewer, out, tmp, 1200)


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
