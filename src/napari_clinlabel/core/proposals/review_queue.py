"""The review queue over one image's proposals: the state behind the Review widget.

Holds every proposal of the image (decided ones too, so progress reads "k of n decided") in an
order — as added, largest first, or highest score first (:meth:`ReviewQueue.order_by`) — with a
cursor on the one under review. ``next``/``previous`` walk the undecided ones (wrapping);
:meth:`ReviewQueue.next_large` jumps to the next undecided one of at least a given size. Each
decision (:meth:`accept`, :meth:`edit`, :meth:`reject`) is one call into
:mod:`.lifecycle`, so one log record, after which the cursor moves to the next undecided proposal.
It holds no Qt and no napari: a widget maps keys A/E/R/N/P onto these methods. There is no
accept-all and nothing accepts by score: sorting only changes the order a human sees them in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.proposals.lifecycle import (
    Proposal,
    accept,
    edit,
    proposal_indices,
    reject,
)
from napari_clinlabel.core.proposals.pending import load_proposals

ORDERS = ("added", "size", "score")


def proposal_size(p: Proposal) -> int:
    """How many voxels a proposal covers: a segment's mask, a box's inclusive extent; 0 for grades."""
    if p.kind == "segment":
        return int(p.payload.get("voxels", 0))
    if p.kind == "box" and "zyx_min" in p.payload and "zyx_max" in p.payload:
        lo, hi = p.payload["zyx_min"], p.payload["zyx_max"]
        return int(np.prod([int(b) - int(a) + 1 for a, b in zip(lo, hi, strict=True)]))
    return 0


def indices_centre(indices: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Voxel centroid (z, y, x) of flat indices, with z snapped to a slice the mask touches."""
    coords = np.stack(np.unravel_index(indices, shape)).astype(np.float64)
    centre = coords.mean(axis=1)
    if len(shape) == 3:
        zs = coords[0]
        centre[0] = float(zs[np.argmin(np.abs(zs - centre[0]))])
    return centre


def bboxes_overlap(a: Proposal, b: Proposal) -> bool:
    """True when two segment proposals' bounding boxes (``payload["bbox"]``) share a voxel."""
    ba, bb = a.payload.get("bbox"), b.payload.get("bbox")
    if not ba or not bb or a.id == b.id:
        return False
    return all(lo1 <= hi2 and lo2 <= hi1 for lo1, hi1, lo2, hi2 in zip(*ba, *bb, strict=True))


