"""Tile grids: ids, bounds, walking order, folders of tiles, CSV export."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from napari_clinlabel.core.annotate.grading import set_grade
from napari_clinlabel.core.annotate.tiles import TileGrid, grid_from_folder
from napari_clinlabel.core.errors import ClinlabelError, ExportError, InputError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.core.schema import load_schema

GEOM_2D = Geometry((0.5, 0.5), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))


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


def _tile_log(tmp_path):
    schema = load_schema("isup")
    log = AuditLog(
        tmp_path / "s.jsonl", {"uid": None, "sha256": "1" * 64}, Actor("p1", "P"), schema.ref()
    )
    for tid, v in [("r001c000", "3"), ("r000c002", "benign"), ("r000c002", "2")]:
        set_grade(log, schema.scales["isup"], v, item=tid)
    set_grade(log, schema.scales["isup"], "4", item="image")  # not a tile: never in the CSV
    return log


def test_csv_goes_through_the_export_gate(tmp_path):
    log = _tile_log(tmp_path)
    head = log.head()
    slide = Volume(np.zeros((64, 64), np.uint8), GEOM_2D, {})
    result = export(None, "tiles-csv", tmp_path / "grades", log=log, volume=slide, scale="isup")
    out = result.outputs[0].path
    assert out.name == "grades.csv"
    rows = list(csv.DictReader(out.open()))
    assert [(r["item"], r["grade"], r["grader"]) for r in rows] == [
        ("r000c002", "2", "p1"),
        ("r001c000", "3", "p1"),
    ]
    times = {r["time"] for r in rows}
    assert all(t.endswith("Z") for t in times)
    # one export record naming the file's sha256 (hashlib, of the bytes on disk) and the head
    rec = list(iter_records(log.path))[-1]
    assert rec["action"] == "export" and rec["actor"]["id"] == "p1"
    assert rec["data"]["format"] == "tiles-csv" and rec["data"]["scale"] == "isup"
    assert rec["data"]["outputs"] == [
        {"name": "grades.csv", "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
         "bytes": out.stat().st_size}
    ]  # fmt: skip
    assert rec["data"]["head"] == {"seq": head.seq, "hash": head.hash}
    # an unwritable destination: a clear message, the earlier CSV untouched, no record
    before = out.read_bytes()
    n = len(list(iter_records(log.path)))
    with pytest.raises(ExportError, match="does not exist"):
        export(None, "tiles-csv", tmp_path / "missing-folder" / "g.csv", log=log, volume=slide)
    assert out.read_bytes() == before and len(list(iter_records(log.path))) == n


def test_csv_refused_while_proposals_wait_or_without_tile_grades(tmp_path):
    log = _tile_log(tmp_path)
    slide = Volume(np.zeros((64, 64), np.uint8), GEOM_2D, {})
    with pytest.raises(ExportError, match="no tile grades on scale gleason"):
        export(None, "tiles-csv", tmp_path / "g.csv", log=log, volume=slide, scale="gleason")
    model = {"name": "m", "version": "1", "sha256": "cd" * 32}
    add_proposals(log, [ProposalDraft("grade", "3", 0.8, payload={"scale": "isup"})], model)
    n = len(list(iter_records(log.path)))
    with pytest.raises(ClinlabelError, match="undecided"):
        export(None, "tiles-csv", tmp_path / "g.csv", log=log, volume=slide)
    assert not (tmp_path / "g.csv").exists() and len(list(iter_records(log.path))) == n


def test_tissue_tiles_pass_over_glass_colour_and_grey():
    from skimage import color
    from support.tissue_slide import tissue_on_glass, tissue_tile_ids

    from napari_clinlabel.core.annotate.tiles import tissue_tiles

    img, drawn = tissue_on_glass((1536, 2048), tile=512)
    g = TileGrid(img.shape[:2], 512)
    truth = tissue_tile_ids(drawn, 512)  # the mask drawn, not this module's output
    assert truth == {"r001c001", "r001c002", "r002c000", "r002c001", "r002c002"}
    assert tissue_tiles(g, img, rgb=True) == truth  # full resolution
    assert tissue_tiles(g, img[::8, ::8], rgb=True) == truth  # an overview, as a pyramid level
    grey = (color.rgb2gray(img) * 255).astype(np.uint8)
    assert tissue_tiles(g, grey[::4, ::4], rgb=False) == truth
    # the dust on r000c000's glass is under the tissue fraction; at 0 % every speck counts
    assert "r000c000" in tissue_tiles(g, img[::2, ::2], rgb=True, min_fraction=0.0001)
    # walking: next ungraded / next tissue tile pass over glass, wrapping only for ungraded
    assert g.next_ungraded(g.ids[-1], [], among=truth) == "r001c001"
    assert g.next_ungraded("r001c002", ["r002c000"], among=truth) == "r002c001"
    assert g.next_ungraded("r000c000", truth, among=truth) is None
    assert g.next_among("r001c002", truth) == "r002c000" and g.next_among("r002c002", truth) is None


def test_tissue_tiles_without_contrast_skip_nothing():
    from napari_clinlabel.core.annotate.tiles import tissue_tiles

    g = TileGrid((600, 800), 200)
    blank = np.full((150, 200, 3), 240, np.uint8)  # all glass: nothing to tell apart
    assert tissue_tiles(g, blank, rgb=True) == set(g.ids)
    assert tissue_tiles(g, np.full((150, 200), 7, np.uint16), rgb=False) == set(g.ids)
