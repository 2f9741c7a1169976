"""The layers that show model proposals apart from the final labels (shared by Pre-label and Review).

- "proposals (pending)": a Labels layer, contour only, orange: every undecided segment proposal.
- "proposal boxes (pending)": a Shapes layer, orange outlines: undecided box proposals.
- "current proposal": a Labels layer, translucent yellow fill: the proposal under review.
- "proposal edit": a Labels layer the reviewer changes with napari's tools before confirming.

None of them is ever saved or logged as labels: a proposal reaches the final labels layer only by
a human decision (core ``proposals.accept`` / ``edit``). Redraws touch only the voxels of the
proposals concerned (index assignment, then a refresh of the displayed slice), never the volume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels, Shapes
from napari.utils.colormaps import DirectLabelColormap

from ..core.audit_log import AuditLog
from ..core.proposals import Proposal, proposal_indices
from ._common import copy_transform

PENDING = "proposals (pending)"
BOXES = "proposal boxes (pending)"
CURRENT = "current proposal"
EDIT = "proposal edit"
TAG = "clinlabel_proposals"  # layer metadata key: the image sha256 the layer belongs to
PENDING_COLOR = "#ff9900"
CURRENT_COLOR = "#ffff00"
EDIT_COLOR = "#00e5ff"


def _colormap(color: str) -> DirectLabelColormap:
    return DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", 1: color})


class ProposalLayers:
    """Finds or makes one image's proposal layers and redraws them proposal by proposal."""

    def __init__(
        self, viewer: Any, image: Any, log: AuditLog, image_sha: str, shape: tuple
    ) -> None:
        self._viewer = viewer
        self._image = image
        self._log = log
        self._sha = image_sha
        self._shape = tuple(int(s) for s in shape)
        self._indices: dict[str, np.ndarray] = {}
        self._current: Proposal | None = None

    # -- layers ----------------------------------------------------------------------------
    def _find(self, name: str) -> Any:
        for layer in self._viewer.layers:
            if layer.name == name and layer.metadata.get(TAG) == self._sha:
                return layer
        return None

    def _labels(self, name: str, color: str, **kwargs: Any) -> Labels:
        layer = self._find(name)
        if layer is None:
            layer = Labels(
                np.zeros(self._shape, np.uint8),
                name=name,
                metadata={TAG: self._sha},
                colormap=_colormap(color),
                **kwargs,
                **copy_transform(self._image),
            )
            self._add(layer)
        return layer

    def _add(self, layer: Any) -> None:
        """Add ``layer`` without taking the selection (the reviewer's keys follow the selection)."""
        active = self._viewer.layers.selection.active
        self._viewer.add_layer(layer)
        if active is not None:
            self._viewer.layers.selection.active = active

    @property
    def pending(self) -> Labels:
        """The pending-proposals layer (made on first use)."""
        layer = self._labels(PENDING, PENDING_COLOR, opacity=0.9)
        layer.contour = 1
        layer.editable = False
        return layer

    @property
    def current(self) -> Labels:
        """The highlight of the proposal under review (made on first use)."""
        layer = self._labels(CURRENT, CURRENT_COLOR, opacity=0.45)
        layer.editable = False
        return layer

    @property
    def edit(self) -> Labels:
        """The scratch layer a segment proposal is edited in (made on first use)."""
        return self._labels(EDIT, EDIT_COLOR, opacity=0.6)

    @property
    def boxes(self) -> Shapes:
        """The pending box proposals (made on first use)."""
        layer = self._find(BOXES)
        if layer is None:
            layer = Shapes(
                ndim=len(self._shape),
                name=BOXES,
                metadata={TAG: self._sha},
                face_color="transparent",
                edge_color=PENDING_COLOR,
                edge_width=2,
                opacity=0.8,
                **copy_transform(self._image),
            )
            layer.editable = False
            self._add(layer)
        return layer

    # -- drawing -------------------------------------------------------------------------
    def indices(self, proposal: Proposal) -> np.ndarray:
        """Flat voxel indices a proposal covers (segment mask, or its box's voxels); cached."""
        idx = self._indices.get(proposal.id)
        if idx is None:
            if proposal.kind == "segment":
                idx = np.asarray(proposal_indices(self._log, proposal), np.int64)
            elif proposal.kind == "box" and "zyx_min" in proposal.payload:
                idx = _box_indices(proposal.payload, self._shape)
            else:
                idx = np.empty(0, np.int64)
            self._indices[proposal.id] = idx
        return idx

    def show_all(self, proposals: list[Proposal]) -> None:
        """Draw every pending proposal (the one full redraw, when proposals are loaded or added)."""
        seg = [p for p in proposals if p.pending and p.kind == "segment"]
        if seg or self._find(PENDING) is not None:
            layer = self.pending
            flat = layer.data.reshape(-1)
            flat[:] = 0
            for p in seg:
                flat[self.indices(p)] = 1
            layer.refresh()
        rects = [r for p in proposals if p.pending and p.kind == "box" for r in _box_rects(p)]
        if rects or self._find(BOXES) is not None:
            layer = self.boxes
            layer.data = []
            if rects:
                layer.add_rectangles(rects, edge_color=PENDING_COLOR, face_color="transparent")

    def drop(self, decided: Proposal, proposals: list[Proposal]) -> None:
        """Remove a decided proposal from the pending layers, redrawing only its voxels."""
        if decided.kind == "segment" and self._find(PENDING) is not None:
            layer = self.pending
            flat = layer.data.reshape(-1)
            idx = self.indices(decided)
            flat[idx] = 0
            for p in proposals:  # overlapping pending proposals keep their voxels
                if p.pending and p.kind == "segment" and _bbox_overlap(p, decided):
                    flat[self.indices(p)] = 1
            layer.refresh()
        elif decided.kind == "box":
            self.show_all(proposals)

    def highlight(self, proposal: Proposal | None) -> None:
        """Show ``proposal`` (None: nothing) in the current-proposal layer; touches two masks only."""
        layer = self.current
        flat = layer.data.reshape(-1)
        if self._current is not None:
            flat[self.indices(self._current)] = 0
        self._current = proposal
        if proposal is not None:
            flat[self.indices(proposal)] = 1
        layer.refresh()

    def start_edit(self, proposal: Proposal) -> Labels:
        """Copy a segment proposal into the edit layer, select it and arm the brush."""
        layer = self.edit
        layer.data.reshape(-1)[self.indices(proposal)] = 1
        layer.visible = True
        layer.refresh()
        self._viewer.layers.selection.active = layer
        layer.selected_label = 1
        layer.mode = "paint"
        return layer

    def edited_indices(self) -> np.ndarray:
        """Flat indices the edit layer now covers (what the reviewer confirmed)."""
        return np.flatnonzero(self.edit.data.reshape(-1)).astype(np.int64)

    def end_edit(self, indices: np.ndarray) -> None:
        """Clear the edit layer (``indices``: what it held) and hide it."""
        layer = self.edit
        layer.data.reshape(-1)[indices] = 0
        layer.mode = "pan_zoom"
        layer.visible = False
        layer.refresh()
        self._viewer.layers.selection.active = self._image


