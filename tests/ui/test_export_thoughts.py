"""File ▸ Export asks whether reasoning models' thoughts go with their answers (issue 12, "Reasoning
models"): left out unless "Include the model's reasoning" is ticked."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QFileDialog, QWidget

from app.core.conversations.conversation import Conversation, GenerationRecord
from app.core.conversations.store import ConversationStore
from app.session.conversations import Conversations
from app.ui.conversations import transcript_dialogs
from app.ui.conversations.transcript_dialogs import ExportOptions

THOUGHT = "The user asks for a sum. Two and two make four."


@pytest.fixture
def conversations(qtbot, tmp_path: Path):
    store = ConversationStore(tmp_path / "conversations.sqlite3")
    chat = Conversation(title="Sums")
    chat.append("user", "What is 2 + 2?")
    answer = chat.append("assistant", "Four.")
    answer.thought = THOUGHT
    answer.generation = GenerationRecord(stop_reason="eos", thought_s=3.0)
    store.insert_conversations([chat])
    yield Conversations(store), chat.id
    store.close()


def export_through_the_dialog(qtbot, monkeypatch, conversations: Conversations, chat_id: str, out: Path,
                              tick: bool) -> str:
    """Choose Markdown, tick the box (or not), save to `out`; the exported text."""
    def accept(options: ExportOptions) -> QDialog.DialogCode:
        assert not options.thoughts.isChecked(), "left out unless chosen"
        options.thoughts.setChecked(tick)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ExportOptions, "exec", accept)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_args: (str(out), "Markdown (*.md)"))
    parent = QWidget()
    qtbot.addWidget(parent)
    with qtbot.waitSignal(conversations.exported, timeout=10_000):
        transcript_dialogs.export_dialog(parent, conversations, chat_id)
    return out.read_text(encoding="utf-8")


def test_the_export_dialog_offers_the_choice_unticked(qtbot) -> None:
    options = ExportOptions(None, has_current=True)
    qtbot.addWidget(options)
    assert options.thoughts.text() == "Include the model's reasoning"
    assert not options.with_thoughts()
    options.thoughts.setChecked(True)
    assert options.with_thoughts()


def test_thoughts_are_exported_only_when_ticked(qtbot, monkeypatch, conversations, tmp_path: Path) -> None:
    session, chat_id = conversations
    plain = export_through_the_dialog(qtbot, monkeypatch, session, chat_id, tmp_path / "plain.md", False)
    assert "Four." in plain and "Two and two" not in plain
    full = export_through_the_dialog(qtbot, monkeypatch, session, chat_id, tmp_path / "full.md", True)
    assert "Thought for 3 s" in full and "Two and two make four." in full
