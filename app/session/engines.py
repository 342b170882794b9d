"""The remote engines a chat can be answered by: one RemoteBackend per (connection, model id),
made when a conversation first needs it, its API key read off the GUI thread (an OS keyring may
take a while to answer).

The local engine is not here: ChatSession holds it, and answers a conversation with it unless the
conversation names a connection.
"""

from __future__ import annotations

import asyncio
import logging

from PySide6.QtCore import QObject

from app.core.remote.backend import RemoteBackend
from app.core.remote.client import OpenAIClient, RemoteError, RemoteModel
from app.core.remote.connections import Connection, ConnectionsFile
from app.core.remote.keys import key_store
from app.session import tasks

log = logging.getLogger(__name__)


class Engines(QObject):
    def __init__(self, connections: ConnectionsFile | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.connections = connections or ConnectionsFile()
        self._remotes: dict[tuple[str, str], RemoteBackend] = {}

    def remote(self, connection_name: str, model_id: str) -> RemoteBackend:
        """The backend for a model on a connection (made on first use; it connects when first asked)."""
        key = (connection_name, model_id)
        backend = self._remotes.get(key)
        if backend is None:
            connection = self.connections.get(connection_name)
            if connection is None:
                backend = self._remotes[key] = MissingConnection(connection_name, model_id)
            else:
                backend = self._remotes[key] = RemoteBackend(connection, model_id, key_source=lambda: (
                    tasks.in_thread(key_store().get, connection_name)))
        return backend

    def forget(self, connection_name: str = "") -> None:
        """A connection was edited or removed (none named: all): its backends are made afresh when
        next needed; answers running on the old ones finish on them."""
        for key in [k for k in self._remotes if not connection_name or k[0] == connection_name]:
            del self._remotes[key]

    async def models(self) -> list[tuple[Connection, list[RemoteModel] | RemoteError]]:
        """Every connection's models, asked at once; a connection that fails gives its error."""
        connections = self.connections.load()

        async def ask(connection: Connection) -> list[RemoteModel] | RemoteError:
            client = OpenAIClient(connection, await tasks.in_thread(key_store().get, connection.name))
            try:
                return await client.models()
            except RemoteError as error:
                return error
            finally:
                await client.aclose()

        answers = await asyncio.gather(*(ask(c) for c in connections))
        return list(zip(connections, answers, strict=True))

    def close(self) -> None:
        for backend in self._remotes.values():
            backend.close()
        self._remotes.clear()


class MissingConnection(RemoteBackend):
    """A conversation names a connection that was removed: every answer says so."""

    def __init__(self, connection_name: str, model_id: str) -> None:
        super().__init__(Connection(name=connection_name, base_url="http://127.0.0.1/v1"), model_id)

    async def _connect_once(self):
        raise RemoteError(f"There is no connection named {self.connection.name} any more: choose another "
                          "model for this chat, or add the connection again (Model ▸ Connections…).",
                          kind=RemoteError.MODEL_GONE)
