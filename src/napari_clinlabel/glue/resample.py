"""Qt-free napari glue: open a DICOM series with uneven slice spacing resampled, on request.

napari opens such a series as its evenly spaced blocks (and refuses one with a missing slice);
:func:`open_resampled` is the explicit request a human makes (the Session widget's
"Open DICOM resampled…"): the series resampled to even slices (``core.log.resample``) as one
image layer, whose own log (``<folder>.resampled.clinlabel.jsonl``) gets ``image.open`` and then
the ``image.resample`` record by the acting human. Labels drawn on it are logged as on any image;
exporting them maps them back onto the original slices (``core.export.gate``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from napari.layers import Image

from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.resample import (
    read_resampled,
    record_resample,
    require_recorded_grid,
)
from napari_clinlabel.glue.layers import volume_to_layer_data
from napari_clinlabel.glue.session import get_session


def uneven_series_folder(layer: Any) -> Path | None:
    """The series folder of an image layer that is one even block of an uneven series, else None."""
    meta = (getattr(layer, "metadata", None) or {}).get("clinlabel") or {}
    src = meta.get("source_path")
    return Path(src) if meta.get("slice_block") and src else None


def read_series_resampled(path: str | os.PathLike[str], spacing_mm: float | None = None) -> Volume:
    """The series at folder ``path`` resampled (the slow part: may run off the GUI thread)."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(
            f"{folder}: not a folder; choose the folder that holds the series' .dcm files."
        )
    return read_resampled(folder, spacing_mm)


def add_resampled(viewer: Any, volume: Volume) -> Image:
    """Show a resampled ``volume`` as an image layer and log the request; the new layer.

    Nothing stays open unless the request is recorded: when the log refuses (no one signed in,
    patient identifiers, a log of other voxels) the layer is removed and the error raised.
    """
    require_recorded_grid(volume)  # another spacing than the log's: say so, add no layer
    data, kwargs, _ = volume_to_layer_data(volume)
    session = get_session(viewer)
    layer = viewer.add_image(data, **kwargs)  # the session writes image.open on insertion
    try:
        record_resample(session.log_for(layer), volume)
    except ClinlabelError:
        if layer in viewer.layers:
            viewer.layers.remove(layer)
        raise
    return layer


def open_resampled(
    viewer: Any, path: str | os.PathLike[str], spacing_mm: float | None = None
) -> Image:
    """Add the DICOM series at ``path`` resampled to ``spacing_mm`` (None: the spacing its log
    last recorded, else the smallest original step) and log the request; the new layer."""
    return add_resampled(viewer, read_series_resampled(path, spacing_mm))


__all__ = ["add_resampled", "open_resampled", "read_series_resampled", "uneven_series_folder"]
