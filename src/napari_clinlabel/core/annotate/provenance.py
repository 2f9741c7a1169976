"""Per-voxel provenance of a label array, replayed from the sidecar log.

Walking the log in order, every record that changes the label array (``target["labels"]`` and a
``diff`` object) is applied to the labels *and* stamps the changed voxels with how they came about:

- ``manual``: a human drew them (``label.paint``, fill, region growing, …);
- ``model``: a proposal accepted unchanged (``proposal.accept``);
- ``edited``: a proposal accepted after a human change (``proposal.edit``, or an accept of a
  proposal that had an edit before);
- ``adjudicated``: a senior reviewer's decision (``adjudicate``), a human act;
- ``tool``: a semi-automatic tool's result the human applied (``source`` kind ``tool``: grow from
  seeds, local threshold, margin, …); the tool counts like a model (SEMIAUTOMATIC, never MANUAL).

A segment (label value) is MANUAL when all its voxels are human work, AUTOMATIC when all come from
proposals accepted unchanged (and no human touched the model's voxels), SEMIAUTOMATIC otherwise
when a model is involved. These are DICOM SEG's SegmentAlgorithmType values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.label_edits import apply_diff
from napari_clinlabel.core.errors import LogError
from napari_clinlabel.core.log.audit_log import ObjectStore, iter_records, sidecar_paths

MANUAL, AUTOMATIC, SEMIAUTOMATIC = "MANUAL", "AUTOMATIC", "SEMIAUTOMATIC"
_KIND_MANUAL, _KIND_MODEL, _KIND_EDITED, _KIND_ADJUDICATED = (
    "manual",
    "model",
    "edited",
    "adjudicated",
)
_KIND_TOOL = "tool"
TOOL_PREFIX = "tool:"  # a tool's (name, version) key is ("tool:<name>", version)


@dataclass
class SegmentProvenance:
    """How one label value's voxels came about: algorithm type, models involved, confirming humans."""

    algorithm_type: str
    models: list[dict[str, str]] = field(default_factory=list)  # [{"name", "version"}]
    confirmed_by: set[str] = field(default_factory=set)  # actor ids
    voxels: int = 0


@dataclass
class ProvenanceState:
    """Labels after the walk, with per-voxel tags into ``tags`` (kind, model key, actor id)."""

    labels: np.ndarray | None
    tag_of_voxel: np.ndarray | None
    tags: list[tuple[str, tuple[str, str] | None, str]]
    touched: dict[int, set[tuple[str, str]]]  # label value -> models whose voxels a human changed


def _objects_for(log_path: str | os.PathLike[str]) -> ObjectStore:
    p = str(log_path)
    base = p[: -len(".jsonl")] if p.endswith(".jsonl") else p
    return ObjectStore(os.path.join(base, "objects"))


def _model_of(rec: dict[str, Any], proposal_sources: dict[Any, dict[str, Any]]) -> tuple[str, str]:
    src = rec.get("source") or {}
    if src.get("kind") != "model":
        src = proposal_sources.get(_proposal_id(rec)) or {}
    if src.get("kind") != "model":
        raise LogError(
            f"seq {rec.get('seq')}: {rec.get('action')} does not name the model that proposed the "
            "voxels; run 'clinlabel log verify' — a model's work is never attributed to nobody."
        )
    return str(src["name"]), str(src["version"])


def _proposal_id(rec: dict[str, Any]) -> Any:
    target = rec.get("target")
    if isinstance(target, dict):
        pid = target.get("proposal", target.get("id"))
        return pid if not isinstance(pid, list | dict) else repr(pid)
    return None


