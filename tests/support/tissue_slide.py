"""A synthetic bright-field slide: stained tissue on white glass, with its tissue tiles known by
construction (the drawn mask), for tests of tissue detection and of walking past bare glass."""

from __future__ import annotations

import numpy as np

GLASS = (242, 241, 245)
TISSUE = (214, 140, 188)  # eosin pink
NUCLEI = (92, 60, 140)  # haematoxylin purple


def tissue_on_glass(
    shape: tuple[int, int] = (1536, 2048), tile: int = 512, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 slide and its drawn tissue mask.

    Tissue fills the tiles of rows 1–2, columns 1–2 (on a ``tile`` grid) and a disc reaching
    into row 2, column 0, with pale lumens and dark nuclei inside; a few dust specks (under 1 % of
    a tile) lie on the glass of the first tile. Everything else is glass with sensor noise.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    tissue = (yy >= tile) & (yy < 3 * tile) & (xx >= tile) & (xx < 3 * tile)
    tissue |= np.hypot(yy - 2.5 * tile, xx - tile) < 0.45 * tile
    img = np.empty((h, w, 3), np.float32)
    img[:] = GLASS
    img[tissue] = TISSUE
    lumen = tissue & (np.sin(yy / 23.0) * np.sin(xx / 31.0) > 0.8)
    img[lumen] = GLASS
    nuclei = tissue & ~lumen & (rng.random((h, w)) < 0.08)
    img[nuclei] = NUCLEI
    for _ in range(6):  # dust on the glass of tile r000c000: a few pixels each
        y, x = rng.integers(40, tile - 40, 2)
        img[y : y + 4, x : x + 4] = NUCLEI
    img += rng.normal(0, 2.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), tissue


def tissue_tile_ids(mask: np.ndarray, tile: int, min_fraction: float = 0.05) -> set[str]:
    """Tiles whose drawn tissue covers at least ``min_fraction`` (the ground truth)."""
    out = set()
    for r in range(-(-mask.shape[0] // tile)):
        for c in range(-(-mask.shape[1] // tile)):
            sub = mask[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
            if sub.mean() >= min_fraction:
                out.add(f"r{r:03d}c{c:03d}")
    return out
