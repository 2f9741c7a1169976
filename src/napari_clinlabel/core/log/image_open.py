"""The ``image.open`` record, built in one place for napari, the Python API and the CLI.

Opening an image is an action: each session that opens an image (a napari viewer, a script
through :mod:`napari_clinlabel.api`, ``clinlabel prelabel``) appends one ``image.open`` record
before anything else it writes. Its data is what replay and export need to rebuild the image
grid without the image: ``shape`` (the label grid: leading axes and spatial axes, no colour
axis), ``dtype``, ``geometry`` (ITK order), ``modality``, ``source`` (the file name only, never
the folder) and ``spacing_known`` (False: the file states no pixel size; sizes are pixels); a
new log's first record also pins the roster owner (``owner``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import owner_pin

ACTION = "image.open"


def grid_shape(volume: Volume) -> tuple[int, ...]:
    """The label grid of ``volume``: its base array's shape without a colour axis."""
    shape = tuple(int(n) for n in volume.base.shape)
    return shape[:-1] if volume.rgb else shape


def image_open_data(
    shape: Sequence[int],
    dtype: Any,
    *,
    geometry: Geometry | Mapping[str, Any] | None,
    modality: str | None,
    source: str | os.PathLike[str] | None,
    spacing_known: bool = True,
) -> dict[str, Any]:
    """The ``data`` of an ``image.open`` record (``source`` is reduced to its file name)."""
    if isinstance(geometry, Geometry):
        geometry = geometry.to_dict()
    return {
        "shape": [int(s) for s in shape],
        "dtype": np.dtype(dtype).name,
        "geometry": dict(geometry) if geometry is not None else None,
        "modality": modality,
        "source": Path(source).name if source else None,
        "spacing_known": bool(spacing_known),
    }


def record_image_open(
    log: AuditLog, data: Mapping[str, Any], near: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Append the ``image.open`` record holding ``data`` (from :func:`image_open_data`).

    ``near`` is the image's file or folder (where its dataset roster is looked for). A new log's
    first record pins the owner of the owner-signed roster in force (``data["owner"]``), so a
    later swap of owner and roster shows when the log is verified.
    """
    rec_data = dict(data)
    if log.head().seq < 0:
        pin = owner_pin(near)
        if pin is not None:
            rec_data["owner"] = pin
    return log.append(ACTION, None, rec_data)


def volume_open_data(volume: Volume) -> dict[str, Any]:
    """:func:`image_open_data` of a volume read from a file (or made in memory)."""
    return image_open_data(
        grid_shape(volume),
        volume.base.dtype,
        geometry=volume.geometry,
        modality=volume.meta.get("modality"),
        source=volume.source_path,
        spacing_known=volume.spacing_known,
    )


__all__ = ["ACTION", "grid_shape", "image_open_data", "record_image_open", "volume_open_data"]
