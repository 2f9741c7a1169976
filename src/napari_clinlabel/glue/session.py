"""One session per napari viewer: who acts, each image's sidecar log, and the managed labels layers.

Every widget goes through :func:`get_session`; it never opens an :class:`AuditLog` itself. The
session hands out one log per image (beside the image file, or in the workspace folder for
in-memory images), writes one ``image.open`` record per image, puts the session's actor and the
image's schema on every record, and fires :attr:`Session.record_appended` after every append.
Qt-free: napari layers and notifications only.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from psygnal import Signal

from napari_clinlabel.core.annotate.label_edits import record_labels_create
from napari_clinlabel.core.annotate.reads import (
    is_of_base,
    may_see_other_reads,
    other_readers,
    own_labels_name,
    reads_notice,
)
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.errors import (
    ClinlabelError,
    GeometryError,
    InputError,
    PermissionRefused,
)
from napari_clinlabel.core.image.volume import voxel_sha256
from napari_clinlabel.core.log.acting import require_granted
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, sidecar_paths
from napari_clinlabel.core.log.identity import ROLES, Actor, Roster, current_actor, find_roster
from napari_clinlabel.core.log.image_open import image_open_data, record_image_open
from napari_clinlabel.core.privacy.deid import DeidOptions, DeidReport, deidentify
from napari_clinlabel.core.privacy.policy import DEID, TARGET, deid_folder, deid_record_data
from napari_clinlabel.core.quality.adjudication import is_adjudicated
from napari_clinlabel.glue.label_recorder import LabelRecorder, recorder_by_token
from napari_clinlabel.glue.layers import LABELS_META
from napari_clinlabel.glue.phi_check import PhiCheck, PhiChecks, SharedBlockLogError

_log = logging.getLogger(__name__)
_SESSIONS: dict[int, Session] = {}
_NEW_SESSION_HOOKS: list[Callable[[Session], None]] = []


def get_session(viewer: Any) -> Session:
    """The session of ``viewer`` (created on first use; one per viewer, proxies unwrapped)."""
    viewer = unwrap(viewer)
    key = id(viewer)
    session = _SESSIONS.get(key)
    if session is None or session.viewer is not viewer:
        session = Session(viewer)
        _SESSIONS[key] = session
        weakref.finalize(viewer, _SESSIONS.pop, key, None)
        for hook in list(_NEW_SESSION_HOOKS):
            hook(session)
        session.check_open_layers()  # after the hooks: listeners hear about layers already open
    return session


def on_new_session(hook: Callable[[Session], None]) -> None:
    """Call ``hook(session)`` for every session, live and future (e.g. to connect its signals).

    How a view (the PHI guard's notifications) follows the session without the glue importing it.
    """
    if hook not in _NEW_SESSION_HOOKS:
        _NEW_SESSION_HOOKS.append(hook)
        for session in list(_SESSIONS.values()):
            hook(session)


def unwrap(obj: Any) -> Any:
    """The object behind napari's ``PublicOnlyProxy`` (plugin widgets get proxied viewers/layers)."""
    while True:
        inner = getattr(obj, "__wrapped__", None)
        if inner is None or inner is obj:
            return obj
        obj = inner


def workspace_dir() -> Path:
    """Folder for logs of images with no file: ``$CLINLABEL_WORKSPACE`` or ~/.clinlabel/workspace."""
    env = os.environ.get("CLINLABEL_WORKSPACE")
    return Path(env) if env else Path.home() / ".clinlabel" / "workspace"


class SessionLog(AuditLog):
    """An :class:`AuditLog` that tells its session after every append (for the Audit widget)."""

    on_append: Any = None

    def append(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Append as :meth:`AuditLog.append`, then fire the session's ``record_appended``."""
        rec = super().append(*args, **kwargs)
        if self.on_append is not None:
            try:
                self.on_append(rec)
            except Exception:  # a listener's bug must never look like an unwritten record
                _log.exception("record_appended listener failed")
        return rec


class Session:
    """Per-viewer state: the actor, one log per image, schemas, managed labels layers."""

    record_appended = Signal(dict)  # every record appended through this session's logs
    actor_changed = Signal(object)  # the new Actor
    changed = Signal()  # logs opened or layers managed (widgets refresh their summaries)
    phi_checked = Signal(object)  # a PhiCheck: an opened image holds patient identifiers

    def __init__(self, viewer: Any) -> None:
        self._viewer = weakref.ref(viewer)
        self._logs: dict[str, SessionLog] = {}  # image sha256 -> log
        self._schemas: dict[str, dict[str, Any]] = {}  # image sha256 -> schema ref
        self._recorders: dict[int, LabelRecorder] = {}  # id(labels layer) -> its recorder
        self._phi = PhiChecks(self._open_log, self.roster_for)
        self._near: dict[str, str | None] = {}  # image sha256 -> image path (for its roster)
        self._chosen = False  # True once the user picked an actor in this session
        self.actor_error: str | None = None
        try:
            self._actor: Actor | None = current_actor()
        except ClinlabelError as exc:  # e.g. CLINLABEL_ROSTER does not list this login
            self._actor, self.actor_error = None, str(exc)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.layers.events.inserted.connect(self._on_layer_inserted)

    @property
    def viewer(self) -> Any:
        """The viewer this session belongs to (None once it is gone)."""
        return self._viewer()

    # -- who acts ------------------------------------------------------------------------
    @property
    def actor(self) -> Actor | None:
        """The human acting now; None when no valid actor could be established."""
        return self._actor

    def set_actor(self, actor: Actor, image_layer: Image | None = None) -> None:
        """Act as ``actor`` from now on; the roster (if any) must grant that user the role."""
        require_granted(self.roster_for(image_layer), actor)
        for near in self._near.values():  # every open image's roster must agree
            require_granted(find_roster(near), actor)
        self._actor, self.actor_error, self._chosen = actor, None, True
        for log in self._logs.values():
            log.actor = actor
        self._close_unseen_reads(actor)
        self.actor_changed.emit(actor)

    def roster_for(self, image_layer: Image | None = None) -> Roster | None:
        """The roster in force for ``image_layer`` (``CLINLABEL_ROSTER`` or beside its file)."""
        return find_roster(None if image_layer is None else _log_base(image_layer))

    def roles_available(self, image_layer: Image | None = None) -> list[str]:
        """Roles the current user may take (all roles where no roster restricts them)."""
        roster = self.roster_for(image_layer)
        if roster is None or not roster.users or self._actor is None:
            return list(ROLES)
        return roster.roles_of(self._actor.id)

    # -- logs ----------------------------------------------------------------------------
    def log_path_for(self, image_layer: Image) -> Path:
        """Where ``image_layer``'s sidecar log is (or will be); opens nothing."""
        base = _log_base(image_layer)
        return sidecar_paths(base or workspace_dir() / image_sha256(image_layer))[0]

    def log_for(self, image_layer: Image) -> AuditLog:
        """The image's log; the first call per image writes its ``image.open`` record.

        Refused (:class:`PermissionRefused`) for an image whose PHI check refused annotation.
        """
        why = self._phi.refusal(image_sha256(image_layer))
        if why is not None:
            raise PermissionRefused(
                f"{_display(image_layer)} holds patient identifiers and {why}: de-identify it "
                "first (the PHI warning offers it, or 'clinlabel deid'). Nothing was recorded."
            )
        return self._open_log(image_layer)

    def open_log(self, image_layer: Image) -> AuditLog | None:
        """The image's log if this session already opened it, else None (writes nothing)."""
        sha = image_sha256(image_layer)
        return self._logs.get(sha) if self._near.get(sha) == _near_key(image_layer) else None

    def set_schema(self, image_layer: Image, schema: Any) -> None:
        """Put ``schema`` (a core Schema or its ``{"id","version","sha256"}``) on later records."""
        ref = schema.ref() if hasattr(schema, "ref") else (dict(schema) if schema else None)
        sha = image_sha256(image_layer)
        if ref is None:
            self._schemas.pop(sha, None)
        else:
            self._schemas[sha] = ref
        if sha in self._logs:
            self._logs[sha].schema = ref

    def schema_for(self, image_layer: Image) -> dict[str, Any] | None:
        """The schema reference in force for ``image_layer`` (None when none was set)."""
        return self._schemas.get(image_sha256(image_layer))

    # -- labels --------------------------------------------------------------------------
    def labels_layer_for(
        self,
        image_layer: Image,
        name: str = "segmentation",
        create: bool = True,
        layer_name: str | None = None,
    ) -> Labels | None:
        """The managed uint8 labels layer of array ``name`` on the image's grid (restored from the
        log); ``layer_name``: what the viewer calls a new layer (default ``name``)."""
        image_layer = unwrap(image_layer)
        existing = self._managing(image_layer, name)
        if existing is not None:
            return existing.layer
        log = self.log_for(image_layer)
        logged = _logged_labels(log, name)
        if logged is None and not create:
            return None
        data = np.zeros(_grid_shape(image_layer), np.uint8) if logged is None else logged
        layer = Labels(
            np.ascontiguousarray(data),
            name=layer_name or name,
            affine=image_layer.affine,
            scale=image_layer.scale,
            translate=image_layer.translate,
            rotate=image_layer.rotate,
            shear=image_layer.shear,
            metadata={"clinlabel": dict(_meta(image_layer))},
        )
        if logged is None:
            record_labels_create(log, name, data.shape, data.dtype)
        self.manage(layer, image_layer, name=name, logged=data)
        self.viewer.add_layer(layer)
        return layer

    # -- each reader's own read (blinding) -------------------------------------------------
    def reader_labels_name(self, image_layer: Image, base: str = "segmentation") -> str:
        """The acting reader's own labels array of the image (see ``core.annotate.reads``):
        ``base`` when they made it or nobody did, else ``base (<reader id>)``."""
        log = self.log_for(image_layer)
        assert self._actor is not None  # log_for refuses without one
        return own_labels_name(iter_records(log.path), base, self._actor.id)

    def reader_labels_layer_for(
        self, image_layer: Image, base: str = "segmentation"
    ) -> tuple[Labels, str | None]:
        """The acting reader's own labels layer, ``<image> labels (<reader id>)``, restored from
        their own array only; and a one-line notice about other readers' reads (or None).

        Before adjudication a reader whose role may not see other reads never gets them: not as
        a starting point, and not as another reader's layer left open in this viewer.
        """
        image_layer = unwrap(image_layer)
        name = self.reader_labels_name(image_layer, base)
        assert self._actor is not None
        log = self.log_for(image_layer)
        records = list(iter_records(log.path))
        why = may_see_other_reads(
            self._actor, self.roster_for(image_layer), is_adjudicated(log.path)
        )
        if why is None:
            self._close_other_reads(image_layer, base, name)
        layer = self.labels_layer_for(
            image_layer, name, layer_name=f"{image_layer.name} labels ({self._actor.id})"
        )
        assert layer is not None
        return layer, reads_notice(other_readers(records, base, self._actor.id), why)

    def _close_unseen_reads(self, actor: Actor, base: str = "segmentation") -> None:
        """A new reader on this seat: other readers' labels layers they may not see leave the
        viewer (their reads stay in the log)."""
        viewer = self.viewer
        for rec in list(self._recorders.values()):
            if not is_of_base(rec.name, base) or not self._in_viewer(rec.layer):
                continue
            if rec.name == own_labels_name(iter_records(rec.log.path), base, actor.id):
                continue
            roster = self.roster_for(rec.image_layer)
            if may_see_other_reads(actor, roster, is_adjudicated(rec.log.path)) is None:
                viewer.layers.remove(rec.layer)

    def _close_other_reads(self, image_layer: Image, base: str, keep: str) -> None:
        """Take other readers' labels layers of this image out of the viewer (a shared seat)."""
        sha = image_sha256(image_layer)
        viewer = self.viewer
        for rec in list(self._recorders.values()):
            same = image_sha256(rec.image_layer) == sha
            if (
                same
                and rec.name != keep
                and is_of_base(rec.name, base)
                and self._in_viewer(rec.layer)
            ):
                viewer.layers.remove(rec.layer)

    def manage(
        self,
        labels_layer: Labels,
        image_layer: Image,
        name: str | None = None,
        logged: np.ndarray | None = None,
    ) -> Any:
        """Log every later edit of ``labels_layer``; its current content is logged first if new."""
        labels_layer, image_layer = unwrap(labels_layer), unwrap(image_layer)
        existing = self._recorders.get(id(labels_layer))
        if existing is not None:
            return existing
        name = name or labels_layer.metadata.get(LABELS_META, {}).get("name") or labels_layer.name
        shape = _grid_shape(image_layer)
        if tuple(labels_layer.data.shape) != tuple(shape):
            raise GeometryError(
                f"Labels layer {labels_layer.name!r} has shape {labels_layer.data.shape}, the image "
                f"grid is {shape}; create labels with the Segmentation widget or resample them."
            )
        twin = self._managing(image_layer, name)
        if twin is not None:  # two layers editing one logged array would fork its history
            raise InputError(
                f"Labels {name!r} of this image are already edited in layer {twin.layer.name!r}; "
                "edit them there, or give this layer another name."
            )
        log = self.log_for(image_layer)
        if logged is None:
            logged = _logged_labels(log, name)
            if logged is None:
                record_labels_create(log, name, shape, np.uint8)
                logged = np.zeros(shape, labels_layer.data.dtype)
        recorder = LabelRecorder(self, labels_layer, image_layer, log, name, logged)
        self._recorders[id(labels_layer)] = recorder
        self.changed.emit()
        return recorder

    def recorder_for(self, labels_layer: Labels) -> Any:
        """The recorder of a managed labels layer, or None."""
        labels_layer = unwrap(labels_layer)
        return self._recorders.get(id(labels_layer))

    def image_of(self, layer: Any) -> Image | None:
        """The image a managed labels layer belongs to (the layer itself if it is an image)."""
        layer = unwrap(layer)
        if isinstance(layer, Image):
            return layer
        rec = self._recorders.get(id(layer))
        return None if rec is None else rec.image_layer

    def active_image(self) -> Image | None:
        """The image the user is working on: the selected layer's image, else the last image."""
        viewer = self.viewer
        if viewer is None:
            return None
        image = self.image_of(viewer.layers.selection.active)
        if image is not None:
            return image
        images = [lay for lay in viewer.layers if isinstance(lay, Image)]
        tagged = [lay for lay in images if "clinlabel" in lay.metadata]
        return (tagged or images or [None])[-1]

    def edit_labels(
        self,
        labels_layer: Labels,
        indices: np.ndarray,
        new: Any,
        *,
        tool: str,
        action: str = "label.paint",
        source: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Set flat ``indices`` of a managed layer to ``new`` and log it (undoable); the record.

        The way other widgets (region growing, proposals, …) change labels. On :class:`LogError`
        the layer is left unchanged and the error propagates.
        """
        return self._recorder(labels_layer).apply(indices, new, tool, action, source, data)

    def record_save(self, labels_layer: Labels, path: str | os.PathLike[str] | None = None) -> dict:
        """Log a ``labels.save`` snapshot of a managed layer (file name only, never the folder)."""
        return self._recorder(labels_layer).record_save(path)

    def report_error(self, exc: BaseException) -> None:
        """Tell the user about ``exc`` in a napari notification (the one place widgets send errors)."""
        if not isinstance(exc, ClinlabelError):
            _log.error("unexpected error", exc_info=exc)
        show_error(str(exc) or type(exc).__name__)

    # -- patient identifiers --------------------------------------------------------------
    def check_phi(self, image_layer: Any, inserting: bool = False) -> PhiCheck | None:
        """Scan a DICOM image layer's source for PHI; decide by roster policy, log, tell listeners.

        Returns None for clean or non-DICOM layers. Each image is scanned, logged
        (``phi.warning``) and told through :attr:`phi_checked` once per session: a layer derived
        from it (its labels) is not announced again; another layer of a refused image is (so the
        guard removes it too). A refused image gets no log from :meth:`log_for`.
        """
        image_layer = unwrap(image_layer)
        known = self._phi.known(image_layer)
        if known is not None:
            return known
        meta = _meta(image_layer)
        src = meta.get("source_path")
        if not src or not meta.get("series_uid") or not Path(src).exists():
            return None  # not DICOM (NIfTI etc. carry no DICOM attributes once read)
        check = self._phi.check(image_layer, image_sha256(image_layer), src, inserting)
        if check is not None and (check.refused or not check.repeat):
            self.phi_checked.emit(check)
        return check

    def check_open_layers(self) -> None:
        """PHI-check every layer already in the viewer (a session made after images opened)."""
        viewer = self.viewer
        for layer in list(viewer.layers) if viewer is not None else ():
            self._check_phi(layer, inserting=False)

    def deidentify(
        self,
        image_layer: Any,
        parent: str | os.PathLike[str],
        options: DeidOptions | None = None,
    ) -> tuple[Path, DeidReport]:
        """De-identify the layer's DICOM source into a new folder under ``parent``; log ``deid``.

        ``options``: the PS3.15 profile options chosen (default: the Basic Profile). Returns the
        new folder and the report. Logged even when annotation of the image was refused (the
        de-identification is what the refusal asks for).
        """
        image_layer = unwrap(image_layer)
        src = _meta(image_layer).get("source_path")
        if not src:
            raise InputError(f"{_display(image_layer)}: no DICOM file or folder to de-identify.")
        out = deid_folder(parent)
        report = deidentify(src, out, options=options)
        self._open_log(image_layer).append(DEID, dict(TARGET), deid_record_data(report, out))
        return out, report

    # -- internals -----------------------------------------------------------------------
    def _open_log(self, image_layer: Image) -> AuditLog:
        """The image's log (writing ``image.open`` first), whatever its PHI check said."""
        sha = image_sha256(image_layer)
        log = self._logs.get(sha)
        if log is not None and self._near.get(sha) == _near_key(image_layer):
            return log  # (another read of the same image, kept elsewhere, gets its own log)
        if self._actor is None:
            raise PermissionRefused(f"No one is signed in ({self.actor_error}); nothing is logged.")
        meta = _meta(image_layer)
        source = meta.get("source_path")
        self._adopt_roster(self.roster_for(image_layer))
        near = _log_base(image_layer)  # beside the image, or where a programme keeps the read
        log_path, objects = sidecar_paths(near or workspace_dir() / sha)
        if meta.get("slice_block"):
            _require_block_log(image_layer, log_path, sha)
        image_ref = {"uid": meta.get("series_uid"), "sha256": sha}
        log = SessionLog(log_path, image_ref, self._actor, self._schemas.get(sha), objects)
        log.on_append = self.record_appended.emit
        opened = image_open_data(
            _grid_shape(image_layer),
            meta.get("dtype") or _base(image_layer).dtype,
            geometry=meta.get("geometry"),
            modality=meta.get("modality"),
            source=source,
            spacing_known=meta.get("spacing_known", True) is not False,
        )
        record_image_open(log, opened, near=near)
        self._logs[sha] = log
        self._near[sha] = str(near) if near else None
        self.changed.emit()
        return log

    def _adopt_roster(self, roster: Roster | None) -> None:
        """Check the actor against an image's roster; until the user chose, take its name/role."""
        assert self._actor is not None
        actor = self._actor
        if roster is not None and roster.users and not self._chosen:
            granted = roster.roles_of(actor.id)
            if granted:
                role = actor.role if actor.role in granted else granted[0]
                # the owner named only in [owner] has no [[users]] entry
                name = str((roster.users.get(actor.id) or {}).get("name", actor.id))
                if (name, role) != (actor.name, actor.role):
                    actor = Actor(actor.id, name, role)
        require_granted(roster, actor)
        if actor != self._actor:
            self._actor = actor
            for log in self._logs.values():
                log.actor = actor
            self.actor_changed.emit(actor)

    def _recorder(self, labels_layer: Labels) -> Any:
        labels_layer = unwrap(labels_layer)
        rec = self._recorders.get(id(labels_layer))
        if rec is None:
            raise InputError(
                f"Labels layer {labels_layer.name!r} is not managed by napari-clinlabel; create it "
                "from the Segmentation widget so its edits are logged."
            )
        return rec

    def _managing(self, image_layer: Image, name: str) -> Any:
        """The live recorder of labels ``name`` of this image (same voxels), or None."""
        sha = image_sha256(image_layer)
        for rec in self._recorders.values():
            if rec.name == name and image_sha256(rec.image_layer) == sha:
                if self._in_viewer(rec.layer):
                    return rec
        return None

    def _on_layer_inserted(self, event: Any) -> None:
        layer = event.value
        check = self._check_phi(layer, inserting=True)
        if check is not None and check.refused:
            return  # phi.warning (after image.open) is logged; nothing else may be
        if _meta(layer).get("sha256") and layer.__class__.__name__ == "Image":
            try:  # opening is an action too: image.open now, not at the first edit
                self.log_for(layer)
            except ClinlabelError as exc:  # e.g. read-only folder: view, but say it
                self.report_error(exc)

    def _check_phi(self, layer: Any, inserting: bool) -> PhiCheck | None:
        try:
            return self.check_phi(layer, inserting=inserting)
        except ClinlabelError as exc:  # the scan itself failed: say so, keep the image open
            self.report_error(exc)
            return None

    def _on_layer_removed(self, event: Any) -> None:
        recorder = self._recorders.pop(id(event.value), None)
        if recorder is not None:
            recorder.detach()
            self.changed.emit()

    def _in_viewer(self, layer: Any) -> bool:
        viewer = self.viewer
        return viewer is not None and layer in viewer.layers


def record_save_for_layer_meta(meta: dict[str, Any], path: str | os.PathLike[str]) -> dict | None:
    """For writers (which get layer metadata, not the layer): log the save of a managed layer."""
    token = (meta.get("metadata") or meta).get(LABELS_META, {}).get("token")
    recorder = recorder_by_token(token)
    return None if recorder is None else recorder.record_save(path)


def image_sha256(image_layer: Any) -> str:
    """Voxel digest of an image layer (from its clinlabel metadata, else computed once)."""
    image_layer = unwrap(image_layer)
    meta = image_layer.metadata.setdefault("clinlabel", {})
    if not meta.get("sha256"):
        meta["sha256"] = voxel_sha256(_base(image_layer))
    return str(meta["sha256"])


def _log_base(layer: Any) -> Path | None:
    """What the image's log is named after: ``log_base`` when a programme set it (a dataset read:
    ``<dataset>/reads/<case>__<reader>``, so each reader has their own log and the dataset's
    roster is in force), else the image file; None for an in-memory image."""
    meta = _meta(layer)
    base = meta.get("log_base") or meta.get("source_path")
    return Path(base) if base else None


def _near_key(layer: Any) -> str | None:
    """Where the layer's log lives, as the session remembers it per image."""
    base = _log_base(layer)
    return str(base) if base else None


def _meta(layer: Any) -> dict[str, Any]:
    return dict(layer.metadata.get("clinlabel") or {}) if layer is not None else {}


def _require_block_log(image_layer: Any, log_path: Path, sha: str) -> None:
    """An even block of an uneven series shares the folder's log (DESIGN: beside the folder),
    which belongs to the block that opened it first: refuse another block in one line."""
    try:
        first = next(iter_records(log_path), None) if log_path.is_file() else None
    except ClinlabelError:
        return  # a damaged log is refused, with its own message, when it is opened
    theirs = ((first or {}).get("image") or {}).get("sha256")
    if theirs and theirs != sha:
        a, b, n = _meta(image_layer)["slice_block"]
        raise SharedBlockLogError(
            f"{_display(image_layer)} slices {a}-{b} of {n}: shown, not logged — the folder's log "
            "belongs to another block of this unevenly spaced series; to annotate, open the "
            "series resampled (Session widget > 'Open DICOM resampled…') or this block's files "
            "as their own series."
        )


def _display(layer: Any) -> str:
    """A PHI-free name for messages: the file name, else the layer name."""
    src = _meta(layer).get("source_path")
    return repr(Path(src).name if src else str(layer.name))


def _base(image_layer: Any) -> Any:
    return image_layer.data[0] if image_layer.multiscale else image_layer.data


def _grid_shape(image_layer: Any) -> tuple[int, ...]:
    shape = tuple(_base(image_layer).shape)
    return shape[:-1] if image_layer.rgb else shape


def _logged_labels(log: AuditLog, name: str) -> np.ndarray | None:
    """The label array ``name`` as the log has it now, or None when the log never held it."""
    for rec in iter_records(log.path):
        target = rec.get("target")
        if isinstance(target, dict) and target.get("labels") == name:
            break
    else:
        return None
    state = replay_labels(log.path, objects=log.objects.folder).labels.get(name)
    return None if state is None else np.ascontiguousarray(state)


__all__ = [
    "LABELS_META",
    "PhiCheck",
    "Session",
    "SessionLog",
    "get_session",
    "image_sha256",
    "on_new_session",
    "workspace_dir",
]
