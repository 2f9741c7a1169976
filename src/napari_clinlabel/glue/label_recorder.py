"""Every edit of a managed labels layer becomes one ``label.paint`` record with a stroke diff.

How nothing slips through on napari 0.9 (whose ``paint`` event carries a private type and whose
undo/redo emit no ``paint`` event):

- napari commits each brush drag, fill, polygon or ``data_setitem`` as one history item and emits
  ``events.paint`` once for it. We take only *where* it changed from the item (its atoms' bounding
  boxes) and diff a shadow copy — the array as the log knows it — against the layer inside those
  boxes, so the logged values come from the arrays themselves and the cost follows the stroke.
  An item we cannot read falls back to a whole-array diff: slower, never wrong.
- undo and redo belong to the plugin: the layer's ``undo()``/``redo()`` (and so ctrl+z /
  ctrl+shift+z, which call them) are replaced; each writes a new record with its diff.
- a whole-array replacement (``events.data``) is diffed against the shadow and logged; a change
  that bypassed every event is found by the full comparison made before each save.

If the log cannot be written the change is put back on the layer and the user is told.
"""

from __future__ import annotations

import logging
import os
import uuid
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.label_edits import (
    apply_diff,
    diff_between,
    diff_in_region,
    record_label_change,
    record_labels_save,
)
from napari_clinlabel.core.errors import GeometryError, LogError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.glue.layers import LABELS_META

_log = logging.getLogger(__name__)
HISTORY_LIMIT = 100
_MODE_TOOLS = {"paint": "brush", "erase": "erase", "fill": "fill", "polygon": "polygon"}
_TOOL_METHODS = ("paint", "fill", "paint_polygon", "data_setitem", "undo", "redo")
_NOT_UNDOABLE = ("import", "untracked")
_TOKENS: weakref.WeakValueDictionary[str, LabelRecorder] = weakref.WeakValueDictionary()


def recorder_by_token(token: str | None) -> LabelRecorder | None:
    """The live recorder whose layer carries ``metadata["clinlabel_labels"]["token"] == token``."""
    return None if token is None else _TOKENS.get(token)


@dataclass
class _Change:
    """One undoable change: flat indices with values before and after, and the record's seq."""

    indices: np.ndarray
    before: np.ndarray
    after: np.ndarray
    seq: int