class ReviewQueue:
    """The proposals of ``log`` in review order, with a cursor on the undecided one under review.

    ``labels``/``labels_name``: where accepted segments are written unless a decision names
    others (a widget whose labels layer is made on first use passes them per decision).
    """

    def __init__(
        self,
        log: AuditLog,
        labels: np.ndarray | None = None,
        labels_name: str | None = None,
        proposals: list[Proposal] | None = None,
    ) -> None:
        self.log = log
        self.labels = labels
        self.labels_name = labels_name
        self.added = list(proposals if proposals is not None else load_proposals(log.path))
        self.proposals = list(self.added)  # in review order
        self.order = "added"
        self.position: int | None = None
        self.position = self._step_from(None, +1)

    def __len__(self) -> int:
        """How many proposals are still undecided."""
        return sum(p.pending for p in self.proposals)

    @property
    def current(self) -> Proposal | None:
        """The proposal under review (None when all are decided)."""
        return None if self.position is None else self.proposals[self.position]

    @property
    def decided(self) -> int:
        """How many proposals a human has decided."""
        return sum(not p.pending for p in self.proposals)

    # -- walking -----------------------------------------------------------------------------
    def next(self) -> Proposal | None:
        """Move to the next undecided proposal (wraps around)."""
        if self.position is not None:
            self.position = self._step_from(self.position, +1)
        return self.current

    def previous(self) -> Proposal | None:
        """Move to the previous undecided proposal (wraps around)."""
        if self.position is not None:
            self.position = self._step_from(self.position, -1)
        return self.current

    def first(self) -> Proposal | None:
        """Move to the first undecided proposal in the review order."""
        self.position = self._step_from(None, +1)
        return self.current

    def next_large(self, min_voxels: int) -> Proposal | None:
        """Move to the next undecided proposal covering at least ``min_voxels`` voxels (wrapping,
        the current one last); None, and the cursor stays, when there is none."""
        n = len(self.proposals)
        start = -1 if self.position is None else self.position
        for k in range(1, n + 1):
            i = (start + k) % n
            p = self.proposals[i]
            if p.pending and proposal_size(p) >= min_voxels:
                self.position = i
                return p
        return None

    def go_to(self, proposal_id: str) -> Proposal | None:
        """Put the cursor on undecided proposal ``proposal_id`` (no change if it is decided)."""
        for i, p in enumerate(self.proposals):
            if p.id == proposal_id and p.pending:
                self.position = i
        return self.current

    def order_by(self, order: str) -> None:
        """Review in ``order``: ``added``, ``size`` (largest first) or ``score`` (highest first);
        ties keep the order added. The proposal under review stays under review."""
        if order not in ORDERS:
            raise ClinlabelError(f"Review order {order!r} is not one of {', '.join(ORDERS)}.")
        shown = self.current
        rank = {p.id: i for i, p in enumerate(self.added)}
        if order == "size":
            self.proposals = sorted(self.added, key=lambda p: (-proposal_size(p), rank[p.id]))
        elif order == "score":
            self.proposals = sorted(self.added, key=lambda p: (-float(p.score), rank[p.id]))
        else:
            self.proposals = list(self.added)
        self.order = order
        self.position = self.proposals.index(shown) if shown is not None else None

    def _step_from(self, pos: int | None, step: int) -> int | None:
        """The next undecided proposal after ``pos`` in direction ``step`` (wrapping)."""
        n = len(self.proposals)
        start = -1 if pos is None else pos
        for k in range(1, n + 1):
            i = (start + step * k) % n
            if self.proposals[i].pending:
                return i
        return None

    # -- geometry of the current proposal ----------------------------------------------------
    def current_indices(self) -> np.ndarray | None:
        """Flat voxel indices of the current segment proposal (None for boxes and grades)."""
        p = self.current
        return None if p is None or p.kind != "segment" else proposal_indices(self.log, p)

    def current_center(self) -> tuple[float, ...] | None:
        """Voxel centre (napari axis order) of the current proposal's box, to centre the view on."""
        p = self.current
        if p is None:
            return None
        lo_hi = p.payload.get("bbox") or (
            [p.payload["zyx_min"], p.payload["zyx_max"]] if "zyx_min" in p.payload else None
        )
        if not lo_hi:
            return None
        return tuple((a + b) / 2.0 for a, b in zip(lo_hi[0], lo_hi[1], strict=True))

    # -- decisions (one record each) ---------------------------------------------------------
    def accept(
        self, labels: np.ndarray | None = None, labels_name: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        """Accept the current proposal as it stands; returns the record and moves on."""
        rec = accept(self.log, self._require(), *self._labels(labels, labels_name), **kw)
        self._decided()
        return rec

    def edit(
        self,
        edited_mask: np.ndarray | None = None,
        edited: dict[str, Any] | None = None,
        labels: np.ndarray | None = None,
        labels_name: str | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        """Accept the current proposal as the human changed it (mask, or box/grade dict)."""
        target = self._labels(labels, labels_name)
        rec = edit(self.log, self._require(), *target, edited_mask, edited=edited, **kw)
        self._decided()
        return rec

    def reject(self) -> dict[str, Any]:
        """Reject the current proposal; returns the record and moves on."""
        rec = reject(self.log, self._require())
        self._decided()
        return rec

    def _labels(
        self, labels: np.ndarray | None, name: str | None
    ) -> tuple[np.ndarray | None, str | None]:
        return (self.labels if labels is None else labels,
                self.labels_name if name is None else name)  # fmt: skip

    def _require(self) -> Proposal:
        if self.current is None:
            raise ClinlabelError("No proposal is waiting for review.")
        return self.current

    def _decided(self) -> None:
        self.position = self._step_from(self.position, +1)
