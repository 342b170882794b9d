"""Core tests' shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.conversations.store import ConversationStore


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    """The real SQLite store, in the test's folder (a module may define its own `store`)."""
    s = ConversationStore(tmp_path / "conversations.sqlite3")
    yield s
    s.close()
