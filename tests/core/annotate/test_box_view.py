"""What the lesion table and size line say about a box (mm and mL, or px without a pixel size)."""

from __future__ import annotations

import numpy as np

from napari_clinlabel.core.annotate.box_view import (
    box_centre,
    box_shapes,
    size_text,
    table_header,
    table_rows,
)
from napari_clinlabel.core.annotate.boxes import LesionBox
from napari_clinlabel.core.image.geometry import Geometry

# spacing (x, y, z) = (0.5, 0.8, 2.0) mm
GEOM = Geometry((0.5, 0.8, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel().tolist()))


def test_rows_and_size_line_in_mm_by_hand():
    # slices 2..4 (3 × 2 mm = 6 mm deep), y 10 px × 0.8 = 8 mm, x 20 px × 0.5 = 10 mm → 0.48 mL
    box = LesionBox((1.5, 10, 20), (4.5, 20, 40), cls="malignant", confidence=4, created_by="dr.a")
    assert table_header(GEOM)[4:7] == ["y×x mm", "z mm", "mL"]
    assert table_rows({box.id: box}, GEOM) == [
        ["L1", "malignant", "4", "2–4", "8.0×10.0", "6.0", "0.48", "dr.a"]
    ]
    assert size_text(box, GEOM) == (
        "Size: 8.0 × 10.0 mm (y × x), 6.0 mm deep (2–4); volume 0.48 mL"
    )


def test_shapes_one_editable_rectangle_and_outlines_on_the_other_slices():
    box = LesionBox((1.5, 10, 20), (4.5, 20, 40), cls="benign")
    shapes = box_shapes({box.id: box}, {box.id: 3}, ["benign", "malignant"])
    assert shapes.ids == [box.id] and shapes.labels == ["L1 benign"]
    assert shapes.rects[0][:, 0].tolist() == [3.0] * 4
    assert sorted(r[0, 0] for r in shapes.extent) == [2.0, 4.0]
    np.testing.assert_array_equal(box_centre(box, 3), [3.0, 15.0, 30.0])
