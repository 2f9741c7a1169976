"""An image and its sidecar log, acted on by one human: :class:`AnnotationSession`.

Each method is one human action and writes the record napari's widgets write for it, through
the same core calls (``core.annotate``, ``core.proposals``, ``core.export.gate``).

Readers are blinded as in napari (``core.annotate.reads``): the acting reader paints, accepts and
reads back their own labels array only (the first reader's ``segmentation``, a later reader's
``segmentation (<id>)``); another reader's array is refused to an annotator before adjudication,
and given to a role that may see it only when asked for by name or through :meth:`other_reads`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    add_box,
    delete_box,
    edit_box,
    load_boxes,
)
from napari_clinlabel.core.annotate.grading import (
    Grade,
    grade_item,
    load_grades,
    require_scale,
    set_grade,
)
from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.annotate.reads import (
    is_of_base,
    label_arrays,
    may_see_other_reads,
    own_labels_name,
)
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.errors import InputError, PermissionRefused
from napari_clinlabel.core.export.gate import ExportResult, export
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, sidecar_paths
from napari_clinlabel.core.log.authority import verify_trusted
from napari_clinlabel.core.log.identity import Actor, Roster, find_roster
from napari_clinlabel.core.log.image_open import grid_shape, record_image_open, volume_open_data
from napari_clinlabel.core.log.verify import VerifyReport
from napari_clinlabel.core.models.loader import LoadedModel, load_model
from napari_clinlabel.core.models.run import run_model
from napari_clinlabel.core.proposals import lifecycle
from napari_clinlabel.core.proposals.model import Proposal
from napari_clinlabel.core.proposals.pending import load_proposals
from napari_clinlabel.core.quality.adjudication import is_adjudicated
from napari_clinlabel.core.schema import Schema, load_schema

LABELS = "segmentation"  # the base name of the readers' arrays napari's widgets edit


class AnnotationSession:
    """One image and its sidecar log, acted on by one human: the records napari would write.

    Made by :func:`open_image`. Coordinates are napari data coordinates (voxel index) in
    (z, y, x) order, or (y, x) for 2D images.
    """

    def __init__(
        self, volume: Volume, source: Path, actor: Actor, schema: Schema | None = None
    ) -> None:
        self.volume = volume
        self.source = Path(source)
        self.schema = schema
        log_path, objects = sidecar_paths(self.source)
        ref = schema.ref() if schema is not None else None
        self.log = AuditLog(log_path, volume.image_ref(), actor, ref, objects)
        self._labels: dict[str, np.ndarray] = {}
        self._own: str | None = None  # the reader's own array, once they changed it (fixed then)
        record_image_open(self.log, volume_open_data(volume), near=self.source)

    # -- who, where ------------------------------------------------------------------------
    @property
    def actor(self) -> Actor:
        """The human every record is attributed to."""
        return self.log.actor

    @property
    def log_path(self) -> Path:
        """The sidecar log (``<image>.clinlabel.jsonl``)."""
        return self.log.path

    @property
    def shape(self) -> tuple[int, ...]:
        """The label grid: (z, y, x) or (y, x), with any leading axes."""
        return grid_shape(self.volume)

    def records(self) -> list[dict[str, Any]]:
        """Every record of the log, in order."""
        return list(iter_records(self.log_path))

    @property
    def labels_name(self) -> str:
        """The acting reader's own labels array: ``segmentation`` unless another reader changed
        it first, else ``segmentation (<reader id>)`` (``core.annotate.reads``)."""
        if self._own is None:
            return own_labels_name(iter_records(self.log_path), LABELS, self.actor.id)
        return self._own

    # -- labels ----------------------------------------------------------------------------
    def labels(self, name: str | None = None) -> np.ndarray:
        """A copy of the reader's own labels (or array ``name``) as the log has it (zeros when
        never edited). Another reader's array only for a role that may see it."""
        asked = name
        name = self._readable(name)
        arr = self._labels.get(name)
        if arr is None:
            arr = _logged_labels(self.log, name)
        if arr is None and asked is not None and asked != self.labels_name:
            raise InputError(
                f"{self.source.name}: no labels array named {asked!r} in this image's log "
                f"(arrays you may read: {', '.join(map(repr, self._readable_names())) or 'none'}); "
                "check the name (image.labels() without a name gives your own)"
            )
        return np.zeros(self.shape, np.uint8) if arr is None else arr.copy()

    def paint(
        self,
        where: np.ndarray | Sequence[np.ndarray],
        label: int,
        *,
        labels: str | None = None,
        tool: str = "script",
    ) -> dict[str, Any] | None:
        """Set the voxels ``where`` to ``label`` (0 erases); one ``label.paint`` record.

        ``where`` is a boolean mask of the image grid, an ``(N, ndim)`` array of voxel indices,
        or a tuple of index arrays (as :func:`numpy.nonzero` gives). Returns the record, or
        None when no voxel changes (nothing is recorded). ``labels`` defaults to the reader's own
        array; another reader's array is refused.
        """
        labels = self._writable(labels)
        arr = self._array(labels)
        idx = _flat_indices(where, arr.shape)
        if not 0 <= int(label) <= np.iinfo(arr.dtype).max:
            raise InputError(
                f"Label {label} does not fit the {arr.dtype} labels array {labels!r} "
                f"(0..{np.iinfo(arr.dtype).max}); nothing was recorded."
            )
        old = arr.reshape(-1)[idx]
        keep = old != label
        if not keep.any():
            return None
        idx, old = idx[keep], old[keep]
        new = np.full(idx.size, label, arr.dtype)
        rec = record_label_change(
            self.log, arr, labels, idx, old, new, data={"tool": tool}, applied=False
        )
        if self._own is None and labels == self.labels_name:
            self._own = labels  # changed by them now: it stays theirs (no log re-read per stroke)
        return rec

    # -- boxes and grades ------------------------------------------------------------------
    def add_box(
        self,
        zyx_min: Sequence[float],
        zyx_max: Sequence[float],
        *,
        cls: str = "indeterminate",
        confidence: int | None = None,
        attributes: dict[str, str] | None = None,
        schema: str | os.PathLike[str] | Schema | None = None,
    ) -> LesionBox:
        """Draw a lesion box (``box.add``) checked against ``schema`` (default: the session's).

        Corners are continuous voxel coordinates; voxel ``k`` covers ``k - 0.5 .. k + 0.5``.
        """
        sch = schema_of(schema) or self.schema
        box = LesionBox(
            tuple(zyx_min),
            tuple(zyx_max),
            cls,
            confidence,
            dict(attributes or {}),
            created_by=self.actor.id,
        )
        with self._schema_in_force(sch):
            add_box(self.log, box, self.volume, sch)
        return box

    def edit_box(
        self,
        box_id: str,
        *,
        schema: str | os.PathLike[str] | Schema | None = None,
        **changes: Any,
    ) -> LesionBox:
        """Change a box in force (``zyx_min``, ``zyx_max``, ``cls``, ``confidence``,
        ``attributes``); one ``box.edit`` record. Returns the box as changed."""
        box = self._box(box_id)
        sch = schema_of(schema) or self.schema
        with self._schema_in_force(sch):
            new, _rec = edit_box(self.log, box, changes, self.volume, sch)
        return new

    def delete_box(self, box_id: str) -> dict[str, Any]:
        """Delete a box in force; one ``box.delete`` record."""
        self._box(box_id)
        return delete_box(self.log, box_id)

    def boxes(self) -> dict[str, LesionBox]:
        """The boxes in force, by id (drawn, or accepted from proposals)."""
        return load_boxes(self.log_path)

    def set_grade(
        self,
        scale: str,
        value: str | int,
        *,
        schema: str | os.PathLike[str] | Schema | None = None,
        note: str = "",
    ) -> dict[str, Any]:
        """Grade the image on ``scale`` of ``schema`` (default: the session's); ``grade.set``.

        ``value`` is a value of the scale or its keyboard key (e.g. ``"4B"`` or ``"b"``).
        """
        sch = schema_of(schema) or self.schema
        sc = require_scale(sch, scale, where=self.source.name)
        item = grade_item(sc, self.volume.meta.get("study_uid"))
        with self._schema_in_force(sch):
            return set_grade(self.log, sc, value, item=item, note=note)

    def grades(self) -> dict[tuple[str, str], Grade]:
        """The grades in force, by (scale, item)."""
        return load_grades(self.log_path)

    # -- model proposals -------------------------------------------------------------------
    def prelabel(
        self,
        model: str | os.PathLike[str] | LoadedModel = "builtin:baseline",
        *,
        device: str = "auto",
        card: str | os.PathLike[str] | None = None,
        labels: str | None = None,
    ) -> list[Proposal]:
        """Run a model; log each output as a pending proposal (``proposal.add``); return them.

        ``model``: ``builtin:baseline``, ``builtin:phantom-unet``, a TorchScript file with its
        card, or a model already loaded with :func:`core.models.loader.load_model`. ``labels``
        names the labels array segment proposals are meant for (default: the reader's own).
        """
        labels = self._writable(labels)
        if not isinstance(model, LoadedModel):
            model = load_model(model, device=device, card=card)
        drafts = run_model(self.volume, model)
        return lifecycle.add_proposals(self.log, drafts, model, labels_name=labels)

    def proposals(self, *, pending: bool = False) -> list[Proposal]:
        """Every proposal of the log in the order added (only undecided ones with ``pending``)."""
        found = load_proposals(self.log_path)
        return [p for p in found if p.pending] if pending else found

    def proposal_mask(self, proposal: Proposal) -> np.ndarray:
        """The voxels a segment proposal covers (boolean, image grid); nothing is recorded."""
        return lifecycle.proposal_mask(self.log, proposal)

    def accept(self, proposal: Proposal, *, overwrite: bool = False) -> dict[str, Any]:
        """Accept one proposal as it stands (``proposal.accept``).

        A segment goes into the labels (voxels holding another label are kept unless
        ``overwrite``); a box or a grade is recorded as proposed.
        """
        own = self._writable(None)
        if proposal.kind == "segment":
            return lifecycle.accept(self.log, proposal, self._array(own), own, overwrite=overwrite)
        return lifecycle.accept(self.log, proposal, None, own if proposal.kind == "box" else None)

    def edit(
        self,
        proposal: Proposal,
        *,
        mask: np.ndarray | None = None,
        box: dict[str, Any] | None = None,
        grade: str | None = None,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Accept one proposal after changing it (``proposal.edit``).

        Segment: ``mask`` (boolean, image grid) is what lands. Box: ``box`` holds the changed
        fields (e.g. ``zyx_min``/``zyx_max``, inclusive voxel indices). Grade: ``grade`` is the
        value chosen instead.
        """
        own = self._writable(None)
        if proposal.kind == "segment":
            return lifecycle.edit(
                self.log, proposal, self._array(own), own, mask, overwrite=overwrite
            )
        if proposal.kind == "box":
            if box is None:
                raise InputError(f"Editing box proposal {proposal.id} needs box={{...}}.")
            edited = {**proposal.payload, **box}
            return lifecycle.edit(self.log, proposal, None, own, edited=edited)
        if grade is None:
            raise InputError(f"Editing grade proposal {proposal.id} needs grade='<value>'.")
        edited = {**proposal.payload, "value": str(grade)}
        return lifecycle.edit(self.log, proposal, None, None, edited=edited)

    def reject(self, proposal: Proposal) -> dict[str, Any]:
        """Reject one proposal (``proposal.reject``); nothing changes in the labels."""
        return lifecycle.reject(self.log, proposal)

    # -- out -------------------------------------------------------------------------------
    def export(
        self,
        fmt: str,
        out: str | os.PathLike[str],
        *,
        exclude_pending: bool = False,
        labels: str | None = None,
        schema: str | os.PathLike[str] | Schema | None = None,
        include_empty: bool = False,
    ) -> ExportResult:
        """Export through the gate (``nifti``, ``nrrd``, ``mha``, ``png``, ``dicom-seg``,
        ``json``, ``csv``, ``coco``, …); refused while proposals are undecided unless
        ``exclude_pending``. One ``export`` record with each file's sha256. ``labels`` defaults
        to the reader's own array once it is logged; another reader's only for a role that may
        see it."""
        if labels is not None:
            labels = self._readable(labels)
        elif self.labels_name in label_arrays(self.records()):
            labels = self.labels_name
        return export(
            self.source,
            fmt,
            out,
            exclude_pending=exclude_pending,
            labels_name=labels,
            actor=self.actor,
            schema=schema_of(schema) or self.schema,
            include_empty=include_empty,
            log=self.log,
            volume=self.volume,
        )

    def other_reads(self) -> dict[str, np.ndarray]:
        """Other readers' reads of this image, ``{reader id: labels}`` (copies), for a role that
        may see them (reviewer, adjudicator, the roster's owner, or after adjudication)."""
        self._require_may_see()
        own = self.labels_name
        out: dict[str, np.ndarray] = {}
        for arr in label_arrays(self.records()).values():
            if is_of_base(arr.name, LABELS) and arr.name != own and arr.first_editor is not None:
                out[arr.first_editor] = self.labels(arr.name)
        return out

    def verify(self, roster: Roster | None = None) -> VerifyReport:
        """Verify this image's log as ``clinlabel log verify`` does (chain, objects, roles,
        signatures, witnessed heads)."""
        return verify_trusted(self.log_path, roster)[0]

    def close(self) -> None:
        """Release the log file."""
        self.log.close()

    def __enter__(self) -> AnnotationSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _others_array(self, name: str) -> str | None:
        """The reader whose read array ``name`` is when it is not the actor's own (else None)."""
        if not is_of_base(name, LABELS) or name == self.labels_name:
            return None
        arr = label_arrays(self.records()).get(name)
        owner = arr.first_editor if arr is not None else None
        return owner if owner not in (None, self.actor.id) else None

    def _require_may_see(self) -> None:
        why = may_see_other_reads(
            self.actor, find_roster(self.source), is_adjudicated(self.log_path)
        )
        if why is None:
            raise PermissionRefused(
                f"{self.source.name}: {self.actor.id!r} acts as {self.actor.role}; other readers' "
                "reads stay hidden until the image is adjudicated (a reviewer or adjudicator may "
                "see them). Nothing was returned."
            )

    def _readable_names(self) -> list[str]:
        """The labels arrays of this log the actor may read (another reader's only when the actor
        may see other reads, so a typo never reveals who else read the image)."""
        names = dict.fromkeys([self.labels_name, *label_arrays(self.records()), *self._labels])
        if (
            may_see_other_reads(self.actor, find_roster(self.source), is_adjudicated(self.log_path))
            is not None
        ):
            return list(names)
        return [n for n in names if self._others_array(n) is None]

    def _readable(self, name: str | None) -> str:
        """``name`` (default: the reader's own array), refused when it is another reader's read
        the actor may not see."""
        if name is None:
            return self.labels_name
        if self._others_array(name) is not None:
            self._require_may_see()
        return name

    def _writable(self, name: str | None) -> str:
        """``name`` (default: the reader's own array); another reader's read is never written."""
        if name is None:
            return self.labels_name
        owner = self._others_array(name)
        if owner is not None:
            raise PermissionRefused(
                f"{self.source.name}: labels {name!r} are {owner!r}'s read; {self.actor.id!r} "
                f"paints in their own array {self.labels_name!r} (leave labels= unset). Nothing "
                "was recorded."
            )
        return name

    def _array(self, name: str) -> np.ndarray:
        """The labels array ``name`` (from the log; new ones are logged as ``labels.create``)."""
        arr = self._labels.get(name)
        if arr is None:
            arr = _logged_labels(self.log, name)
            if arr is None:  # what napari's session does for a new labels layer
                arr = np.zeros(self.shape, np.uint8)
                record_labels_create(self.log, name, arr.shape, arr.dtype)
            self._labels[name] = arr
        return arr

    def _box(self, box_id: str) -> LesionBox:
        box = self.boxes().get(box_id)
        if box is None:
            raise InputError(
                f"{self.source.name}: no box {box_id!r} is in force (boxes: "
                f"{', '.join(self.boxes()) or 'none'}); nothing was recorded."
            )
        return box

    @contextmanager
    def _schema_in_force(self, schema: Schema | None) -> Iterator[None]:
        """Records inside carry ``schema`` (as napari's box and grading widgets do)."""
        previous = self.log.schema
        self.log.schema = schema.ref() if schema is not None else previous
        try:
            yield
        finally:
            self.log.schema = previous


def schema_of(schema: str | os.PathLike[str] | Schema | None) -> Schema | None:
    if schema is None or isinstance(schema, Schema):
        return schema
    return load_schema(schema)


def _logged_labels(log: AuditLog, name: str) -> np.ndarray | None:
    """Labels ``name`` as the log has them now (None when no record ever named them)."""
    named = any(
        isinstance(r.get("target"), dict) and r["target"].get("labels") == name
        for r in iter_records(log.path)
    )
    if not named:
        return None
    state = replay_labels(log.path, objects=log.objects.folder).labels.get(name)
    return None if state is None else np.ascontiguousarray(state).copy()


def _flat_indices(where: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Flat C-order indices of ``where`` (mask, (N, ndim) indices, or a tuple of index arrays)."""
    if isinstance(where, tuple):
        coords = tuple(np.asarray(c, np.int64).reshape(-1) for c in where)
    else:
        arr = np.asarray(where)
        if arr.dtype == bool:
            if arr.shape != shape:
                raise InputError(
                    f"Mask shape {arr.shape} is not the image grid {shape}; nothing was recorded."
                )
            return np.flatnonzero(arr.reshape(-1)).astype(np.int64)
        if arr.ndim != 2 or arr.shape[1] != len(shape) or arr.dtype.kind not in "iu":
            raise InputError(
                f"Give a boolean mask of shape {shape}, an (N, {len(shape)}) integer array of "
                f"voxel indices or a tuple of {len(shape)} index arrays; got {arr.dtype} "
                f"{arr.shape}. Nothing was recorded."
            )
        coords = tuple(arr[:, d].astype(np.int64) for d in range(len(shape)))
    if len(coords) != len(shape):
        raise InputError(f"Give {len(shape)} index arrays for the {shape} grid, not {len(coords)}.")
    try:
        idx = np.ravel_multi_index(coords, shape)
    except ValueError:
        raise InputError(
            f"Voxel indices outside the image grid {shape}; nothing was recorded."
        ) from None
    return np.unique(np.asarray(idx, np.int64))


__all__ = ["LABELS", "AnnotationSession", "schema_of"]
