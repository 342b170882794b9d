"""How the API server is set up: where it listens, who may reach it, how much it takes; in server.json.

The defaults are the safe ones: loopback only, no CORS, no extra host names. Binding to the network
is an explicit choice (`on_network`) that needs an API key; the key itself is never in this file but
in the key store (app/core/remote/keys.py, under KEY_NAME), so the file can be shown or backed up.
Values are checked when a ServerSettings is made: a bad one raises ValueError with a plain message
(the panel shows it; from the file it means the file is damaged and set aside).
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app import paths
from app.core.common import settings_file
from app.core.common.errors import UserFacingError

FILE_NAME = "server.json"
# None of LM Studio 1234, Jan 1337/3928, GPT4All 4891, Ollama 11434, llama-server 8080.
DEFAULT_PORT = 7433
KEY_NAME = "api-server"  # the key's name in app.core.remote.keys.key_store()
MAX_QUEUE_LIMIT = 1000
MIN_BODY_LIMIT, MAX_BODY_LIMIT = 1024, 256 * 1024**2
MAX_LISTED = 100  # origins or host names
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class ServerSettingsError(UserFacingError):
    """The server's settings could not be saved; `.message` says why."""


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback addresses (127.0.0.0/8, ::1): reachable from this computer only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """"0.0.0.0" or "::": every address of this computer."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"  # "0.0.0.0" or a specific address: the network (key required)
    port: int = DEFAULT_PORT  # 0: any free port (tests)
    start_with_app: bool = False
    allowed_origins: tuple[str, ...] = ()  # CORS: none unless listed ("http://localhost:3000")
    allowed_hosts: tuple[str, ...] = ()  # extra Host names besides loopback and the bound address
    queue_limit: int = 32
    body_limit_bytes: int = 4 * 1024**2

    def __post_init__(self) -> None:
        object.__setattr__(self, "host", check_host(self.host))
        for name, low, high in (("port", 0, 65535), ("queue_limit", 1, MAX_QUEUE_LIMIT),
                                ("body_limit_bytes", MIN_BODY_LIMIT, MAX_BODY_LIMIT)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{_LABELS[name]} must be a whole number from {low} to {high}, "
                                 f"not {value!r}.")
        if not isinstance(self.start_with_app, bool):
            raise ValueError(f"“Start with Llamadesk” must be true or false, not {self.start_with_app!r}.")
        origins = _listed(self.allowed_origins, check_origin, "origins")
        object.__setattr__(self, "allowed_origins", origins)
        hosts = _listed(self.allowed_hosts, check_allowed_host, "host names")
        object.__setattr__(self, "allowed_hosts", hosts)

    @property
    def on_network(self) -> bool:
        """Other computers can reach it: the host is not a loopback address."""
        return not is_loopback(self.host)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["allowed_origins"] = list(self.allowed_origins)
        data["allowed_hosts"] = list(self.allowed_hosts)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServerSettings:
        """Keys it does not know are ignored; missing ones take their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("allowed_origins", "allowed_hosts"):
            if name in values:
                if not isinstance(values[name], list):
                    raise ValueError(f"“{name}” is not a list")
                values[name] = tuple(values[name])
        return cls(**values)


_LABELS = {"port": "The port", "queue_limit": "The queue limit", "body_limit_bytes": "The request size limit"}


def check_host(host: object) -> str:
    """The address to listen on: "localhost" or an IP address (IPv6 without brackets)."""
    if not isinstance(host, str):
        raise ValueError(f"The address to listen on must be text, not {host!r}.")
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"“{host}” is not an address to listen on: use 127.0.0.1 (this computer only), "
                         f"0.0.0.0 (every network) or one of this computer's IP addresses.") from None


def check_origin(origin: object) -> str:
    """A web page's origin as browsers send it: scheme://host[:port], lower case, no path."""
    text = str(origin).strip().lower().rstrip("/") if isinstance(origin, str) else ""
    if "*" in text or text == "null":
        raise ValueError("List each web page's origin in full (like http://localhost:3000): “*” or "
                         "“null” would let any page use the server.")
    parts = urlsplit(text)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query
            or parts.fragment or parts.username is not None):
        raise ValueError(f"“{origin}” is not an origin: write it as scheme://host[:port], like "
                         f"http://localhost:3000.")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"The port in “{origin}” must be a number from 1 to 65535.") from None
    return text


def check_allowed_host(name: object) -> str:
    """An extra Host header value to accept: a name or address, with ":port" or without (any port)."""
    text = name.strip().lower().rstrip(".") if isinstance(name, str) else ""
    if "*" in text:
        raise ValueError("List each host name in full: a wildcard would let any web site reach the server "
                         "through DNS rebinding.")
    host, port = split_host_port(text)
    valid_name = bool(_HOST_NAME.fullmatch(host))
    try:
        ipaddress.ip_address(host)
        valid_name = True
    except ValueError:
        pass
    if not host or not valid_name or port == 0:
        raise ValueError(f"“{name}” is not a host name: write a name or address, with or without "
                         f":port (like my-box.lan or my-box.lan:7433).")
    return text


def split_host_port(value: str) -> tuple[str, int | None]:
    """("name", port or None) from a Host header value: "name", "name:7433", "[::1]:7433", "::1".

    A port that is not a number gives port 0 (never a real port)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if not bracket or rest and port_text is None:
            return host, 0
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:  # a name, or a bare IPv6 address
        host, port_text = value, None
    if port_text is None:
        return host.rstrip("."), None
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else 0
    return host.rstrip("."), port if 0 < port <= 65535 else 0


def _listed(values: object, check: Any, what: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise ValueError(f"The allowed {what} must be a list, not {values!r}.")
    if len(values) > MAX_LISTED:
        raise ValueError(f"At most {MAX_LISTED} allowed {what} can be listed.")
    checked = [check(value) for value in values]
    return tuple(dict.fromkeys(checked))


def _check_file(document: Any) -> ServerSettings:
    if not isinstance(document, dict):
        raise settings_file.DamagedSettings("it does not hold an object")
    return ServerSettings.from_dict(document)  # a bad value: ValueError, which means damaged


KIND = settings_file.SettingsKind(name=FILE_NAME, what="Your API server settings", check=_check_file,
                                  fallback="the server uses its safe defaults (this computer only, port "
                                           f"{DEFAULT_PORT})", max_bytes=1024 * 1024)


def settings_path() -> Path:
    return paths.config_dir() / FILE_NAME


def load_settings(path: Path | None = None) -> ServerSettings:
    """The saved settings; the defaults when there are none or the file is damaged (then set aside)."""
    return settings_file.load(KIND, path or settings_path(), ServerSettings)


def save_settings(settings: ServerSettings, path: Path | None = None) -> None:
    """Write server.json atomically (never over a damaged file); ServerSettingsError if it cannot."""
    path = path or settings_path()
    try:
        settings_file.save(KIND, path, json.dumps(settings.to_dict(), ensure_ascii=False, indent=1))
    except OSError as error:
        raise ServerSettingsError(f"The API server settings could not be saved in {path}: "
                                  f"{error.strerror or error}.") from error


def generate_key() -> str:
    """A new API key: "ld-" and 43 URL-safe characters (256 random bits)."""
    return "ld-" + secrets.token_urlsafe(32)
