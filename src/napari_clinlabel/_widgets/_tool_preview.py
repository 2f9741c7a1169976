"""Preview → apply for the Segmentation widget's editing tools (one controller, every tool).

A tool runs off the GUI thread (``create_worker`` with an ``errored`` handler: an exception becomes
one notification and the controller is ready again); its :class:`ToolResult` shows in a preview
labels layer; *Apply* writes it as one ``label.paint`` record through the session (tool,
parameters, seeds, stroke diff, ``source`` kind tool); *Cancel* drops it and records nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Labels
from napari.qt.threading import create_worker
from napari.utils.colormaps import DirectLabelColormap

from napari_clinlabel.core.annotate.tools import (
    ToolResult,
    planned_change,
    preview_array,
    tool_source,
)
from napari_clinlabel.core.errors import ClinlabelError

PREVIEW_NAME = "tool preview"
_ERASE_COLOUR = "#ffffff"


class ToolPreview:
    """Runs tools, shows their result, applies or cancels it.

    ``labels()`` gives the labels layer being edited; ``options()`` gives
    ``(overwrite_other_labels, locked_values)``; ``colours()`` the label → colour map;
    ``on_status(text)`` tells the user what happens.
    """

    def __init__(
        self,
        viewer: Any,
        session: Any,
        labels: Callable[[], Labels | None],
        options: Callable[[], tuple[bool, set[int]]],
        colours: Callable[[], dict[int, str]],
        on_status: Callable[[str], None],
    ) -> None:
        self._viewer = viewer
        self._session = session
        self._labels = labels
        self._options = options
        self._colours = colours
        self._status = on_status
        self.result: ToolResult | None = None
        self.change: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.layer: Labels | None = None
        # objects stored with the applying record: arrays, or a callable giving them (computed
        # on Apply only)
        self.extra_objects: dict[str, Any] = {}
        self._worker: Any = None
        self._queued: tuple[Callable[..., ToolResult], tuple, dict] | None = None

    @property
    def busy(self) -> bool:
        """True while a tool computes."""
        return self._worker is not None

    # -- compute -------------------------------------------------------------------------------
    def run(self, fn: Callable[..., ToolResult], *args: Any, **kwargs: Any) -> None:
        """Compute ``fn(*args, **kwargs)`` off the GUI thread, then preview it (latest call wins)."""
        if self._worker is not None:
            self._queued = (fn, args, kwargs)  # one update at a time; the newest seeds win
            return
        # errored must be given at creation: connected later, superqt also re-raises (and
        # outside napari's hooks the process aborts)
        worker = create_worker(
            fn, *args, **kwargs, _start_thread=False,
            _connect={"returned": self._on_returned, "errored": self._on_error,
                      "finished": self._on_finished},
        )  # fmt: skip
        self._worker = worker
        self._status("Computing the preview…")
        worker.start()

    def run_now(self, fn: Callable[..., ToolResult], *args: Any, **kwargs: Any) -> bool:
        """Compute on this thread (scripts, tests); the same error handling. True when shown."""
        try:
            self.show(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - every failure becomes one notification
            self._on_error(exc)
            return False
        return True

    def _on_returned(self, result: ToolResult) -> None:
        try:
            self.show(result)
        except ClinlabelError as exc:
            self._on_error(exc)

    def _on_error(self, exc: BaseException) -> None:
        if not isinstance(exc, ClinlabelError):
            exc = ClinlabelError(f"The tool failed ({type(exc).__name__}: {exc}); nothing changed.")
        self._session.report_error(exc)
        self._status(f"Tool failed: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        if self._queued is not None:
            fn, args, kwargs = self._queued
            self._queued = None
            self.run(fn, *args, **kwargs)

    # -- preview -------------------------------------------------------------------------------
    def show(self, result: ToolResult) -> None:
        """Put ``result`` in the preview layer (nothing is recorded)."""
        labels = self._labels()
        if labels is None:
            raise ClinlabelError("Click 'Segment this image' first: there is no labels layer.")
        overwrite, locked = self._options()
        idx, old, new = planned_change(
            labels.data, result, overwrite_other_labels=overwrite, locked=locked
        )
        self.result, self.change = result, (idx, old, new)
        data = preview_array(labels.data, idx, new)
        colours: dict[int | None, Any] = {None: "transparent", 0: "transparent"}
        colours.update(self._colours())
        colours[int(np.iinfo(data.dtype).max)] = _ERASE_COLOUR
        cmap = DirectLabelColormap(color_dict=colours)
        if self.layer is None or self.layer not in self._viewer.layers:
            self.layer = self._viewer.add_labels(
                data, name=PREVIEW_NAME, opacity=0.55, colormap=cmap,
                affine=labels.affine, scale=labels.scale, translate=labels.translate,
            )  # fmt: skip
            self.layer.editable = False
            self._viewer.layers.selection.active = labels
        else:
            self.layer.data = data
            self.layer.colormap = cmap
        painted, erased = int((new != 0).sum()), int((new == 0).sum())
        self._status(
            f"Preview ({result.tool}): {painted} voxels to label, {erased} to clear. "
            "Apply or Cancel."
        )

    def apply(self) -> dict[str, Any] | None:
        """Write the previewed change as one record; the record (None when nothing to apply)."""
        if self.result is None or self.change is None:
            self._status("Nothing to apply: compute a preview first.")
            return None
        labels = self._labels()
        result, (idx, _old, new) = self.result, self.change
        overwrite, locked = self._options()
        if idx.size == 0:
            self.cancel()
            self._status(f"{result.tool}: nothing to change.")
            return None
        data = result.record_data(overwrite, locked)
        try:
            if self.extra_objects:
                log = self._session.log_for(self._session.image_of(labels))
                data["objects"] = {
                    k: log.put_arrays(**(v() if callable(v) else v))
                    for k, v in self.extra_objects.items()
                }
            rec = self._session.edit_labels(
                labels, idx, new, tool=result.tool, source=tool_source(result.tool), data=data
            )
        except ClinlabelError as exc:
            self._session.report_error(exc)
            return None
        self.cancel(quiet=True)
        self._status(f"{result.tool}: {idx.size} voxels changed (record {rec['seq']}).")
        return rec

    def cancel(self, quiet: bool = False) -> None:
        """Drop the preview; nothing is recorded."""
        self.result = self.change = None
        self.extra_objects = {}
        if self.layer is not None and self.layer in self._viewer.layers:
            self._viewer.layers.remove(self.layer)
        self.layer = None
        if not quiet:
            self._status("Preview cancelled; nothing recorded.")
