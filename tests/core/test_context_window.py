"""What is sent when a chat overflows the context: pure logic, then on the real embedded model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from app.core.chat.context_window import (
    POLICY_LABELS,
    ContextFit,
    ContextFullError,
    OverflowPolicy,
    answer_reserve,
    fit_messages,
)
from app.core.chat.sampling import SamplingParams
from app.core.inference.local.engine import Engine, GenerationStats, LoadOptions
from app.core.inference.types import ChatMessages

ALL = list(OverflowPolicy)
DROPPING = [OverflowPolicy.DROP_OLDEST, OverflowPolicy.KEEP_FIRST_LAST]


def words(messages: ChatMessages) -> int:
    """A simple, monotonic token counter: words plus 4 per message."""
    return sum(len(m["content"].split()) + 4 for m in messages)


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, messages: ChatMessages) -> int:
        self.calls += 1
        return words(messages)


def chat(turns: int, system: str | None = "be brief", words_per_message: int = 6,
         last: str = "and now?") -> ChatMessages:
    """system prompt, `turns` user/assistant pairs (u0/a0 ...), then the new user message."""
    out = [{"role": "system", "content": system}] if system else []
    for i in range(turns):
        out.append({"role": "user", "content": f"u{i} " + "w " * (words_per_message - 1)})
        out.append({"role": "assistant", "content": f"a{i} " + "w " * (words_per_message - 1)})
    return out + [{"role": "user", "content": last}]


def firsts(messages: ChatMessages) -> list[str]:
    """Each message's first word: which messages they are."""
    return [m["content"].split()[0] for m in messages]


def check_whole_turns(fit: ContextFit, original: ChatMessages) -> None:
    body = fit.messages[1:] if fit.messages[0]["role"] == "system" else fit.messages
    assert body[0]["role"] == "user", "a turn is never cut: no orphan answer first"
    assert all(a["role"] != b["role"] for a, b in zip(body, body[1:], strict=False)), "roles alternate"
    start, end = fit.dropped_range
    assert fit.messages == original[:start] + original[end:]
    assert fit.dropped == end - start > 0


# -- pure logic ---------------------------------------------------------------------------

def test_policies_have_labels_and_string_values() -> None:
    assert set(POLICY_LABELS) == set(OverflowPolicy)
    assert POLICY_LABELS[OverflowPolicy.STOP] == "Stop and tell me"
    assert OverflowPolicy("keep_first_last") is OverflowPolicy.KEEP_FIRST_LAST


@pytest.mark.parametrize("policy", ALL)
def test_a_chat_that_fits_is_sent_whole(policy: OverflowPolicy) -> None:
    messages = chat(3)
    counter = Counter()
    fit = fit_messages(messages, 1000, 100, counter, policy)
    assert fit == ContextFit(messages, words(messages), 0, None)
    assert counter.calls == 1


def test_exactly_the_budget_fits() -> None:
    messages = chat(3)
    fit = fit_messages(messages, words(messages) + 10, 10, words, OverflowPolicy.STOP)
    assert fit.dropped == 0


def test_stop_refuses_and_says_by_how_much() -> None:
    messages = chat(10)  # 1 + 20 + 1 messages, 6 + 200 + 6 tokens
    with pytest.raises(ContextFullError) as raised:
        fit_messages(messages, 100, 20, words, OverflowPolicy.STOP)
    error = raised.value
    assert not error.message_too_long, "another policy would help"
    assert (error.needed, error.n_ctx, error.reserve) == (212, 100, 20)
    assert "212 tokens" in error.message and "holds 100" in error.message and "20 kept free" in error.message
    assert "new chat" in error.message


def test_drop_oldest_drops_the_fewest_whole_turns_from_the_start() -> None:
    messages = chat(10)  # each turn is 20 tokens; system 6, last 6
    fit = fit_messages(messages, 100, 20, words, OverflowPolicy.DROP_OLDEST)  # budget 80
    # 6 + 6 + 3 turns * 20 = 72 fits; 4 turns = 92 does not
    assert fit.messages[0] == messages[0]
    assert fit.messages[-1] is messages[-1]
    assert fit.dropped_range == (1, 15) and fit.dropped == 14
    assert firsts(fit.messages[1:-1]) == ["u7", "a7", "u8", "a8", "u9", "a9"]
    assert fit.prompt_tokens == words(fit.messages) == 72
    check_whole_turns(fit, messages)


def test_keep_first_last_keeps_the_first_turn_and_the_latest_ones() -> None:
    messages = chat(10)
    fit = fit_messages(messages, 100, 20, words, OverflowPolicy.KEEP_FIRST_LAST)  # budget 80
    # system + first turn + 2 latest turns + last = 6 + 20 + 40 + 6 = 72
    assert firsts(fit.messages) == ["be", "u0", "a0", "u8", "a8", "u9", "a9", "and"]
    assert fit.dropped_range == (3, 17) and fit.dropped == 14
    assert fit.prompt_tokens == 72
    check_whole_turns(fit, messages)


def test_keep_first_last_drops_the_first_turn_too_when_it_alone_is_too_much() -> None:
    messages = chat(5)
    messages[1]["content"] = "u0 " + "long " * 60  # the first turn: 65 + 10 tokens
    fit = fit_messages(messages, 100, 20, words, OverflowPolicy.KEEP_FIRST_LAST)  # budget 80
    assert fit.messages == fit_messages(messages, 100, 20, words, OverflowPolicy.DROP_OLDEST).messages
    assert firsts(fit.messages) == ["be", "u2", "a2", "u3", "a3", "u4", "a4", "and"]
    assert fit.dropped_range == (1, 5)


