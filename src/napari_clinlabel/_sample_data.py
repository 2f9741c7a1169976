"""npe2 sample data: the phantoms of :mod:`napari_clinlabel.core.image.samples` as image layers.

The slide is written once as a tiled pyramidal TIFF in the user cache folder and opened lazily,
as a real slide would be.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_clinlabel.core.image.samples import SAMPLES, write_slide_tiff
from napari_clinlabel.core.image.slide import open_slide
from napari_clinlabel.glue.layers import volume_to_layer_data

LayerData = list[tuple[Any, dict, str]]
SLIDE_SHAPE = (4096, 4096)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    d = Path(base) / "napari-clinlabel"
    d.mkdir(parents=True, exist_ok=True)
    return d


def make_ct_sample() -> LayerData:
    """CT phantom (abdomen with organs and lesions), int16 HU, anisotropic spacing."""
    return [volume_to_layer_data(SAMPLES["ct"]())]


def make_ct_oblique_sample() -> LayerData:
    """The CT phantom with an oblique direction (same voxels)."""
    return [volume_to_layer_data(SAMPLES["ct_oblique"]())]


def make_mammogram_sample() -> LayerData:
    """2D mammogram-like image with a spiculated mass and calcifications."""
    return [volume_to_layer_data(SAMPLES["mammogram"]())]


def make_fundus_sample() -> LayerData:
    """RGB fundus-like photo with vessels, disc, macula, dots and exudates."""
    return [volume_to_layer_data(SAMPLES["fundus"]())]


def slide_sample_path(shape: tuple[int, int] | None = None) -> Path:
    """The cached pyramidal slide TIFF (``SLIDE_SHAPE`` by default), written on first use."""
    shape = shape or SLIDE_SHAPE
    path = _cache_dir() / f"phantom_slide_{shape[0]}x{shape[1]}_seed0.tif"
    if not path.exists():
        write_slide_tiff(path, shape=shape, tile=256, levels=4, seed=0)
    return path


def make_slide_sample() -> LayerData:
    """Pathology-like H&E slide as a lazy multiscale layer (pyramidal TIFF in the cache)."""
    vol = open_slide(slide_sample_path())
    vol.meta["series_description"] = "Phantom H&E slide"
    vol.meta["sample"] = "slide"
    return [volume_to_layer_data(vol)]
