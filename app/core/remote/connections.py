"""Connections to remote OpenAI-compatible servers: name, base URL, extra headers, timeout.

They live in connections.json in the config folder under the settings-file policy (a damaged file
is set aside with a notice; `doctor` checks it). The API key is never here: it is in the key store
(app/core/remote/keys.py), so this file can be shown, copied or backed up without giving it away.
That is also why a URL with a user and password in it, or an Authorization header, is refused.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app import paths
from app.core.common import settings_file
from app.core.common.errors import UserFacingError

FILE_NAME = "connections.json"
MAX_NAME_LENGTH = 64
MAX_CONNECTIONS = 1000
MAX_HEADERS = 50
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1.0, 3600.0
EXAMPLE_URL = "http://gpu-box:8080/v1"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name (RFC 9110 token)


class ConnectionsError(UserFacingError):
    """A connection that cannot be stored as asked, or a file that cannot be written; `.message` says why."""

    EXISTS = "exists"


@dataclass(frozen=True)
class Connection:
    name: str  # unique; shown as "model-id · name"
    base_url: str  # normalised by check_url: scheme://host[:port]/path, no trailing slash (…/v1)
    headers: tuple[tuple[str, str], ...] = ()  # extra headers sent with every request
    timeout_s: float = 60.0

    @property
    def host(self) -> str:
        """"gpu-box:8080": how messages name the server."""
        return urlsplit(self.base_url).netloc

    @property
    def root(self) -> str:
        """The base URL without its "/v1": where llama-server's own endpoints (/props, /tokenize) are."""
        return self.base_url.removesuffix("/v1")


