"""Model proposals and their lifecycle: proposed → accepted | edited | rejected, one human decision each.

A model's output arrives as :class:`ProposalDraft` objects; :func:`add_proposals` logs each as a
``proposal.add`` record (``source`` = the model, ``actor`` = the human who ran it). A human then
decides each one with :func:`accept`, :func:`edit` or :func:`reject`: one log record per decision,
naming the model whose work it confirms. Segment decisions write their voxels into the label array
through :func:`label_edits.record_label_change` (a diff object), so replay sees them like any other
label change. There is deliberately no accept-all and nothing that accepts by score.

Payloads: segment → ``data["objects"]["mask"]`` (npz with flat C-order ``indices`` and ``shape``);
box → ``data["box"]`` (``zyx_min``/``zyx_max`` inclusive voxel indices, ``class``, …); grade →
``data["grade"]`` (``scale``, ``value``, ``probabilities``).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.grading import proposal_as_grade
from napari_clinlabel.core.annotate.label_edits import (
    record_label_change,
    record_labels_create,
    record_labels_save,
)
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import AuditLog, model_source
from napari_clinlabel.core.proposals.model import KINDS, Proposal, ProposalDraft, ProposalState
from napari_clinlabel.core.proposals.pending import (
    RETRACT,
    decided_in_log,
    load_proposals,
    pending_count,
    require_no_pending,
    segment_payload,
)


def _identity(model: Any) -> dict[str, str]:
    ident = getattr(model, "identity", model)
    if hasattr(ident, "to_dict"):
        ident = ident.to_dict()
    if not isinstance(ident, dict) or not all(ident.get(k) for k in ("name", "version", "sha256")):
        raise ClinlabelError("A proposal must name its model (name, version, sha256).")
    return {k: str(ident[k]) for k in ("name", "version", "sha256")}


def new_proposal_id() -> str:
    """A short random id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def add_proposals(
    log: AuditLog, drafts: list[ProposalDraft], model: Any, labels_name: str | None = None
) -> list[Proposal]:
    """Log each draft as one ``proposal.add`` record (source = ``model``); return the proposals.

    ``model`` is a loaded model (with ``.identity``) or a ``{"name","version","sha256"}`` dict;
    ``labels_name`` (optional) names the label layer segment proposals are meant for.
    """
    ident = _identity(model)
    source = model_source(ident["name"], ident["version"], ident["sha256"])
    out = []
    for d in drafts:
        if d.kind not in KINDS:
            raise ClinlabelError(f"Proposal kind {d.kind!r} is not one of {', '.join(KINDS)}.")
        pid = new_proposal_id()
        data: dict[str, Any] = {"kind": d.kind, "label": d.label, "score": float(d.score)}
        if d.name:
            data["name"] = d.name
        if labels_name and d.kind == "segment":
            data["labels"] = labels_name
        if d.kind == "segment":
            if d.indices is None or d.shape is None:
                raise ClinlabelError("A segment proposal needs voxel indices and the image shape.")
            idx = np.asarray(d.indices, dtype=np.int64)
            digest = log.put_arrays(indices=idx, shape=np.asarray(d.shape, dtype=np.int64))
            coords = np.unravel_index(idx, d.shape) if idx.size else None
            data.update(
                voxels=int(idx.size),
                shape=[int(s) for s in d.shape],
                bbox=[[int(c.min()) for c in coords], [int(c.max()) for c in coords]]
                if coords
                else [],
                objects={"mask": digest},
            )
            if d.payload:
                data.update(_jsonable(d.payload))
            payload = segment_payload(data)
        else:
            payload = _jsonable(d.payload)
            data[d.kind] = payload
        rec = log.append("proposal.add", {"proposal": pid}, data, source)
        out.append(
            Proposal(
                pid,
                d.kind,
                d.label,
                float(d.score),
                ident,
                ProposalState.PROPOSED,
                rec["seq"],
                payload,
                d.name,
            )
        )
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def proposal_indices(log: AuditLog, proposal: Proposal) -> np.ndarray:
    """Flat C-order voxel indices of a segment proposal's mask (read from the log's objects)."""
    if proposal.kind != "segment":
        raise ClinlabelError(f"Proposal {proposal.id} is a {proposal.kind}, not a segment.")
    return log.get_arrays(proposal.payload["mask"])["indices"]


def proposal_mask(log: AuditLog, proposal: Proposal) -> np.ndarray:
    """Boolean mask (image shape) of a segment proposal."""
    shape = tuple(proposal.payload["shape"])
    mask = np.zeros(int(np.prod(shape)), dtype=bool)
    mask[proposal_indices(log, proposal)] = True
    return mask.reshape(shape)


