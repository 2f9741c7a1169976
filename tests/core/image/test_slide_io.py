"""Large TIFFs open lazily as multiscale volumes, with bounded memory and a file digest."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.image.samples import pathology_slide, write_slide_tiff
from napari_clinlabel.core.image.slide import open_slide

TILE = 256


def _tile_pattern() -> np.ndarray:
    t = np.zeros((TILE, TILE, 3), np.uint8)
    t[..., 0] = np.arange(TILE, dtype=np.uint8)[None, :]
    t[..., 1] = np.arange(TILE, dtype=np.uint8)[:, None]
    t[..., 2] = 7
    return t


def write_huge_tiff(path: Path, side: int) -> Path:
    """A side×side RGB tiled BigTIFF whose tiles all point at one stored tile (tiny file).

    Written by hand (TIFF 6 + BigTIFF layout) so a 40 000² test slide costs no time or disk.
    """
    n = (-(-side // TILE)) ** 2
    tile = _tile_pattern().tobytes()
    tile_at = 16
    offsets_at = tile_at + len(tile)
    counts_at = offsets_at + 8 * n
    ifd_at = counts_at + 8 * n
    entries = [
        (256, 4, 1, struct.pack("<I", side)),
        (257, 4, 1, struct.pack("<I", side)),
        (258, 3, 3, struct.pack("<HHH", 8, 8, 8)),
        (259, 3, 1, struct.pack("<H", 1)),
        (262, 3, 1, struct.pack("<H", 2)),
        (277, 3, 1, struct.pack("<H", 3)),
        (284, 3, 1, struct.pack("<H", 1)),
        (322, 3, 1, struct.pack("<H", TILE)),
        (323, 3, 1, struct.pack("<H", TILE)),
        (324, 16, n, struct.pack("<Q", offsets_at)),
        (325, 16, n, struct.pack("<Q", counts_at)),
    ]
    with open(path, "wb") as fh:
        fh.write(b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd_at))
        fh.write(tile)
        fh.write(struct.pack(f"<{n}Q", *([tile_at] * n)))
        fh.write(struct.pack(f"<{n}Q", *([len(tile)] * n)))
        fh.write(struct.pack("<Q", len(entries)))
        for tag, typ, count, value in entries:
            fh.write(struct.pack("<HHQ", tag, typ, count) + value.ljust(8, b"\0"))
        fh.write(struct.pack("<Q", 0))
    return path


def test_40k_rgb_tiff_opens_lazily_with_bounded_memory(tmp_path):
    path = write_huge_tiff(tmp_path / "huge.tif", 40_000)
    tracemalloc.start()
    try:
        (vol,) = read_volumes(path)  # dispatched to slide_io: far above 8k px a side
        region = np.asarray(vol.array[0][1000:1010, 2000:2010])
        overview = np.asarray(vol.array[-1][:8, :8])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # the image is 4.8 GB; opening and a region stay far below
    assert vol.multiscale and vol.rgb and vol.array[0].shape == (40_000, 40_000, 3)
    assert not any(isinstance(level, np.ndarray) for level in vol.array)  # lazy levels
    shapes = [level.shape[0] for level in vol.array]
    assert shapes[:3] == [40_000, 20_000, 10_000] and min(shapes) >= 1024
    expected = _tile_pattern()
    np.testing.assert_array_equal(
        region, expected[1000 % TILE : 1010 % TILE, 2000 % TILE : 2010 % TILE]
    )
    np.testing.assert_array_equal(overview, expected[: 8 * 32 : 32, : 8 * 32 : 32])  # every 32nd
    assert vol.meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert vol.meta["sha256_kind"] == "file"


def test_pyramidal_tiff_levels_are_its_own(tmp_path):
    path = write_slide_tiff(tmp_path / "p.tif", shape=(600, 800), levels=3)
    vol = open_slide(path)
    assert [lv.shape[:2] for lv in vol.array] == [(600, 800), (300, 400), (150, 200)]
    np.testing.assert_array_equal(np.asarray(vol.array[0]), pathology_slide((600, 800)).array)
    assert vol.geometry.spacing == pytest.approx((0.00025, 0.00025))  # 0.25 µm from the tags


def test_corrupt_tiff_refused(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(b"II*\0" + b"\xff" * 64)
    with pytest.raises(InputError) as exc:
        open_slide(path)
    assert "bad.tif" in str(exc.value) and "re-export" in str(exc.value)


@pytest.mark.parametrize(
    "key",
    [
        (slice(None), slice(None)),
        (slice(3, 17, 2), slice(1, 9)),
        (5, slice(None)),
        (-1, -2),
        (Ellipsis, 1),
        (slice(4, 4), slice(None)),
    ],
)
def test_strided_level_matches_numpy_striding(key):
    from napari_clinlabel.core.image.slide import StridedLevel

    base = np.arange(37 * 45 * 3).reshape(37, 45, 3)
    level = StridedLevel(base, 2)
    assert level.shape == base[::2, ::2].shape
    np.testing.assert_array_equal(level[key], base[::2, ::2][key])
