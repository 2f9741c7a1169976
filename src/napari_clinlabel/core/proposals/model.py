"""What a proposal is: a model output (draft), and a logged proposal with its state."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from napari_clinlabel.core.log.audit_log import model_source

KINDS = ("segment", "box", "grade")


class ProposalState(str, Enum):  # noqa: UP042 (str mixin: JSON-friendly values)
    """Where a proposal stands; only a human decision moves it out of PROPOSED."""

    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    EDITED = "edited"
    REJECTED = "rejected"


@dataclass
class ProposalDraft:
    """A model output before it is logged: one segment, box or grade.

    ``indices`` (segment) are flat C-order voxel indices on an image of ``shape``; ``payload`` holds
    the box (``zyx_min``, ``zyx_max``, ``class``…) or grade (``scale``, ``value``, ``probabilities``).
    """

    kind: str
    label: int | str
    score: float
    indices: np.ndarray | None = None
    shape: tuple[int, ...] | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    name: str | None = None


@dataclass
class Proposal:
    """A logged proposal; ``payload`` is the mask digest (segment), box or grade as logged."""

    id: str
    kind: str
    label: int | str
    score: float
    model: dict[str, str]
    state: ProposalState = ProposalState.PROPOSED
    seq_added: int = -1
    payload: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    decided_seq: int | None = None

    @property
    def pending(self) -> bool:
        """True while no human has decided this proposal."""
        return self.state is ProposalState.PROPOSED

    @property
    def source(self) -> dict[str, str]:
        """The ``source`` field of records about this proposal (the model that proposed it)."""
        return model_source(self.model["name"], self.model["version"], self.model["sha256"])
