"""Tile grids for pathologists: a large 2D image as tiles (or a folder of tiles), walked in order.

Tile ids are ``r<row:03d>c<col:03d>`` (``r003c007``: 4th row, 8th column). Reading order is row
by row, left to right. Grades of tiles are ordinary ``grade.set`` records whose ``item`` is the
tile id (see :mod:`.grading`).

:func:`tissue_tiles` tells tissue from bare glass on a low-resolution overview (Otsu's threshold
on saturation for colour, on grey level for grey images, scikit-image), so walking the grid can
pass over background; the background tiles stay in the grid and can be visited explicitly.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import color, filters
from skimage import io as skio

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.safe_text import csv_row

_ID = re.compile(r"^r(\d+)c(\d+)$")
TILE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


def tile_id(row: int, col: int) -> str:
    """The id of the tile at ``row``, ``col``."""
    return f"r{row:03d}c{col:03d}"


def parse_tile_id(tid: str) -> tuple[int, int]:
    """(row, col) of a tile id; InputError for anything else."""
    m = _ID.match(str(tid))
    if not m:
        raise InputError(f"{tid!r} is not a tile id (expected like 'r003c007').")
    return int(m.group(1)), int(m.group(2))


def is_tile_id(item: object) -> bool:
    """True for a tile id (``r003c007``), False for any other grade item (``image``, a UID)."""
    return bool(_ID.match(str(item)))


class TileGrid:
    """A grid of ``tile_size`` tiles over an image of ``shape_yx`` pixels (edge tiles clipped).

    ``tile_size`` is one edge length, or ``(height, width)`` for rectangular tiles.
    """

    def __init__(self, shape_yx: tuple[int, int], tile_size: int | tuple[int, int]) -> None:
        h, w = (int(v) for v in shape_yx[:2])
        th, tw = (tile_size, tile_size) if np.isscalar(tile_size) else tuple(tile_size)[:2]
        th, tw = int(th), int(tw)
        if min(th, tw, h, w) <= 0:
            raise InputError(f"Cannot tile an image of {h}×{w} pixels with tiles of {th}×{tw}.")
        self.shape_yx = (h, w)
        self.tile_hw = (th, tw)
        self.tile_size = th
        self.rows = -(-h // th)
        self.cols = -(-w // tw)
        self.ids = [tile_id(r, c) for r in range(self.rows) for c in range(self.cols)]
        self._order = {t: i for i, t in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, tid: object) -> bool:
        return tid in self._order

    def index(self, tid: str) -> int:
        """Position of a tile in reading order."""
        try:
            return self._order[tid]
        except KeyError:
            raise InputError(f"Tile {tid!r} is not in this {self.rows}×{self.cols} grid.") from None

    def bounds(self, tid: str) -> tuple[int, int, int, int]:
        """Pixel bounds ``(y0, x0, y1, x1)`` (end-exclusive) of a tile."""
        self.index(tid)
        r, c = parse_tile_id(tid)
        th, tw = self.tile_hw
        return (
            r * th,
            c * tw,
            min((r + 1) * th, self.shape_yx[0]),
            min((c + 1) * tw, self.shape_yx[1]),
        )

    def tile_at(self, y: float, x: float) -> str | None:
        """The id of the tile holding pixel position (y, x) (napari data coordinates), or None."""
        r, c = (
            int(np.floor((y + 0.5) / self.tile_hw[0])),
            int(np.floor((x + 0.5) / self.tile_hw[1])),
        )
        tid = tile_id(r, c) if r >= 0 and c >= 0 else None
        return tid if tid in self._order else None

    def grid_lines(self) -> list[np.ndarray]:
        """The tile boundaries as napari lines (pairs of (y, x) points on pixel edges)."""
        h, w = self.shape_yx
        th, tw = self.tile_hw
        ys = [min(r * th, h) - 0.5 for r in range(self.rows + 1)]
        xs = [min(c * tw, w) - 0.5 for c in range(self.cols + 1)]
        lines = [np.array([[y, -0.5], [y, w - 0.5]]) for y in ys]
        lines += [np.array([[-0.5, x], [h - 0.5, x]]) for x in xs]
        return lines

    def neighbours(self, tid: str) -> dict[str, str]:
        """Adjacent tiles by direction (``up``, ``down``, ``left``, ``right``) that exist."""
        r, c = parse_tile_id(tid)
        self.index(tid)
        out = {}
        for name, (dr, dc) in {
            "up": (-1, 0),
            "down": (1, 0),
            "left": (0, -1),
            "right": (0, 1),
        }.items():
            if 0 <= r + dr < self.rows and 0 <= c + dc < self.cols:
                out[name] = tile_id(r + dr, c + dc)
        return out

    def next(self, tid: str) -> str:
        """The tile after ``tid`` in reading order (the last stays)."""
        return self.ids[min(self.index(tid) + 1, len(self.ids) - 1)]

    def previous(self, tid: str) -> str:
        """The tile before ``tid`` in reading order (the first stays)."""
        return self.ids[max(self.index(tid) - 1, 0)]

    def next_ungraded(
        self, tid: str, graded: Iterable[str], among: Iterable[str] | None = None
    ) -> str | None:
        """The first ungraded tile after ``tid`` in reading order, wrapping; None if all graded.

        ``among`` (e.g. the tissue tiles) limits the candidates; None means every tile.
        """
        done = set(graded)
        allowed = None if among is None else set(among)
        start = self.index(tid)
        n = len(self.ids)
        for k in range(1, n + 1):
            cand = self.ids[(start + k) % n]
            if cand not in done and (allowed is None or cand in allowed):
                return cand
        return None

    def next_among(self, tid: str, among: Iterable[str]) -> str | None:
        """The first tile of ``among`` after ``tid`` in reading order (no wrapping), or None."""
        allowed = set(among)
        return next((t for t in self.ids[self.index(tid) + 1 :] if t in allowed), None)

    def progress(self, graded: Iterable[str]) -> tuple[int, int]:
        """(tiles of this grid graded, tiles in the grid)."""
        return len(set(graded) & set(self._order)), len(self.ids)

    def rectangles(self, ids: Iterable[str] | None = None) -> list[np.ndarray]:
        """Tile outlines as napari rectangles (4 corners (y, x), pixel-edge aligned)."""
        out = []
        for tid in self.ids if ids is None else ids:
            y0, x0, y1, x1 = self.bounds(tid)
            out.append(np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float) - 0.5)
        return out


MIN_TISSUE_FRACTION = 0.05  # a tile with less tissue than this (dust, a fibre) is background
_FLAT = 0.02  # values spanning less than this (of the full range): no glass/tissue split


def tissue_mask(overview: np.ndarray, rgb: bool) -> np.ndarray:
    """Tissue pixels of an image (or its low-resolution overview), as a bool (y, x) mask.

    Colour: saturation (HSV) above Otsu's threshold: glass is white/grey, stained tissue is not.
    Grey: grey level below Otsu's threshold (bright-field: tissue absorbs light). An image with
    no contrast between the two (all glass, or all tissue) is all tissue: nothing is skipped.
    """
    img = np.asarray(overview)
    if rgb:
        values = color.rgb2hsv(img[..., :3])[..., 1]  # saturation in [0, 1] for any dtype
    else:
        values = img.astype(np.float64)
        if img.dtype.kind in "ui":  # on the type's range, so a flat image stays flat
            values /= float(np.iinfo(img.dtype).max)
        elif values.size and np.ptp(values) > 0:
            values = (values - values.min()) / np.ptp(values)
        values = 1.0 - values  # darker is more tissue-like
    if values.size == 0 or float(np.ptp(values)) < _FLAT:
        return np.ones(values.shape[:2], bool)
    return values > filters.threshold_otsu(values)


def tissue_tiles(
    grid: TileGrid,
    overview: np.ndarray,
    rgb: bool,
    min_fraction: float = MIN_TISSUE_FRACTION,
) -> set[str]:
    """Ids of the tiles of ``grid`` holding at least ``min_fraction`` tissue.

    ``overview`` is the whole image at any (integer or not) downsampling, e.g. a slide's smallest
    pyramid level: each tile's fraction is measured on the overview pixels under it.
    """
    mask = tissue_mask(overview, rgb)
    h, w = grid.shape_yx
    fy, fx = mask.shape[0] / h, mask.shape[1] / w
    out = set()
    for tid in grid.ids:
        y0, x0, y1, x1 = grid.bounds(tid)
        sub = mask[
            int(y0 * fy) : max(int(np.ceil(y1 * fy)), int(y0 * fy) + 1),
            int(x0 * fx) : max(int(np.ceil(x1 * fx)), int(x0 * fx) + 1),
        ]
        if sub.size and float(sub.mean()) >= min_fraction:
            out.add(tid)
    return out


class FolderTiles(TileGrid):
    """A folder of equally sized tile images laid out as a grid.

    Files named ``r<row>c<col>.<ext>`` keep their position; otherwise the files, sorted by name,
    fill a near-square grid in reading order. ``paths`` maps tile id to file.
    """

    def __init__(self, paths: dict[str, Path], rows: int, cols: int, tile_shape: tuple[int, ...]):
        self.tile_shape = tuple(tile_shape)
        th, tw = int(tile_shape[0]), int(tile_shape[1])
        super().__init__((rows * th, cols * tw), (th, tw))
        self.paths = paths
        self.ids = [t for t in self.ids if t in paths]
        self._order = {t: i for i, t in enumerate(self.ids)}

    def mosaic(self) -> np.ndarray:
        """All tiles assembled into one image (for display); missing positions stay black."""
        h, w = self.shape_yx
        out = np.zeros((h, w, *self.tile_shape[2:]), dtype=np.uint8)
        for tid, path in self.paths.items():
            y0, x0, y1, x1 = self.bounds(tid)
            out[y0:y1, x0:x1] = _read_tile(path, skio)
        return out


def _read_tile(path: Path, skio: Any) -> np.ndarray:
    try:
        return np.asarray(skio.imread(str(path)))
    except Exception as exc:  # noqa: BLE001 - any decoder error is bad input
        raise InputError(
            f"{path}: cannot read this tile image ({exc}); replace the file."
        ) from None


def grid_from_folder(folder: str | os.PathLike[str]) -> FolderTiles:
    """The tiles of a folder of tile images (all the same size) as a grid."""
    root = Path(folder)
    files = (
        sorted(p for p in root.iterdir() if p.suffix.lower() in TILE_SUFFIXES)
        if root.is_dir()
        else []
    )
    if not files:
        raise InputError(
            f"{root}: no tile images (.png, .tif, .jpg) found; choose a folder of tiles."
        )
    first = _read_tile(files[0], skio)
    named = [_ID.match(p.stem) for p in files]
    if all(named):
        paths = {
            tile_id(int(m.group(1)), int(m.group(2))): p for m, p in zip(named, files, strict=True)
        }
        rows = 1 + max(parse_tile_id(t)[0] for t in paths)
        cols = 1 + max(parse_tile_id(t)[1] for t in paths)
    else:
        cols = int(np.ceil(np.sqrt(len(files))))
        rows = -(-len(files) // cols)
        paths = {tile_id(i // cols, i % cols): p for i, p in enumerate(files)}
    for p in files[1:]:
        with Image.open(p) as im:
            size = (im.height, im.width)
        if size != first.shape[:2]:
            raise InputError(
                f"{p}: tile is {size[0]}×{size[1]} but {files[0].name} is "
                f"{first.shape[0]}×{first.shape[1]}; all tiles of a folder must be the same size."
            )
    return FolderTiles(paths, rows, cols, first.shape)


def tile_grades_csv_bytes(grades: dict[Any, Any], scale: str | None = None) -> bytes:
    """Tile grades as CSV bytes (``item,grade,grader,time``), in reading order.

    ``grades`` is :func:`.grading.load_grades` output; only tile items (ids like ``r003c007``)
    of ``scale`` (default: every scale) are written. The file itself is written by the export
    gate (``core.export.gate.export(..., "tiles-csv", ...)``), which logs an ``export`` record.
    """
    rows = []
    for (sc, item), g in grades.items():
        if (scale is None or sc == scale) and is_tile_id(item):
            rows.append((parse_tile_id(item), item, g.value, g.grader, g.time))
    rows.sort()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["item", "grade", "grader", "time"])
    for _, item, value, grader, time in rows:
        w.writerow(csv_row([item, value, grader, time]))
    return buf.getvalue().encode("utf-8")
