"""Issue 12 items 8, 17, 18 and 20: reading the chat.

A long code line wraps in its block instead of widening the chat; footers wrap between facts, never
inside a value; "↓ Latest" covers no text; Help lists every shortcut the window has; editing a
message puts the cursor at its end and marks the message being edited.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QKeySequence, QTextCursor
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core.conversations.conversation import Conversation, GenerationRecord
from app.ui.chat.chat_view import ChatView
from tests.ui.conftest import open_window, seed_store

LONG_LINE = "numbers = [" + ", ".join(str(i) for i in range(300)) + "]"
NO_SPACES = "x" * 400  # a line with nothing to wrap at: a hash, a base64 blob


def opened(qtbot, conversation: Conversation, width: int = 800, height: int = 600):
    window = open_window(qtbot, width, height)
    seed_store(window, conversation)
    window.chat.open_conversation(conversation.id)
    return window


def anchor_position(view: ChatView, href: str) -> int:
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().anchorHref() == href:
                return fragment.position() + fragment.length()
            it += 1
        block = block.next()
    raise AssertionError(f"no link to {href}")


def test_a_long_code_line_wraps_in_its_block_and_the_chat_does_not_scroll_sideways(qtbot) -> None:
    conversation = Conversation(title="Code", titled_by_user=True)
    conversation.append("user", "Print the numbers")
    answer = conversation.append("assistant", f"Here:\n\n```python\n{LONG_LINE}\nkey = '{NO_SPACES}'\n```\n")
    window = opened(qtbot, conversation)
    view = window.chat_view
    view.document().size()  # the layout is finished
    QApplication.processEvents()
    assert view.horizontalScrollBar().maximum() == 0, "the whole chat scrolls sideways"
    assert view.document().size().width() <= view.viewport().width()
    assert LONG_LINE in view.toPlainText() and NO_SPACES in view.toPlainText()  # wrapped, all there
    cursor = QTextCursor(view.document())
    cursor.setPosition(anchor_position(view, f"action:copy-code:{answer.id}:0"))  # the end of "Copy"
    assert 0 < view.cursorRect(cursor).right() <= view.viewport().width(), "the Copy link is out of view"


def test_a_footer_wraps_between_facts_never_inside_a_value(qtbot) -> None:
    conversation = Conversation(title="Footer", titled_by_user=True)
    conversation.append("user", "Hi")
    answer = conversation.append("assistant", "Hello.")
    answer.generation = GenerationRecord(model_file="Qwen2.5-0.5B-Instruct-Q4_K_M.gguf",
                                         completion_tokens=120, tokens_per_s=46.8, ttft_s=2.76,
                                         stop_reason="eos")
    view = ChatView()
    qtbot.addWidget(view)
    view.show_conversation(conversation)
    space = "[ \u00a0]"  # a space or a no-break one: the test finds the values either way
    values = [rf"120{space}tokens", rf"46\.8{space}tok\u2060?/\u2060?s",
              rf"first{space}token{space}2\.76{space}s"]
    block = view.document().find("first").block()
    for width in range(120, 900, 3):
        view.document().setTextWidth(width)
        layout = block.layout()
        for value in values:
            found = re.search(value, block.text())
            assert found is not None, value
            first, last = (layout.lineForTextPosition(found.start()).lineNumber(),
                           layout.lineForTextPosition(found.end() - 1).lineNumber())
            assert first == last, f"{found[0]!r} is cut over two lines at {width} px"


def test_jump_to_latest_covers_no_text(qtbot) -> None:
    conversation = Conversation(title="Long", titled_by_user=True)
    for i in range(30):
        conversation.append("user" if i % 2 == 0 else "assistant", f"Message {i} " + "words " * 60)
    window = opened(qtbot, conversation)
    view, bar = window.chat_view, window.chat_view.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    button = view.jump_button
    assert button.isVisible()
    assert not button.geometry().intersects(view.viewport().geometry()), "the button covers text"
    assert view.rect().contains(button.geometry()), "the button is out of sight"
    button.click()
    assert bar.value() == bar.maximum() and not button.isVisible()
    assert view.viewport().geometry().bottom() >= view.contentsRect().bottom() - 1  # no strip left


def test_help_lists_every_shortcut_the_window_has(qtbot) -> None:
    window = open_window(qtbot)
    help_action = next(a for a in window.findChildren(QAction) if a.iconText() == "Keyboard shortcuts")
    help_action.trigger()
    box = window.findChild(QMessageBox, "shortcutsBox")
    assert box is not None and box.isVisible()
    text = box.text()
    for action in window.findChildren(QAction):
        for keys in action.shortcuts():
            assert keys.toString(QKeySequence.SequenceFormat.NativeText) in text, action.iconText()
    # Ctrl+Q is the Quit action's, where the platform has one for Quit: the loop above checks it
    for keys in ("Ctrl+M", "Ctrl+D", "Ctrl+Z", "Delete", "Enter", "Shift+Enter", "Esc"):
        assert f"<b>{keys}" in text, keys
    box.close()


def test_editing_puts_the_cursor_at_the_end_and_marks_the_message(qtbot) -> None:
    conversation = Conversation(title="Edit", titled_by_user=True)
    question = conversation.append("user", "Fix the spelling of this sentense")
    conversation.append("assistant", "Fixed: sentence.")
    conversation.append("user", "Thanks")
    conversation.append("assistant", "You are welcome.")
    window = opened(qtbot, conversation)
    view, composer = window.chat_view, window.composer
    assert view.editing_marked() is None
    view.anchorClicked.emit(QUrl(f"action:edit:{question.id}"))
    assert composer.toPlainText() == question.text
    assert composer.textCursor().atEnd(), "the cursor is not at the end of the text being edited"
    marked = view.editing_marked()
    assert marked is not None, "the message being edited is not marked"
    shown = view.toPlainText()[marked[0]:marked[1]]
    assert question.text in shown and "Thanks" not in shown and "Fixed" not in shown
    view.set_colors(view._colors)  # drawn again (a theme change): still marked
    assert view.editing_marked() == marked
    window.chat_panel.escape()  # Esc cancels the edit
    assert view.editing_marked() is None and composer.toPlainText() == ""
