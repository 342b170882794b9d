"""Guards against a Qt binding that corrupts the interpreter (seen in PySide6 6.12.0)."""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer


def test_event_loop_calls_keep_none_alive(qapp) -> None:
    """Each call must not drop a reference to None: on Python 3.11 that aborts the app."""
    before = sys.getrefcount(None)
    loop = QEventLoop()
    for _ in range(300):
        QCoreApplication.processEvents()
        QTimer.singleShot(0, loop.quit)
        loop.exec()
    lost = before - sys.getrefcount(None)
    assert lost < 100, f"the Qt binding dropped {lost} references to None in 900 calls"
