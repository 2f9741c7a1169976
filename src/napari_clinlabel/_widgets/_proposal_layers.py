"""The layers that show model proposals apart from the final labels (shared by Pre-label and Review).

- "proposals (pending)": a Labels layer, outlines only: every undecided segment proposal in orange
  (value 1), the one under review in yellow (value 2).
- "proposal boxes (pending)": a Shapes layer, orange outlines: undecided box proposals, one
  rectangle per slice of a 3D box, each tagged with its proposal id (feature ``proposal``). The box
  under review is yellow, and the layer is editable while it is shown: the reviewer drags or
  resizes its rectangle on the slice in view and :func:`edited_box` reads the new box back.
- "proposal edit": a Labels layer the reviewer changes with napari's tools before confirming.

None of them is ever saved or logged as labels: a proposal reaches the final labels layer only by
a human decision (core ``proposals.accept`` / ``edit``). Redraws touch only the voxels of the
proposals concerned (index assignment); the caller refreshes the displayed slice once, or not at
all when moving the view to another slice re-slices every layer anyway. One Labels layer for
pending and current (not two) because each layer costs a re-slice on every move.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Labels, Shapes
from napari.utils.colormaps import DirectLabelColormap

from napari_clinlabel._widgets._common import copy_transform
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.proposals.lifecycle import Proposal, proposal_indices

PENDING = "proposals (pending)"
BOXES = "proposal boxes (pending)"
EDIT = "proposal edit"
PENDING_VALUE, CURRENT_VALUE = 1, 2
TAG = "clinlabel_proposals"  # layer metadata key: the image sha256 the layer belongs to
PENDING_COLOR = "#ff9900"
CURRENT_COLOR = "#ffff00"  # the proposal under review
EDIT_COLOR = "#00e5ff"


def _colormap(*colors: str) -> DirectLabelColormap:
    table: dict[int | None, str] = {None: "transparent", 0: "transparent"}
    table.update({k: c for k, c in enumerate(colors, start=1)})
    return DirectLabelColormap(color_dict=table)


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
        self._proposals: list[Proposal] = []

    # -- layers ----------------------------------------------------------------------------
    def _find(self, name: str) -> Any:
        for layer in self._viewer.layers:
            if layer.name == name and layer.metadata.get(TAG) == self._sha:
                return layer
        return None

    def _labels(self, name: str, colors: tuple[str, ...], setup: Any = None, **kw: Any) -> Labels:
        layer = self._find(name)
        if layer is None:
            layer = Labels(
                np.zeros(self._shape, np.uint8),
                name=name,
                metadata={TAG: self._sha},
                colormap=_colormap(*colors),
                **kw,
                **copy_transform(self._image),
            )
            if setup is not None:
                setup(layer)
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
        """The pending-proposals layer (made on first use): outlines, not filled like final labels."""

        def setup(layer: Labels) -> None:
            layer.contour = 1
            layer.editable = False

        return self._labels(PENDING, (PENDING_COLOR, CURRENT_COLOR), setup, opacity=1.0)

    @property
    def edit(self) -> Labels:
        """The scratch layer a segment proposal is edited in (made on first use)."""
        return self._labels(EDIT, (EDIT_COLOR,), opacity=0.6)

    @property
    def boxes(self) -> Shapes:
        """The pending box proposals (made on first use)."""
        layer = self._find(BOXES)
        if layer is None:
            layer = Shapes(
                ndim=len(self._shape),
                name=BOXES,
                metadata={TAG: self._sha},
                features={"proposal": np.array([], dtype=object)},
                face_color="transparent",
                edge_color=PENDING_COLOR,
                edge_width=2,
                opacity=0.8,
                **copy_transform(self._image),
            )
            layer.feature_defaults["proposal"] = ""
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
        self._current = None
        self._proposals = proposals
        if seg or self._find(PENDING) is not None:
            layer = self.pending
            flat = layer.data.reshape(-1)
            flat[:] = 0
            for p in seg:
                flat[self.indices(p)] = PENDING_VALUE
            layer.refresh()
        self._draw_boxes(None)

    def _draw_boxes(self, current: Proposal | None) -> None:
        """Redraw every pending box as proposed (``current`` in yellow, the layer then editable).

        A redraw also drops a change the reviewer made to a box and did not confirm with E.
        """
        pending = [p for p in self._proposals if p.pending and p.kind == "box"]
        if not pending and self._find(BOXES) is None:
            return
        rects, ids, colors = [], [], []
        for p in pending:
            for r in _box_rects(p):
                rects.append(r)
                ids.append(p.id)
                colors.append(CURRENT_COLOR if p is current else PENDING_COLOR)
        layer = self.boxes
        layer.selected_data = set()
        layer.data = []
        if rects:
            layer.add_rectangles(rects, edge_color=colors, face_color="transparent")
            layer.features = {"proposal": np.array(ids, dtype=object)}
        layer.editable = current is not None

    def drop(self, decided: Proposal, proposals: list[Proposal]) -> None:
        """Take a decided proposal off the pending layers (its voxels only; no refresh)."""
        if decided.kind == "box":
            self.show_all(proposals)
            return
        if self._current is decided:
            self._current = None
        if decided.kind != "segment":
            return
        flat = self.pending.data.reshape(-1)
        flat[self.indices(decided)] = 0
        for p in proposals:  # overlapping pending proposals keep their voxels
            if p.pending and p.kind == "segment" and _bbox_overlap(p, decided):
                flat[self.indices(p)] = PENDING_VALUE

    def highlight(self, proposal: Proposal | None) -> None:
        """Mark ``proposal`` (None: none) as the one under review (two masks touched; no refresh)."""
        old = self._current
        self._current = proposal
        if _is_box(old) or _is_box(proposal):
            self._draw_boxes(proposal if _is_box(proposal) else None)
        if not any(p.kind == "segment" for p in (old, proposal) if p is not None):
            return
        flat = self.pending.data.reshape(-1)
        if old is not None and old.kind == "segment":
            flat[self.indices(old)] = PENDING_VALUE if old.pending else 0
        if proposal is not None and proposal.kind == "segment":
            flat[self.indices(proposal)] = CURRENT_VALUE

    def arm_box(self) -> Shapes:
        """Select the box layer in select mode, so the box under review can be dragged at once."""
        layer = self.boxes
        self._viewer.layers.selection.active = layer
        layer.mode = "select"
        return layer

    def disarm_box(self) -> None:
        """Give the selection back to the image when the box layer holds it."""
        layer = self._find(BOXES)
        if layer is not None and self._viewer.layers.selection.active is layer:
            layer.mode = "pan_zoom"
            self._viewer.layers.selection.active = self._image

    def box_rects(self, proposal: Proposal) -> list[np.ndarray]:
        """The rectangles the box layer now holds for ``proposal`` (as the reviewer left them)."""
        layer = self._find(BOXES)
        if layer is None:
            return []
        ids = [str(v) for v in layer.features["proposal"]]
        return [
            np.asarray(d, float) for d, i in zip(layer.data, ids, strict=True) if i == proposal.id
        ]

    def refresh(self) -> None:
        """Redraw the displayed slice of the pending layer (when there is one)."""
        layer = self._find(PENDING)
        if layer is not None:
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


def edited_box(
    rects: list[np.ndarray], payload: dict[str, Any], shape: tuple, shown_z: int | None = None
) -> tuple[list[int], list[int]] | None:
    """The box the reviewer left (inclusive voxel ``zyx_min``, ``zyx_max``); None when unchanged.

    A rectangle covers the voxels it holds at least half of (its vertices' bounding box, so a
    rotated one counts by its extent); the z extent stays as proposed. Where a 3D box's rectangles
    were changed differently, the one on ``shown_z`` (the slice in view) counts. Raises
    :class:`ClinlabelError` when no rectangle is left, the box covers no voxel of the image, or two
    slices other than the one in view disagree.
    """
    lo, hi = [int(v) for v in payload["zyx_min"]], [int(v) for v in payload["zyx_max"]]
    if not rects:
        raise ClinlabelError(
            "The proposed box is no longer drawn (it was deleted from the layer): press N then P "
            "to draw it again, or R to reject it. Nothing was recorded."
        )
    top = np.asarray(shape[-2:], int) - 1
    changed: dict[int | None, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for r in rects:
        yx = np.asarray(r, float)[:, -2:]
        a = np.maximum(np.ceil(yx.min(axis=0) - 1e-6).astype(int), 0)
        b = np.minimum(np.floor(yx.max(axis=0) + 1e-6).astype(int), top)
        if np.any(a > b):
            raise ClinlabelError(
                "The edited box covers no whole voxel of the image: make it bigger (or move it "
                "back onto the image), or press R to reject it. Nothing was recorded."
            )
        ext = (tuple(a.tolist()), tuple(b.tolist()))
        if ext != (tuple(lo[-2:]), tuple(hi[-2:])):
            changed[int(round(float(r[0][0]))) if len(lo) == 3 else None] = ext
    if not changed:
        return None
    if len(set(changed.values())) > 1:
        if shown_z not in changed:
            where = ", ".join(str(z) for z in sorted(k for k in changed if k is not None))
            raise ClinlabelError(
                f"The box was changed differently on slices {where}: show the slice whose box is "
                "right and press E again (or N then P to start over). Nothing was recorded."
            )
        ext = changed[shown_z]
    else:
        ext = next(iter(changed.values()))
    return lo[:-2] + list(ext[0]), hi[:-2] + list(ext[1])


def _is_box(p: Proposal | None) -> bool:
    return p is not None and p.kind == "box"


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
