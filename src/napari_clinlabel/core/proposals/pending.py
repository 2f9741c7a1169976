"""Reading proposals back from a sidecar log: states rebuilt from the records, the pending count,
and the export gate (:func:`require_no_pending`). Re-exported by :mod:`.proposals`.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_clinlabel.core.errors import PendingProposalsError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.proposals.model import Proposal, ProposalState

DECISIONS = ("proposal.accept", "proposal.edit", "proposal.reject")


def decided_in_log(path: Path, pid: str) -> str | None:
    """The decision action already logged for ``pid`` (a byte scan: canonical JSON is fixed)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    needle = f'"proposal":"{pid}"'.encode()
    pos = raw.find(needle)
    while pos >= 0:
        start = raw.rfind(b"\n", 0, pos) + 1
        end = raw.find(b"\n", pos)
        line = raw[start : end if end >= 0 else len(raw)]
        for action in DECISIONS:
            if f'"action":"{action}"'.encode() in line:
                return action
        pos = raw.find(needle, end if end >= 0 else len(raw))
    return _retracted_in(raw, pid)


RETRACT = "proposal.retract"  # one record rejecting every undecided proposal of a model run


def _retracted_in(raw: bytes, pid: str) -> str | None:
    """``RETRACT`` when a retraction record lists ``pid``."""
    mark = f'"action":"{RETRACT}"'.encode()
    pos = raw.find(mark)
    while pos >= 0:
        start = raw.rfind(b"\n", 0, pos) + 1
        end = raw.find(b"\n", pos)
        if f'"{pid}"'.encode() in raw[start : end if end >= 0 else len(raw)]:
            return RETRACT
        pos = raw.find(mark, end if end >= 0 else len(raw))
    return None


_COMMON = ("kind", "label", "score", "name", "labels", "objects")


def segment_payload(data: dict) -> dict:
    """A segment proposal's payload from its ``proposal.add`` data: mask digest, shape, bbox, …"""
    return {"mask": data["objects"]["mask"], **{k: v for k, v in data.items() if k not in _COMMON}}


_STATE_OF = {
    "proposal.accept": "accepted",
    "proposal.edit": "edited",
    "proposal.reject": "rejected",
}


def load_proposals(log_path: str | os.PathLike[str]) -> list[Proposal]:
    """Every proposal in a log, in the order added, with its state rebuilt from the decisions."""

    by_id: dict[str, Proposal] = {}
    for rec in iter_records(log_path):
        action = rec.get("action", "")
        if not action.startswith("proposal."):
            continue
        pid = (rec.get("target") or {}).get("proposal")
        if action == "proposal.add":
            d, src = rec.get("data") or {}, rec.get("source") or {}
            kind = d.get("kind")
            payload = segment_payload(d) if kind == "segment" else d.get(kind, {})
            by_id[pid] = Proposal(
                pid,
                kind,
                d.get("label"),
                float(d.get("score", 0.0)),
                {k: src.get(k) for k in ("name", "version", "sha256")},
                ProposalState.PROPOSED,
                rec["seq"],
                payload,
                d.get("name"),
            )
        elif action == RETRACT:  # a retracted run: its listed, still undecided proposals
            for rid in (rec.get("data") or {}).get("proposals") or []:
                if isinstance(rid, str) and rid in by_id and by_id[rid].pending:
                    by_id[rid].state, by_id[rid].decided_seq = ProposalState.REJECTED, rec["seq"]
        elif action in _STATE_OF and pid in by_id:
            p = by_id[pid]
            p.state, p.decided_seq = ProposalState(_STATE_OF[action]), rec["seq"]
            if action == "proposal.edit" and p.kind in rec.get("data", {}):
                p.payload = rec["data"][p.kind]
    return list(by_id.values())


def pending_count(log_path: str | os.PathLike[str]) -> int:
    """How many proposals in the log no human has decided yet."""
    return sum(p.pending for p in load_proposals(log_path))


def require_no_pending(log_path: str | os.PathLike[str], exclude_pending: bool = False) -> int:
    """Raise :class:`PendingProposalsError` while proposals are undecided, unless ``exclude_pending``.

    Returns the number of undecided proposals (left out of an export when ``exclude_pending``).
    """
    n = pending_count(log_path)
    if n and not exclude_pending:
        noun = "proposal is" if n == 1 else "proposals are"
        raise PendingProposalsError(
            f"{Path(log_path).name}: {n} {noun} still undecided; review them or pass "
            "--exclude-pending",
            pending=n,
        )
    return n
