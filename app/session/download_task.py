"""One model download as a job (Vorta's jobs, DESIGN.md): start, progress, cancel, a result.

The transfer (app.core.models.hub.download) runs in a worker thread; its progress comes back to
the GUI thread through the loop. The task belongs to whoever started it, not to a dialog: closing
the dialog leaves it running, and a dialog opened later shows it. Cancelling keeps the .part file,
so downloading the same file again resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core.models import hub
from app.core.models.hub import DownloadProgress, HubError
from app.session.tasks import in_long_thread, start

log = logging.getLogger(__name__)


class DownloadTask(QObject):
    progress = Signal(object)  # DownloadProgress
    finished = Signal(str)  # the path of the verified file, now in the library
    failed = Signal(str, str)  # kind (HubError's; "cancelled" after cancel()), message

    def __init__(self, repo_id: str, filename: str, dest_dir: str | Path, token: str | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.repo_id, self.filename, self.dest_dir = repo_id, filename, Path(dest_dir)
        self._token = token
        self._cancel = threading.Event()
        self._task: asyncio.Task | None = None
        self._running = False
        self.last_progress: DownloadProgress | None = None  # for a view that starts watching late

    @property
    def running(self) -> bool:
        """Started and not yet finished or failed (false already while those signals are heard)."""
        return self._running

    def start(self) -> None:
        """Once per task: a download to try again is a new task (it resumes the .part)."""
        if self._task is None:
            self._running = True
            self._task = start(self._run(), f"download {self.filename}")

    def cancel(self) -> None:
        """Stop within half a second, even on a stalled connection; the .part stays for a resume."""
        self._cancel.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()

        def report(p: DownloadProgress) -> None:  # in the worker thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: the app has ended
                loop.call_soon_threadsafe(self._on_progress, p)

        try:
            path = await in_long_thread(hub.download, self.repo_id, self.filename, self.dest_dir,
                                   token=self._token, progress=report, cancel=self._cancel)
        except asyncio.CancelledError:  # the flow was cancelled: the thread must stop too
            self._running = False
            self._cancel.set()
            raise
        except HubError as error:
            self._running = False
            self.failed.emit(error.kind, error.message)
        except Exception as error:  # noqa: BLE001 - the user must hear of any failure
            log.exception("download of %s from %s failed", self.filename, self.repo_id)
            self._running = False
            self.failed.emit(HubError.HTTP, f"The download of {self.filename} failed: {error}")
        else:
            self._running = False
            self.finished.emit(str(path))

    def _on_progress(self, p: DownloadProgress) -> None:
        self.last_progress = p
        self.progress.emit(p)