def walk_provenance(
    log_path: str | os.PathLike[str],
    labels_name: str,
    at_seq: int | None = None,
    _depth: int = 0,
) -> ProvenanceState:
    """Replay ``labels_name`` from the log, stamping each changed voxel with its provenance tag.

    An ``adjudicate`` record's voxels are the adjudicator's (human) decision; where the chosen
    value agrees with a cited read whose voxel a model proposed, that model counts as involved
    (the segment becomes SEMIAUTOMATIC, never MANUAL, when model work is carried into it).
    """
    store = _objects_for(log_path)
    labels: np.ndarray | None = None
    tag_map: np.ndarray | None = None
    tags: list[tuple[str, tuple[str, str] | None, str]] = []
    tag_index: dict[tuple[str, tuple[str, str] | None, str], int] = {}
    touched: dict[int, set[tuple[str, str]]] = {}
    proposal_sources: dict[Any, dict[str, Any]] = {}
    edited_proposals: set[Any] = set()
    # undo/redo give voxels back their earlier origin: what each record changed, from what
    steps: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}  # seq -> (indices, tags before, tag)
    undone: dict[int, int] = {}  # an undo record's seq -> the seq it undid

    def tag(kind: str, model: tuple[str, str] | None, actor: str) -> int:
        key = (kind, model, actor)
        if key not in tag_index:
            tag_index[key] = len(tags)
            tags.append(key)
        return tag_index[key]

    for rec in iter_records(log_path):
        if at_seq is not None and rec["seq"] > at_seq:
            break
        action = str(rec.get("action", ""))
        target = rec.get("target")
        if action.startswith("proposal."):
            pid = _proposal_id(rec)
            if action == "proposal.add" and (rec.get("source") or {}).get("kind") == "model":
                proposal_sources[pid] = rec["source"]
            if action == "proposal.edit":
                edited_proposals.add(pid)
        if not isinstance(target, dict) or target.get("labels") != labels_name:
            continue
        objects = (rec.get("data") or {}).get("objects") or {}
        actor = str((rec.get("actor") or {}).get("id", ""))
        if action == "labels.create":
            shape = tuple(int(s) for s in rec["data"]["shape"])
            labels = np.zeros(shape, dtype=np.dtype(rec["data"].get("dtype", "uint8")))
            tag_map = np.zeros(shape, dtype=np.uint16)
            tag(_KIND_MANUAL, None, "")  # tag 0: background nobody drew
            continue
        if "snapshot" in objects and "diff" not in objects:
            snap = store.get_arrays(objects["snapshot"])["labels"]
            if labels is None or labels.shape != snap.shape:
                labels = np.zeros(snap.shape, dtype=snap.dtype)
                tag_map = np.zeros(snap.shape, dtype=np.uint16)
                tag(_KIND_MANUAL, None, "")
            idx = np.flatnonzero(labels.reshape(-1) != snap.reshape(-1))
            diff = {"indices": idx, "old": labels.reshape(-1)[idx], "new": snap.reshape(-1)[idx]}
        elif "diff" in objects:
            diff = store.get_arrays(objects["diff"])
            if labels is None:
                shape = tuple(int(s) for s in diff.get("shape", ()))
                if not shape:
                    raise LogError(
                        f"{log_path}: seq {rec['seq']} changes labels {labels_name!r} before they "
                        "were created; run 'clinlabel log verify'."
                    )
                labels = np.zeros(shape, dtype=diff["new"].dtype)
                tag_map = np.zeros(shape, dtype=np.uint16)
                tag(_KIND_MANUAL, None, "")
        else:
            continue
        assert labels is not None and tag_map is not None
        idx = np.asarray(diff["indices"], dtype=np.int64)
        data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
        step = _undo_redo(data, steps, undone)
        if step is not None:  # the voxels take back the origin they had before / after that edit
            apply_diff(labels, {"indices": idx, "old": diff["old"], "new": diff["new"]})
            before = tag_map.reshape(-1)[idx].copy()
            tag_map.reshape(-1)[idx] = _restore_tags(step, idx, before)
            if step[2] < 0:  # an undo: a later redo of it gives the undone edit's origin back
                undone[int(rec["seq"])] = int(data["undoes"])
            else:  # a redo: undoing it later gives these voxels' origin before it
                steps[int(rec["seq"])] = (idx, before, step[2])
            continue
        if action == "proposal.accept":
            pid = _proposal_id(rec)
            kind = _KIND_EDITED if pid in edited_proposals else _KIND_MODEL
            model: tuple[str, str] | None = _model_of(rec, proposal_sources)
        elif action == "proposal.edit":
            kind, model = _KIND_EDITED, _model_of(rec, proposal_sources)
        elif action == "adjudicate":
            kind, model = _KIND_ADJUDICATED, None
            for v, m in _models_in_reads(log_path, rec, idx, diff["new"], _depth):
                touched.setdefault(v, set()).add(m)
        elif (rec.get("source") or {}).get("kind") == _KIND_TOOL:
            src = rec["source"]
            kind, model = _KIND_TOOL, (TOOL_PREFIX + str(src.get("name")), str(src.get("version")))
        else:
            kind, model = _KIND_MANUAL, None
        if (model is None or kind == _KIND_TOOL) and idx.size:
            _note_human_over_model(labels, tag_map, tags, idx, touched)
        apply_diff(labels, {"indices": idx, "old": diff["old"], "new": diff["new"]})
        t = tag(kind, model, actor)
        if len(tags) > np.iinfo(np.uint16).max:
            raise LogError(f"{log_path}: too many distinct provenance tags to track.")
        steps[int(rec["seq"])] = (idx, tag_map.reshape(-1)[idx].copy(), t)
        tag_map.reshape(-1)[idx] = t
    return ProvenanceState(labels, tag_map, tags, touched)


