"""ConnectionsSession: connections and their keys saved, renamed and removed together, and a test
against llama.cpp's real llama-server as a flow on the qasync loop."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from app.core.remote.connections import Connection
from app.core.remote.keys import FileKeyStore
from app.session.connections import ConnectionsSession, found
from tests.fixtures.llama_server import API_KEY, LlamaServer

GPU = Connection("gpu", "http://gpu-box:8080/v1")


@pytest.fixture
def session(qtbot) -> ConnectionsSession:
    return ConnectionsSession()


def test_a_saved_connection_keeps_its_key_apart(qtbot, session: ConnectionsSession) -> None:
    assert isinstance(session.keys, FileKeyStore)  # under LLAMADESK_HOME: never the user's keyring
    with qtbot.waitSignal(session.changed):
        assert session.save(GPU, API_KEY)
    assert session.connections() == [GPU] and session.key_for("gpu") == API_KEY
    assert API_KEY not in session.file.path.read_text()


def test_editing_keeps_renames_or_clears_the_key(qtbot, session: ConnectionsSession) -> None:
    session.save(GPU, API_KEY)
    session.save(Connection("gpu", "http://gpu-box:9090/v1"), None, replacing="gpu")  # None: keep it
    assert session.key_for("gpu") == API_KEY
    session.save(Connection("big gpu", "http://gpu-box:9090/v1"), None, replacing="gpu")
    assert [c.name for c in session.connections()] == ["big gpu"]
    assert (session.key_for("big gpu"), session.key_for("gpu")) == (API_KEY, "")
    session.save(Connection("big gpu", "http://gpu-box:9090/v1"), "", replacing="big gpu")  # "": none
    assert session.key_for("big gpu") == ""


def test_a_save_that_cannot_be_done_says_why(qtbot, session: ConnectionsSession) -> None:
    session.save(GPU, "")
    with qtbot.waitSignal(session.error) as said, qtbot.assertNotEmitted(session.changed):
        assert not session.save(Connection("GPU", "http://other/v1"), API_KEY)
    assert "already exists" in said.args[0]
    with qtbot.waitSignal(session.error) as said:
        assert not session.save(Connection("x", "http://other/v1"), "two words")
    assert "without spaces" in said.args[0] and [c.name for c in session.connections()] == ["gpu"]


def test_removing_forgets_the_key_too(qtbot, session: ConnectionsSession) -> None:
    session.save(GPU, API_KEY)
    with qtbot.waitSignal(session.changed):
        assert session.remove("gpu")
    assert session.connections() == [] and session.key_for("gpu") == ""


def test_testing_finds_the_servers_models(qtbot, session: ConnectionsSession,
                                          llama_server: LlamaServer) -> None:
    connection = Connection("local", llama_server.base_url)
    with qtbot.waitSignal(session.tested, timeout=60_000) as tested:
        session.test(connection, API_KEY)
    assert tested.args == ["local", True, f"Found 1 model: {llama_server.model_id}"]


def test_a_wrong_key_is_named_as_the_failure(qtbot, session: ConnectionsSession,
                                             llama_server: LlamaServer) -> None:
    with qtbot.waitSignal(session.tested, timeout=60_000) as tested:
        session.test(Connection("local", llama_server.base_url), "wrong-key-abcdef")
    name, ok, message = tested.args
    assert (name, ok) == ("local", False)
    assert "API key" in message and "wrong-key-abcdef" not in message


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes connections and never answers (the kernel accepts; nobody reads)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_test_in_flight_can_be_cancelled(qtbot, session: ConnectionsSession, silent_server: int) -> None:
    with qtbot.assertNotEmitted(session.tested):
        session.test(Connection("silent", f"http://127.0.0.1:{silent_server}/v1", timeout_s=600), "")
        task = session._test.task
        session.cancel_test()
        qtbot.waitUntil(task.done)
    assert task.cancelled()


def test_the_found_line_names_a_few_models_and_counts_the_rest() -> None:
    assert found(["a"]) == "Found 1 model: a"
    assert found([str(n) for n in range(7)]) == "Found 7 models: 0, 1, 2, 3, 4, …"
    assert found([]) == "Found 0 models: the server lists none."
