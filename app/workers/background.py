"""Run a plain function off the GUI thread and get its result back as a signal.

For short blocking work (search, export, hashing, import parsing). The model never runs here:
it has its own thread (inference.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay):
        super().__init__()
        self.fn = fn
        self.relay = relay

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as error:  # noqa: BLE001 - delivered to the caller's on_error
            log.debug("background task failed", exc_info=True)
            signal, value = self.relay.failed, error
        else:
            signal, value = self.relay.done, result
        try:
            signal.emit(value)
        except RuntimeError:  # the app is closing and its objects are gone: nobody to tell
            log.debug("background task finished after the app closed")


_live: set[_Relay] = set()  # relays stay alive until their task reports


def run_in_background(fn: Callable[[], Any], on_done: Callable[[Any], None],
                      on_error: Callable[[Exception], None]) -> None:
    """Call fn() in Qt's thread pool; on_done/on_error run later in the GUI thread."""
    relay = _Relay()  # created here, so it lives in the GUI thread: signals arrive queued
    _live.add(relay)

    def finish(callback: Callable[[Any], None], value: Any) -> None:
        _live.discard(relay)
        callback(value)

    relay.done.connect(lambda result: finish(on_done, result))
    relay.failed.connect(lambda error: finish(on_error, error))
    QThreadPool.globalInstance().start(_Task(fn, relay))


def wait_for_background_tasks(timeout_ms: int = 10_000) -> bool:
    return QThreadPool.globalInstance().waitForDone(timeout_ms)