def centre_of(indices: np.ndarray, shape: tuple) -> np.ndarray:
    """Voxel centroid (z, y, x) of flat indices, with z snapped to a slice the mask touches."""
    coords = np.stack(np.unravel_index(indices, shape)).astype(np.float64)
    centre = coords.mean(axis=1)
    if len(shape) == 3:
        zs = coords[0]
        centre[0] = float(zs[np.argmin(np.abs(zs - centre[0]))])
    return centre


def _box_rects(p: Proposal) -> list[np.ndarray]:
    lo, hi = p.payload["zyx_min"], p.payload["zyx_max"]
    (y0, x0), (y1, x1) = lo[-2:], hi[-2:]
    corners = np.array([[y0, x0], [y0, x1 + 1], [y1 + 1, x1 + 1], [y1 + 1, x0]], float) - 0.5
    if len(lo) == 2:
        return [corners]
    return [np.column_stack([np.full(4, float(z)), corners]) for z in range(lo[0], hi[0] + 1)]


def _box_indices(box: dict[str, Any], shape: tuple) -> np.ndarray:
    sl = tuple(
        slice(int(a), int(b) + 1) for a, b in zip(box["zyx_min"], box["zyx_max"], strict=True)
    )
    grid = np.indices(tuple(s.stop - s.start for s in sl)).reshape(len(sl), -1)
    full = tuple(g + s.start for g, s in zip(grid, sl, strict=True))
    return np.ravel_multi_index(full, shape).astype(np.int64)


def _bbox_overlap(a: Proposal, b: Proposal) -> bool:
    ba, bb = a.payload.get("bbox"), b.payload.get("bbox")
    if not ba or not bb or a.id == b.id:
        return False
    return all(lo1 <= hi2 and lo2 <= hi1 for lo1, hi1, lo2, hi2 in zip(*ba, *bb, strict=True))
