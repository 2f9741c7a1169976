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

from napari_clinlabel.core.annotate.label_edits import apply_diff
from napari_clinlabel.core.errors import ClinlabelError, LogIntegrityError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.slide import tiff_pixel_size_mm
from napari_clinlabel.core.log.audit_log import ObjectStore, iter_records
from napari_clinlabel.core.log.verify import verify_log


@dataclass
class ReplayResult:
    """Label arrays as they stood after record ``seq``, with the image's geometry."""

    labels: dict[str, np.ndarray]
    geometry: Geometry | None
    shape: tuple[int, ...] | None
    image: dict[str, Any] | None
    seq: int = -1
    warnings: list[str] = field(default_factory=list)


MAX_LABEL_VOXELS = 1 << 31  # no labels layer larger than this is made from a log's word alone
_LABEL_KINDS = "biu"  # bool, signed and unsigned integers: what a labels layer holds


def replay_labels(
    log_path: str | os.PathLike[str],
    at_seq: int | None = None,
    objects: str | os.PathLike[str] | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> ReplayResult:
    """Label arrays after record ``at_seq`` (default: the last record) of a verified log.

    Shapes in records are checked before anything is allocated: against ``image_shape`` (the
    image's grid, when the caller has the image), else against the log's ``image.open`` shape
    and :data:`MAX_LABEL_VOXELS`; a record beyond them raises :class:`LogIntegrityError`.
    """
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
    grid = tuple(int(n) for n in image_shape) if image_shape is not None else None
    for rec in iter_records(path):
        if rec["seq"] > at_seq:
            break
        _apply(rec, res, store, path, grid)
        res.seq = rec["seq"]
    return res


def _label_array_spec(
    data: dict[str, Any], res: ReplayResult, grid: tuple[int, ...] | None, seq: int, path: Path
) -> tuple[tuple[int, ...], np.dtype]:
    """A ``labels.create`` record's shape and dtype, checked before anything is allocated."""
    shape, dtype = data.get("shape"), data.get("dtype")
    try:
        if not isinstance(shape, list) or not 1 <= len(shape) <= 5:
            raise ValueError
        if not all(type(n) is int and 0 <= n for n in shape):
            raise ValueError
        dt = np.dtype(dtype) if isinstance(dtype, str) else None
    except (ValueError, TypeError):
        dt = None
    if dt is None or dt.kind not in _LABEL_KINDS or dt.itemsize > 8:
        raise LogIntegrityError(
            f"{path}: record {seq} creates labels with shape {str(shape)[:60]} and dtype "
            f"{str(dtype)[:20]!r}, not a labels array; the log was altered.",
            seq,
        )
    shape_t = tuple(shape)
    n = int(np.prod(shape_t, dtype=object))
    if grid is not None and shape_t != grid:
        raise LogIntegrityError(
            f"{path}: record {seq} creates labels of shape {shape_t}, but the image grid is "
            f"{grid}; the log belongs to another image or was altered.",
            seq,
        )
    limit = MAX_LABEL_VOXELS
    if res.shape is not None:
        limit = min(limit, int(np.prod(res.shape, dtype=object)))
    if n > limit:
        raise LogIntegrityError(
            f"{path}: record {seq} creates labels of shape {shape_t} ({n} voxels), more than "
            f"its image holds ({limit}); the log was altered. Nothing was allocated.",
            seq,
        )
    return shape_t, dt


def _apply(
    rec: dict[str, Any],
    res: ReplayResult,
    store: ObjectStore,
    path: Path,
    grid: tuple[int, ...] | None = None,
) -> None:
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
        shape, dtype = _label_array_spec(data, res, grid, seq, path)
        res.labels[name] = np.zeros(shape, dtype=dtype)
        return
    if action == "labels.save" and "snapshot" in objs:
        name = data.get("labels", target.get("labels"))
        snap = _arrays(store, objs["snapshot"], seq, path, _max_voxels(res, grid))["labels"]
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
        diff = _arrays(store, objs["diff"], seq, path, arr.size)
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


def _max_voxels(res: ReplayResult, grid: tuple[int, ...] | None) -> int:
    """The most elements an array read for this image may hold (checked before reading it)."""
    if grid is not None:
        return int(np.prod(grid, dtype=object))
    if res.shape is not None:
        return min(MAX_LABEL_VOXELS, int(np.prod(res.shape, dtype=object)))
    return MAX_LABEL_VOXELS


def _arrays(
    store: ObjectStore, digest: str, seq: int, path: Path, max_elements: int | None = None
) -> dict[str, np.ndarray]:
    try:
        return store.get_arrays(digest, max_elements)
    except LogIntegrityError as exc:
        raise LogIntegrityError(f"{path}: record {seq}: {exc}", seq) from None


LOG_SUFFIX = ".clinlabel.jsonl"
_NO_PIXEL_SIZE = (".png", ".jpg", ".jpeg")  # image formats that never state a pixel size
_TIFF = (".tif", ".tiff")


def _states_pixel_size(path: Path) -> bool:
    """Whether an image/label file states a physical pixel size (never PNG/JPEG; TIFF: its tags)."""
    low = path.name.lower()
    if low.endswith(_NO_PIXEL_SIZE):
        return False
    if low.endswith(_TIFF):
        return tiff_pixel_size_mm(path) is not None
    return True


def _image_beside(log_path: Path) -> Path | None:
    s = str(log_path)
    return Path(s[: -len(LOG_SUFFIX)]) if s.endswith(LOG_SUFFIX) else None


def log_spacing_known(
    log_path: str | os.PathLike[str],
    records: list[dict[str, Any]] | None = None,
    geometry: Geometry | None = None,
) -> bool:
    """Whether the image of a log states its pixel size (False: figures on it are in pixels).

    From the ``image.open`` record's ``spacing_known`` when it has one; otherwise from the image's
    file name (its ``source``, else the log's name): never for PNG/JPEG; for a TIFF, its resolution
    tags when the image lies beside the log, else whether the logged ``geometry`` is a unit grid.
    """
    p = Path(log_path)
    records = list(iter_records(p)) if records is None else records
    source = None
    for r in records:
        if r.get("action") != "image.open" or not isinstance(r.get("data"), dict):
            continue
        if isinstance(r["data"].get("spacing_known"), bool):
            return r["data"]["spacing_known"]
        source = source or r["data"].get("source")
    beside = _image_beside(p)
    name = str(source or (beside.name if beside else "")).lower()
    if name.endswith(_NO_PIXEL_SIZE):
        return False
    if name.endswith(_TIFF):
        if beside is not None and beside.is_file():
            return _states_pixel_size(beside)
        return geometry is None or any(s != 1.0 for s in geometry.spacing)
    return True