def check_name(name: str) -> str:
    """The name as stored (runs of spaces as one), or ConnectionsError saying why it cannot be one."""
    name = " ".join(str(name).split())
    if not name:
        raise ConnectionsError("Give the connection a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ConnectionsError(f"A connection name can be at most {MAX_NAME_LENGTH} characters.")
    if not name.isprintable():
        raise ConnectionsError("A connection name cannot contain control characters.")
    return name


def check_url(url: str) -> str:
    """The base URL normalised (scheme and host in lower case, no trailing slash), or
    ConnectionsError saying why it is not one. The URL itself is not repeated in the message: it
    could hold a password."""
    url = str(url).strip()
    if not url:
        raise ConnectionsError(f"Enter the server's base URL, e.g. {EXAMPLE_URL}.")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ConnectionsError("The base URL cannot contain spaces or control characters.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise ConnectionsError(f"The base URL must start with http:// or https://, e.g. {EXAMPLE_URL}.")
    if parts.username is not None or parts.password is not None:
        raise ConnectionsError("Put the key in the API key field, not in the URL: the URL is stored "
                               "in plain text.")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ConnectionsError("The base URL cannot have a query (?…) or a fragment (#…).")
    host = parts.hostname or ""
    if not host:
        raise ConnectionsError(f"The base URL has no host name, e.g. {EXAMPLE_URL}.")
    try:
        port = parts.port
    except ValueError:
        raise ConnectionsError("The port in the base URL must be a number from 1 to 65535.") from None
    if port == 0:
        raise ConnectionsError("The port in the base URL must be a number from 1 to 65535.")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def check_header(name: str, value: str) -> tuple[str, str]:
    """One extra header as sent, or ConnectionsError. The key has a field of its own, kept out of
    connections.json: an Authorization header would put it there."""
    name, value = str(name).strip(), str(value).strip()
    if not _TOKEN.fullmatch(name):
        raise ConnectionsError("A header name can only hold letters, digits and - (not spaces).")
    if name.lower() == "authorization":
        raise ConnectionsError("Put the key in the API key field, not in an Authorization header: "
                               "headers are stored in plain text.")
    if any(c in "\r\n\x00" for c in value) or not all(c.isprintable() or c == "\t" for c in value):
        raise ConnectionsError(f"The value of the header {name} cannot contain control characters.")
    return name, value


def parse_header(line: str) -> tuple[str, str]:
    """"Name: value" (the command line's --header, a line of the dialog's box) as a header. The
    messages do not quote the line: it might be a key typed in the wrong place."""
    name, colon, value = str(line).partition(":")
    if not colon:
        raise ConnectionsError("Write each extra header as “Name: value” on a line of its own: a line "
                               "has no colon.")
    return check_header(name, value)


def parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    """One header per non-empty line."""
    return tuple(parse_header(line) for line in str(text).splitlines() if line.strip())


def check_timeout(timeout_s: Any) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or math.isnan(timeout_s) \
            or not MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:
        raise ConnectionsError(f"The timeout must be {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} seconds.")
    return float(timeout_s)


def checked(connection: Connection) -> Connection:
    """The connection with every field checked and normalised; ConnectionsError at the first problem."""
    headers = tuple(check_header(n, v) for n, v in connection.headers)
    if len(headers) > MAX_HEADERS:
        raise ConnectionsError(f"A connection can have at most {MAX_HEADERS} extra headers.")
    return replace(connection, name=check_name(connection.name), base_url=check_url(connection.base_url),
                   headers=headers, timeout_s=check_timeout(connection.timeout_s))


# -- the file ----------------------------------------------------------------------------------


def _from_json(entry: Any) -> Connection:
    if not isinstance(entry, dict):
        raise settings_file.DamagedSettings("a connection is not an object")
    name = entry.get("name")
    try:
        if not isinstance(name, str) or not isinstance(entry.get("base_url"), str):
            raise ConnectionsError("its name or base URL is not text")
        headers = entry.get("headers", [])
        if not isinstance(headers, list) or not all(
                isinstance(h, list) and len(h) == 2 and all(isinstance(p, str) for p in h) for h in headers):
            raise ConnectionsError("its headers are not pairs of texts")
        return checked(Connection(name, entry["base_url"], tuple((n, v) for n, v in headers),
                                  entry.get("timeout_s", 60.0)))
    except ConnectionsError as error:
        label = f"the connection “{name[:40]}”" if isinstance(name, str) else "a connection"
        raise settings_file.DamagedSettings(f"{label}: {error.message}") from None


def _check_file(document: Any) -> list[Connection]:
    """{"connections": [{"name", "base_url", "headers": [[name, value]…], "timeout_s"}…]}."""
    if not isinstance(document, dict):
        raise settings_file.DamagedSettings("it does not hold an object")
    entries = document.get("connections", [])
    if not isinstance(entries, list) or len(entries) > MAX_CONNECTIONS:
        raise settings_file.DamagedSettings("“connections” is not a list of connections")
    connections = [_from_json(entry) for entry in entries]
    names = [c.name.casefold() for c in connections]
    if len(set(names)) != len(names):
        raise settings_file.DamagedSettings("two connections have the same name")
    return connections


KIND = settings_file.SettingsKind(name=FILE_NAME, what="Your connections to remote servers",
                                  check=_check_file, fallback="Llamadesk started without them",
                                  max_bytes=4 * 1024 * 1024)


def _to_json(connection: Connection) -> dict[str, Any]:
    return {"name": connection.name, "base_url": connection.base_url,
            "headers": [list(h) for h in connection.headers], "timeout_s": connection.timeout_s}


class ConnectionsFile:
    """connections.json: read whole, written whole (atomically) on every change."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / FILE_NAME

    def load(self) -> list[Connection]:
        """Every connection, in the order they were added."""
        return settings_file.load(KIND, self.path, list)

    def get(self, name: str) -> Connection | None:
        wanted = " ".join(str(name).split()).casefold()
        return next((c for c in self.load() if c.name.casefold() == wanted), None)

    def put(self, connection: Connection, replacing: str | None = None) -> Connection:
        """Add a connection, or replace the one named `replacing` (it may be renamed); the
        connection as stored. A name is taken when another connection has it, whatever the case."""
        connection = checked(connection)
        connections = self.load()
        old = (replacing or "").casefold()
        place = next((i for i, c in enumerate(connections) if replacing and c.name.casefold() == old), None)
        if any(c.name.casefold() == connection.name.casefold() for i, c in enumerate(connections)
               if i != place):
            raise ConnectionsError(f"A connection named “{connection.name}” already exists: choose "
                                   f"another name.", kind=ConnectionsError.EXISTS)
        if place is None:
            connections.append(connection)
        else:
            connections[place] = connection
        self._write(connections)
        return connection

    def remove(self, name: str) -> bool:
        """True when there was such a connection."""
        connections = self.load()
        kept = [c for c in connections if c.name.casefold() != " ".join(str(name).split()).casefold()]
        if len(kept) == len(connections):
            return False
        self._write(kept)
        return True

    def _write(self, connections: list[Connection]) -> None:
        text = json.dumps({"connections": [_to_json(c) for c in connections]}, ensure_ascii=False, indent=1)
        try:
            settings_file.save(KIND, self.path, text)
        except OSError as error:
            raise ConnectionsError(f"Could not save the connections: {error.strerror or error}.") from error
