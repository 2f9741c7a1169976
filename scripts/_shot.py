"""What the screenshot scripts share: letting Qt draw before a shot, and the shot itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def settle(ms: int = 400) -> None:
    """Run Qt's event loop for ``ms`` milliseconds, then what is left pending (draws, layouts)."""
    from qtpy.QtCore import QCoreApplication, QEventLoop, QTimer  # Qt only once a script runs

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    QCoreApplication.processEvents()


def shoot(viewer: Any, out: Path, work: Path, ms: int = 800) -> int:
    """Let Qt draw, save the whole window to ``out``, say where, close the viewer; exit code 0."""
    settle(ms)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False)
    print(f"wrote {out} (work in {work})")
    viewer.close()
    return 0
