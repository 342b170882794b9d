"""Reasoning models' thoughts, told apart from their answers.

Models such as DeepSeek-R1, Qwen3 and QwQ write their reasoning inside ``<think>…</think>`` before the
answer. The chat shows it as a folded "Thought for N s" block, titles and (by choice) exports leave it
out, and it is not sent back to the model with later questions (those models' own chat templates drop
it too). Some templates open the block in the prompt itself, so the output starts inside a thought and
only the closing tag arrives: ``opened=True`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN = "<think>"
CLOSE = "</think>"


@dataclass(frozen=True)
class Reasoned:
    thought: str  # the text inside the block, trimmed; "" when there is none
    answer: str  # what follows the block (all of the text when there is no block)


def split_reasoning(text: str, *, opened: bool = False) -> Reasoned:
    """A finished output's thought and answer: the streaming splitter's rules, on the whole text."""
    splitter = ReasoningSplitter(opened=opened)
    pieces = splitter.feed(text) + splitter.finish()
    return Reasoned("".join(t for kind, t in pieces if kind == THOUGHT).strip(),
                    "".join(t for kind, t in pieces if kind == ANSWER))


def answer_only(text: str) -> str:
    """The text without its thought: what a title request and a proposed title use."""
    return split_reasoning(text).answer


THOUGHT, ANSWER = "thought", "answer"
_START, _OPENING, _THINKING, _CLOSED, _ANSWERING = range(5)


class ReasoningSplitter:
    """Tells a streaming answer's thought from its answer, delta by delta.

    A tag can arrive split over deltas ("<thi", "nk>"), so the end of what came so far is held back
    while it could still become one. Only a ``<think>`` at the very start of the output (after
    whitespace) opens a thought: one later in the text is just text. The thought is trimmed, as
    `split_reasoning` trims it; so is the whitespace between the thought and the answer.
    """

    def __init__(self, *, opened: bool = False, answering: bool = False) -> None:
        """opened: the prompt opened the thought (or a thought stopped midway is continued);
        answering: the answer is past any thought already (an answer being continued)."""
        self._state = _ANSWERING if answering else _OPENING if opened else _START
        self._held = ""

    @property
    def thinking(self) -> bool:
        """Inside the thought (or still able to begin one): no answer text has come yet."""
        return self._state in (_START, _OPENING, _THINKING)

    def feed(self, delta: str) -> list[tuple[str, str]]:
        """The pieces of `delta` that can be told now: (THOUGHT or ANSWER, text), in order."""
        self._held += delta
        pieces: list[tuple[str, str]] = []
        while self._step(pieces):
            pass
        return pieces

    def finish(self) -> list[tuple[str, str]]:
        """What was held back, once the stream has ended ("<thi" was the model's text after all)."""
        held, self._held = self._held, ""
        if self._state == _START and held:
            return [(ANSWER, held)]
        if self._state == _THINKING and held.rstrip():
            return [(THOUGHT, held.rstrip())]
        return []

    def _step(self, pieces: list[tuple[str, str]]) -> bool:
        """Take what can be told from the held text; True when the state changed (look again)."""
        held = self._held
        if self._state == _START:
            body = held.lstrip()
            if body.startswith(OPEN):
                self._held, self._state = body[len(OPEN):], _OPENING
                return True
            if OPEN.startswith(body):  # nothing yet, or a tag still arriving
                return False
            self._state = _ANSWERING
            return True
        if self._state in (_OPENING, _CLOSED):  # whitespace after a tag is not shown
            body = held.lstrip()
            if self._state == _OPENING and OPEN.startswith(body) and body:
                return False  # a thought opened by the prompt may still repeat the tag
            self._held = body.removeprefix(OPEN) if self._state == _OPENING else body
            if not self._held:
                return False
            self._state = _THINKING if self._state == _OPENING else _ANSWERING
            return True
        if self._state == _THINKING:
            end = held.find(CLOSE)
            if end >= 0:
                if thought := held[:end].rstrip():
                    pieces.append((THOUGHT, thought))
                self._held, self._state = held[end + len(CLOSE):], _CLOSED
                return True
            keep = _held_back(held)
            if len(held) > keep:
                pieces.append((THOUGHT, held[:len(held) - keep]))
            self._held = held[len(held) - keep:]
            return False
        if held:
            pieces.append((ANSWER, held))
        self._held = ""
        return False


def _held_back(thought: str) -> int:
    """How much of the end of a growing thought to hold back: a closing tag that may be arriving,
    and the whitespace before it (trimmed if the thought ends there)."""
    partial = next((size for size in range(len(CLOSE) - 1, 0, -1) if thought.endswith(CLOSE[:size])), 0)
    rest = thought[:len(thought) - partial]
    return partial + len(rest) - len(rest.rstrip())


def thought_label(seconds: float) -> str:
    """What a folded thought says of itself: "Thought for 12 s" ("Thought" when the time is unknown)."""
    if seconds <= 0:
        return "Thought"
    if seconds < 1:
        return "Thought for less than a second"
    whole = round(seconds)
    if whole < 60:
        return f"Thought for {whole} s"
    return f"Thought for {whole // 60} min {whole % 60} s" if whole % 60 else f"Thought for {whole // 60} min"
