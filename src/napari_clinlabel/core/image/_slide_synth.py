"""Procedural H&E-like slide: each pixel depends only on its position and the seed.

Any region at any power-of-two downsampling renders on its own, so a huge pyramidal TIFF can be
written tile by tile. Glands sit on a jittered grid of cells; a smooth "grade field" over the
slide sets each gland's pattern (regular round glands → small crowded glands → cribriform →
solid sheets), so tiles from different regions look different.
"""

from __future__ import annotations

import numpy as np

CELL = 160  # gland grid cell, full-resolution pixels
BACKGROUND = np.array([243, 241, 245], np.float32)
STROMA = np.array([232, 160, 196], np.float32)
CYTOPLASM = np.array([206, 132, 186], np.float32)
NUCLEUS = np.array([78, 48, 128], np.float32)
LUMEN = np.array([248, 244, 248], np.float32)


def _hash01(iy: np.ndarray, ix: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer pixel position."""
    h = iy.astype(np.uint64) * np.uint64(73856093) ^ ix.astype(np.uint64) * np.uint64(19349663)
    h ^= np.uint64((seed * 83492791 + 12345) & 0xFFFFFFFF)
    h = (h ^ (h >> np.uint64(13))) * np.uint64(0x5BD1E995)
    h ^= h >> np.uint64(15)
    return (h & np.uint64(0xFFFF)).astype(np.float32) / 65536.0


def _grade_field(u: float, v: float, seed: int) -> float:
    """Smooth field in [0, 1] over normalised slide coordinates; sets the gland pattern."""
    a = 0.7 * seed
    g = 0.5 + 0.32 * np.sin(2 * np.pi * (1.1 * u) + a) * np.cos(2 * np.pi * (0.9 * v) + 0.5 * a)
    g += 0.18 * np.sin(2 * np.pi * (1.7 * u + 1.3 * v) + 1.3 + a)
    return float(np.clip(g, 0.0, 0.999))


def _tissue_mask(yf: np.ndarray, xf: np.ndarray, shape: tuple[int, int], seed: int) -> np.ndarray:
    u = yf / shape[0] - 0.5
    v = xf / shape[1] - 0.5
    theta = np.arctan2(u, v)
    edge = 1.0 + 0.07 * np.sin(3 * theta + seed) + 0.04 * np.sin(7 * theta + 2 * seed)
    return np.hypot(u / 0.46, v / 0.44) <= edge


def render_slide_region(
    y0: int,
    x0: int,
    h: int,
    w: int,
    shape: tuple[int, int],
    seed: int = 0,
    downsample: int = 1,
) -> np.ndarray:
    """RGB uint8 (h, w, 3) of the slide region at level pixel (y0, x0), 1/``downsample`` scale."""
    f = downsample
    ly = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
    lx = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
    yf = (ly + 0.5) * f  # full-resolution coordinates of pixel centres
    xf = (lx + 0.5) * f
    iy = np.floor(yf).astype(np.int64)
    ix = np.floor(xf).astype(np.int64)
    noise = _hash01(iy, ix, seed)
    fibres = 0.5 + 0.5 * np.sin(0.045 * xf + 2.5 * np.sin(0.011 * yf + seed) + 0.02 * yf)
    img = np.broadcast_to(STROMA, (h, w, 3)).copy()
    img -= (18 * fibres + 14 * noise)[..., None]
    # scattered stromal nuclei (visible at full resolution, averaged out when downsampled)
    speck = noise < 0.012 if f == 1 else np.zeros((h, w), bool)
    img[speck] = NUCLEUS + 30

    # glands whose cells intersect the region (cells in full-res pixels)
    fy0, fx0, fy1, fx1 = y0 * f, x0 * f, (y0 + h) * f, (x0 + w) * f
    for cy in range(max(fy0 // CELL - 1, 0), min(fy1 // CELL + 2, -(-shape[0] // CELL))):
        for cx in range(max(fx0 // CELL - 1, 0), min(fx1 // CELL + 2, -(-shape[1] // CELL))):
            _draw_gland(img, yf, xf, iy, ix, cy, cx, shape, seed, f, noise)

    tissue = _tissue_mask(yf, xf, shape, seed)
    tissue &= (yf < shape[0]) & (xf < shape[1])
    img[~np.broadcast_to(tissue, (h, w))] = BACKGROUND
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_gland(img, yf, xf, iy, ix, cy, cx, shape, seed, f, noise) -> None:  # noqa: PLR0913
    rng = np.random.default_rng([seed, cy, cx, 7])
    gy = (cy + 0.5 + rng.uniform(-0.18, 0.18)) * CELL
    gx = (cx + 0.5 + rng.uniform(-0.18, 0.18)) * CELL
    grade = _grade_field(gy / shape[0], gx / shape[1], seed)
    kind = int(grade * 4)  # 0 regular, 1 small crowded, 2 cribriform, 3 solid
    if rng.random() < 0.12 + 0.1 * (kind == 1):
        return  # stroma-only cell
    radius = CELL * (0.42, 0.26, 0.40, 0.44)[kind] * rng.uniform(0.8, 1.1)
    wobble = (0.04, 0.12, 0.18, 0.25)[kind]
    harm = rng.uniform(0, 2 * np.pi, 3).astype(np.float32)
    ecc = rng.uniform(0.75, 1.0)
    rot = np.float32(rng.uniform(0, np.pi))
    # bounding box in level pixels
    ext = radius * (1 + wobble) + 2
    h, w = img.shape[:2]
    ry0 = max(int(np.floor((gy - ext) / f - (yf[0, 0] / f - 0.5))), 0)
    ry1 = min(int(np.ceil((gy + ext) / f - (yf[0, 0] / f - 0.5))) + 1, h)
    rx0 = max(int(np.floor((gx - ext) / f - (xf[0, 0] / f - 0.5))), 0)
    rx1 = min(int(np.ceil((gx + ext) / f - (xf[0, 0] / f - 0.5))) + 1, w)
    if ry0 >= ry1 or rx0 >= rx1:
        return
    dy = yf[ry0:ry1] - gy
    dx = xf[:, rx0:rx1] - gx
    ay = dy * np.cos(rot) - dx * np.sin(rot)
    ax = (dy * np.sin(rot) + dx * np.cos(rot)) * ecc
    theta = np.arctan2(ay, ax)
    edge = 1 + wobble * (
        np.sin(3 * theta + harm[0]) * 0.6
        + np.sin(5 * theta + harm[1]) * 0.3
        + np.sin(9 * theta + harm[2]) * 0.2
    )
    rho = np.hypot(ay, ax) / (radius * edge)
    sub = img[ry0:ry1, rx0:rx1]
    nz = noise[ry0:ry1, rx0:rx1]
    inside = rho <= 1.0
    sub[inside] = CYTOPLASM - 10 * nz[inside, None]
    nuclei_band = (rho > 0.78) & (rho <= 0.96)
    n_nuclei = int(2 * np.pi * radius / 9)
    band = np.nonzero(nuclei_band)
    bead = 0.5 + 0.5 * np.sin(n_nuclei * theta[band] + harm[0]) > (0.35 + 0.25 * (kind >= 2))
    on = (band[0][bead], band[1][bead])
    sub[on] = NUCLEUS + 25 * nz[on][:, None]
    if kind == 0:
        lumen = rho < 0.62
    elif kind == 1:
        lumen = rho < 0.45
    elif kind == 2:
        holes = np.sin(0.16 * (yf[ry0:ry1] + harm[1] * 9)) * np.sin(
            0.16 * (xf[:, rx0:rx1] + harm[2] * 9)
        )
        lumen = (rho < 0.8) & (holes > 0.55)
        dense = (rho < 0.8) & ~lumen & (nz < 0.45)
        sub[dense] = NUCLEUS + 30 * nz[dense, None]
    else:
        lumen = np.zeros_like(inside)
        dense = inside & (nz < 0.55)
        sub[dense] = NUCLEUS + 40 * nz[dense, None]
    sub[lumen] = LUMEN - 6 * nz[lumen, None]
