"""Session tests: Qt objects without widgets, on the qasync loop, with a scripted backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.conversations.store import ConversationStore
from app.session.chat_session import ChatSession
from app.session.sampling import SamplingSettings
from tests.fakes.fake_backend import FakeBackend


@pytest.fixture(autouse=True)
def _flows(flows):
    return flows


@pytest.fixture
def store(tmp_path: Path):
    """The real SQLite store, in the test's folder."""
    store = ConversationStore(tmp_path / "chats.db")
    yield store
    store.close()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def chat(qtbot, store, backend) -> ChatSession:
    """A chat session over the scripted backend and the real store, as a window would have it."""
    return ChatSession(backend, store, SamplingSettings())
