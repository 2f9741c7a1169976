"""npe2 sample data: the phantoms of :mod:`napari_clinlabel.core.image.samples` as image layers.

The slide is lazy: a multiscale layer whose levels render only the regions napari draws
(:func:`~napari_clinlabel.core.image.samples.lazy_pathology_slide`), so opening it computes no
full-resolution pixels and writes nothing. :func:`slide_sample_path` still writes it as a tiled
pyramidal TIFF in the user cache folder for scripts that want a real slide file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari_clinlabel.core.image.samples import SAMPLES, lazy_pathology_slide, write_slide_tiff
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
    """Pathology-like H&E slide (``SLIDE_SHAPE``) as a lazy multiscale layer, rendered on demand."""
    return [volume_to_layer_data(lazy_pathology_slide(SLIDE_SHAPE))]
