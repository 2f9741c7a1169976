"""A review queue over one image's pending proposals: the state behind the Review-queue widget.

Walks the undecided proposals one at a time (``next``/``previous`` wrap around); each decision
(:meth:`accept`, :meth:`edit`, :meth:`reject`) is one call into :mod:`.proposals`, so one log
record, after which the queue moves to the next undecided proposal at once. It holds no Qt and
no napari: a widget maps keys A/E/R/N/P onto these methods and draws :meth:`current_indices`.
There is no accept-all.
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


class ReviewQueue:
    """Undecided proposals of ``log`` in the order added, with a cursor on the one under review."""

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
        self.proposals = [p for p in (proposals or load_proposals(log.path)) if p.pending]
        self.position = 0

    def __len__(self) -> int:
        """How many proposals are still undecided."""
        return len(self.proposals)

    @property
    def current(self) -> Proposal | None:
        """The proposal under review (None when all are decided)."""
        return self.proposals[self.position] if self.proposals else None

    def next(self) -> Proposal | None:
        """Move to the next undecided proposal (wraps around)."""
        if self.proposals:
            self.position = (self.position + 1) % len(self.proposals)
        return self.current

    def previous(self) -> Proposal | None:
        """Move to the previous undecided proposal (wraps around)."""
        if self.proposals:
            self.position = (self.position - 1) % len(self.proposals)
        return self.current

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

    def accept(self, **kwargs: Any) -> dict[str, Any]:
        """Accept the current proposal as it stands; returns the record and moves on."""
        rec = accept(self.log, self._require(), self.labels, self.labels_name, **kwargs)
        self._decided()
        return rec

    def edit(
        self, edited_mask: np.ndarray | None = None, edited: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """Accept the current proposal as the human changed it (mask, or box/grade dict)."""
        rec = edit(
            self.log,
            self._require(),
            self.labels,
            self.labels_name,
            edited_mask,
            edited=edited,
            **kw,
        )
        self._decided()
        return rec

    def reject(self) -> dict[str, Any]:
        """Reject the current proposal; returns the record and moves on."""
        rec = reject(self.log, self._require())
        self._decided()
        return rec

    def _require(self) -> Proposal:
        if self.current is None:
            raise ClinlabelError("No proposal is waiting for review.")
        return self.current

    def _decided(self) -> None:
        del self.proposals[self.position]
        if self.position >= len(self.proposals):
            self.position = 0
