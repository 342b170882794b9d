"""connections.json: what a connection may be, how the file keeps them, and a damaged file set aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.common import settings_file
from app.core.remote.connections import (
    FILE_NAME,
    Connection,
    ConnectionsError,
    ConnectionsFile,
    check_url,
    checked,
    parse_header,
    parse_headers,
)


@pytest.fixture
def file(tmp_path: Path) -> ConnectionsFile:
    return ConnectionsFile(tmp_path / FILE_NAME)


@pytest.mark.parametrize(("typed", "stored"), [
    ("  HTTP://GPU-Box:8080/v1/ ", "http://gpu-box:8080/v1"),
    ("https://api.example.org/v1", "https://api.example.org/v1"),
    ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
    ("http://10.0.0.5:11434/", "http://10.0.0.5:11434"),
])
def test_a_base_url_is_stored_normalised(typed: str, stored: str) -> None:
    assert check_url(typed) == stored


@pytest.mark.parametrize(("typed", "why"), [
    ("", "Enter the server's base URL"),
    ("gpu-box:8080/v1", "must start with http:// or https://"),
    ("ftp://gpu-box/v1", "must start with http:// or https://"),
    ("http:///v1", "must start with http://"),
    ("http://gpu-box:99999/v1", "port"),
    ("http://gpu-box:8080/v1?x=1", "query"),
    ("http://gpu box/v1", "spaces"),
])
def test_a_wrong_base_url_is_refused_saying_why(typed: str, why: str) -> None:
    with pytest.raises(ConnectionsError) as refused:
        check_url(typed)
    assert why in refused.value.message


def test_a_password_in_the_url_is_refused_and_not_repeated() -> None:
    with pytest.raises(ConnectionsError) as refused:
        check_url("http://me:s3cret-key@gpu-box:8080/v1")
    assert "API key field" in refused.value.message and "s3cret" not in refused.value.message


def test_host_and_root_name_the_server() -> None:
    connection = Connection("gpu", "http://gpu-box:8080/v1")
    assert (connection.host, connection.root) == ("gpu-box:8080", "http://gpu-box:8080")
    assert Connection("o", "https://ollama.lan/api").root == "https://ollama.lan/api"


def test_headers_are_name_value_lines_and_never_the_authorization() -> None:
    assert parse_headers("X-Team: llm\n\n  Accept-Language :  en \n") == (("X-Team", "llm"),
                                                                      ("Accept-Language", "en"))
    with pytest.raises(ConnectionsError, match="API key field"):
        parse_header("authorization: Bearer sk-123")
    with pytest.raises(ConnectionsError) as refused:  # a key typed in the wrong box is not echoed
        parse_header("Bearer sk-987654")
    assert "colon" in refused.value.message and "sk-987654" not in refused.value.message
    with pytest.raises(ConnectionsError, match="header name"):
        parse_header("X Team: a")


@pytest.mark.parametrize("timeout_s", [0, 0.5, 3601, float("nan"), float("inf")])
def test_a_timeout_out_of_range_is_refused(timeout_s: float) -> None:
    with pytest.raises(ConnectionsError, match="1 to 3600 seconds"):
        checked(Connection("gpu", "http://gpu-box/v1", timeout_s=timeout_s))


def test_connections_are_kept_in_order_and_found_by_name(file: ConnectionsFile) -> None:
    assert file.load() == []
    file.put(Connection("  gpu   box ", "HTTP://GPU-Box:8080/v1/", (("X-Team", "llm"),), 30))
    file.put(Connection("cluster", "http://vllm.lan:8000/v1"))
    assert file.load() == [Connection("gpu box", "http://gpu-box:8080/v1", (("X-Team", "llm"),), 30.0),
                           Connection("cluster", "http://vllm.lan:8000/v1")]
    assert file.get("GPU BOX") == file.load()[0] and file.get("nothing") is None
    # What the file holds: the connections, and nothing that could be a key.
    assert json.loads(file.path.read_text())["connections"][0] == {
        "name": "gpu box", "base_url": "http://gpu-box:8080/v1", "headers": [["X-Team", "llm"]],
        "timeout_s": 30.0}


def test_a_taken_name_is_refused_and_an_edit_may_rename(file: ConnectionsFile) -> None:
    file.put(Connection("gpu", "http://gpu-box:8080/v1"))
    file.put(Connection("cluster", "http://vllm.lan:8000/v1"))
    with pytest.raises(ConnectionsError) as taken:
        file.put(Connection("GPU", "http://other/v1"))
    assert taken.value.kind == ConnectionsError.EXISTS and "already exists" in taken.value.message
    with pytest.raises(ConnectionsError):  # renaming onto another connection's name
        file.put(Connection("cluster", "http://gpu-box:8080/v1"), replacing="gpu")
    file.put(Connection("big gpu", "http://gpu-box:9090/v1"), replacing="gpu")
    assert [(c.name, c.base_url) for c in file.load()] == [("big gpu", "http://gpu-box:9090/v1"),
                                                           ("cluster", "http://vllm.lan:8000/v1")]
    assert file.remove("big gpu") and not file.remove("big gpu")
    assert [c.name for c in file.load()] == ["cluster"]


@pytest.mark.parametrize(("content", "reason"), [
    ("{not json", "invalid JSON"),
    ('{"connections": {"a": 1}}', "not a list"),
    ('{"connections": [{"name": "a", "base_url": "ftp://x"}]}', "the connection “a”: The base URL"),
    ('{"connections": [{"name": "a", "base_url": "http://x"}, {"name": "A", "base_url": "http://y"}]}',
     "same name"),
])
def test_a_damaged_file_is_set_aside_with_a_notice(file: ConnectionsFile, content: str, reason: str) -> None:
    file.path.write_text(content)
    assert file.load() == []
    assert (file.path.parent / f"{FILE_NAME}.bad").read_text() == content
    notices = settings_file.take_notices()
    assert len(notices) == 1 and reason in notices[0] and "connections to remote servers" in notices[0]
    file.put(Connection("gpu", "http://gpu-box/v1"))  # and the next save starts a sound file
    assert [c.name for c in ConnectionsFile(file.path).load()] == ["gpu"]
