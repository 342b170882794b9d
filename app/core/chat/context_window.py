"""What part of a conversation is sent to the model when all of it does not fit its context.

The prompt may use `n_ctx - reserve` tokens: `reserve` stays free for the answer (see
`answer_reserve`). A chat that fits is sent whole. One that does not is handled by the user's
`OverflowPolicy`:

- STOP: nothing is sent; `ContextFullError` tells the user to start a new chat or shorten it
  (the window may offer to switch to another policy).
- DROP_OLDEST: whole turns (a user message and the answers after it) are dropped from the start
  of the chat, as few as needed.
- KEEP_FIRST_LAST: the first turn, which often states the task, is kept with as many of the
  latest turns as fit; the middle is dropped. If the first turn and the last message alone do
  not fit, the first turn goes too, as with DROP_OLDEST.

Whatever the policy, the system prompt and the last message are always sent (when the last is
an assistant message being continued, so is the user message it answers). If those alone do not
fit, every policy raises `ContextFullError`.

Counting tokens means templating and tokenizing the whole chat, so it is done O(log n) times:
dropping more turns never makes a prompt longer, so the fewest turns to drop is found by a
binary search. Plain logic: no Qt, no llama.cpp; the caller passes the token counter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from app.core.common.errors import UserFacingError
from app.core.inference.types import ChatMessages

TokenCounter = Callable[[ChatMessages], int]

DEFAULT_ANSWER_RESERVE = 512  # kept free when the answer's length is unlimited
MIN_ANSWER_RESERVE = 16


class OverflowPolicy(StrEnum):
    STOP = "stop"  # refuse to send; the user must start a new chat or shorten
    DROP_OLDEST = "drop_oldest"  # drop the oldest turns; the system prompt is always kept
    KEEP_FIRST_LAST = "keep_first_last"  # keep the first turn and the latest ones, drop the middle


POLICY_LABELS: dict[OverflowPolicy, str] = {
    OverflowPolicy.STOP: "Stop and tell me",
    OverflowPolicy.DROP_OLDEST: "Drop the oldest turns",
    OverflowPolicy.KEEP_FIRST_LAST: "Keep first and latest",
}


class ContextFullError(UserFacingError):
    """The prompt does not fit. `message_too_long`: not even the system prompt and the last
    message fit, so no policy can help; otherwise another policy would send a shorter chat."""

    def __init__(self, needed: int, n_ctx: int, reserve: int, message_too_long: bool,
                 has_system_prompt: bool = False) -> None:
        holds = f"the context holds {n_ctx:,} (with {reserve:,} kept free for the answer)"
        if message_too_long:
            shorten = "Shorten it, or the system prompt," if has_system_prompt else "Shorten it,"
            text = (f"Your message needs {needed:,} tokens but {holds}. "
                    f"{shorten} or load the model with a longer context.")
        else:
            text = (f"This conversation needs {needed:,} tokens but {holds}. Start a new chat, "
                    "shorten your message, or let older messages be dropped when the context is full.")
        super().__init__(text)
        self.needed = needed
        self.n_ctx = n_ctx
        self.reserve = reserve
        self.message_too_long = message_too_long


@dataclass(frozen=True)
class ContextFit:
    messages: ChatMessages  # what to send (role/content dicts)
    prompt_tokens: int  # tokens of that prompt
    dropped: int  # number of messages left out (0 = everything fits)
    dropped_range: tuple[int, int] | None  # [start, end) in the input list; None if nothing dropped


def answer_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens to keep free for the answer: its maximum length, at most a quarter of the context."""
    wanted = max_tokens if max_tokens > 0 else DEFAULT_ANSWER_RESERVE
    return max(MIN_ANSWER_RESERVE, min(wanted, n_ctx // 4))


def fit_messages(messages: ChatMessages, n_ctx: int, reserve: int, count_tokens: TokenCounter,
                 policy: OverflowPolicy) -> ContextFit:
    """The part of `messages` to send under `policy`; raises ContextFullError when none fits."""
    messages = list(messages)
    budget = n_ctx - reserve
    counts: dict[tuple[int, int], int] = {}

    def tokens(start: int, end: int) -> int:
        """Tokens of the chat without messages[start:end] (memoised: counting is expensive)."""
        if (start, end) not in counts:
            counts[start, end] = count_tokens(messages[:start] + messages[end:])
        return counts[start, end]

    total = tokens(0, 0)
    if total <= budget:
        return ContextFit(messages, total, 0, None)
    head = 1 if messages and messages[0].get("role") == "system" else 0
    tail = _tail_start(messages, head)
    starts = [i for i in range(head, tail) if i == head or messages[i].get("role") == "user"] + [tail]
    minimal = tokens(head, tail) if tail > head else total
    if minimal > budget:
        raise ContextFullError(minimal, n_ctx, reserve, message_too_long=True, has_system_prompt=head == 1)
    if policy is OverflowPolicy.STOP:
        raise ContextFullError(total, n_ctx, reserve, message_too_long=False)
    end = None
    if policy is OverflowPolicy.KEEP_FIRST_LAST and len(starts) > 2:  # a middle to drop
        start = starts[1]  # after the first turn
        end = _fewest(starts[2:], lambda e: tokens(start, e) <= budget)
    if end is None:
        start = head
        end = _fewest(starts[1:], lambda e: tokens(start, e) <= budget)
    assert end is not None  # dropping everything between head and tail fits (checked above)
    kept = messages[:start] + messages[end:]
    return ContextFit(kept, counts[start, end], end - start, (start, end))


def _tail_start(messages: ChatMessages, head: int) -> int:
    """Where the messages that are always sent begin: the last one, and when it is an assistant
    message (an answer being continued), the user message it answers."""
    last = len(messages) - 1
    if last - 1 >= head and messages[last].get("role") == "assistant" \
            and messages[last - 1].get("role") == "user":
        return last - 1
    return max(last, head)


def _fewest(ends: list[int], fits: Callable[[int], bool]) -> int | None:
    """The first of `ends` (ascending: more dropped) for which `fits`, by binary search; None if
    not even the last fits. `fits` must be monotonic: once true, true for every later end."""
    if not ends or not fits(ends[-1]):
        return None
    low, high = 0, len(ends) - 1  # ends[high] fits
    while low < high:
        middle = (low + high) // 2
        if fits(ends[middle]):
            high = middle
        else:
            low = middle + 1
    return ends[high]
