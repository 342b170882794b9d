"""The API server as a session: the window's (or `serve`'s) handle on app/core/server.

It serves the locally loaded model to other programs over HTTP, on the app's qasync loop. Answers
come from the one inference worker through LocalBackend's queue, where the window's own answers go
first and API requests wait their turn (bounded: a full queue is a 503). Widgets observe the
signals; the panel (app/ui/server/) never touches the HTTP server itself.
"""

from __future__ import annotations

import collections
import importlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.core.chat.sampling import SamplingParams
from app.core.common.errors import UserFacingError
from app.core.inference.backend import Stream
from app.core.inference.types import Embeddings
from app.core.models.library_files import ModelEntry
from app.core.remote.keys import KeyStore, key_store
from app.core.server import settings as server_settings
from app.core.server.protocol import EmbeddingCall, GenerationCall
from app.core.server.responses import ServedModel
from app.core.server.settings import KEY_NAME, ServerSettings, generate_key
from app.session import tasks
from app.session.local_backend import LocalBackend
from app.session.model_library import LibrarySession

if TYPE_CHECKING:  # aiohttp loads with the first start, not with the window (a third of a second)
    from app.core.server.http_app import RequestRecord, RunningServer

log = logging.getLogger(__name__)

KEPT_RECORDS = 200


