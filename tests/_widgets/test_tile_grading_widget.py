"""Tile grading by keyboard alone on the slide: 20 tiles → 20 records, CSV, progress, reopen."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_clinlabel._widgets.tile_grading import TileGradingWidget
from napari_clinlabel.core.image.samples import pathology_slide
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session

KEYS = [Qt.Key.Key_B, Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5]
VALUES = ["benign", "1", "2", "3", "4", "5"]


@pytest.fixture(scope="module")
def slide():
    return pathology_slide((2560, 3072), seed=1)  # 5 × 6 tiles of 512 px (ISUP schema)


def _open(make_napari_viewer, qtbot, slide):
    viewer = make_napari_viewer()
    levels = [slide.array, slide.array[::2, ::2], slide.array[::4, ::4]]
    meta = {"sha256": slide.sha256, "sample": "slide"}
    image = viewer.add_image(levels, multiscale=True, rgb=True, name="slide",
                             metadata={"clinlabel": meta})  # fmt: skip
    widget = TileGradingWidget(viewer)
    qtbot.addWidget(widget)
    return viewer, image, widget


def _press(qtbot, viewer, *keys):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    for k in keys:
        qtbot.keyClick(canvas, k)


def test_grade_twenty_tiles_by_keyboard(make_napari_viewer, qtbot, slide, tmp_path):
    viewer, image, w = _open(make_napari_viewer, qtbot, slide)
    assert w._schema_combo.currentText() == "isup"
    assert w.current == "r000c000" and w.progress_text == "0 of 30 graded"
    assert viewer.layers.selection.active is image
    assert len(viewer.layers["tile grid"].data) == 6 + 7  # outline only: row and column lines
    fills = viewer.layers["tile grades"]
    assert fills.data.shape == (5, 6, 4) and np.all(fills.data[..., 3] == 0)
    combo = w._image_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["slide"]  # not the overlay
    # one fill pixel covers exactly one tile of the slide
    assert image.world_to_data(fills.data_to_world((4, 5)))[:2] == pytest.approx((2303.5, 2815.5))

    for i in range(20):
        _press(qtbot, viewer, KEYS[i % 6])
    log = get_session(viewer).log_path_for(image)
    recs = [r for r in iter_records(log) if r["action"] == "grade.set"]
    assert len(recs) == 20
    want = {f"r{i // 6:03d}c{i % 6:03d}": VALUES[i % 6] for i in range(20)}
    assert {r["target"]["item"]: r["data"]["value"] for r in recs} == want
    assert all(r["target"]["scale"] == "isup" and r["schema"]["id"] == "isup" for r in recs)
    assert w.progress_text == "20 of 30 graded"
    assert verify_log(log).ok
    assert w.current == "r003c002"  # auto-advanced past the 20th tile
    alpha = fills.data[..., 3].reshape(-1)
    assert np.all(alpha[:20] > 0) and np.all(alpha[20:] == 0)

    # walking: ← / → / N / P / U
    _press(qtbot, viewer, Qt.Key.Key_Left)
    assert w.current == "r003c001"
    _press(qtbot, viewer, Qt.Key.Key_P, Qt.Key.Key_P)
    assert w.current == "r002c005"
    _press(qtbot, viewer, Qt.Key.Key_Right, Qt.Key.Key_N)
    assert w.current == "r003c001"
    _press(qtbot, viewer, Qt.Key.Key_U)
    assert w.current == "r003c002"
    rect = viewer.layers["current tile"].data[0]
    assert rect.min(axis=0) == pytest.approx([1535.5, 1023.5])

    # CSV matches the records
    out = w.export_csv(tmp_path / "tiles.csv")
    rows = list(csv.DictReader(out.open()))
    assert {r["item"]: r["grade"] for r in rows} == want
    assert {r["time"] for r in rows} == {r["time"] for r in recs}
    assert {r["grader"] for r in rows} == {recs[0]["actor"]["id"]}
    exported = list(iter_records(log))[-1]  # through the export gate: one export record
    assert exported["action"] == "export" and exported["data"]["format"] == "tiles-csv"
    assert exported["data"]["outputs"][0]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert verify_log(log).ok

    # reopen: grades, colours and progress come back; we resume at the first ungraded tile
    viewer2, image2, w2 = _open(make_napari_viewer, qtbot, slide)
    assert w2.grades == want and w2.progress_text == "20 of 30 graded"
    assert w2.current == "r003c002"
    assert np.all(viewer2.layers["tile grades"].data[..., 3].reshape(-1)[:20] > 0)


def test_folder_of_tiles(make_napari_viewer, qtbot, tmp_path):
    from skimage import io

    folder = tmp_path / "tiles"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for r in range(2):
        for c in range(3):
            tile = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
            io.imsave(folder / f"r{r:03d}c{c:03d}.png", tile, check_contrast=False)
    viewer = make_napari_viewer()
    w = TileGradingWidget(viewer)
    qtbot.addWidget(w)
    image = w.open_folder(folder)
    assert image.data.shape == (128, 192, 3) and w.progress_text == "0 of 6 graded"
    _press(qtbot, viewer, Qt.Key.Key_3, Qt.Key.Key_B)
    log = get_session(viewer).log_path_for(image)
    assert log.parent == tmp_path  # beside the folder
    got = [
        (r["target"]["item"], r["data"]["value"])
        for r in iter_records(log)
        if r["action"] == "grade.set"
    ]
    assert got == [("r000c000", "3"), ("r000c001", "benign")]

    # reopening the folder in a new viewer restores its grades
    viewer2 = make_napari_viewer()
    w2 = TileGradingWidget(viewer2)
    qtbot.addWidget(w2)
    w2.open_folder(folder)
    assert w2.grades == {"r000c000": "3", "r000c001": "benign"}
    assert w2.progress_text == "2 of 6 graded" and w2.current == "r000c002"
