"""Tile grids: ids, bounds, walking order, folders of tiles, CSV export."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from napari_clinlabel.core.annotate.grading import load_grades, set_grade
from napari_clinlabel.core.annotate.tiles import TileGrid, grid_from_folder, tile_grades_csv
from napari_clinlabel.core.errors import ExportError, InputError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.schema import load_schema


def test_grid_ids_bounds_and_walk():
    g = TileGrid((1000, 1300), 512)
    assert (g.rows, g.cols, len(g)) == (2, 3, 6)
    assert g.ids[:4] == ["r000c000", "r000c001", "r000c002", "r001c000"]
    assert g.bounds("r001c002") == (512, 1024, 1000, 1300)
    assert g.neighbours("r000c001") == {"down": "r001c001", "left": "r000c000", "right": "r000c002"}
    assert g.next("r000c002") == "r001c000" and g.previous("r001c000") == "r000c002"
    assert g.next("r001c002") == "r001c002" and g.previous("r000c000") == "r000c000"
    assert g.next_ungraded("r000c000", ["r000c001", "r000c002"]) == "r001c000"
    assert g.next_ungraded("r001c002", ["r001c002"]) == "r000c000"  # wraps
    assert g.next_ungraded("r000c000", g.ids) is None
    assert g.progress(["r000c000", "r000c000", "zzz"]) == (1, 6)
    # the outlines tile the image exactly
    area = sum(np.ptp(r[:, 0]) * np.ptp(r[:, 1]) for r in g.rectangles())
    assert area == 1000 * 1300
    assert g.tile_at(511.4, 0) == "r000c000" and g.tile_at(511.6, 1299) == "r001c002"
    assert g.tile_at(-3, 5) is None and g.tile_at(1200, 5) is None
    lines = g.grid_lines()
    assert len(lines) == 3 + 4 and lines[1][0, 0] == 511.5 and lines[2][0, 0] == 999.5
    with pytest.raises(InputError, match="not in this 2×3 grid"):
        g.bounds("r005c000")


def test_folder_of_tiles(tmp_path):
    from skimage import io

    for name in ("r000c000", "r000c001", "r001c000"):
        io.imsave(tmp_path / f"{name}.png", np.full((32, 40, 3), 7, np.uint8), check_contrast=False)
    g = grid_from_folder(tmp_path)
    assert g.ids == ["r000c000", "r000c001", "r001c000"] and g.shape_yx == (64, 80)
    assert (g.rows, g.cols) == (2, 2) and g.bounds("r000c001") == (0, 40, 32, 80)
    assert g.mosaic().shape == (64, 80, 3)
    io.imsave(tmp_path / "r001c001.png", np.zeros((10, 10, 3), np.uint8), check_contrast=False)
    with pytest.raises(InputError, match="same size"):
        grid_from_folder(tmp_path)
    with pytest.raises(InputError, match="no tile images"):
        grid_from_folder(tmp_path / "empty")


def test_csv(tmp_path):
    schema = load_schema("isup")
    log = AuditLog(
        tmp_path / "s.jsonl", {"uid": None, "sha256": "1" * 64}, Actor("p1", "P"), schema.ref()
    )
    for tid, v in [("r001c000", "3"), ("r000c002", "benign"), ("r000c002", "2")]:
        set_grade(log, schema.scales["isup"], v, item=tid)
    out = tile_grades_csv(load_grades(log.path), tmp_path / "grades.csv")
    rows = list(csv.DictReader(out.open()))
    assert [(r["item"], r["grade"], r["grader"]) for r in rows] == [
        ("r000c002", "2", "p1"),
        ("r001c000", "3", "p1"),
    ]
    times = {r["time"] for r in rows}
    assert all(t.endswith("Z") for t in times)
    # an unwritable destination: a clear message, the earlier CSV untouched
    before = out.read_bytes()
    with pytest.raises(ExportError, match="cannot write the CSV"):
        tile_grades_csv(load_grades(log.path), tmp_path / "missing-folder" / "grades.csv")
    assert out.read_bytes() == before
