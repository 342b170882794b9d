"""A short title the model proposes for a chat after its first answer (unless the user named it).

The request is a fresh two-message chat, not the conversation itself, so any model with a chat
template can answer it; what comes back is cleaned of what small models add around a title
(quotes, "Title:", Markdown, a thought, a full stop) and refused when nothing usable is left.
"""

from __future__ import annotations

import re

from app.core.chat.reasoning import answer_only
from app.core.chat.sampling import SamplingParams
from app.core.inference.types import ChatMessages

TITLE_MAX_TOKENS = 24
# The answer starts as a quoted title and ends at the closing quote: small models that otherwise
# answer the question again (or write a sentence) then write a title. Low temperature: no surprises.
TITLE_PREFIX = 'Title: "'
TITLE_SAMPLING = SamplingParams(temperature=0.2, top_k=20, top_p=0.9, min_p=0.1, max_tokens=TITLE_MAX_TOKENS,
                                stop=('"', "\n"))
MAX_TITLE_CHARS = 60
_EXCERPT = 600  # characters of the question and of the answer the model reads
_INSTRUCTION = ("Write a short title (at most six words) for the conversation below. "
                "Reply with the title only: no quotes, no explanation.")
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:title|chat title|subject)\s*[:：-]\s*", re.IGNORECASE)
_WRAPPERS = "\"'“”‘’`*_#<>[]()«» "


def title_request(question: str, answer: str) -> ChatMessages:
    """The chat that asks the model for a title of this question and answer."""
    excerpt = (f"User: {' '.join(question.split())[:_EXCERPT]}\n"
               f"Assistant: {' '.join(answer_only(answer).split())[:_EXCERPT]}")
    return [{"role": "user", "content": f"{_INSTRUCTION}\n\n{excerpt}"}]


def clean_title(raw: str) -> str | None:
    """The title in a model's reply, or None when the reply holds none worth showing."""
    text = answer_only(raw).strip()
    line = next((part for part in text.splitlines() if part.strip()), "")
    line = _LABEL.sub("", line).strip(_WRAPPERS)
    line = line.rstrip(".!。").strip(_WRAPPERS)
    line = " ".join(line.split())
    if len(line) < 2 or not any(ch.isalnum() for ch in line):
        return None
    if len(line) > MAX_TITLE_CHARS:
        line = line[: MAX_TITLE_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return line
