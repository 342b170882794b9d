"""The band over the message being edited in the composer, so the reader sees which one it is."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor, QTextDocument, QTextFormat
from PySide6.QtWidgets import QTextEdit


def editing_band(document: QTextDocument, start: int | None, starts: Iterable[int],
                 color: str) -> list[QTextEdit.ExtraSelection]:
    """The view's extra selection covering the message that starts at `start` (from its name line to
    the next message), or none when no message is edited."""
    if start is None:
        return []
    after = [p for p in starts if p > start]
    cursor = QTextCursor(document)
    cursor.setPosition(start + 1 if start else 0)  # from its name line
    end = min(after) + 1 if after else document.characterCount() - 1  # +1: the whole last line
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    band = QTextCharFormat()
    band.setBackground(QColor(color))
    band.setProperty(QTextFormat.Property.FullWidthSelection, True)
    mark = QTextEdit.ExtraSelection()
    mark.cursor, mark.format = cursor, band
    return [mark]
