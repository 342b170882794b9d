"""A conversation and its messages, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.core.engine import GenerationStats
from app.core.sampling import SamplingParams

TITLE_LENGTH = 48


@dataclass
class Message:
    role: str  # "user", "assistant" or "system"
    text: str
    stats: GenerationStats | None = None
    model: str = ""
    incomplete: bool = False  # stopped by the user, cut by an error or by a crash


@dataclass
class Conversation:
    title: str = "New chat"
    system_prompt: str = ""
    messages: list[Message] = field(default_factory=list)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    titled_by_user: bool = False

    def add_user_message(self, text: str) -> Message:
        message = Message("user", text)
        self.messages.append(message)
        if not self.titled_by_user and sum(m.role == "user" for m in self.messages) == 1:
            self.title = title_from(text)
        return message

    def chat_messages(self) -> list[dict[str, str]]:
        """What the model sees: the system prompt, then every message with text."""
        chat = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        chat += [{"role": m.role, "content": m.text} for m in self.messages if m.text]
        return chat


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
