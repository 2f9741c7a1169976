"""What the GUI benchmarks (bench_viewing, bench_review) share: a scratch workspace under a display,
and an action timed to its rendered frame, summarised as the median, the 90th percentile and the
part before rendering. ``run.py`` puts this folder on ``sys.path``."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


@contextmanager
def gui_workspace(name: str) -> Iterator[None]:
    """Refuse benchmark ``name`` without a display; run the block with a scratch
    ``CLINLABEL_WORKSPACE`` (the logs go there), then put the old value back."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # Qt would abort the whole benchmark run without a display: refuse this one cleanly
        raise RuntimeError(f"{name} needs a display: run under xvfb-run -a")
    old_ws = os.environ.get("CLINLABEL_WORKSPACE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CLINLABEL_WORKSPACE"] = tmp
        try:
            yield
        finally:
            if old_ws is None:
                os.environ.pop("CLINLABEL_WORKSPACE", None)
            else:
                os.environ["CLINLABEL_WORKSPACE"] = old_ws


def ms_summary(total: list[float], update: list[float] | None = None) -> dict[str, float]:
    """``value_ms`` (median of ``total``, ms), ``p90_ms`` and, when given, ``update_ms``
    (median of ``update``)."""
    out = {"value_ms": statistics.median(total), "p90_ms": float(np.percentile(total, 90))}
    if update is not None:
        out["update_ms"] = statistics.median(update)
    return out


class FrameTimer:
    """Times actions to the frame rendered: the clock starts before the action and stops after
    Qt processed the events it caused (``update``) and ``render`` drew a frame (``total``)."""

    def __init__(self, app: Any, render: Callable[[], Any]) -> None:
        self._app = app
        self._render = render
        self.total: list[float] = []  # ms, action → frame rendered
        self.update: list[float] = []  # ms, action → events processed, before the render

    def sample(self, action: Callable[[], Any]) -> None:
        """Run ``action`` once under the clock."""
        t0 = time.perf_counter()
        action()
        self._app.processEvents()
        t1 = time.perf_counter()
        self._render()
        t2 = time.perf_counter()
        self.total.append((t2 - t0) * 1e3)
        self.update.append((t1 - t0) * 1e3)

    def summary(self) -> dict[str, float]:
        """``value_ms``, ``p90_ms`` and ``update_ms`` of the samples (see :func:`ms_summary`)."""
        return ms_summary(self.total, self.update)
