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
    thinking: bool  # the block is still open: the model is thinking


def split_reasoning(text: str, *, opened: bool = False, streaming: bool = False) -> Reasoned:
    """Split a model's output into its thought and its answer.

    ``streaming`` says more text will follow: a text that could still become "<think>" ("<thi") is
    then held back rather than shown as an answer that vanishes a token later.
    """
    body = text.lstrip()
    if body.startswith(OPEN):
        body = body[len(OPEN):]
    elif not opened:
        if streaming and body and OPEN.startswith(body):
            return Reasoned("", "", True)
        return Reasoned("", text, False)
    end = body.find(CLOSE)
    if end < 0:
        if not streaming and not opened:
            return Reasoned(body.strip(), "", False)  # the model stopped mid-thought
        return Reasoned(_without_partial_close(body).strip() if streaming else body.strip(), "",
                        streaming)
    return Reasoned(body[:end].strip(), body[end + len(CLOSE):].lstrip(), False)


def answer_only(text: str) -> str:
    """The text without its thought: what titles, history sent to the model and plain exports use."""
    return split_reasoning(text).answer


def _without_partial_close(body: str) -> str:
    """Drop the beginning of a closing tag still arriving ("…so the answer is 4.</thi")."""
    for size in range(len(CLOSE) - 1, 0, -1):
        if body.endswith(CLOSE[:size]):
            return body[:-size]
    return body