class LocalServing:
    """What the HTTP server serves (its ServingEngine): the local backend's loaded model, through
    its queue, and the library's models for /v1/models."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.library: list[ModelEntry] = []  # refreshed by ApiServer from the library's scans

    def models(self) -> list[ServedModel]:
        loaded = self.loaded()
        served = [loaded] if loaded is not None else []
        seen = {m.id for m in served}
        for entry in self.library:
            if entry.broken or entry.name in seen:
                continue
            seen.add(entry.name)
            served.append(ServedModel(entry.name, _created(entry.path), False))
        return served

    def loaded(self) -> ServedModel | None:
        info = self.backend.model
        if info is None or self.backend.is_loading:
            return None
        return ServedModel(info.name, _created(info.path), True, name=info.name)

    def start(self, call: GenerationCall) -> Stream:
        return self.backend.serve(call.messages, call.sampling, prompt=call.prompt,
                                  output_format=call.output_format)

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        return await self.backend.embed(call.inputs)


def _created(path: str | os.PathLike[str]) -> int:
    try:
        return int(os.stat(path).st_mtime)
    except OSError:
        return 0


class ApiServer(QObject):
    """Start, stop and configure the API server; the log of its requests and its queue."""

    state_changed = Signal()  # started, stopped, or failed to start (`error` says why)
    request_logged = Signal(object)  # RequestRecord
    queue_changed = Signal()  # api_running / api_waiting changed

    def __init__(self, backend: LocalBackend, library: LibrarySession | None = None,
                 sampling_defaults: Callable[[], SamplingParams] = SamplingParams,
                 keys: KeyStore | None = None, settings_path: str | None = None,
                 parent: QObject | None = None) -> None:
        """sampling_defaults: what a request's absent sampling fields take (the window's defaults)."""
        super().__init__(parent)
        self.backend = backend
        self.serving = LocalServing(backend)
        self._library = library
        self._defaults = sampling_defaults
        self._keys = keys
        self._settings_path = settings_path
        self._settings = server_settings.load_settings(settings_path)
        self._server: RunningServer | None = None
        self._starting = False
        self._has_key: bool | None = None  # not read yet (the keyring may be slow: read off the loop)
        self.error = ""
        self.records: collections.deque[RequestRecord] = collections.deque(maxlen=KEPT_RECORDS)
        self._task = tasks.Latest("API server")
        backend.queue_changed.connect(self.queue_changed)
        if library is not None:
            library.changed.connect(self._rescan)
        backend.loaded.connect(lambda _info: self._rescan())
        tasks.start(self._read_has_key(), "is there an API key")  # before the panel asks, off the loop

    async def _read_has_key(self) -> None:
        try:
            found = bool(await tasks.in_thread(lambda: self._key_store().get(KEY_NAME)))
        except UserFacingError as error:
            log.warning("reading the API server's key: %s", error.message)
            return
        if self._has_key is None:
            self._has_key = found

    # -- what the panel shows ----------------------------------------------------------------------

    @property
    def settings(self) -> ServerSettings:
        return self._settings

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def starting(self) -> bool:
        return self._starting

    @property
    def url(self) -> str:
        return self._server.url if self._server is not None else ""

    @property
    def port(self) -> int:
        """The port it listens on (0 when stopped): the real one when the settings said 0."""
        return self._server.port if self._server is not None else 0

    @property
    def api_running(self) -> bool:
        return self.backend.api_running

    @property
    def api_waiting(self) -> int:
        return self.backend.api_waiting

    @property
    def has_key(self) -> bool:
        if self._has_key is None:
            self._has_key = bool(self._key_store().get(KEY_NAME))
        return self._has_key

    # -- intents -------------------------------------------------------------------------------------

    def start(self, settings: ServerSettings | None = None, api_key: str | None = None) -> None:
        """Start serving (stopping first if it runs). settings/api_key: for this run only, not saved
        (`serve` on the command line); by default the saved settings and, on the network, the
        stored key."""
        self._starting = True
        self._task.start(self._restart(settings or self._settings, api_key))

    def stop(self) -> None:
        self._starting = False
        self._task.start(self._stop())

    def apply(self, settings: ServerSettings) -> None:
        """Save the settings; a running server starts again with them."""
        server_settings.save_settings(settings, self._settings_path)
        self._settings = settings
        if self.running or self._starting:
            self.start()
        else:
            self.state_changed.emit()

    def new_key(self) -> str:
        """A new API key, stored (keyring or the 0600 key file) and returned to be shown once.
        A running server on the network uses it from its next start (done here at once)."""
        key = generate_key()
        self._key_store().set(KEY_NAME, key)
        self._has_key = True
        if self.running and self._settings.on_network:
            self.start()
        return key

    async def shutdown(self) -> None:
        """Stop listening and wait until the socket is closed and every request has ended."""
        self._task.cancel()
        await self._stop(announce=False)

    def close(self) -> None:
        """The app closes: stop listening (each request's stream is stopped by the server)."""
        if self._server is not None:
            tasks.start(self._server.stop(), "stop the API server")
            self._server = None
        self._task.cancel()

    # -- inside --------------------------------------------------------------------------------------

    def _key_store(self) -> KeyStore:
        if self._keys is None:
            self._keys = key_store()
        return self._keys

    async def _restart(self, settings: ServerSettings, api_key: str | None) -> None:
        await self._stop(announce=False)
        self.error = ""
        try:
            if api_key is None:  # the window: the stored key guards the network, loopback needs none
                on_network = settings.on_network
                api_key = await tasks.in_thread(lambda: self._key_store().get(KEY_NAME)) if on_network else ""
                self._has_key = bool(api_key) or self._has_key
            await self._scan()
            self.backend.api_queue_limit = settings.queue_limit
            # aiohttp takes a third of a second to import: in a thread, so the window goes on drawing.
            http_app = await tasks.in_thread(importlib.import_module, "app.core.server.http_app")
            start_server = http_app.start_server

            self._server = await start_server(self.serving, settings, api_key, self._defaults, self._logged)
        except UserFacingError as error:
            self.error = error.message
            log.warning("the API server did not start: %s", error.message)
        except OSError as error:
            self.error = f"The API server could not start: {error.strerror or error}."
            log.warning("the API server did not start: %s", error)
        finally:
            self._starting = False
        if self._server is not None:
            log.info("API server listening at %s", self._server.url)
        self.state_changed.emit()

    async def _stop(self, announce: bool = True) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            log.info("API server stopped")
        if announce:
            self.state_changed.emit()

    def _logged(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.request_logged.emit(record)

    async def _scan(self) -> None:
        if self._library is not None:
            self.serving.library = await self._library.scan()

    def _rescan(self) -> None:
        if self.running:
            tasks.start(self._scan(), "list the served models")
