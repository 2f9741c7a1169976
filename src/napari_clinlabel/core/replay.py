"""Rebuild any past state of the label arrays from a sidecar log and its objects.

Each labels layer starts from zeros at its ``labels.create`` record (or from the snapshot of a
``labels.save`` record); every later record whose ``target`` names ``"labels"`` and whose
``data["objects"]`` holds a ``"diff"`` is applied in order. Each diff's ``old`` values must be
what the replay holds at those voxels, so a lost or reordered edit is caught, not papered over.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audit_log import ObjectStore, iter_records
from .errors import ClinlabelError, LogIntegrityError
from .geometry import Geometry
from .label_edits import apply_diff
from .log_verify import verify_log


@dataclass
class ReplayResult:
    """Label arrays as they stood after record ``seq``, with the image's geometry."""

    labels: dict[str, np.ndarray]
    geometry: Geometry | None
    shape: tuple[int, ...] | None
    image: dict[str, Any] | None
    seq: int = -1
    warnings: list[str] = field(default_factory=list)


def replay_labels(
    log_path: str | os.PathLike[str],
    at_seq: int | None = None,
    objects: str | os.PathLike[str] | None = None,
) -> ReplayResult:
    """Label arrays after record ``at_seq`` (default: the last record) of a verified log."""
    path = Path(log_path)
    report = verify_log(path, check_objects=False, objects=objects)
    last = report.records - 1
    if at_seq is None:
        if not report.ok:  # "the latest state" of a broken log is not knowable
            raise LogIntegrityError(
                f"{path}: cannot replay: {report.summary()}. Restore the log from a backup.",
                report.first_bad_seq,
            )
        if last < 0:
            return ReplayResult({}, None, None, None)
        at_seq = last
    if at_seq < 0:
        raise ClinlabelError(f"{path}: --at must be a record number (0 or more), got {at_seq}.")
    if not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= at_seq:
        raise LogIntegrityError(
            f"{path}: cannot replay to seq {at_seq}: {report.summary()}. Restore the log from a "
            "backup.",
            report.first_bad_seq,
        )
    if at_seq > last:
        raise ClinlabelError(f"{path}: the log ends at seq {last}; choose --at {last} or less.")
    if objects is None:
        stem = str(path).removesuffix(".jsonl")
        objects = Path(stem if stem != str(path) else stem + ".clinlabel") / "objects"
    store = ObjectStore(objects)
    res = ReplayResult({}, None, None, None)
    for rec in iter_records(path):
        if rec["seq"] > at_seq:
            break
        _apply(rec, res, store, path)
        res.seq = rec["seq"]
    return res


def _apply(rec: dict[str, Any], res: ReplayResult, store: ObjectStore, path: Path) -> None:
    seq, action, data = rec["seq"], rec["action"], rec["data"]
    target = rec["target"] if isinstance(rec["target"], dict) else {}
    if res.image is None:
        res.image = rec["image"]
    if action == "image.open":
        if "geometry" in data:
            res.geometry = Geometry.from_dict(data["geometry"])
        if "shape" in data:
            res.shape = tuple(int(s) for s in data["shape"])
        return
    objs = data.get("objects") or {}
    if action == "labels.create":
        name = data.get("labels", target.get("labels"))
        res.labels[name] = np.zeros(tuple(data["shape"]), dtype=np.dtype(data["dtype"]))
        return
    if action == "labels.save" and "snapshot" in objs:
        name = data.get("labels", target.get("labels"))
        snap = _arrays(store, objs["snapshot"], seq, path)["labels"]
        current = res.labels.get(name)
        if current is not None and not np.array_equal(current, snap):
            res.warnings.append(f"seq {seq}: snapshot of {name!r} differs from the replayed edits")
        res.labels[name] = np.ascontiguousarray(snap).copy()
        return
    if "labels" in target and "diff" in objs:
        name = target["labels"]
        arr = res.labels.get(name)
        if arr is None:
            raise LogIntegrityError(
                f"{path}: record {seq} edits labels {name!r}, which no earlier labels.create or "
                "labels.save record made.",
                seq,
            )
        diff = _arrays(store, objs["diff"], seq, path)
        idx = diff["indices"]
        if "shape" in diff and tuple(int(s) for s in diff["shape"]) != arr.shape:
            raise LogIntegrityError(
                f"{path}: record {seq}'s diff is for shape {tuple(diff['shape'])}, labels "
                f"{name!r} have {arr.shape}.",
                seq,
            )
        if idx.size and (idx.min() < 0 or idx.max() >= arr.size):
            raise LogIntegrityError(f"{path}: record {seq}'s diff indexes outside the labels.", seq)
        if not np.array_equal(arr.reshape(-1)[idx], diff["old"].astype(arr.dtype)):
            raise LogIntegrityError(
                f"{path}: record {seq}'s diff does not start from the replayed state of "
                f"{name!r} (an edit is missing or out of order).",
                seq,
            )
        apply_diff(arr, {"indices": idx, "old": diff["old"], "new": diff["new"].astype(arr.dtype)})


def _arrays(store: ObjectStore, digest: str, seq: int, path: Path) -> dict[str, np.ndarray]:
    try:
        return store.get_arrays(digest)
    except LogIntegrityError as exc:
        raise LogIntegrityError(f"{path}: record {seq}: {exc}", seq) from None


def write_replay(
    log_path: str | os.PathLike[str],
    at_seq: int | None,
    out_path: str | os.PathLike[str],
    labels_name: str | None = None,
) -> Path:
    """Write the labels as they stood after ``at_seq`` to NIfTI with the image's geometry."""
    from .volume_io import write_labels

    res = replay_labels(log_path, at_seq)
    if not res.labels:
        raise ClinlabelError(f"{log_path}: no labels exist at seq {res.seq}; choose a later --at.")
    if labels_name is None:
        if len(res.labels) > 1:
            raise ClinlabelError(
                f"{log_path}: several label layers ({', '.join(res.labels)}); name one with "
                "--labels."
            )
        labels_name = next(iter(res.labels))
    if labels_name not in res.labels:
        raise ClinlabelError(
            f"{log_path}: no labels {labels_name!r} at seq {res.seq}; have {', '.join(res.labels)}."
        )
    arr = res.labels[labels_name]
    geometry = res.geometry
    if geometry is None:
        raise ClinlabelError(
            f"{log_path}: the log has no image.open record with the image geometry, so the labels "
            "cannot be placed in space; export them from the viewer instead."
        )
    from .agreement import log_spacing_known
    from .volume import PixelGeometry

    if not log_spacing_known(log_path, None, geometry):  # pixels: write_labels refuses mm formats
        geometry = PixelGeometry.like(geometry)
    return write_labels(arr, geometry, out_path)
