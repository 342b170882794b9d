"""The user's connections to remote servers, for the Connections dialog and the model picker.

Saving and removing change connections.json and the key store together (a renamed connection keeps
its key). Testing one asks the server for its models as a flow on the qasync loop: the window keeps
turning while a slow or silent server is waited for. Messages never hold a key.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from app.core.common.errors import UserFacingError
from app.core.common.text import plural
from app.core.remote.connections import Connection, ConnectionsFile
from app.core.remote.keys import KeyStore, check_key, key_store
from app.session.tasks import Latest, in_thread

log = logging.getLogger(__name__)
MODELS_SHOWN = 5  # model ids named in a test's result; more are counted, not listed


def found(ids: list[str]) -> str:
    """"Found 2 models: a, b" ("…" after the first few)."""
    if not ids:
        return "Found 0 models: the server lists none."
    shown = ", ".join(ids[:MODELS_SHOWN]) + (", …" if len(ids) > MODELS_SHOWN else "")
    return f"Found {plural(len(ids), 'model')}: {shown}"


class ConnectionsSession(QObject):
    changed = Signal()  # a connection was saved or removed: lists of them read again
    tested = Signal(str, bool, str)  # name, ok, "Found N models: …" or what failed
    error = Signal(str)  # a save or removal that failed, for people
    key_known = Signal(str, bool)  # a connection's name, whether a key is stored for it (ask_has_key)

    def __init__(self, file: ConnectionsFile | None = None, keys: KeyStore | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.file = file or ConnectionsFile()
        self.keys = keys or key_store()
        self._test = Latest("connection test")
        self._key_check = Latest("is a key stored")

    def connections(self) -> list[Connection]:
        return self.file.load()

    def key_for(self, name: str) -> str:
        """The stored key ("" when none, or when the store cannot be read: then `error` says why)."""
        try:
            return self.keys.get(name)
        except UserFacingError as failure:
            self.error.emit(failure.message)
            return ""

    def save(self, connection: Connection, key: str | None, replacing: str | None = None) -> bool:
        """Add a connection, or replace the one named `replacing` (renaming it keeps its key).
        key None: keep the stored one; "": store none. False (and `error`) when it could not be saved."""
        try:
            key = check_key(key) if key else key
            old_key = self.keys.get(replacing) if replacing and key is None else ""
            stored = self.file.put(connection, replacing)
            renamed = bool(replacing) and replacing != stored.name
            if renamed:  # first: a keyring that ignores case would otherwise delete the new one
                self.keys.delete(replacing)
            if key is not None or renamed:
                self._store_key(stored.name, key if key is not None else old_key)
        except UserFacingError as failure:
            self.error.emit(failure.message)
            return False
        self.changed.emit()
        return True

    def _store_key(self, name: str, key: str) -> None:
        if key:
            self.keys.set(name, key)
        else:
            self.keys.delete(name)

    def remove(self, name: str) -> bool:
        """Forget the connection and its key; False (and `error`) when that failed."""
        try:
            self.keys.delete(name)
            self.file.remove(name)
        except UserFacingError as failure:
            self.error.emit(failure.message)
            return False
        self.changed.emit()
        return True

    def test(self, connection: Connection, key: str | None, stored_as: str = "") -> None:
        """Ask the server for its models; `tested` tells the outcome. A newer test replaces this one.
        key None: the key stored for `stored_as` (read off the GUI thread: a keyring may take a while)."""
        self._test.start(self._run_test(connection, key, stored_as))

    def ask_has_key(self, name: str) -> None:
        """Whether a key is stored for `name`: `key_known` answers (read off the GUI thread)."""
        self._key_check.start(self._has_key(name))

    async def _has_key(self, name: str) -> None:
        try:
            stored = await in_thread(self.keys.get, name)
        except UserFacingError as failure:
            self.error.emit(failure.message)
            return
        self.key_known.emit(name, bool(stored))

    def cancel_test(self) -> None:
        """Stop waiting for the server being tested (the dialog closed): no `tested` comes."""
        self._test.cancel()

    async def _run_test(self, connection: Connection, key: str | None, stored_as: str) -> None:
        from app.core.remote.client import OpenAIClient  # httpx2 loads with the first test, not at start

        try:
            if key is None:
                key = await in_thread(self.keys.get, stored_as) if stored_as else ""
            key = check_key(key)
        except UserFacingError as failure:
            self.tested.emit(connection.name, False, failure.message)
            return
        client = OpenAIClient(connection, key)
        try:
            models = await client.models()
        except UserFacingError as failure:  # RemoteError: says what failed, never the key
            self.tested.emit(connection.name, False, failure.message)
            return
        except Exception as failure:  # a slip: its type only (an HTTP library's message may quote a header)
            log.error("testing the connection %r failed (%s)", connection.name, type(failure).__name__)
            why = f"The test failed unexpectedly ({type(failure).__name__})."
            self.tested.emit(connection.name, False, why)
            return
        finally:
            await client.aclose()
        self.tested.emit(connection.name, True, found([m.id for m in models]))
