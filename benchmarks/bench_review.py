"""review_next: time from a decision to the next proposal drawn, on a 512³ volume (256³ quick).

One benchmark, an absolute figure (reported, never asserted; budget 100 ms): a napari viewer
(``napari.Viewer(show=False)``) holds a 512³ int16 image, its managed "segmentation" labels and
~20 segment proposals (spheres, logged with core ``add_proposals``) in the Review widget. Each
sample calls the widget's accept handler — what the ``A`` key calls — which writes the decision
(one fsynced record and its diff object), redraws the pending/current/final layers and centres the
view on the next proposal; the clock stops after Qt has processed the resulting events and the
canvas has rendered a frame (``viewer.screenshot``, an offscreen render of the whole scene).
Reported: the median (``value_ms``), the 90th percentile and the part before rendering.

Needs a display and OpenGL: run under Xvfb, e.g. ``xvfb-run -a python benchmarks/run.py
--only review_next`` (``QT_QPA_PLATFORM=offscreen`` has no OpenGL).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _frame_timing import FrameTimer, gui_workspace

N_PROPOSALS = 20
RADIUS = 12


def _volume(n: int) -> Any:
    from napari_clinlabel.core.image.geometry import Geometry
    from napari_clinlabel.core.image.volume import Volume

    rng = np.random.default_rng(0)
    array = rng.integers(-50, 80, size=(n, n, n), dtype=np.int16)
    geometry = Geometry((0.8, 0.8, 1.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel().tolist()))
    return Volume(array, geometry, {"modality": "CT", "sample": "bench"})


def _drafts(n: int) -> list[Any]:
    """~20 non-overlapping spheres spread through the volume, as a segmentation model gives."""
    from napari_clinlabel.core.proposals.lifecycle import ProposalDraft

    rng = np.random.default_rng(1)
    r = RADIUS
    ball = np.argwhere(np.sum((np.indices((2 * r + 1,) * 3) - r) ** 2, axis=0) <= r * r)
    centres: list[np.ndarray] = []
    while len(centres) < N_PROPOSALS:
        c = rng.integers(r + 2, n - r - 2, size=3)
        if all(np.abs(c - o).max() > 2 * r + 2 for o in centres):
            centres.append(c)
    drafts = []
    for k, c in enumerate(centres):
        coords = ball + c - r
        idx = np.sort(np.ravel_multi_index(tuple(coords.T), (n, n, n))).astype(np.int64)
        drafts.append(ProposalDraft("segment", 6, 0.9 - 0.01 * k, idx, (n, n, n), name="lesion"))
    return drafts


def bench_review_next(quick: bool) -> dict:
    """Decision (accept handler) → next proposal shown and rendered; median over the proposals."""
    n = 256 if quick else 512
    with gui_workspace("review_next"):
        return _measure(n)


def _measure(n: int) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_clinlabel._widgets.review import ReviewWidget
    from napari_clinlabel.core.proposals.lifecycle import add_proposals
    from napari_clinlabel.glue.layers import volume_to_layer_data
    from napari_clinlabel.glue.session import get_session

    app = QApplication.instance() or QApplication([])
    viewer = napari.Viewer(show=False)
    try:
        data, kwargs, _ = volume_to_layer_data(_volume(n))
        image = viewer.add_image(data, **kwargs)
        session = get_session(viewer)
        log = session.log_for(image)
        ident = {"name": "bench-net", "version": "1", "sha256": "0" * 64}
        add_proposals(log, _drafts(n), ident, labels_name="segmentation")
        widget = ReviewWidget(viewer)
        app.processEvents()
        viewer.screenshot(canvas_only=True, flash=False)
        timer = FrameTimer(app, lambda: viewer.screenshot(canvas_only=True, flash=False))
        while widget.current is not None:
            timer.sample(widget._on_accept)  # what the A key calls
        decided = sum(not p.pending for p in widget.proposals)
        widget.close()
    finally:
        viewer.close()
    return {
        "name": "review_next",
        **timer.summary(),
        "budget_ms": 100,
        "decisions": decided,
        "size": f"{n}^3",
    }


BENCHMARKS = [bench_review_next]
