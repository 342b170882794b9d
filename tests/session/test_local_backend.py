"""LocalBackend: the engine's process, through the inference thread, as a Backend stream.

The real embedded model: the order of events a chat session relies on, counting, refusing a
second answer, and what a close mid-answer hands over."""

from __future__ import annotations

import pytest

from app.core.chat.sampling import SamplingParams
from app.core.inference.backend import BackendBusy, Delta, PromptRead
from app.core.inference.types import GenerationStats, LoadOptions
from app.session.local_backend import LocalBackend
from app.session.tasks import start

GREEDY = SamplingParams(temperature=0.0, seed=1, max_tokens=24)
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def backend(qtbot, model_path):
    backend = LocalBackend()
    with qtbot.waitSignal(backend.loaded, timeout=60_000):
        backend.load(str(model_path), LoadOptions(n_ctx=1024))
    yield backend
    backend.close()


def collect(qtbot, stream) -> list:
    events: list = []

    async def follow() -> None:
        async for event in stream:
            events.append(event)

    task = start(follow())
    qtbot.waitUntil(task.done, timeout=60_000)
    task.result()
    return events


def test_an_answer_streams_prompt_then_text_then_stats(qtbot, backend) -> None:
    events = collect(qtbot, backend.stream(HELLO, GREEDY, "chat-1"))
    assert isinstance(events[0], PromptRead) and events[0].tokens > 0
    assert isinstance(events[-1], GenerationStats) and events[-1].stop_reason in ("eos", "length")
    deltas = [e for e in events if isinstance(e, Delta)]
    assert "".join(d.text for d in deltas).strip()
    assert sum(d.tokens for d in deltas) == events[-1].completion_tokens
    assert not backend.busy and backend.model is not None


def test_a_second_answer_is_refused_while_one_runs(qtbot, backend) -> None:
    stream = backend.stream(HELLO, GREEDY.replace(max_tokens=200), "chat-1")
    assert backend.busy
    with pytest.raises(BackendBusy):
        backend.stream(HELLO, GREEDY, "chat-2")
    backend.stop()
    events = collect(qtbot, stream)
    assert events[-1].stop_reason == "user"


def test_counting_asks_the_model(qtbot, backend) -> None:
    task = start(backend.count(HELLO))
    qtbot.waitUntil(task.done, timeout=30_000)
    longer = start(backend.count(HELLO + [{"role": "assistant", "content": "Hello! How can I help?"}]))
    qtbot.waitUntil(longer.done, timeout=30_000)
    assert 0 < task.result() < longer.result()


def test_closing_mid_answer_hands_over_what_arrived_and_ends_the_stream(qtbot, backend) -> None:
    stream = backend.stream([{"role": "user", "content": "Write a long story."}],
                            GREEDY.replace(max_tokens=400), "chat-1")
    arrived: list = []

    async def follow() -> None:
        async for event in stream:
            arrived.append(event)

    task = start(follow())
    qtbot.waitUntil(lambda: sum(isinstance(e, Delta) for e in arrived) >= 3, timeout=60_000)
    backend.close()
    rest = stream.take_arrived()
    qtbot.waitUntil(task.done, timeout=10_000)  # the stream ends: nothing more will come
    texts = [e for e in arrived + rest if isinstance(e, Delta)]
    assert len(texts) >= 3 and not backend.client.worker.process.running


def test_an_engine_started_by_another_question_after_a_crash_gets_the_model_back(qtbot, backend) -> None:
    """After a crash, whichever request starts the new engine process (here a question about the
    build), the next answer finds the model loaded again."""
    import os
    import signal

    process = backend.client.worker.process
    os.kill(process.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not process.running, timeout=10_000)
    build = start(backend.build())
    qtbot.waitUntil(build.done, timeout=60_000)
    assert build.result() is not None and process.running
    events = collect(qtbot, backend.stream(HELLO, GREEDY, "chat-1"))
    assert isinstance(events[-1], GenerationStats) and events[-1].completion_tokens > 0
