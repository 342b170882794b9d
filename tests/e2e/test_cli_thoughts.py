"""`python -m app export --with-thoughts` (issue 12, "Reasoning models"): reasoning models' thoughts
are left out of exports unless asked for; a JSON export with them imports them again."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.conversations.conversation import Conversation, GenerationRecord, Message
from app.core.conversations.store import ConversationStore, default_store_path
from tests.e2e.conftest import run_cli
from tests.fixtures.golden import T0

CONVERSATION_ID = "7h0u9h7000000000000000000000000a"
THOUGHT = "The user asks for a sum. Two and two make four."


def reasoned() -> Conversation:
    answer = Message("assistant", "Four.", id="a1", parent_id="q1", created=T0 + 1, thought=THOUGHT,
                     generation=GenerationRecord(completion_tokens=20, stop_reason="eos", thought_s=7.0))
    return Conversation(title="Sums", id=CONVERSATION_ID, created=T0, updated=T0 + 1,
                        messages=[Message("user", "What is 2 + 2?", id="q1", created=T0), answer])


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("llamadesk-cli-home")
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    store = ConversationStore(default_store_path())
    try:
        store.insert_conversations([reasoned()])
    finally:
        store.close()
    return home


@pytest.mark.parametrize("fmt", ["md", "txt", "html"])
def test_export_leaves_thoughts_out_unless_asked(home: Path, tmp_path: Path, fmt: str) -> None:
    plain, full = tmp_path / f"plain.{fmt}", tmp_path / f"full.{fmt}"
    result = run_cli(home, "export", "--conversation", CONVERSATION_ID, "--format", fmt, "--out", str(plain))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{plain}\n", "")
    assert "Four." in plain.read_text(encoding="utf-8")
    assert "Two and two" not in plain.read_text(encoding="utf-8")
    result = run_cli(home, "export", "--conversation", CONVERSATION_ID, "--format", fmt, "--out", str(full),
                     "--with-thoughts")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{full}\n", "")
    assert "Thought for 7 s" in full.read_text(encoding="utf-8")
    assert "Two and two" in full.read_text(encoding="utf-8")


def test_a_json_export_with_thoughts_imports_them_again(home: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "all.json"
    result = run_cli(home, "export", "--all", "--format", "json", "--out", str(out), "--with-thoughts")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{out}\n", "")
    other = tmp_path / "other-home"
    monkeypatch.setenv("LLAMADESK_HOME", str(other))
    result = run_cli(other, "import", str(out))
    assert (result.returncode, result.stderr) == (0, "")
    store = ConversationStore(default_store_path())
    try:
        assert store.load(CONVERSATION_ID) == reasoned()
    finally:
        store.close()