def test_keep_first_last_with_a_single_earlier_turn_drops_it() -> None:
    messages = chat(1, words_per_message=50)
    fit = fit_messages(messages, 40, 10, words, OverflowPolicy.KEEP_FIRST_LAST)
    assert fit.messages == [messages[0], messages[-1]] and fit.dropped_range == (1, 3)


@pytest.mark.parametrize("policy", DROPPING)
def test_without_a_system_prompt(policy: OverflowPolicy) -> None:
    messages = chat(10, system=None)
    fit = fit_messages(messages, 100, 20, words, policy)
    assert fit.messages[0]["role"] == "user" and fit.messages[-1] is messages[-1]
    assert fit.prompt_tokens <= 80
    check_whole_turns(fit, messages)


@pytest.mark.parametrize("policy", DROPPING)
def test_continuing_an_answer_keeps_it_and_its_question(policy: OverflowPolicy) -> None:
    messages = chat(10)[:-1]  # ends with the assistant's a9, being continued
    fit = fit_messages(messages, 60, 20, words, policy)  # budget 40: system + the last turn = 26
    assert fit.messages[-2:] == messages[-2:]
    assert fit.messages[0] == messages[0]
    check_whole_turns(fit, messages)


@pytest.mark.parametrize("policy", ALL)
@pytest.mark.parametrize("system", ["be brief", None])
def test_a_message_too_long_for_the_context_raises_under_every_policy(
        policy: OverflowPolicy, system: str | None) -> None:
    messages = chat(10, system=system, last="word " * 500)
    with pytest.raises(ContextFullError) as raised:
        fit_messages(messages, 256, 64, words, policy)
    error = raised.value
    assert error.message_too_long, "no policy helps: the window must not offer one"
    needed = 504 + (6 if system else 0)
    assert error.message.startswith(f"Your message needs {needed} tokens but the context holds 256 "
                                    "(with 64 kept free for the answer). Shorten it")
    assert "longer context" in error.message
    assert ("system prompt" in error.message) == bool(system)


@pytest.mark.parametrize("policy", ALL)
def test_a_lone_message_too_long_raises(policy: OverflowPolicy) -> None:
    with pytest.raises(ContextFullError):
        fit_messages([{"role": "user", "content": "word " * 100}], 64, 16, words, policy)


@pytest.mark.parametrize("policy", DROPPING)
@pytest.mark.parametrize("n_ctx", [200, 700, 1500, 3000, 4000])
def test_tokens_are_counted_a_logarithmic_number_of_times(policy: OverflowPolicy, n_ctx: int) -> None:
    messages = chat(200)  # 402 messages, 4012 tokens
    counter = Counter()
    fit = fit_messages(messages, n_ctx, 100, counter, policy)
    assert counter.calls <= 4 + math.ceil(math.log2(200)), counter.calls
    assert fit.prompt_tokens == words(fit.messages) <= n_ctx - 100
    # the fewest turns dropped: one more turn (20 tokens) would not have fitted
    assert fit.prompt_tokens + 20 > n_ctx - 100
    check_whole_turns(fit, messages)


def test_answer_reserve() -> None:
    assert answer_reserve(4096, 256) == 256
    assert answer_reserve(4096, 0) == 512  # unlimited answer: a default
    assert answer_reserve(1024, 0) == 256  # never more than a quarter of the context
    assert answer_reserve(512, 4000) == 128
    assert answer_reserve(32, 100) == 16 and answer_reserve(4096, 1) == 16  # at least 16


# -- on the real embedded model -----------------------------------------------------------

N_CTX = 512


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Engine:
    engine = Engine()
    engine.load(model_path, LoadOptions(n_ctx=N_CTX))
    yield engine
    engine.unload()


def real_chat() -> ChatMessages:
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(40):
        messages.append({"role": "user", "content": f"What is {i} plus {i}?"})
        messages.append({"role": "assistant", "content": f"{i} plus {i} is {2 * i}."})
    return messages + [{"role": "user", "content": "What is 7 plus 5?"}]


@pytest.mark.parametrize("policy", DROPPING)
def test_a_long_chat_is_cut_to_fit_and_answered(engine: Engine, policy: OverflowPolicy) -> None:
    messages = real_chat()

    def count(msgs: ChatMessages) -> int:
        return len(engine.tokenize_chat(msgs))

    assert count(messages) > N_CTX, "the chat overflows the context"
    sampling = SamplingParams(max_tokens=16, temperature=0)
    reserve = answer_reserve(N_CTX, sampling.max_tokens)
    fit = fit_messages(messages, N_CTX, reserve, count, policy)
    assert fit.dropped > 0 and fit.prompt_tokens <= N_CTX - reserve
    assert fit.messages[0] == messages[0] and fit.messages[-1] == messages[-1]
    if policy is OverflowPolicy.KEEP_FIRST_LAST:
        assert fit.messages[1:3] == messages[1:3]
    check_whole_turns(fit, messages)
    *deltas, stats = list(engine.stream(fit.messages, sampling))
    assert isinstance(stats, GenerationStats)
    assert "".join(deltas).strip()
    assert stats.prompt_tokens == fit.prompt_tokens
    assert 0 < stats.completion_tokens <= 16 and stats.stop_reason in ("eos", "length")


@pytest.mark.parametrize("policy", ALL)
def test_a_message_of_2000_tokens_raises_context_full(engine: Engine, policy: OverflowPolicy) -> None:
    messages = real_chat()[:5] + [{"role": "user", "content": "llama " * 2000}]

    def count(msgs: ChatMessages) -> int:
        return len(engine.tokenize_chat(msgs))

    with pytest.raises(ContextFullError) as raised:
        fit_messages(messages, N_CTX, answer_reserve(N_CTX, 16), count, policy)
    assert raised.value.message_too_long and raised.value.needed > 2000
