"""A reasoning model's thought as the chat view draws it (issue 12, "Reasoning models"): open and
growing while it streams, then folded into "▸ Thought for N s", which opens to the text."""

from __future__ import annotations

from PySide6.QtGui import QColor, QTextCursor
from PySide6.QtWidgets import QTextBrowser

from app.core.conversations.conversation import GenerationRecord, Message
from app.ui.chat import thought_block
from app.ui.shell.theme import DARK, LIGHT

THOUGHT = "The user asks for a sum.\nTwo and two make four."


def browser(qtbot) -> QTextBrowser:
    view = QTextBrowser()
    qtbot.addWidget(view)
    return view


def end(view: QTextBrowser) -> QTextCursor:
    cursor = QTextCursor(view.document())
    cursor.movePosition(QTextCursor.MoveOperation.End)
    return cursor


def fragments(view: QTextBrowser) -> list[tuple[str, object]]:
    """(text, char format) of every run of text, in order."""
    found, block = [], view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            found.append((it.fragment().text(), it.fragment().charFormat()))
            it += 1
        block = block.next()
    return found


def answer(thought: str = THOUGHT, seconds: float = 12.4) -> Message:
    return Message("assistant", "Four.", id="m1", thought=thought,
                   generation=GenerationRecord(stop_reason="eos", thought_s=seconds))


def test_a_streaming_thought_is_open_under_thinking_and_muted(qtbot) -> None:
    view = browser(qtbot)
    cursor = end(view)
    thought_block.begin_streaming(cursor, LIGHT)
    thought_block.append_streaming(cursor, "The user asks", LIGHT)
    thought_block.append_streaming(cursor, " for a sum.", LIGHT)
    thought_block.end_streaming(cursor)
    cursor.insertText("Four.")
    assert view.toPlainText() == "Thinking…\nThe user asks for a sum.\nFour."
    texts = dict(fragments(view))
    thought = texts["The user asks for a sum."]
    assert thought.fontItalic() and thought.foreground().color() == QColor(LIGHT.muted)
    assert not texts["Four."].fontItalic(), "the answer is plain text again"
    assert view.document().findBlock(len("Thinking…\n")).blockFormat().leftMargin() > 0


def test_a_finished_thought_is_folded_into_a_link(qtbot) -> None:
    view = browser(qtbot)
    assert thought_block.insert(end(view), answer(), DARK)
    assert view.toPlainText() == "▸ Thought for 12 s\n"
    [(text, link)] = [(t, f) for t, f in fragments(view) if f.isAnchor()]
    assert text == "▸ Thought for 12 s" and link.anchorHref() == "action:thought:m1"
    assert link.foreground().color() == QColor(DARK.link)
    assert thought_block.message_of(link.anchorHref()) == "m1"
    assert thought_block.message_of("action:copy:m1") is None


def test_an_opened_thought_shows_its_text_under_the_link(qtbot) -> None:
    view = browser(qtbot)
    cursor = end(view)
    thought_block.insert(cursor, answer(), LIGHT, expanded=True)
    cursor.insertText("Four.")
    assert view.toPlainText() == f"▾ Thought for 12 s\n{THOUGHT}\nFour."
    formats = dict(fragments(view))
    assert formats["Two and two make four."].fontItalic()
    assert not formats["Four."].fontItalic() and not formats["Four."].isAnchor()


def test_a_message_without_a_thought_gets_no_block(qtbot) -> None:
    view = browser(qtbot)
    assert not thought_block.insert(end(view), answer(thought=""), LIGHT)
    assert view.document().isEmpty()
    unknown_time = Message("assistant", "Hi", thought="Imported without its time.")
    thought_block.insert(end(view), unknown_time, LIGHT)
    assert view.toPlainText() == "▸ Thought\n"


def test_the_growing_thought_opens_once_and_closes_before_the_answer(qtbot) -> None:
    view = browser(qtbot)
    cursor, growing = end(view), thought_block.GrowingThought()
    growing.close(cursor)  # an answer without a thought: nothing to close
    growing.append(cursor, "I add", LIGHT)
    growing.append(cursor, " two and two.", LIGHT)
    growing.close(cursor)
    cursor.insertText("Four.")
    assert view.toPlainText() == "Thinking…\nI add two and two.\nFour."


def test_a_continued_answer_shows_its_thought_folded_or_still_growing(qtbot) -> None:
    view = browser(qtbot)
    growing = thought_block.GrowingThought()
    thought_block.insert_continued(end(view), answer(), LIGHT, False, growing)
    assert view.toPlainText() == "▸ Thought for 12 s\n" and not growing.open
    view.clear()
    stopped_mid_thought = Message("assistant", "", thought="I add")
    thought_block.insert_continued(end(view), stopped_mid_thought, LIGHT, False, growing)
    growing.append(end(view), " and check.", LIGHT)
    assert view.toPlainText() == "Thinking…\nI add and check." and growing.open
