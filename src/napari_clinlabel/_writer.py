"""npe2 writer: one labels layer → NIfTI / NRRD / MHA with its source image's exact geometry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import ExportError
from .core.geometry import Geometry
from .core.volume_io import write_labels


def _check_no_pending(attributes: dict[str, Any]) -> None:
    """Hook for the proposal gate: refuse to save while model proposals are undecided.

    Does nothing yet; the lead wires it to the proposal lifecycle (PendingProposalsError).
    """


def write_labels_layer(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Save a labels layer with the geometry in ``metadata["clinlabel"]["geometry"]``."""
    _check_no_pending(attributes)
    meta = (attributes.get("metadata") or {}).get("clinlabel") or {}
    name = attributes.get("name", "labels")
    if "geometry" not in meta:
        raise ExportError(
            f"{path}: labels layer '{name}' carries no source geometry (metadata['clinlabel']"
            "['geometry']), so it cannot be saved in the image's physical space. Create the "
            "labels from an image opened with napari-clinlabel."
        )
    geometry = Geometry.from_dict(meta["geometry"])
    array = np.asarray(data)
    lead = int(meta.get("leading_axes", 0) or 0)
    spatial = tuple(meta.get("shape", [])[lead : lead + geometry.ndim])
    if spatial and array.shape != spatial:
        raise ExportError(
            f"{path}: labels layer '{name}' has shape {array.shape} but its image grid is "
            f"{spatial}; labels must be drawn on the image's own grid to be saved."
        )
    return [str(write_labels(array, geometry, Path(path)))]
