"""What the screenshot scripts share: letting Qt draw before a shot."""

from __future__ import annotations


def settle(ms: int = 400) -> None:
    """Run Qt's event loop for ``ms`` milliseconds, then what is left pending (draws, layouts)."""
    from qtpy.QtCore import QCoreApplication, QEventLoop, QTimer  # Qt only once a script runs

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    QCoreApplication.processEvents()
