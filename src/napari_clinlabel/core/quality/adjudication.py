"""Senior adjudication of two or more readers' labels of one image, signed and citing the reads.

The adjudicator (roster role ``adjudicator``, never one of the readers) sees each reader's final
labels, where they disagree and the agreement figures; then accepts one reader's version, merges
them, or redraws, gives a reason, and signs. That is two records in the adjudicator's log of the
image: ``adjudicate`` (target: the adjudicated labels layer; data: the decision, the reason, the
result's voxel digest and, for each read, the reader, log file and the ``seq``/``hash`` of that
log's last record — the read as it stood) and ``sign`` with meaning ``adjudication`` over it.
Voxels the ``adjudicate`` record changes are tagged ``adjudicated`` by provenance.

Each read also carries its reader's image-level grades. When the reads disagree on a grade, the
adjudicator must choose it: the ``adjudicate`` record's data then holds ``grades`` (scale →
value, the final grade), ``grade_reads`` (what each reader graded) and, when the adjudicator took
the grades by accepting one reader's read, ``grades_from`` (that reader). A decision that leaves a
disputed grade unchosen is refused, and :func:`is_adjudicated` with ``grades`` counts only a
decision that chose them (how the programme's queue tells a grade dispute is settled).

Majority vote and STAPLE (:func:`merge_reads`) are starting points the adjudicator edits, never
the answer: nothing is final until a named adjudicator signs it.
Readers are blinded to each other until the image is adjudicated (:func:`visible_reads`).
Readers who shared a folder share one log holding each reader's own array
(``core.annotate.reads``); :func:`load_reads` takes each such array as one read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.grading import (
    grades_from_records,
    is_image_item,
    resolve_value,
    scale_for_proposal,
)
from napari_clinlabel.core.annotate.label_edits import (
    diff_between,
    record_label_change,
    record_labels_create,
)
from napari_clinlabel.core.annotate.reads import (
    READS_BASE,
    is_of_base,
    label_arrays,
    records_adjudicated,
)
from napari_clinlabel.core.annotate.replay import log_spacing_known, replay_labels
from napari_clinlabel.core.errors import (
    InputError,
    LogIntegrityError,
    PendingProposalsError,
    PermissionRefused,
)
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import PixelGeometry, spacing_known, voxel_sha256
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.signing import load_private_key, require_role, sign_head
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import pending_count
from napari_clinlabel.core.quality.metrics import label_map_agreement
from napari_clinlabel.core.quality.staple import multilabel_staple

__all__ = [
    "Read",
    "load_reads",
    "shared_read_names",
    "disagreement_map",
    "grade_disagreements",
    "pairwise_agreement",
    "merge_reads",
    "classify_decision",
    "adjudicate",
    "is_adjudicated",
    "visible_reads",
]

ADJUDICATED_LAYER = "adjudicated"


@dataclass
class Read:
    """One reader's final labels of the image, and where they come from in that reader's log."""

    reader: str  # actor id
    reader_name: str
    log_path: Path
    labels_name: str
    labels: np.ndarray
    geometry: Geometry | None  # a PixelGeometry when the image states no pixel size
    image_sha: str
    head: dict[str, Any]  # {"seq", "hash"} of the reader's last record of the read when read
    grades: dict[str, str] = field(default_factory=dict)  # scale -> value, image-level

    def citation(self) -> dict[str, Any]:
        """How an ``adjudicate`` record cites this read (file name only, never the folder)."""
        return {
            "reader": self.reader,
            "log": self.log_path.name,
            "labels": self.labels_name,
            "seq": self.head["seq"],
            "hash": self.head["hash"],
        }


def _reader_of(records: list[dict[str, Any]], labels_name: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    actors: dict[str, dict[str, Any]] = {}
    for r in records:
        t = r.get("target")
        if isinstance(t, dict) and t.get("labels") == labels_name:
            a = r.get("actor") or {}
            counts[str(a.get("id"))] = counts.get(str(a.get("id")), 0) + 1
            actors[str(a.get("id"))] = a
    if not counts:
        raise InputError(f"labels {labels_name!r} have no edits by anyone")
    return actors[max(counts, key=counts.get)]


def _actor_of(records: list[dict[str, Any]], actor_id: str) -> dict[str, Any]:
    """The actor record of ``actor_id``'s first record (their name as logged)."""
    for r in records:
        a = r.get("actor") or {}
        if str(a.get("id")) == actor_id:
            return a
    return {"id": actor_id}


