"""Issue 12, item 11: "Insert a saved prompt…" inserts at the cursor, and Ctrl+Z takes it out again."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from app.core.chat.system_prompts import SystemPromptStore
from app.ui.chat.system_prompt_panel import SystemPromptPanel


def test_a_saved_prompt_goes_in_at_the_cursor_and_can_be_undone(qtbot, tmp_path: Path) -> None:
    store = SystemPromptStore(tmp_path / "prompts.json")
    store.save("French", "Always answer in French.")
    panel = SystemPromptPanel(store)
    qtbot.addWidget(panel)
    panel.show()
    committed: list[str] = []
    panel.changed.connect(committed.append)
    qtbot.keyClicks(panel.editor, "You are a tutor.")
    qtbot.keyClick(panel.editor, Qt.Key.Key_Return)
    qtbot.keyClicks(panel.editor, "Be brief.")
    cursor = panel.editor.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.Start)
    cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)  # after "You are a tutor."
    panel.editor.setTextCursor(cursor)

    panel.saved.activated.emit(panel.saved.findData("French"))
    assert panel.editor.toPlainText() == "You are a tutor.\nAlways answer in French.\nBe brief."
    assert committed[-1] == "You are a tutor.\nAlways answer in French.\nBe brief."
    assert "Inserted “French”" in panel.hint.text()

    qtbot.keyClick(panel.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.editor.toPlainText() == "You are a tutor.\nBe brief."  # what was typed, whole
    panel.commit()
    assert committed[-1] == "You are a tutor.\nBe brief."


def test_into_an_empty_editor_the_prompt_goes_alone(qtbot, tmp_path: Path) -> None:
    store = SystemPromptStore(tmp_path / "prompts.json")
    panel = SystemPromptPanel(store)
    qtbot.addWidget(panel)
    name = panel.saved.itemData(1)
    panel.saved.activated.emit(1)
    assert panel.prompt() == next(p.text for p in store.all() if p.name == name)
