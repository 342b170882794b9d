"""The line under an answer: how it was made (model, tokens, speed, first token), or why it ended."""

from __future__ import annotations

from pathlib import Path

from app.core.common.text import plural as core_plural
from app.core.conversations.conversation import Message


def message_footer(message: Message) -> str:
    """How the answer was made, one fact per part. A value and its unit are joined by no-break
    spaces (and the "/" of tok/s by word joiners), so a narrow view wraps between facts only."""
    parts = []
    record = message.generation
    if record is not None:
        if record.model_file:
            parts.append(Path(record.model_file).stem)
        if record.completion_tokens:
            parts.append(_together(plural(record.completion_tokens, "token")))
            parts.append(_together(f"{record.tokens_per_s:.1f} tok/s"))
            parts.append(_together(f"first token {record.ttft_s:.2f} s"))
        if record.dropped_messages:
            parts.append(f"{plural(record.dropped_messages, 'earlier message')} not sent (context full)")
    if message.incomplete:
        parts.append("stopped" if record and record.stop_reason == "user" else "incomplete")
    return " · ".join(parts)


def plural(count: int, noun: str) -> str:
    """ "1 token", "2 tokens": a count and its noun, joined by a no-break space."""
    return core_plural(count, noun).replace(" ", "\u00a0", 1)


def _together(text: str) -> str:
    return text.replace(" ", "\u00a0").replace("/", "\u2060/\u2060")
