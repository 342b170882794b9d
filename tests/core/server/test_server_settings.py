"""server.json: checked values, a round trip, a damaged file set aside; the key's form."""

from __future__ import annotations

import json

import pytest

from app import paths
from app.core.common import settings_file
from app.core.server.settings import (
    DEFAULT_PORT,
    FILE_NAME,
    ServerSettings,
    generate_key,
    load_settings,
    save_settings,
)


def test_safe_defaults() -> None:
    settings = ServerSettings()
    assert (settings.host, settings.port, settings.on_network) == ("127.0.0.1", DEFAULT_PORT, False)
    assert settings.allowed_origins == () and settings.allowed_hosts == ()
    assert DEFAULT_PORT not in (1234, 1337, 3928, 4891, 11434, 8080)
    assert load_settings() == settings  # no file yet


def test_on_network() -> None:
    assert not ServerSettings(host="localhost").on_network
    assert not ServerSettings(host="::1").on_network
    assert not ServerSettings(host="127.0.0.2").on_network
    assert ServerSettings(host="0.0.0.0").on_network
    assert ServerSettings(host="[::]").on_network and ServerSettings(host="[::]").host == "::"
    assert ServerSettings(host="192.168.1.5").on_network


def test_round_trip() -> None:
    settings = ServerSettings(host="0.0.0.0", port=8123, start_with_app=True,
                              allowed_origins=("http://localhost:3000", "https://app.example"),
                              allowed_hosts=("my-box.lan", "proxy.lan:443"), queue_limit=5,
                              body_limit_bytes=65536)
    save_settings(settings)
    path = paths.config_dir() / FILE_NAME
    assert json.loads(path.read_text())["allowed_hosts"] == ["my-box.lan", "proxy.lan:443"]
    assert load_settings() == settings
    assert load_settings(path) == settings


def test_values_are_normalised_and_bad_ones_refused_in_plain_words() -> None:
    settings = ServerSettings(allowed_origins=("HTTP://LocalHost:3000/",), allowed_hosts=("My-Box.LAN.",))
    assert settings.allowed_origins == ("http://localhost:3000",)
    assert settings.allowed_hosts == ("my-box.lan",)
    bad = [{"host": "my computer"}, {"host": 5}, {"port": 70000}, {"port": -1}, {"port": True},
           {"queue_limit": 0}, {"body_limit_bytes": 10}, {"start_with_app": "yes"},
           {"allowed_origins": ("*",)}, {"allowed_origins": ("null",)},
           {"allowed_origins": ("localhost:3000",)},
           {"allowed_origins": ("http://a.example/path",)}, {"allowed_origins": "http://a.example"},
           {"allowed_hosts": ("*.example",)}, {"allowed_hosts": ("bad host",)}, {"allowed_hosts": ("a:0",)}]
    for fields in bad:
        with pytest.raises(ValueError) as caught:
            ServerSettings(**fields)
        assert str(caught.value).endswith("."), fields


def test_a_damaged_file_is_set_aside_with_a_notice() -> None:
    path = paths.config_dir() / FILE_NAME
    path.write_text(json.dumps({"port": "seven", "host": "0.0.0.0"}))
    assert load_settings() == ServerSettings()
    assert not path.exists()
    assert (path.parent / f"{FILE_NAME}.bad").exists()
    notices = settings_file.take_notices()
    assert len(notices) == 1 and "API server settings" in notices[0]
    path.write_text("{not json")
    save_settings(ServerSettings(port=9000))  # never over the damaged file: it is set aside first
    assert (path.parent / f"{FILE_NAME}.1.bad").read_text() == "{not json"
    assert load_settings() == ServerSettings(port=9000)


def test_generated_keys() -> None:
    first, second = generate_key(), generate_key()
    assert first.startswith("ld-") and len(first) == 46 and first != second
    assert all("!" <= c <= "~" for c in first)
