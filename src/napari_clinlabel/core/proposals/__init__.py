"""Model proposals: what a model suggested, and one human decision on each (never in bulk).

``model`` holds the types (:class:`ProposalDraft` from a model, :class:`Proposal` once logged,
:class:`ProposalState`); ``lifecycle`` logs them (:func:`add_proposals`) and decides each one
(:func:`accept`, :func:`edit`, :func:`reject`); ``pending`` reads them back from a log
(:func:`load_proposals`, :func:`pending_count`, :func:`require_no_pending`, the export guard);
``review_queue`` (:class:`ReviewQueue`) walks one image's pending proposals in order.
"""

from napari_clinlabel.core.proposals.lifecycle import accept, add_proposals, edit, reject
from napari_clinlabel.core.proposals.model import Proposal, ProposalDraft, ProposalState
from napari_clinlabel.core.proposals.pending import (
    load_proposals,
    pending_count,
    require_no_pending,
)
from napari_clinlabel.core.proposals.review_queue import ReviewQueue

__all__ = [
    "Proposal",
    "ProposalDraft",
    "ProposalState",
    "ReviewQueue",
    "accept",
    "add_proposals",
    "edit",
    "load_proposals",
    "pending_count",
    "reject",
    "require_no_pending",
]
