"""The server's guard: Host allow-list (DNS rebinding), Origin (CORS) and the API key."""

from __future__ import annotations

import socket

from app.core.server.guard import Guard
from app.core.server.settings import ServerSettings


def guard(key: str = "", **settings) -> Guard:
    return Guard.for_server(ServerSettings(**settings), 7433, key)


def test_loopback_names_with_or_without_our_port() -> None:
    g = guard()
    for host in ("localhost", "localhost:7433", "127.0.0.1", "127.0.0.1:7433", "[::1]:7433", "[::1]", "::1",
                 "LOCALHOST:7433", "localhost.:7433"):
        assert g.host_allowed(host), host


def test_a_rebound_name_or_another_port_is_refused() -> None:
    g = guard()
    for host in ("evil.example:7433", "evil.example", "127.0.0.1.evil.example:7433", "localhost:8080",
                 "127.0.0.1:80", "localhost:", "localhost:abc", "", None, "local host", "0.0.0.0:7433",
                 "localhost\r\nX: y", "[::1"):
        assert not g.host_allowed(host), host


def test_binding_every_address_is_never_a_wildcard() -> None:
    g = guard(host="0.0.0.0")
    assert not g.host_allowed("evil.example:7433")
    assert not g.host_allowed("0.0.0.0:7433")
    assert not g.host_allowed("[::]:7433")
    assert not g.host_allowed("192.168.1.20:7433")  # an address, but not the one this connection reached
    assert g.host_allowed("localhost:7433")
    assert g.host_allowed(socket.gethostname().lower() + ":7433")
    # An IP address in Host that is the address the connection reached cannot be a re-pointed name.
    assert g.host_allowed("192.168.1.20:7433", local_address="192.168.1.20")
    assert not g.host_allowed("192.168.1.20:9999", local_address="192.168.1.20")
    assert not g.host_allowed("evil.example:7433", local_address="192.168.1.20")


def test_a_specific_bound_address_and_listed_hosts() -> None:
    g = guard(host="10.1.2.3", allowed_hosts=("my-box.lan", "proxy.lan:443"))
    assert g.host_allowed("10.1.2.3:7433") and g.host_allowed("10.1.2.3")
    assert not g.host_allowed("10.1.2.4:7433")
    assert g.host_allowed("my-box.lan:7433") and g.host_allowed("my-box.lan:8443")
    assert g.host_allowed("MY-BOX.LAN")
    assert g.host_allowed("proxy.lan:443") and not g.host_allowed("proxy.lan:444")
    assert not g.host_allowed("other.lan:7433")


def test_origins_none_by_default_listed_ones_get_cors() -> None:
    assert guard().origin_allowed(None)
    assert not guard().origin_allowed("http://localhost:3000")
    assert not guard().origin_allowed("null")
    assert guard().cors_headers("http://localhost:3000") == {}
    g = guard(allowed_origins=("http://localhost:3000",))
    assert g.origin_allowed("http://localhost:3000") and g.origin_allowed("HTTP://LOCALHOST:3000/")
    assert not g.origin_allowed("http://localhost:3001") and not g.origin_allowed("https://localhost:3000")
    assert g.cors_headers("http://localhost:3000") == {"Access-Control-Allow-Origin": "http://localhost:3000",
                                                       "Vary": "Origin"}
    assert g.cors_headers("http://evil.example") == {}
    preflight = g.preflight_headers("http://localhost:3000", "authorization, content-type")
    assert preflight["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert preflight["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert g.preflight_headers("http://localhost:3000", "x\r\ny")["Access-Control-Allow-Headers"] == \
        "Authorization, Content-Type"


def test_the_key() -> None:
    assert guard().key_ok(None) and not guard().needs_key
    g = guard(key="ld-secret")
    assert g.needs_key
    assert g.key_ok("Bearer ld-secret") and g.key_ok("bearer  ld-secret ")
    for wrong in (None, "", "Bearer", "Bearer ld-secre", "Bearer ld-secretX", "Basic ld-secret", "ld-secret",
                  "Bearer ld-sécret"):
        assert not g.key_ok(wrong), wrong
