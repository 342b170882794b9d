"""Small wording helpers shared by every layer."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """ "1 message", "2 messages" ("1 copy", "2 copies" with many="copies")."""
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"
