"""npe2 writer: one labels layer → NIfTI / NRRD / MHA with its source image's exact geometry, or a
2D PNG (pixels only). An image that states no pixel size (``spacing_known`` False) gets PNG only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import ExportError, LogError, PendingProposalsError
from napari_clinlabel.core.export.labelmap import write_labels
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import PixelGeometry
from napari_clinlabel.core.log.audit_log import sidecar_paths
from napari_clinlabel.core.proposals.lifecycle import pending_count
from napari_clinlabel.glue.label_recorder import recorder_by_token
from napari_clinlabel.glue.session import record_save_for_layer_meta, workspace_dir


def _check_no_pending(attributes: dict[str, Any]) -> None:
    """Refuse to save (PendingProposalsError) while the image's log holds undecided proposals.

    The log is the one the layer's session recorder writes to, else the image's sidecar (beside
    ``source_path``, or in the workspace by voxel digest); a layer with neither has no proposals.
    """
    meta = attributes.get("metadata") or {}
    log_path = None
    token = (meta.get("clinlabel_labels") or {}).get("token")
    if token:
        recorder = recorder_by_token(token)
        log_path = None if recorder is None else Path(recorder.log.path)
    if log_path is None:
        info = meta.get("clinlabel") or {}
        if info.get("source_path"):
            log_path = sidecar_paths(Path(info["source_path"]))[0]
        elif info.get("sha256"):
            log_path = sidecar_paths(workspace_dir() / str(info["sha256"]))[0]
    if log_path is None or not log_path.is_file():
        return
    n = pending_count(log_path)
    if n:
        noun = "proposal is" if n == 1 else "proposals are"
        raise PendingProposalsError(
            f"{log_path.name}: {n} {noun} still undecided; decide each one in the Review "
            "proposals widget (A accept, E edit, R reject), then save the labels again.",
            pending=n,
        )


def write_labels_layer(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Save a labels layer with the geometry in ``metadata["clinlabel"]["geometry"]`` (or as PNG)."""
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
    if meta.get("spacing_known") is False:
        geometry = PixelGeometry.like(geometry)  # write_labels then refuses NIfTI/NRRD/MHA
    array = np.asarray(data)
    lead = int(meta.get("leading_axes", 0) or 0)
    spatial = tuple(meta.get("shape", [])[lead : lead + geometry.ndim])
    if spatial and array.shape != spatial:
        raise ExportError(
            f"{path}: labels layer '{name}' has shape {array.shape} but its image grid is "
            f"{spatial}; labels must be drawn on the image's own grid to be saved."
        )
    written = write_labels(array, geometry, Path(path))
    try:  # a labels layer the plugin manages logs the save (snapshot + file name)
        record_save_for_layer_meta(attributes, written)
    except LogError:
        Path(written).unlink(missing_ok=True)  # never a save the log does not know about
        raise
    return [str(written)]