def _undo_redo(
    data: dict[str, Any],
    steps: dict[int, tuple[np.ndarray, np.ndarray, int]],
    undone: dict[int, int],
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """For an undo: (indices, tags before, -1) of the edit it undoes; for a redo: (indices,
    tags before, tag) of the edit its undo had undone; None for any other record (or one naming
    an edit this walk did not see)."""
    if isinstance(data.get("undoes"), int) and data["undoes"] in steps:
        idx, before, _ = steps[data["undoes"]]
        return idx, before, -1
    if isinstance(data.get("redoes"), int) and undone.get(data["redoes"]) in steps:
        return steps[undone[data["redoes"]]]
    return None


def _restore_tags(
    step: tuple[np.ndarray, np.ndarray, int], idx: np.ndarray, current: np.ndarray
) -> np.ndarray:
    """The tags of voxels ``idx`` after an undo (their tags before the undone edit) or a redo
    (the redone edit's tag); a voxel the step did not cover keeps ``current``."""
    step_idx, before, t = step
    out = current.copy()
    if step_idx.size == 0 or idx.size == 0:
        return out
    order = np.argsort(step_idx, kind="stable")
    sorted_idx = step_idx[order]
    pos = np.clip(np.searchsorted(sorted_idx, idx), 0, sorted_idx.size - 1)
    hit = sorted_idx[pos] == idx
    out[hit] = before[order[pos[hit]]] if t < 0 else t
    return out


def _models_in_reads(
    log_path: str | os.PathLike[str],
    rec: dict[str, Any],
    idx: np.ndarray,
    new: np.ndarray,
    depth: int,
) -> set[tuple[int, tuple[str, str]]]:
    """(label value, model) pairs where the adjudicated value agrees with a read a model made."""
    out: set[tuple[int, tuple[str, str]]] = set()
    if depth > 3 or not idx.size:
        return out
    folder = os.path.dirname(os.path.abspath(log_path))
    for cite in (rec.get("data") or {}).get("reads") or []:
        if not isinstance(cite, dict) or not cite.get("log") or not cite.get("labels"):
            continue
        read_log = os.path.join(folder, os.path.basename(str(cite["log"])))
        if not os.path.isfile(read_log):
            continue
        seq = cite.get("seq")
        if os.path.abspath(read_log) == os.path.abspath(log_path) and seq is not None:
            seq = min(int(seq), int(rec["seq"]) - 1)
        st = walk_provenance(read_log, str(cite["labels"]), seq, depth + 1)
        if st.labels is None or st.tag_of_voxel is None or st.labels.size <= int(idx.max()):
            continue
        agree = st.labels.reshape(-1)[idx] == new
        vals, tags = new[agree], st.tag_of_voxel.reshape(-1)[idx][agree]
        for v, t in set(zip(vals.tolist(), tags.tolist(), strict=True)):
            model = st.tags[int(t)][1]
            if model is not None and int(v) != 0:
                out.add((int(v), model))
            out.update((int(v), m) for m in st.touched.get(int(v), set()) if int(v) != 0)
    return out


def _note_human_over_model(
    labels: np.ndarray,
    tag_map: np.ndarray,
    tags: list[tuple[str, tuple[str, str] | None, str]],
    idx: np.ndarray,
    touched: dict[int, set[tuple[str, str]]],
) -> None:
    """Remember which label values had model voxels changed by a human (they become SEMIAUTOMATIC)."""
    old_tags = tag_map.reshape(-1)[idx]
    old_vals = labels.reshape(-1)[idx]
    for t in np.unique(old_tags):
        _, model, _ = tags[int(t)]
        if model is None:
            continue
        for v in np.unique(old_vals[old_tags == t]):
            if int(v) != 0:
                touched.setdefault(int(v), set()).add(model)


def summarize(state: ProvenanceState) -> dict[int, SegmentProvenance]:
    """Per non-zero label value: algorithm type, models (name, version) and confirming actor ids."""
    out: dict[int, SegmentProvenance] = {}
    if state.labels is None or state.tag_of_voxel is None:
        return out
    flat = state.labels.reshape(-1)
    tflat = state.tag_of_voxel.reshape(-1)
    nz = flat != 0
    pairs, counts = np.unique(
        np.stack([flat[nz].astype(np.int64), tflat[nz].astype(np.int64)]),
        axis=1,
        return_counts=True,
    )
    per_value: dict[int, list[tuple[int, int]]] = {}
    for (v, t), n in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        per_value.setdefault(int(v), []).append((int(t), int(n)))
    for value in sorted(set(per_value) | set(state.touched)):
        kinds: set[str] = set()
        models: list[tuple[str, str]] = []
        actors: set[str] = set()
        voxels = 0
        for t, n in per_value.get(value, []):
            kind, model, actor = state.tags[t]
            kinds.add(kind)
            voxels += n
            if actor:
                actors.add(actor)
            if model is not None and model not in models:
                models.append(model)
        touched = state.touched.get(value, set())
        for m in sorted(touched):
            if m not in models:
                models.append(m)
        if voxels == 0:
            continue  # nothing left of this label
        if not models:
            algo = MANUAL
        elif kinds == {_KIND_MODEL} and not touched:
            algo = AUTOMATIC
        else:
            algo = SEMIAUTOMATIC
        out[value] = SegmentProvenance(
            algo,
            [
                {"name": n.removeprefix(TOOL_PREFIX), "version": ver, "kind": _KIND_TOOL}
                if n.startswith(TOOL_PREFIX)
                else {"name": n, "version": ver}
                for n, ver in models
            ],
            actors,
            voxels,
        )  # fmt: skip
    return out


def segment_provenance(
    log_path: str | os.PathLike[str], labels_name: str, at_seq: int | None = None
) -> dict[int, SegmentProvenance]:
    """``{label value: SegmentProvenance}`` for the final (or ``at_seq``) state of ``labels_name``."""
    return summarize(walk_provenance(log_path, labels_name, at_seq))


def log_path_for(image_path: str | os.PathLike[str]) -> str:
    """The sidecar log path of an image file or DICOM folder."""
    return str(sidecar_paths(image_path)[0])
