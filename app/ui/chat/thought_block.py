"""A reasoning model's thought in the chat view: open and growing while it streams ("Thinking…"),
then folded into one link, "▸ Thought for 12 s", that opens it ("▾ Thought for 12 s" and the text).

The thought is the model's notes, not its answer: muted, italic, indented, never rendered as
Markdown. These helpers only insert into a QTextCursor; the view decides when (see ChatView).
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QTextBlockFormat, QTextCharFormat, QTextCursor

from app.core.chat.reasoning import thought_label
from app.core.conversations.conversation import Message
from app.ui.shell.theme import Colors

ACTION = "thought"  # the view's links are "action:<action>:<message id>"
THINKING = "Thinking…"
FOLDED, OPENED = "▸", "▾"
INDENT_PX = 14


def href(message_id: str) -> str:
    """The link that folds or opens a message's thought."""
    return f"action:{ACTION}:{message_id}"


def message_of(link: str) -> str | None:
    """The message whose thought `link` folds or opens; None for any other link."""
    prefix = f"action:{ACTION}:"
    return link[len(prefix):] if link.startswith(prefix) else None


def thought_format(colors: Colors) -> QTextCharFormat:
    text = QTextCharFormat()
    text.setForeground(QColor(colors.muted))
    text.setFontItalic(True)
    return text


def _indented() -> QTextBlockFormat:
    block = QTextBlockFormat()
    block.setLeftMargin(INDENT_PX)
    return block


def begin_streaming(cursor: QTextCursor, colors: Colors) -> None:
    """The header a streaming thought grows under, and the indented block its text goes into."""
    header = thought_format(colors)
    header.setFontItalic(False)
    cursor.insertText(THINKING, header)
    cursor.insertBlock(_indented(), thought_format(colors))


def append_streaming(cursor: QTextCursor, text: str, colors: Colors) -> None:
    """More of the thought, at the cursor (the end of the growing thought)."""
    cursor.insertText(text, thought_format(colors))


def end_streaming(cursor: QTextCursor) -> None:
    """The thought closed: the answer starts a plain block of its own."""
    cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())


class GrowingThought:
    """The thought of the message being streamed: opened under "Thinking…" by its first piece,
    closed when the answer's first text comes."""

    def __init__(self) -> None:
        self.open = False

    def append(self, cursor: QTextCursor, text: str, colors: Colors) -> None:
        if not text:
            return
        if not self.open:
            self.open = True
            begin_streaming(cursor, colors)
        append_streaming(cursor, text, colors)

    def close(self, cursor: QTextCursor) -> None:
        """Before the answer's text: it starts a plain block of its own."""
        if self.open:
            self.open = False
            end_streaming(cursor)


def insert_continued(cursor: QTextCursor, message: Message, colors: Colors, expanded: bool,
                     growing: GrowingThought) -> None:
    """The thought of an answer being continued: folded if the answer had begun, else open and
    growing (the model thinks on)."""
    if message.text:
        insert(cursor, message, colors, expanded)
    else:
        growing.append(cursor, message.thought, colors)


def insert(cursor: QTextCursor, message: Message, colors: Colors, expanded: bool = False) -> bool:
    """A finished message's thought: folded into its link, or opened under it; then a plain block
    for the answer. False (nothing inserted) when the message has no thought."""
    if not message.thought:
        return False
    seconds = message.generation.thought_s if message.generation else 0.0
    link = QTextCharFormat()
    link.setAnchor(True)
    link.setAnchorHref(href(message.id))
    link.setForeground(QColor(colors.link))
    link.setToolTip("Hide the model's reasoning" if expanded else "Show the model's reasoning")
    cursor.insertText(f"{OPENED if expanded else FOLDED} {thought_label(seconds)}", link)
    if expanded:
        cursor.insertBlock(_indented(), thought_format(colors))
        cursor.insertText(message.thought, thought_format(colors))
    end_streaming(cursor)
    return True