def _check_undecided(log: AuditLog, proposal: Proposal) -> None:
    if not proposal.pending:
        raise ClinlabelError(
            f"Proposal {proposal.id} was already {proposal.state.value}; a decision is final "
            "(edit the labels directly to change them)."
        )
    decided = decided_in_log(log.path, proposal.id)
    if decided:
        raise ClinlabelError(
            f"Proposal {proposal.id} was already decided ({decided}) in {log.path.name}; a "
            "decision is final."
        )


def _ensure_labels_known(log: AuditLog, labels: np.ndarray, labels_name: str) -> None:
    """Replay needs each label array's start: log it before the first diff into it.

    A log made by ``clinlabel prelabel`` holds proposals but no label array yet; deciding one
    through this API then first records ``labels.create`` (empty array) or a ``labels.save``
    snapshot (an array with content the log has not seen). Checked once per log and name.
    """
    known = log.__dict__.setdefault("_labels_known", set())
    if labels_name in known:
        return
    for rec in log.records():
        if rec["action"] in ("labels.create", "labels.save") and (
            (rec.get("target") or {}).get("labels") == labels_name
        ):
            known.add(labels_name)
            return
    if np.any(labels):
        record_labels_save(log, labels, labels_name)
    else:
        record_labels_create(log, labels_name, labels.shape, labels.dtype)
    known.add(labels_name)


def _write_segment(
    log: AuditLog,
    proposal: Proposal,
    labels: np.ndarray,
    labels_name: str,
    indices: np.ndarray,
    action: str,
    extra: dict[str, Any],
    overwrite: bool,
) -> dict[str, Any]:
    if labels is None or labels_name is None:
        raise ClinlabelError(
            f"Proposal {proposal.id} is a segment: give the label array and its name."
        )
    shape = tuple(proposal.payload["shape"])
    if tuple(labels.shape) != shape:
        raise ClinlabelError(
            f"Proposal {proposal.id} was made on a {shape} grid but the labels are "
            f"{tuple(labels.shape)}; decide it on the image it was made for."
        )
    _ensure_labels_known(log, labels, labels_name)
    value = int(proposal.label)
    if value > np.iinfo(labels.dtype).max:
        raise ClinlabelError(f"Label {value} does not fit the {labels.dtype} label array.")
    flat = labels.reshape(-1)
    if not np.shares_memory(flat, labels):
        raise ClinlabelError("Label array must be contiguous to take a proposal.")
    old = flat[indices]
    keep = old != value if overwrite else old == 0
    skipped = int(np.count_nonzero((old != 0) & (old != value))) if not overwrite else 0
    idx = indices[keep]
    data = {
        "proposal": proposal.id,
        "label": value,
        "score": proposal.score,
        "kept_other_labels": skipped,
        **extra,
    }
    return record_label_change(
        log,
        labels,
        labels_name,
        idx,
        old[keep],
        np.full(idx.size, value, labels.dtype),
        action=action,
        source=proposal.source,
        data=data,
        target={"labels": labels_name, "proposal": proposal.id},
        applied=False,
    )


