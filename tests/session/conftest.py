"""Session tests: Qt objects without widgets, on the qasync loop, with a scripted backend."""

from __future__ import annotations

import contextlib
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


@pytest.fixture(autouse=True)
def _undo_offers_end_with_their_test(monkeypatch):
    """A delete's undo offer runs 8 s: its purge must not fire into a later test, after this
    test's store is closed."""
    from app.session.conversations import Conversations

    made: list[Conversations] = []
    original = Conversations.__init__

    def remember(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(Conversations, "__init__", remember)
    yield
    for conversations in made:
        with contextlib.suppress(RuntimeError):  # a parent (a workspace) deleted it already
            conversations._undo_timer.stop()
