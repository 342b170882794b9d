"""Who may use the server: the Host header (DNS rebinding), the Origin (CORS) and the API key.

A web page the user visits can make the browser send requests to 127.0.0.1 (CSRF) or, through a
name that an attacker re-points at 127.0.0.1, read the answers (DNS rebinding, as in Ollama's
CVE-2024-28224). So: the Host must be one this server is known by; a request with an Origin must
come from a listed one (none by default, never "*"); and a key, when set, is required on /v1/.
Binding to 0.0.0.0 never turns the Host list into a wildcard (Jan #8453): "0.0.0.0" itself is not a
name anyone is allowed to use, and only this computer's own name and the address a connection
actually reached are added.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from dataclasses import dataclass

from app.core.server.settings import ServerSettings, is_wildcard, split_host_port

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE_S = 600


def _normal_address(host: str) -> str:
    """An IP address in its canonical form (so "0:0::1" matches "::1"); anything else unchanged."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def own_names() -> frozenset[str]:
    """This computer's own host name (and its mDNS ".local" form): what other machines on the network
    may call it. No DNS lookup is made."""
    try:
        name = socket.gethostname().strip().lower().rstrip(".")
    except OSError:
        return frozenset()
    if not name:
        return frozenset()
    short = name.split(".")[0]
    return frozenset({name, short, f"{short}.local"})


@dataclass
class Guard:
    """The checks for one running server: built from its settings, its real port and its key (the
    port is set again once a server asked for port 0 knows which one it got)."""

    names: frozenset[str]  # host names (no port) accepted with our port or none
    names_any_port: frozenset[str]  # allowed_hosts listed without a port
    names_with_port: frozenset[tuple[str, int]]  # allowed_hosts listed with a port
    port: int
    origins: frozenset[str]
    api_key: str

    @classmethod
    def for_server(cls, settings: ServerSettings, port: int, api_key: str) -> Guard:
        names = set(LOOPBACK_NAMES)
        if is_wildcard(settings.host):
            names |= own_names()
        else:
            names.add(_normal_address(settings.host))
        any_port: set[str] = set()
        with_port: set[tuple[str, int]] = set()
        for entry in settings.allowed_hosts:
            host, listed_port = split_host_port(entry)
            if listed_port is None:
                any_port.add(_normal_address(host))
            else:
                with_port.add((_normal_address(host), listed_port))
        names -= {"0.0.0.0", "::"}
        return cls(frozenset(names), frozenset(any_port), frozenset(with_port), port,
                   frozenset(settings.allowed_origins), api_key)

    def host_allowed(self, host_header: str | None, local_address: str = "") -> bool:
        """True when the Host header names this server: a loopback name, the bound address, this
        computer's name (bound to every address), a listed extra name, or the very address the
        connection reached (an IP address in the Host cannot be a re-pointed name). ":port", when
        given, must be the server's port (or the one listed with the name)."""
        if not host_header or any(c.isspace() or not c.isprintable() for c in host_header):
            return False
        host, port = split_host_port(host_header)
        host = _normal_address(host)
        if not host or port == 0 or is_wildcard(host):
            return False
        if host in self.names_any_port or (port is not None and (host, port) in self.names_with_port):
            return True
        if port is not None and port != self.port:
            return False
        if host in self.names:
            return True
        return bool(local_address) and _is_address(host) and host == _normal_address(local_address)

    def origin_allowed(self, origin: str | None) -> bool:
        """No Origin (not a browser's cross-site request) or a listed one."""
        return origin is None or origin.strip().lower().rstrip("/") in self.origins

    def cors_headers(self, origin: str | None) -> dict[str, str]:
        """What a response to a listed origin carries; nothing for others."""
        if origin is None or not self.origins or not self.origin_allowed(origin):
            return {}
        return {"Access-Control-Allow-Origin": origin.strip(), "Vary": "Origin"}

    def preflight_headers(self, origin: str, requested_headers: str | None) -> dict[str, str]:
        """The 204 answer to a listed origin's preflight."""
        headers = self.cors_headers(origin)
        headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        asked = _header_list(requested_headers)
        headers["Access-Control-Allow-Headers"] = asked or "Authorization, Content-Type"
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        return headers

    @property
    def needs_key(self) -> bool:
        return bool(self.api_key)

    def key_ok(self, authorization: str | None) -> bool:
        """Authorization: Bearer <key>, compared in constant time; True when no key is set."""
        if not self.api_key:
            return True
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8", "replace"), self.api_key.encode("utf-8"))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _header_list(value: str | None) -> str:
    """The headers a preflight asks for, kept only if they are plain header names."""
    if not value:
        return ""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not all(n.replace("-", "").replace("_", "").isalnum() and n.isascii() for n in names):
        return ""
    return ", ".join(names)
