"""Saving an answer while it streams, so that a crash or a kill loses at most a moment of it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from app.core.conversations.conversation import Conversation, GenerationRecord, Message

if TYPE_CHECKING:
    from app.core.conversations.store import ConversationStore


class AnswerRecorder:
    """Saves a streaming answer: stored at once as incomplete, checkpointed while it grows.

    A process killed mid-answer leaves the answer as far as the last checkpoint, marked
    incomplete. `interval_s` bounds what a kill can lose.
    """

    def __init__(self, store: ConversationStore, conversation: Conversation, message: Message,
                 interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 resumed: bool = False):
        """resumed: the message is stored already (an answer being continued)."""
        self.store = store
        self.message = message
        self.earlier = message.generation if resumed else None  # how the continued part was made
        self.interval_s = interval_s
        self.clock = clock
        message.incomplete = True
        if resumed:
            store.complete_message(message)  # marked incomplete again until it ends
        else:
            store.add_message(conversation, message)
        self._saved_at = clock()
        self._saved_text = message.text
        self._saved_thought = message.thought

    @property
    def saved_text(self) -> str:
        """The answer as the store holds it (what a failed save leaves)."""
        return self._saved_text

    @property
    def saved_thought(self) -> str:
        """The thought as the store holds it."""
        return self._saved_thought

    def feed(self, text: str, thought: str = "") -> None:
        """More of the answer, and of a reasoning model's thought (saved with it: a kill mid-thought
        loses no more of the thought than of an answer)."""
        self.message.text += text
        self.message.thought += thought
        if self.clock() - self._saved_at >= self.interval_s:
            self._checkpoint()

    def _checkpoint(self) -> None:
        message = self.message
        if (message.text, message.thought) != (self._saved_text, self._saved_thought):
            self.store.checkpoint(message.id, message.text, message.thought)
            self._saved_text, self._saved_thought = message.text, message.thought
        self._saved_at = self.clock()

    def finish(self, generation: GenerationRecord | None, incomplete: bool) -> None:
        """A continued answer's record covers the whole answer, not only the continuation."""
        if self.earlier is not None and generation is not self.earlier:
            generation = self.earlier if generation is None else whole_answer(self.earlier, generation)
        self.message.generation = generation
        self.message.incomplete = incomplete
        self.store.complete_message(self.message)


def whole_answer(earlier: GenerationRecord, more: GenerationRecord) -> GenerationRecord:
    """An answer continued: its tokens add up, its speed is over both parts' decoding time, its
    first token and prompt are the first part's (the continuation's prompt holds the answer so far);
    the time spent thinking and the drafted and accepted tokens add up; how it ended and the model and
    sampling are the continuation's."""
    tokens = earlier.completion_tokens + more.completion_tokens
    seconds = sum(r.completion_tokens / r.tokens_per_s for r in (earlier, more) if r.tokens_per_s > 0)
    return replace(more, prompt_tokens=earlier.prompt_tokens or more.prompt_tokens,
                   completion_tokens=tokens, ttft_s=earlier.ttft_s or more.ttft_s,
                   tokens_per_s=tokens / seconds if seconds > 0 else more.tokens_per_s,
                   thought_s=earlier.thought_s + more.thought_s,
                   drafting=more.drafting or earlier.drafting,
                   drafted_tokens=earlier.drafted_tokens + more.drafted_tokens,
                   accepted_tokens=earlier.accepted_tokens + more.accepted_tokens)
