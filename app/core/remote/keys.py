"""Where the API keys of connections are kept: the OS keyring when there is one, else a private file.

A key is stored under its connection's name (service "Llamadesk"). It never goes into
connections.json, the database, a transcript, a log line or a message: errors here name the store
and the connection, never the key. Under LLAMADESK_HOME (tests, portable use) the keyring is not
used, so that everything the app keeps stays in that folder.

The file, connection-keys.json in the config folder, is private from the moment it exists: it is
written to a temporary file that mkstemp creates 0600 (whatever the umask) and that then replaces
the old one, so there is no moment at which another user could open it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from app import paths
from app.core.common import settings_file
from app.core.common.errors import UserFacingError

log = logging.getLogger(__name__)

SERVICE = "Llamadesk"
FILE_NAME = "connection-keys.json"


class KeyStoreError(UserFacingError):
    """A key that could not be read, stored or deleted; the message never holds the key."""


class KeyStore(Protocol):
    where: str  # for messages: "the system keyring (…)" or "a private file (…, mode 0600)"

    def get(self, name: str) -> str: ...  # "" when there is none

    def set(self, name: str, key: str) -> None: ...

    def delete(self, name: str) -> None: ...


def check_key(key: str) -> str:
    """The key as sent (surrounding spaces dropped), or KeyStoreError: a key goes into an HTTP
    header, which takes printable ASCII only (an HTTP library's complaint would quote it)."""
    key = str(key).strip()
    if not all("!" <= c <= "~" for c in key):
        raise KeyStoreError("An API key can only hold letters, digits and punctuation, without spaces.")
    return key


# -- the private file --------------------------------------------------------------------------


def _check_file(document: Any) -> dict[str, str]:
    """{"keys": {connection name: key}}; the messages never quote a key."""
    if not isinstance(document, dict) or not isinstance(document.get("keys", {}), dict):
        raise settings_file.DamagedSettings("it does not hold the keys as names and texts")
    keys = document.get("keys", {})
    if not all(isinstance(key, str) for key in keys.values()):
        raise settings_file.DamagedSettings("a key in it is not text")
    return keys


KIND = settings_file.SettingsKind(name=FILE_NAME, what="The API keys of your connections", check=_check_file,
                                  fallback="the connections have no keys until you enter them again",
                                  max_bytes=1024 * 1024)


class FileKeyStore:
    """Keys in connection-keys.json, mode 0600, written atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / FILE_NAME
        self.where = f"a private file ({self.path}, mode 0600)"

    def get(self, name: str) -> str:
        return self._keys().get(name, "")

    def set(self, name: str, key: str) -> None:
        keys = self._keys()
        keys[name] = key
        self._write(keys)

    def delete(self, name: str) -> None:
        keys = self._keys()
        if keys.pop(name, None) is not None:
            self._write(keys)

    def _keys(self) -> dict[str, str]:
        return dict(settings_file.load(KIND, self.path, dict))

    def _write(self, keys: dict[str, str]) -> None:
        # settings_file.save writes through write_text_atomically: mkstemp (0600) then os.replace.
        try:
            settings_file.save(KIND, self.path, json.dumps({"keys": keys}, ensure_ascii=False, indent=1))
        except OSError as error:
            raise KeyStoreError(f"Could not save the key in {self.path}: "
                                f"{error.strerror or error}.") from None


# -- the system keyring ------------------------------------------------------------------------


class KeyringStore:
    """Keys in the OS keyring (Secret Service, KWallet, macOS Keychain, Windows Credential Locker)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.where = f"the system keyring ({getattr(backend, 'name', type(backend).__name__)})"

    def get(self, name: str) -> str:
        try:
            return self.backend.get_password(SERVICE, name) or ""
        except Exception as error:  # any backend's failure (D-Bus, a locked keyring): said, not raised raw
            raise self._failed("read", name, error) from None

    def set(self, name: str, key: str) -> None:
        try:
            self.backend.set_password(SERVICE, name, key)
        except Exception as error:
            raise self._failed("store", name, error) from None

    def delete(self, name: str) -> None:
        from keyring.errors import PasswordDeleteError

        try:
            self.backend.delete_password(SERVICE, name)
        except PasswordDeleteError:
            pass  # there was none
        except Exception as error:
            raise self._failed("delete", name, error) from None

    def _failed(self, doing: str, name: str, error: Exception) -> KeyStoreError:
        """The error's type only: a backend's own message might quote what it was given."""
        log.warning("the keyring could not %s the key of %r (%s)", doing, name, type(error).__name__)
        where = self.where.removeprefix("the ")
        return KeyStoreError(f"The {where} could not {doing} the key of the connection “{name}” "
                             f"({type(error).__name__}). Is the keyring unlocked?")


def usable_keyring() -> Any | None:
    """The keyring's backend when it can really keep secrets: not keyring's fail or null backend,
    nor a chain with nothing in it (priority <= 0)."""
    try:
        import keyring
        from keyring.backends import fail, null

        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring | null.Keyring) or not backend.priority > 0:
            return None
        return backend
    except Exception as error:  # a broken backend module must not stop the app: the file works
        log.warning("no usable system keyring (%s)", type(error).__name__)
        return None


def key_store() -> KeyStore:
    """The keyring when one is usable and LLAMADESK_HOME is unset; else the private file."""
    if not os.environ.get(paths.HOME_ENV):
        backend = usable_keyring()
        if backend is not None:
            return KeyringStore(backend)
    return FileKeyStore()
