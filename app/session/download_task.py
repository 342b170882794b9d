"""One model download as a job (Vorta's jobs, DESIGN.md): start, progress, cancel, a result.

The transfer (app.core.models.hub.download) runs in a worker thread; its progress comes back to
the GUI thread through the loop. The task belongs to whoever started it, not to a dialog: closing
the dialog leaves it running, and a dialog opened later shows it. Pausing keeps the .part file, so
downloading the same file again (even after a restart: find_paused) resumes it; cancelling deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core.models import hub
from app.core.models.download_files import PartialDownload, find_partials, remove_partial
from app.core.models.hub import DownloadProgress, HubError
from app.core.models.library_files import human_size
from app.session.tasks import in_long_thread, in_thread, start

log = logging.getLogger(__name__)

PAUSED = "paused"  # failed's kind after pause(); HubError.CANCELLED after cancel()


async def find_paused(models_dir: str | Path) -> list[PartialDownload]:
    """The downloads left unfinished under the models folder (a pause, a quit, a crash)."""
    return await in_thread(find_partials, models_dir)


async def remove_paused(partial: PartialDownload) -> int:
    """Delete a paused download's part file; returns the bytes freed."""
    return await in_thread(remove_partial, partial.folder, partial.filename)


class DownloadTask(QObject):
    progress = Signal(object)  # DownloadProgress
    finished = Signal(str)  # the path of the verified file, now in the library
    failed = Signal(str, str)  # kind (HubError's; PAUSED after pause(), "cancelled" after cancel()), message

    def __init__(self, repo_id: str, filename: str, dest_dir: str | Path, token: str | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.repo_id, self.filename, self.dest_dir = repo_id, filename, Path(dest_dir)
        self._token = token
        self._cancel = threading.Event()
        self._discard = False  # cancel(), not pause(): the .part goes too
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

    @property
    def name(self) -> str:
        return Path(self.filename).name

    def pause(self) -> None:
        """Stop within half a second, even on a stalled connection; the .part stays for a resume."""
        self._cancel.set()

    def cancel(self) -> None:
        """Stop as pause() does, then delete the .part: nothing of this download stays on disk."""
        self._discard = True
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
            kind, message = error.kind, error.message
            if kind == HubError.CANCELLED:
                kind, message = await self._stopped()
            self._running = False
            self.failed.emit(kind, message)
        except Exception as error:  # noqa: BLE001 - the user must hear of any failure
            log.exception("download of %s from %s failed", self.filename, self.repo_id)
            self._running = False
            self.failed.emit(HubError.HTTP, f"The download of {self.filename} failed: {error}")
        else:
            self._running = False
            self.finished.emit(str(path))

    async def _stopped(self) -> tuple[str, str]:
        """After pause(): the .part is kept. After cancel(): it is deleted (in a worker thread)."""
        if not self._discard:
            return PAUSED, f"The download of {self.name} is paused: the part already downloaded is kept."
        try:
            freed = await in_thread(remove_partial, self.dest_dir, self.filename)
        except OSError as error:
            return HubError.CANCELLED, (f"The download of {self.name} was cancelled, but its partial file "
                                        f"could not be deleted: {error.strerror or error}.")
        freed_text = f" ({human_size(freed)} freed)" if freed else ""
        return HubError.CANCELLED, (f"The download of {self.name} was cancelled and its partial file "
                                    f"deleted{freed_text}.")

    def _on_progress(self, p: DownloadProgress) -> None:
        self.last_progress = p
        self.progress.emit(p)
