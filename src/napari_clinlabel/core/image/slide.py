"""Large 2D TIFFs (pathology slides) as lazy multiscale Volumes, never read whole.

Levels are tifffile's zarr arrays (each read decodes only the tiles it touches), largest first.
A pyramidal TIFF (SubIFDs or series levels) gives its own levels; a big TIFF without a pyramid
gets lazily subsampled levels (every 2nd, 4th, … pixel, :class:`StridedLevel`), so its overview
costs one streamed pass over the file with bounded memory. (dask was tried and dropped: a
40 000² slide has 24 649 tiles, and dask graphs that size took seconds and 100 MB per level.)

Digest: decoding a whole slide is exactly what opening must avoid, so ``meta["sha256"]`` of a
slide is the sha256 of the file's bytes, streamed in 8 MiB blocks (it covers every level and the
TIFF structure); ``meta["sha256_kind"]`` says ``"file"``. Other images digest their voxels.

Pixel size: from the resolution tags when they are in inches or centimetres; a slide without
them opens on a unit grid with ``meta["spacing_known"] = False`` (sizes in pixels, never mm).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import PixelGeometry, Volume

MIN_LEVEL_SIDE = 1024  # stop adding subsampled levels below this size


class StridedLevel:
    """Every ``factor``-th pixel of a lazy (y, x[, c]) array, read on demand."""

    def __init__(self, base: Any, factor: int) -> None:
        self.base, self.factor = base, factor
        h, w = base.shape[:2]
        self.shape = (-(-h // factor), -(-w // factor), *base.shape[2:])
        self.dtype = base.dtype
        self.ndim = len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:i] + fill + key[i + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        base_key = []
        for axis, k in enumerate(key):
            f = self.factor if axis < 2 else 1
            n = self.shape[axis]
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step <= 0:
                    raise IndexError("StridedLevel supports positive steps only")
                stop = max(stop, start)
                base_key.append(
                    slice(start * f, (stop - 1) * f + 1 if stop > start else start * f, step * f)
                )
            else:
                i = int(k) + (n if int(k) < 0 else 0)
                if not 0 <= i < n:
                    raise IndexError(f"index {k} out of range for axis {axis} of size {n}")
                base_key.append(i * f)
        return np.asarray(self.base[tuple(base_key)])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self[...]
        return a.astype(dtype) if dtype is not None else a


def file_sha256(path: str | Path, block: int = 8 << 20) -> str:
    """sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def _pixel_size_mm(page) -> float | None:
    """Pixel size from the TIFF resolution tags (cm or inch units), in mm, if present."""
    try:
        tags = page.tags
        unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 2
        num, den = tags["XResolution"].value
        per_unit = num / den
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    mm_per_unit = {2: 25.4, 3: 10.0}.get(int(unit))
    if not mm_per_unit or per_unit <= 0:
        return None
    return mm_per_unit / per_unit


def tiff_pixel_size_mm(path: str | Path) -> float | None:
    """Pixel size (mm) a TIFF's first page states in its resolution tags; None when it states none."""
    try:
        with tifffile.TiffFile(path) as tf:
            return _pixel_size_mm(tf.pages[0])
    except Exception:  # noqa: BLE001 - unreadable tags state nothing; the reader reports damage
        return None


def open_slide(path: str | Path) -> Volume:
    """A (possibly huge) 2D TIFF as a multiscale Volume of lazy levels, largest first."""
    import zarr  # lazy: ~0.7 s to import, and only big slides need it (io imports this module)

    p = Path(path)
    try:
        tf = tifffile.TiffFile(p)
        series = tf.series[0]
        page = series.pages[0]
        axes = series.axes
        pixel_mm = _pixel_size_mm(page)
        store = series.aszarr()
        z = zarr.open(store, mode="r")
    except Exception as exc:
        raise InputError(
            f"{p}: cannot read this TIFF as a slide ({type(exc).__name__}: {exc}). Check the file "
            "is complete; re-export it as a tiled pyramidal TIFF if the problem persists."
        ) from exc
    if isinstance(z, zarr.Group):
        keys = sorted(z.keys(), key=int)
        levels: list[Any] = [z[k] for k in keys]
    else:
        levels = [z]
    if axes not in ("YXS", "YX"):
        raise InputError(
            f"{p}: a slide must be one 2D plane (axes YX or YXS), this TIFF has axes {axes}. "
            "Open a single plane or convert the file."
        )
    rgb = axes == "YXS"
    if len(levels) == 1:  # no pyramid: lazily subsampled levels
        base = levels[0]
        f = 2
        while min(base.shape[:2]) // f >= MIN_LEVEL_SIDE:
            levels.append(StridedLevel(base, f))
            f *= 2
    geometry = (
        Geometry((pixel_mm, pixel_mm), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
        if pixel_mm
        else PixelGeometry.identity(2)
    )
    meta = {
        "modality": "SM",
        "series_uid": None,
        "series_description": p.name,
        "rgb": rgb,
        "source_path": str(p),
        "sha256": file_sha256(p),
        "sha256_kind": "file",
        "level_downsamples": [round(levels[0].shape[0] / lv.shape[0], 3) for lv in levels],
        "n_volumes": 1,
        "spacing_known": bool(pixel_mm),
    }
    # the zarr store keeps the TiffFile (and its file handle) alive as long as the levels live
    return Volume(levels, geometry, meta)
