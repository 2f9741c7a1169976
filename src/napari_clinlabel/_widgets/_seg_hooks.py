"""napari glue for the Segmentation widget: an intensity-limited brush and a seed click (Qt-free).

:class:`WindowedBrush` keeps napari's brush, fill and polygon as they are (cursor, size, undo,
the session's recorder) and only narrows the voxels they may paint to an intensity window: it
wraps the layer's mask-paint step, through which all three go on napari 0.9.
:class:`SeedClick` turns a click on the canvas (press and release without moving) into a call
with the clicked voxel; a drag still pans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.seg_tools import in_window
from napari_clinlabel.core.errors import ClinlabelError

_MASK_STEP = "_apply_mask_to_data"  # napari 0.9 Labels: every brush/fill/polygon paint passes here


class WindowedBrush:
    """While on, painting a label onto ``labels`` changes only voxels whose image value is in the
    window ``window()`` returns (when ``limit_window``); erasing is not limited. Voxels holding a
    value in ``locked()`` are never painted nor erased. ``on_limit`` is told each limited step."""

    def __init__(
        self,
        labels: Any,
        image: Any,
        window: Callable[[], tuple[float, float]],
        on_limit: Callable[[], None] | None = None,
        locked: Callable[[], set[int]] | None = None,
    ) -> None:
        self.labels = labels
        self.image = image
        self.window = window
        self.on_limit = on_limit
        self.locked = locked or set
        self.limit_window = True

    @property
    def active(self) -> bool:
        """True while the layer's painting is limited."""
        return _MASK_STEP in vars(self.labels)

    def install(self) -> None:
        """Start limiting (idempotent). Raises ClinlabelError when napari has no such step."""
        self.remove()
        original = getattr(self.labels, _MASK_STEP, None)
        if original is None:
            raise ClinlabelError(
                "This napari version has no hook to limit painting to an intensity window; use "
                "region growing instead."
            )
        labels, image = self.labels, self.image

        def limited(data: Any, mask: Any, new_label: int, volume_slice: Any) -> Any:
            locked = self.locked()
            if locked:
                held = np.asarray(data)
                mask = mask & ~np.isin(held, np.asarray(sorted(locked), dtype=held.dtype))
            if self.limit_window and new_label != labels.colormap.background_value:
                low, high = self.window()
                mask = mask & in_window(np.asarray(image.data[volume_slice]), low, high)
                if self.on_limit is not None:
                    self.on_limit()
            return original(data, mask, new_label, volume_slice)

        setattr(labels, _MASK_STEP, limited)

    def remove(self) -> None:
        """Stop limiting: the layer paints as napari does."""
        vars(self.labels).pop(_MASK_STEP, None)


class SeedClick:
    """Calls ``on_seed(index_zyx)`` when the user clicks (without dragging) on ``image`` in a 2D
    view; in 3D a click has no single voxel, so ``on_3d()`` is called instead."""

    def __init__(
        self,
        viewer: Any,
        image: Any,
        on_seed: Callable[[tuple[float, ...]], Any],
        on_3d: Callable[[], Any] | None = None,
    ) -> None:
        self.viewer = viewer
        self.image = image
        self.on_seed = on_seed
        self.on_3d = on_3d

    @property
    def active(self) -> bool:
        """True while clicks are listened to."""
        return self._callback in self.viewer.mouse_drag_callbacks

    def install(self) -> None:
        """Listen to clicks on the canvas (idempotent)."""
        if not self.active:
            self.viewer.mouse_drag_callbacks.append(self._callback)

    def remove(self) -> None:
        """Stop listening."""
        if self.active:
            self.viewer.mouse_drag_callbacks.remove(self._callback)

    def _callback(self, viewer: Any, event: Any) -> Any:
        start = np.asarray(event.position, dtype=float)
        yield
        moved = False
        while event.type == "mouse_move":
            moved = moved or bool(np.any(np.abs(np.asarray(event.position) - start) > 1e-6))
            yield
        if moved:
            return
        if viewer.dims.ndisplay == 3:
            if self.on_3d is not None:
                self.on_3d()
            return
        self.on_seed(tuple(float(c) for c in self.image.world_to_data(start)))