class LabelRecorder:
    """Logs every change of one labels layer to its image's log; owns the layer's undo/redo."""

    def __init__(
        self,
        session: Any,
        layer: Any,
        image_layer: Any,
        log: AuditLog,
        name: str,
        logged: np.ndarray,
    ) -> None:
        self.session = session
        self.layer = layer
        self.image_layer = image_layer
        self.log = log
        self.name = name
        self._undo: deque[_Change] = deque(maxlen=HISTORY_LIMIT)
        self._redo: deque[_Change] = deque(maxlen=HISTORY_LIMIT)
        self._tool: str | None = None  # the tool of the history item being made
        self._tool_params: dict[str, Any] | None = None
        self._pending: list[list[tuple[slice, ...]] | None] = []  # napari items not yet logged
        self._depth = 0  # nesting of wrapped napari editing calls
        self._busy = False
        data = layer.data
        if not (isinstance(data, np.ndarray) and data.flags.c_contiguous):
            layer.data = np.ascontiguousarray(np.asarray(data))  # diffs apply in place
        # the array as the log knows it: what every diff is taken against
        self.shadow = np.array(logged, dtype=layer.data.dtype, copy=True)
        if layer.data is not logged:  # content the log does not know yet: log it, keep it
            idx, old, new = diff_between(self.shadow, layer.data)
            if idx.size:
                record_label_change(
                    log, layer.data.copy(), name, idx, old, new, data={"tool": "import"}
                )
                self.shadow.reshape(-1)[idx] = new
        self.token = uuid.uuid4().hex
        layer.metadata[LABELS_META] = {"name": name, "token": self.token}
        _TOKENS[self.token] = self
        layer.events.paint.connect(self._on_paint)
        layer.events.labels_update.connect(self._on_labels_update)
        layer.events.data.connect(self._on_data)
        self._override_methods()

    # -- public ----------------------------------------------------------------------------
    def undo(self) -> None:
        """Undo the last change as a new ``label.paint`` record (tool ``undo``)."""
        self._step(self._undo, self._redo, "undo", "undoes")

    def redo(self) -> None:
        """Redo the last undone change as a new record (tool ``redo``)."""
        self._step(self._redo, self._undo, "redo", "redoes")

    def apply(
        self,
        indices: np.ndarray,
        new: Any,
        tool: str,
        action: str = "label.paint",
        source: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Set flat ``indices`` to ``new``, log it and return the record (LogError: unchanged)."""
        self._flush(final=True)  # anything napari painted first is its own record
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        new_values = np.broadcast_to(np.asarray(new, dtype=self.shadow.dtype), idx.shape)
        idx, first = np.unique(idx, return_index=True)
        new_values = new_values[first]
        old = self.shadow.reshape(-1)[idx]
        keep = old != new_values
        idx, old, new_values = idx[keep], old[keep], new_values[keep]
        rec = self._record(
            idx, old, new_values, tool, data, applied=False, action=action, source=source
        )
        self._redo.clear()
        self._undo.append(_Change(idx, old, new_values, rec["seq"]))
        return rec

    def override_tool(self, tool: str, params: dict[str, Any] | None = None) -> None:
        """Name the edit being made (e.g. ``threshold_paint``) and add ``params`` to its record."""
        self._tool = tool
        self._tool_params = dict(params) if params else None

    def flush_untracked(self) -> dict[str, Any] | None:
        """Log any difference between the layer and the log (none, unless something bypassed us)."""
        return self._record_whole("untracked")

    def record_save(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Log a ``labels.save`` snapshot (first logging anything untracked); the record."""
        self.flush_untracked()
        extra = {"file": Path(path).name} if path else {}
        return record_labels_save(self.log, self.layer.data, self.name, extra)

    def detach(self) -> None:
        """Stop recording: give the layer back its own methods and events."""
        self.layer.events.paint.disconnect(self._on_paint)
        self.layer.events.labels_update.disconnect(self._on_labels_update)
        self.layer.events.data.disconnect(self._on_data)
        for meth in _TOOL_METHODS:
            vars(self.layer).pop(meth, None)
        _TOKENS.pop(self.token, None)

    # -- napari events ---------------------------------------------------------------------
    def _on_paint(self, event: Any) -> None:
        # napari emits this when it commits a history item: after the writes for a drag, but
        # *before* the write for a lone paint/fill/polygon/data_setitem; so the item waits until
        # the call that made it returns (or the display refresh that follows the write)
        self._pending.append(_regions_of(getattr(event, "value", None), self.shadow.ndim))
        if self._depth == 0:
            self._flush(final=False)

    def _on_labels_update(self, event: Any) -> None:
        if self._depth == 0:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Log the pending napari history items as one change (``final``: their writes are done)."""
        if not self._pending or self._busy:
            return
        if any(r is None for r in self._pending):
            _log.warning("unknown napari paint item; diffing the whole labels array")
            regions = None
        else:
            regions = [r for item in self._pending for r in item]
        idx, old, new = self._diff(regions)
        if idx.size == 0 and not final:
            return  # written later: the item stays pending
        tool = self._tool or _MODE_TOOLS.get(str(self.layer.mode), "edit")
        extra = {"params": self._tool_params} if self._tool_params else None
        self._pending.clear()
        self._tool, self._tool_params = None, None
        _drop_napari_history(self.layer)
        if idx.size == 0:
            return
        try:
            rec = self._record(idx, old, new, tool, extra, applied=True)
        except Exception as exc:
            self.session.report_error(exc)
            return
        self._redo.clear()
        self._undo.append(_Change(idx, old, new, rec["seq"]))

    def _on_data(self, event: Any) -> None:
        if self._busy:
            return
        data = self.layer.data
        if tuple(data.shape) != self.shadow.shape:
            self._set_layer_data(self.shadow.copy())
            self.session.report_error(
                GeometryError(
                    f"Labels layer {self.layer.name!r}: new data of shape {tuple(data.shape)} "
                    f"refused, the image grid is {self.shadow.shape}; labels stay on their image."
                )
            )
            return
        if not (isinstance(data, np.ndarray) and data.flags.c_contiguous):
            self._set_layer_data(np.ascontiguousarray(np.asarray(data, self.shadow.dtype)))
        try:
            self._record_whole("replace")
        except Exception as exc:
            self.session.report_error(exc)

    # -- internals -------------------------------------------------------------------------
    def _step(self, source: deque[_Change], dest: deque[_Change], tool: str, key: str) -> None:
        self._flush(final=True)
        if not source or self._busy:
            return
        change = source.pop()
        values = change.before if tool == "undo" else change.after
        old = self.shadow.reshape(-1)[change.indices]
        try:
            rec = self._record(change.indices, old, values, tool, {key: change.seq}, applied=False)
        except Exception as exc:
            source.append(change)
            self.session.report_error(exc)
            return
        dest.append(_Change(change.indices, change.before, change.after, rec["seq"]))

    def _record(
        self,
        idx: np.ndarray,
        old: np.ndarray,
        new: np.ndarray,
        tool: str,
        extra: dict[str, Any] | None,
        *,
        applied: bool,
        action: str = "label.paint",
        source: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log one change (applying it first unless napari already did); undo it on failure."""
        arr = self.layer.data
        data = {"tool": tool, **(extra or {})}
        try:
            rec = record_label_change(
                self.log,
                arr,
                self.name,
                idx,
                old,
                new,
                action=action,
                source=source,
                data=data,
                applied=applied,
            )
        except LogError:
            self.layer.refresh()  # record_label_change put the old values back
            raise
        except Exception:
            apply_diff(arr, {"indices": idx, "old": old, "new": new}, reverse=True)
            self.layer.refresh()
            raise
        self.shadow.reshape(-1)[idx] = new
        if not applied:
            self.layer.refresh()
        return rec

    def _record_whole(self, tool: str) -> dict[str, Any] | None:
        idx, old, new = diff_between(self.shadow, self.layer.data)
        if idx.size == 0:
            return None
        rec = self._record(idx, old, new, tool, None, applied=True)
        if tool not in _NOT_UNDOABLE:
            self._redo.clear()
            self._undo.append(_Change(idx, old, new, rec["seq"]))
        return rec

    def _diff(self, regions: list[tuple[slice, ...]] | None) -> tuple[np.ndarray, ...]:
        data = self.layer.data
        if regions is None:
            return diff_between(self.shadow, data)
        if not regions:
            return np.empty(0, np.int64), self.shadow.reshape(-1)[:0], self.shadow.reshape(-1)[:0]
        union = _union(regions)
        if _size(union) <= max(1 << 20, 2 * sum(_size(r) for r in regions)):
            return diff_in_region(self.shadow, data, union)
        parts = [diff_in_region(self.shadow, data, r) for r in regions]
        idx = np.concatenate([p[0] for p in parts])
        idx, first = np.unique(idx, return_index=True)
        return (
            idx,
            np.concatenate([p[1] for p in parts])[first],
            np.concatenate([p[2] for p in parts])[first],
        )

    def _set_layer_data(self, array: np.ndarray) -> None:
        self._busy = True
        try:
            self.layer.data = array
        finally:
            self._busy = False

    def _note_tool(self, tool: str) -> None:
        if self._tool is None:  # the first tool of a history item names it (brush-then-fill)
            self._tool = tool

    def _override_methods(self) -> None:
        layer = self.layer
        background = layer.colormap.background_value

        def wrap(meth: str, tool: str | None) -> None:
            original = getattr(layer, meth)

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                label = args[1] if len(args) > 1 else kwargs.get("new_label")
                self._note_tool(tool or ("erase" if label == background else "brush"))
                self._depth += 1
                try:
                    return original(*args, **kwargs)
                finally:
                    self._depth -= 1
                    if self._depth == 0:
                        self._flush(final=True)
                        if not self._pending and not getattr(layer, "_block_history", False):
                            self._tool, self._tool_params = None, None  # nothing changed

            wrapper.__doc__ = original.__doc__
            setattr(layer, meth, wrapper)

        wrap("paint", None)
        wrap("fill", "fill")
        wrap("paint_polygon", "polygon")
        wrap("data_setitem", "setitem")
        layer.undo = self.undo
        layer.redo = self.redo


def _drop_napari_history(layer: Any) -> None:
    """napari's own undo history is unused on managed layers: free it."""
    for attr in ("_undo_history", "_redo_history"):
        history = getattr(layer, attr, None)
        if history is not None:
            history.clear()


def _regions_of(item: Any, ndim: int) -> list[tuple[slice, ...]] | None:
    """Bounding boxes of a napari history item's atoms; None when an atom is not understood."""
    if not isinstance(item, list | tuple):
        return None
    regions = []
    for atom in item:
        key = getattr(atom, "slice_key", None)
        if isinstance(key, tuple) and len(key) == ndim and all(isinstance(s, slice) for s in key):
            regions.append(key)
            continue
        if isinstance(atom, tuple) and len(atom) == 3 and isinstance(atom[0], tuple):
            where = [np.asarray(a).reshape(-1) for a in atom[0]]
            if len(where) != ndim:
                return None
            if where[0].size:
                regions.append(tuple(slice(int(w.min()), int(w.max()) + 1) for w in where))
            continue
        return None
    return regions


def _union(regions: list[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(
        slice(min(r[d].start or 0 for r in regions), max(r[d].stop for r in regions))
        for d in range(len(regions[0]))
    )


def _size(region: tuple[slice, ...]) -> int:
    return int(np.prod([max(0, s.stop - (s.start or 0)) for s in region]))
