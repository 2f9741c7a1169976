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


# The slide's four corner tiles are bare glass (the generator's tissue mask covers under 5 % of
# them: r000c000, r000c005, r004c000, r004c005); the other 26 hold tissue, in reading order.
GLASS = {"r000c000", "r000c005", "r004c000", "r004c005"}
TISSUE = [
    f"r{i // 6:03d}c{i % 6:03d}" for i in range(30) if f"r{i // 6:03d}c{i % 6:03d}" not in GLASS
]


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
    assert w.tissue == set(TISSUE)
    assert w.current == "r000c001"  # the first tile with tissue, not the glass of r000c000
    assert w.progress_text == "0 of 26 graded (4 tiles of bare glass passed over)"
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
    want = {tid: VALUES[i % 6] for i, tid in enumerate(TISSUE[:20])}  # glass passed over
    assert {r["target"]["item"]: r["data"]["value"] for r in recs} == want
    assert all(r["target"]["scale"] == "isup" and r["schema"]["id"] == "isup" for r in recs)
    assert w.progress_text == "20 of 26 graded (4 tiles of bare glass passed over)"
    assert verify_log(log).ok
    assert w.current == "r003c004"  # auto-advanced past the 20th tile
    alpha = fills.data[..., 3]
    graded = np.zeros((5, 6), bool)
    for tid in want:
        graded[int(tid[1:4]), int(tid[5:8])] = True
    assert np.all(alpha[graded] > 0) and np.all(alpha[~graded] == 0)

    # walking: ← / → / N / P / U
    _press(qtbot, viewer, Qt.Key.Key_Left)
    assert w.current == "r003c003"
    _press(qtbot, viewer, Qt.Key.Key_P, Qt.Key.Key_P)
    assert w.current == "r003c001"
    _press(qtbot, viewer, Qt.Key.Key_Right, Qt.Key.Key_N)
    assert w.current == "r003c003"
    _press(qtbot, viewer, Qt.Key.Key_U)
    assert w.current == "r003c004"
    rect = viewer.layers["current tile"].data[0]
    assert rect.min(axis=0) == pytest.approx([1535.5, 2047.5])

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
    assert w2.grades == want and w2.progress_text.startswith("20 of 26 graded")
    assert w2.current == "r003c004"
    alpha2 = viewer2.layers["tile grades"].data[..., 3]
    assert np.all(alpha2[graded] > 0) and np.all(alpha2[~graded] == 0)


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


def test_walk_passes_over_bare_glass(make_napari_viewer, qtbot):
    """Tissue blob on white glass: the first tile, U and the move after a grade skip the glass;
    N and a click still reach a glass tile, which the user may grade; nothing is recorded for a
    tile passed over."""
    from qtpy.QtWidgets import QPushButton
    from support.tissue_slide import tissue_on_glass, tissue_tile_ids

    img, drawn = tissue_on_glass((1536, 2048), tile=512)
    truth = tissue_tile_ids(drawn, 512)  # r001c001 r001c002 r002c000 r002c001 r002c002
    viewer = make_napari_viewer()
    meta = {"sha256": hashlib.sha256(img.tobytes()).hexdigest(), "sample": "glass"}
    levels = [img, img[::2, ::2], img[::4, ::4]]
    image = viewer.add_image(levels, multiscale=True, rgb=True, name="glass",
                             metadata={"clinlabel": meta})  # fmt: skip
    w = TileGradingWidget(viewer)
    qtbot.addWidget(w)
    assert w.tissue == truth
    assert w.current == "r001c001"  # not r000c000 (glass with dust)
    assert w.progress_text == "0 of 5 graded (7 tiles of bare glass passed over)"
    log = get_session(viewer).log_path_for(image)

    def grades():
        return [(r["target"]["item"], r["data"]["value"]) for r in iter_records(log)
                if r["action"] == "grade.set"]  # fmt: skip

    _press(qtbot, viewer, Qt.Key.Key_2)  # grade r001c001; moves on past r001c003's glass
    assert w.current == "r001c002"
    _press(qtbot, viewer, Qt.Key.Key_3)
    assert w.current == "r002c000"  # r001c003 (glass) passed over
    u_btn = next(b for b in w.findChildren(QPushButton) if b.text().startswith("U"))
    qtbot.mouseClick(u_btn, Qt.MouseButton.LeftButton)
    assert w.current == "r002c001"  # U: next ungraded tissue tile after the current one
    qtbot.mouseClick(u_btn, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(u_btn, Qt.MouseButton.LeftButton)
    assert w.current == "r002c000"  # wrapped, past r002c003 and row 0's glass
    n_btn = next(b for b in w.findChildren(QPushButton) if b.text().startswith("N"))
    for _ in range(3):
        qtbot.mouseClick(n_btn, Qt.MouseButton.LeftButton)
    assert w.current == "r002c003"  # N visits glass when the user walks there
    assert "bare glass" in w._tile.text()
    assert grades() == [("r001c001", "2"), ("r001c002", "3")]  # walking records nothing
    _press(qtbot, viewer, Qt.Key.Key_B)  # the user chose to grade this glass tile
    assert w.current == "r002c003"  # no tissue after it in reading order: stays
    _press(qtbot, viewer, Qt.Key.Key_U)
    assert w.current == "r002c000"
    for key in (Qt.Key.Key_1, Qt.Key.Key_1, Qt.Key.Key_1):
        _press(qtbot, viewer, key)
    assert grades() == [("r001c001", "2"), ("r001c002", "3"), ("r002c003", "benign"),
                        ("r002c000", "1"), ("r002c001", "1"), ("r002c002", "1")]  # fmt: skip
    assert w.progress_text == "6 of 6 graded (7 tiles of bare glass passed over)"
    _press(qtbot, viewer, Qt.Key.Key_U)
    assert w._tile.text() == "Every tile with tissue is graded."
    glass_items = {i for i, _ in grades()} - truth
    assert glass_items == {"r002c003"}  # the only glass tile in the log is the one graded
    assert verify_log(log).ok