def accept(
    log: AuditLog,
    proposal: Proposal,
    labels: np.ndarray | None = None,
    labels_name: str | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """A human accepts one proposal as it stands; returns the ``proposal.accept`` record.

    A segment is written into ``labels`` (in place, logged as a diff); voxels already holding
    another label are kept unless ``overwrite``. A box or grade is recorded in ``data``.
    """
    _check_undecided(log, proposal)
    if proposal.kind == "segment":
        idx = proposal_indices(log, proposal)
        rec = _write_segment(
            log, proposal, labels, labels_name, idx, "proposal.accept", {}, overwrite
        )  # type: ignore[arg-type]
    else:
        target: dict[str, Any] = {"proposal": proposal.id}
        if labels_name:
            target["layer"] = labels_name
        data = {
            "proposal": proposal.id,
            "label": proposal.label,
            "score": proposal.score,
            proposal.kind: proposal.payload,
        }
        _stamp_grade(data, proposal, proposal.payload, log)
        rec = log.append("proposal.accept", target, data, proposal.source)
    proposal.state = ProposalState.ACCEPTED
    proposal.decided_seq = rec["seq"]
    return rec


def edit(
    log: AuditLog,
    proposal: Proposal,
    labels: np.ndarray | None = None,
    labels_name: str | None = None,
    edited_mask: np.ndarray | None = None,
    *,
    edited: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """A human accepts a proposal after changing it; returns the ``proposal.edit`` record.

    Segment: ``edited_mask`` (boolean, image shape, or flat indices) is what lands, logged as the
    diff, with ``changed_vs_proposal`` voxels. Box/grade: ``edited`` is the new box or grade dict.
    """
    _check_undecided(log, proposal)
    if proposal.kind == "segment":
        if edited_mask is None:
            raise ClinlabelError(f"Editing segment proposal {proposal.id} needs the edited mask.")
        m = np.asarray(edited_mask)
        if m.dtype == bool:
            if tuple(m.shape) != tuple(proposal.payload["shape"]):
                raise ClinlabelError(
                    f"Edited mask shape {m.shape} differs from proposal {proposal.id}'s grid "
                    f"{tuple(proposal.payload['shape'])}."
                )
            new_idx = np.flatnonzero(m.reshape(-1)).astype(np.int64)
        else:
            new_idx = np.unique(m.astype(np.int64))
        old_idx = proposal_indices(log, proposal)
        changed = int(np.setxor1d(old_idx, new_idx, assume_unique=True).size)
        extra = {"edited": True, "changed_vs_proposal": changed}
        rec = _write_segment(
            log,
            proposal,
            labels,
            labels_name,
            new_idx,
            "proposal.edit",
            extra,  # type: ignore[arg-type]
            overwrite,
        )
    else:
        if not isinstance(edited, dict):
            raise ClinlabelError(
                f"Editing {proposal.kind} proposal {proposal.id} needs the edited {proposal.kind}."
            )
        new = _jsonable(edited)
        changed_keys = sorted(
            k for k in set(new) | set(proposal.payload) if new.get(k) != proposal.payload.get(k)
        )
        target = {"proposal": proposal.id}
        if labels_name:
            target["layer"] = labels_name
        data = {
            "proposal": proposal.id,
            "label": new.get("value", new.get("class", proposal.label)),
            "score": proposal.score,
            "edited": True,
            "changed_vs_proposal": changed_keys,
            "proposed": proposal.payload,
            proposal.kind: new,
        }
        _stamp_grade(data, proposal, new, log)
        rec = log.append("proposal.edit", target, data, proposal.source)
        proposal.payload = new
    proposal.state = ProposalState.EDITED
    proposal.decided_seq = rec["seq"]
    return rec


def _stamp_grade(data: dict[str, Any], proposal: Proposal, grade: dict[str, Any], log: Any) -> None:
    """A grade proposal decided: record the grade it sets (``as_grade``) so it counts as one;
    a value not on its scale is refused before anything is logged."""
    if proposal.kind != "grade":
        return
    as_grade = proposal_as_grade(grade, getattr(log, "schema", None))
    if as_grade is not None:
        data["as_grade"] = as_grade


def reject(log: AuditLog, proposal: Proposal) -> dict[str, Any]:
    """A human rejects one proposal (no label change); returns the ``proposal.reject`` record."""
    _check_undecided(log, proposal)
    rec = log.append(
        "proposal.reject",
        {"proposal": proposal.id},
        {"proposal": proposal.id, "label": proposal.label, "score": proposal.score},
        proposal.source,
    )
    proposal.state = ProposalState.REJECTED
    proposal.decided_seq = rec["seq"]
    return rec


def retract_run(
    log: AuditLog, model: Any, reason: str, proposals: list[Proposal] | None = None
) -> dict[str, Any] | None:
    """A human retracts a model's run: one ``proposal.retract`` record rejecting, with ``reason``,
    every proposal of ``model`` (its identity dict or loaded model) no one has decided yet.

    Decided proposals are left as they are and nothing is ever accepted. ``proposals`` are the
    in-memory proposals to update (default: read from the log). Returns the record, or None when
    the run has nothing undecided.
    """
    ident = _identity(model)
    why = str(reason or "").strip()
    if not why:
        raise ClinlabelError("Say why the run is retracted (a reason is recorded with it).")
    if len(why) > 500:
        raise ClinlabelError("The retraction reason is over 500 characters; shorten it.")
    current = proposals if proposals is not None else load_proposals(log.path)
    mine = [
        p for p in current
        if p.pending and all(str(p.model.get(k)) == ident[k] for k in ident)
        and decided_in_log(log.path, p.id) is None
    ]  # fmt: skip
    if not mine:
        return None
    rec = log.append(
        RETRACT,
        {"model": ident["sha256"]},
        {"proposals": [p.id for p in mine], "count": len(mine), "reason": why,
         "decision": "rejected"},
        model_source(ident["name"], ident["version"], ident["sha256"]),
    )  # fmt: skip
    for p in mine:
        p.state, p.decided_seq = ProposalState.REJECTED, rec["seq"]
    return rec


__all__ = [
    "Proposal",
    "ProposalDraft",
    "ProposalState",
    "accept",
    "add_proposals",
    "edit",
    "load_proposals",
    "pending_count",
    "proposal_indices",
    "proposal_mask",
    "reject",
    "require_no_pending",
    "retract_run",
]
