"""The layers that show model proposals apart from the final labels (shared by Pre-label and Review).

- "proposals (pending)": a Labels layer, outlines only: every undecided segment proposal in orange
  (value 1), the one under review in yellow (value 2).
- "proposal boxes (pending)": a Shapes layer, orange outlines: undecided box proposals, one
  rectangle per slice of a 3D box, each tagged with its proposal id (feature ``proposal``). The box
  under review is yellow, and the layer is editable while it is shown: the reviewer drags or
  resizes its rectangle on the slice in view and core's ``edited_proposal_box`` reads it back.
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

from napari_clinlabel._widgets._common import camera_of, copy_transform
from napari_clinlabel.core.annotate.box_edits import box_voxel_indices, proposal_box_rects
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.proposals.lifecycle import Proposal, proposal_indices
from napari_clinlabel.core.proposals.review_queue import bboxes_overlap

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
                idx = box_voxel_indices(proposal.payload, self._shape)
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
            for r in proposal_box_rects(p.payload):
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
            if p.pending and p.kind == "segment" and bboxes_overlap(p, decided):
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

    def centre_on(self, centre_zyx: np.ndarray) -> bool:
        """Show the slice through ``centre_zyx`` (image data coordinates) centred; True when the
        slice changed (a move re-slices every layer, so no refresh is needed then)."""
        world = np.asarray(self._image.data_to_world(centre_zyx), dtype=float)
        dims = self._viewer.dims
        shown = list(dims.displayed)
        before = tuple(dims.current_step)
        if len(world) == 3 and dims.ndisplay == 2:
            not_shown = [d for d in range(len(world)) if d not in shown]
            dims.set_point(not_shown, world[not_shown])
        camera_of(self._viewer).center = tuple(world[shown[-2:]])
        return tuple(dims.current_step) != before

    def shown_z(self) -> int | None:
        """The image slice in view (data index), for a 3D image shown in 2D; else None."""
        if len(self._shape) != 3 or self._viewer.dims.ndisplay != 2:
            return None
        return int(round(float(self._image.world_to_data(self._viewer.dims.point)[-3])))

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


def _is_box(p: Proposal | None) -> bool:
    return p is not None and p.kind == "box"