def _image_grades(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {s: g.value for (s, i), g in grades_from_records(records).items() if is_image_item(i)}


def _own_head(records: list[dict[str, Any]], labels_name: str, owner: str) -> dict[str, Any]:
    """``{"seq", "hash"}`` of the last record of one reader's read in a shared log: the last
    record of their array or by them (their grades, their ``image.done``)."""
    for r in reversed(records):
        t = r.get("target")
        if (isinstance(t, dict) and t.get("labels") == labels_name) or str(
            (r.get("actor") or {}).get("id")
        ) == owner:
            return {"seq": r["seq"], "hash": r["hash"]}
    raise InputError(f"labels {labels_name!r} have no record by {owner!r}")


def shared_read_names(records: list[dict[str, Any]], base: str = READS_BASE) -> list[str]:
    """The readers' own arrays of ``base`` in one shared log that hold a read (someone changed
    them), in order of first appearance."""
    return [n for n, a in label_arrays(records).items() if is_of_base(n, base) and a.first_editor]


def load_reads(
    log_paths: list[str | os.PathLike[str]],
    image_sha: str | None = None,
    labels_name: str | None = None,
) -> list[Read]:
    """Each reader's final labels from their log of the image (verified, no undecided proposals).

    A log that readers shared (one folder) and that holds several readers' own arrays
    (``segmentation``, ``segmentation (<id>)``) gives one read per array, its reader the array's
    owner (``core.annotate.reads``), so one log path may be enough. A read of an image that
    states no pixel size (PNG, JPEG, …) carries a :class:`~.volume.PixelGeometry`, so its
    agreement figures are in pixels.
    """
    if not log_paths:
        raise InputError("adjudication needs the readers' logs of the image; none was given")
    reads: list[Read] = []
    for lp in map(Path, log_paths):
        if not lp.is_file():
            raise InputError(f"{lp}: no such log file; check the path")
        report = verify_log(lp)
        if not report.ok:
            raise LogIntegrityError(
                f"{lp}: {report.summary()}; this read cannot be trusted", report.first_bad_seq
            )
        if pending_count(lp):
            raise PendingProposalsError(
                f"{lp}: the reader has undecided model proposals; the read is not finished",
                pending_count(lp),
            )
        rep = replay_labels(lp)
        sha = str((rep.image or {}).get("sha256") or "")
        if image_sha is not None and sha != image_sha:
            raise InputError(
                f"{lp}: is a log of another image (voxel sha256 {sha[:12]}…, this image "
                f"{image_sha[:12]}…); open the image these reads belong to"
            )
        records = list(iter_records(lp))
        shared = [] if labels_name else shared_read_names(records)
        shared = [n for n in shared if n in rep.labels] if len(shared) > 1 else []
        names = shared or ([labels_name] if labels_name else list(rep.labels))
        if not shared and (len(names) != 1 or names[0] not in rep.labels):
            raise InputError(f"{lp}: holds labels {sorted(rep.labels)}; name the one to adjudicate")
        arrays = label_arrays(records)
        geometry = rep.geometry
        if not log_spacing_known(lp, records, geometry):
            ndim = rep.labels[names[0]].ndim
            geometry = PixelGeometry.like(geometry or PixelGeometry.identity(ndim))
        for name in names:
            owner = arrays[name].first_editor if shared else None
            actor = _actor_of(records, owner) if owner else _reader_of(records, name)
            if owner:  # a shared log: this reader's own records only
                head = _own_head(records, name, owner)
                mine = [r for r in records if str((r.get("actor") or {}).get("id")) == owner]
                grades = _image_grades(mine)
            else:
                head, grades = report.head.to_dict(), _image_grades(records)
            reads.append(
                Read(
                    str(actor.get("id")),
                    str(actor.get("name", actor.get("id"))),
                    lp,
                    name,
                    rep.labels[name],
                    geometry,
                    sha,
                    head,
                    grades,
                )  # fmt: skip
            )
    if len(reads) < 2:
        raise InputError(
            f"adjudication needs at least two reads (one log per reader, or one shared log "
            f"holding several readers' labels); {', '.join(Path(p).name for p in log_paths)} "
            f"gave {len(reads)}"
        )
    if len({r.image_sha for r in reads}) != 1:
        raise InputError("the reader logs are of different images; adjudicate one image at a time")
    known = [r.geometry is None or spacing_known(r.geometry) for r in reads]
    if len(set(known)) != 1:
        px = sorted(r.log_path.name for r, k in zip(reads, known, strict=True) if not k)
        raise InputError(
            f"{', '.join(px)}: logged the image without a pixel size, the other reads in mm; "
            "the reads cannot be compared — have every reader open the same image file"
        )
    if len({r.labels.shape for r in reads}) != 1:
        raise InputError(
            f"the reads have different shapes {sorted({r.labels.shape for r in reads})}"
        )
    ids = [r.reader for r in reads]
    if len(set(ids)) != len(ids):
        raise InputError(
            f"two of the logs are by the same reader ({', '.join(ids)}); give one per reader"
        )
    return reads


def disagreement_map(reads: list[Read]) -> np.ndarray:
    """uint8 map: 1 where the readers' labels differ, 0 where all agree."""
    stack = [r.labels for r in reads]
    out = np.zeros(stack[0].shape, np.uint8)
    for other in stack[1:]:
        out |= stack[0] != other
    return out


def grade_disagreements(reads: list[Read]) -> dict[str, dict[str, str | None]]:
    """``{scale: {reader: value or None}}`` for each image-level grade the reads do not all give
    alike (a reader who did not grade the scale counts as None)."""
    scales = dict.fromkeys(s for r in reads for s in r.grades)
    out = {}
    for scale in scales:
        values = {r.reader: r.grades.get(scale) for r in reads}
        if len(set(values.values())) > 1:
            out[scale] = values
    return out


def _checked_grade(scale: str, value: Any, reads: list[Read]) -> str:
    """``value`` as the scale stores it (a built-in scale checks it; another scale's value must
    be one a reader gave)."""
    text = str(value).strip()
    sc = scale_for_proposal({"scale": scale, "value": text})
    if sc is not None and sc.id == scale:
        return str(resolve_value(sc, text).value)
    given = {r.grades.get(scale) for r in reads} - {None}
    if text not in given:
        raise InputError(
            f"grade {scale}={text!r}: the scale is not a built-in one, so choose a value a reader "
            f"gave ({', '.join(sorted(map(str, given))) or 'none'}); nothing was recorded"
        )
    return text


def decide_grades(
    reads: list[Read], grades: Mapping[str, Any] | None = None, accept: str | None = None
) -> tuple[dict[str, str], str | None]:
    """The adjudicated grades: ``grades`` as given, and for a disputed scale not given, the grade
    of the accepted reader ``accept`` (the adjudicator chose that read, grade included).

    Returns (``{scale: value}``, the reader whose grades were taken or None). Refused (InputError)
    when a disputed grade stays unchosen or a given one names a scale no read graded.
    """
    known = {s for r in reads for s in r.grades}
    unknown = sorted({str(k) for k in grades or {}} - known)
    if unknown:
        raise InputError(
            f"no read grades {', '.join(unknown)} (graded: {', '.join(sorted(known)) or 'none'}); "
            "nothing was recorded"
        )
    chosen = {str(k): _checked_grade(str(k), v, reads) for k, v in (grades or {}).items()}
    taken_from = None
    disputed = grade_disagreements(reads)
    by = {r.reader: r for r in reads}
    for scale, values in disputed.items():
        if scale in chosen:
            continue
        if accept is not None and by.get(accept) and values.get(accept) is not None:
            chosen[scale] = str(values[accept])
            taken_from = accept
            continue
        said = ", ".join(f"{u} {v}" for u, v in values.items())
        raise InputError(
            f"the reads disagree on grade {scale} ({said}); choose the final grade (CLI: --grade "
            f"{scale}=VALUE, or --accept a reader who graded it, taking their grade); "
            "nothing was recorded"
        )
    return chosen, taken_from


def pairwise_agreement(reads: list[Read]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"alice vs bob": label_map_agreement(...)}`` for every pair of reads (px keys when the
    image states no pixel size)."""
    out = {}
    for i, a in enumerate(reads):
        for b in reads[i + 1 :]:
            out[f"{a.reader} vs {b.reader}"] = label_map_agreement(a.labels, b.labels, a.geometry)
    return out


def merge_reads(reads: list[Read], method: str = "majority") -> np.ndarray:
    """A starting point to edit: voxel-wise majority (ties → first reader's label) or STAPLE."""
    stack = np.stack([r.labels for r in reads])
    if method == "staple":
        res = multilabel_staple(list(stack), undecided_label=0)
        return res.labels.astype(stack.dtype)
    if method != "majority":
        raise InputError(f"merge method must be 'majority' or 'staple', not {method!r}")
    values = np.unique(stack)
    counts = np.stack([(stack == v).sum(axis=0) for v in values])
    best = counts.max(axis=0)
    out = stack[0].copy()
    clear = (counts == best).sum(axis=0) == 1  # a unique winner
    out[clear] = values[np.argmax(counts, axis=0)][clear]
    return out


def classify_decision(result: np.ndarray, reads: list[Read]) -> dict[str, Any]:
    """What the result is, from the data: one reader's labels, a voxel-wise merge, or a redraw."""
    for r in reads:
        if np.array_equal(result, r.labels):
            return {"decision": "accept", "reader": r.reader}
    from_some = np.zeros(result.shape, bool)
    for r in reads:
        from_some |= result == r.labels
    if from_some.all():
        return {"decision": "merge"}
    return {"decision": "redraw", "voxels_redrawn": int((~from_some).sum())}


def _logged_state(
    log: AuditLog, labels_name: str, shape: tuple[int, ...], dtype: Any
) -> np.ndarray:
    if not log.path.exists():
        return np.zeros(shape, dtype)
    state = replay_labels(log.path, objects=log.objects.folder).labels.get(labels_name)
    return np.zeros(shape, dtype) if state is None else np.ascontiguousarray(state)


def adjudicate(
    log: AuditLog,
    reads: list[Read],
    result: np.ndarray,
    reason: str,
    labels_name: str = ADJUDICATED_LAYER,
    key: Any = None,
    grades: Mapping[str, Any] | None = None,
    grades_from: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record the adjudicated ``result`` and sign it; returns (``adjudicate``, ``sign``) records.

    ``grades`` are the final image-level grades the adjudicator chose; ``grades_from`` names the
    reader whose read (grades included) the adjudicator accepted, filling each disputed grade not
    in ``grades`` (:func:`decide_grades`). Refused (nothing written) unless the log's actor is an
    adjudicator who is none of the readers, the reason is given, every disputed grade is chosen,
    the reads are of this log's image, and the signing key loads.
    """
    actor: Actor = log.actor
    if actor.role != "adjudicator":
        raise PermissionRefused(
            f"{actor.id!r} acts as {actor.role}; only an adjudicator settles disagreements "
            "(set CLINLABEL_ROLE=adjudicator if the roster grants it)"
        )
    if actor.id in {r.reader for r in reads}:
        raise PermissionRefused(
            f"{actor.id!r} read this image; readers cannot adjudicate their own reads"
        )
    roster = require_role(log, ("adjudicator",), "adjudication")
    if roster is not None:  # one person under two ids (shared key or person) is still the reader
        me = roster.person_of(actor.id)
        same = sorted(r.reader for r in reads if roster.person_of(r.reader) == me)
        if same:
            raise PermissionRefused(
                f"{actor.id!r} and reader {same[0]!r} are one person in {roster.path} (same key "
                "or person); readers cannot adjudicate their own reads"
            )
    if not reason or not reason.strip():
        raise InputError("give the reason for the adjudication decision; nothing was recorded")
    sha = str(log.image.get("sha256"))
    if any(r.image_sha != sha for r in reads):
        raise InputError("the reads are of another image than this log's; nothing was recorded")
    result = np.ascontiguousarray(result)
    if result.shape != reads[0].labels.shape:
        raise InputError(f"the result has shape {result.shape}, the reads {reads[0].labels.shape}")
    final, taken_from = decide_grades(reads, grades, grades_from)
    key = key if key is not None else load_private_key(actor.id)  # fail before writing anything
    decision = classify_decision(result, reads)
    if decision.get("reader") and grades_from:  # reads with equal labels: the one accepted
        by = {r.reader: r for r in reads}
        if grades_from in by and np.array_equal(result, by[grades_from].labels):
            decision["reader"] = grades_from
    data: dict[str, Any] = {
        **decision,
        "reason": reason.strip(),
        "reads": [r.citation() for r in reads],
        "result_sha256": voxel_sha256(result),
    }
    if final:
        data["grades"] = final
        data["grade_reads"] = {s: {r.reader: r.grades.get(s) for r in reads} for s in final}
        if taken_from is not None:
            data["grades_from"] = taken_from
    target = {"labels": labels_name, "reads": [r.citation()["hash"] for r in reads]}
    current = _logged_state(log, labels_name, result.shape, result.dtype)
    if not any(
        isinstance(t, dict) and t.get("labels") == labels_name
        for t in (rec.get("target") for rec in (log.records() if log.path.exists() else []))
    ):
        record_labels_create(log, labels_name, result.shape, result.dtype)
    idx, old, new = diff_between(current, result.astype(current.dtype))
    if idx.size:
        rec = record_label_change(
            log, current, labels_name, idx, old, new, action="adjudicate", data=data, target=target,
            applied=False,
        )  # fmt: skip
    else:  # the result is already logged (e.g. edited on a managed layer): the decision alone
        rec = log.append("adjudicate", target, data)
    return rec, sign_head(log, "adjudication", target_seq=rec["seq"], key=key)


def is_adjudicated(log_path: str | os.PathLike[str], grades: Iterable[str] = ()) -> bool:
    """True when the log holds an ``adjudicate`` record signed with meaning ``adjudication``
    (that chose a final value for each scale in ``grades``, when given)."""
    return records_adjudicated(iter_records(log_path), grades)


def visible_reads(reads: list[Read], actor: Actor, adjudicated: bool) -> list[Read]:
    """Reads ``actor`` may see: all for an adjudicator or once adjudicated; else only their own."""
    if actor.role == "adjudicator" or adjudicated:
        return list(reads)
    return [r for r in reads if r.reader == actor.id]
