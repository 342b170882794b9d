"""LocalBackend's queue: API requests wait FIFO behind the window's answers on the one engine.

The real embedded model. Order is read from the request ids, which the backend hands out as it
sends each request to the inference thread; a request that must still be running is the greedy
count to five hundred (more than 400 tokens)."""

from __future__ import annotations

import math

import pytest

from app.core.chat.sampling import SamplingParams
from app.core.inference.backend import BackendBusy, Delta, PromptRead, QueueFull, Waiting
from app.core.inference.types import EngineError, GenerationStats, LoadOptions
from app.session.local_backend import MODEL_CHANGED, WAITING_FOR_API, LocalBackend
from app.session.tasks import start

SHORT = SamplingParams(temperature=0.0, seed=7, max_tokens=8)
LONG = SamplingParams(temperature=0.0, seed=7, max_tokens=600)
COUNT = [{"role": "user", "content": "Count from one to five hundred, separated by commas."}]
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def backend(qtbot, model_path):
    backend = LocalBackend()
    with qtbot.waitSignal(backend.loaded, timeout=60_000):
        backend.load(str(model_path), LoadOptions(n_ctx=1024))
    yield backend
    backend.close()


def follow(stream) -> tuple[list, list, object]:
    """Iterate a stream on the loop: its events and its failure (if any), as they grow, and the
    task to wait on."""
    events: list = []
    errors: list = []

    async def run() -> None:
        try:
            async for event in stream:
                events.append(event)
        except EngineError as error:
            errors.append(error)

    return events, errors, start(run())


def collect(qtbot, *streams) -> list[tuple[list, list]]:
    followed = [follow(s) for s in streams]
    for _, _, task in followed:
        qtbot.waitUntil(task.done, timeout=120_000)
        task.result()
    return [(events, errors) for events, errors, _ in followed]


def finished(events: list) -> GenerationStats:
    assert events and isinstance(events[-1], GenerationStats), events[-3:]
    return events[-1]


def test_api_requests_run_one_after_another_in_the_order_they_came(qtbot, backend) -> None:
    changes: list[tuple[bool, int]] = []
    backend.queue_changed.connect(lambda: changes.append((backend.api_running, backend.api_waiting)))
    first, second, third = (backend.serve(HELLO, SHORT) for _ in range(3))
    assert backend.api_running and backend.api_waiting == 2
    assert not backend.busy  # API requests never hold the window back
    results = collect(qtbot, first, second, third)
    for events, errors in results:
        assert not errors and finished(events).completion_tokens > 0
        assert isinstance(events[0], PromptRead)
    assert first.request_id < second.request_id < third.request_id
    assert not backend.api_running and backend.api_waiting == 0
    assert changes[-1] == (False, 0) and (True, 2) in changes


def test_a_window_answer_waits_for_the_running_api_request_then_goes_first(qtbot, backend) -> None:
    running = backend.serve(COUNT, SamplingParams(temperature=0.0, seed=7, max_tokens=40))
    waiting = [backend.serve(HELLO, SHORT), backend.serve(HELLO, SHORT)]
    window = backend.stream(HELLO, SHORT, "chat-1")
    assert backend.busy and backend.api_waiting == 2
    with pytest.raises(BackendBusy):
        backend.stream(HELLO, SHORT, "chat-2")
    (api_events, _), (window_events, window_errors), *rest = collect(qtbot, running, window, *waiting)
    assert window_events[0] == Waiting(WAITING_FOR_API)
    assert not window_errors and isinstance(window_events[1], PromptRead)
    assert finished(window_events).completion_tokens > 0
    assert finished(api_events).stop_reason == "length"
    assert running.request_id < window.request_id < waiting[0].request_id < waiting[1].request_id
    assert all(finished(events).completion_tokens > 0 for events, _ in rest)
    assert not backend.busy


def test_a_window_answer_with_the_engine_free_starts_at_once_without_waiting(qtbot, backend) -> None:
    window = backend.stream(HELLO, SHORT, "chat-1")
    api = backend.serve(HELLO, SHORT)
    assert backend.busy and not backend.api_running and backend.api_waiting == 1
    (window_events, _), (api_events, _) = collect(qtbot, window, api)
    assert isinstance(window_events[0], PromptRead)
    assert window.request_id < api.request_id and finished(api_events).completion_tokens > 0


def test_stopping_a_waiting_api_request_ends_it_at_once_and_the_others_still_run(qtbot, backend) -> None:
    first, second, third = (backend.serve(HELLO, SHORT) for _ in range(3))
    second.stop()
    assert second.ended and backend.api_waiting == 1
    assert second.take_arrived() == [GenerationStats(0, 0, 0.0, 0.0, 0.0, "user")]
    (first_events, _), (third_events, _) = collect(qtbot, first, third)
    assert finished(first_events).completion_tokens > 0 and finished(third_events).completion_tokens > 0
    assert second.request_id is None  # it never reached the engine


def test_stopping_a_waiting_window_answer_frees_the_window(qtbot, backend) -> None:
    api = backend.serve(COUNT, LONG)
    window = backend.stream(HELLO, SHORT, "chat-1")
    assert backend.busy
    window.stop()
    assert not backend.busy and window.ended
    (window_events, _), = collect(qtbot, window)
    assert window_events == [Waiting(WAITING_FOR_API), GenerationStats(0, 0, 0.0, 0.0, 0.0, "user")]
    api.stop()
    (api_events, _), = collect(qtbot, api)
    assert finished(api_events).stop_reason == "user"


def test_the_queue_refuses_requests_beyond_its_limit(qtbot, backend) -> None:
    backend.api_queue_limit = 2
    running = backend.serve(COUNT, LONG)
    waiting = [backend.serve(HELLO, SHORT), backend.serve(HELLO, SHORT)]
    with pytest.raises(QueueFull) as refused:
        backend.serve(HELLO, SHORT)
    assert refused.value.retry_after_s >= 1 and "2 requests already wait" in str(refused.value)
    assert backend.api_waiting == 2
    running.stop()
    results = collect(qtbot, running, *waiting)
    assert finished(results[0][0]).stop_reason == "user"
    assert all(finished(events).completion_tokens > 0 for events, _ in results[1:])


def test_a_model_load_ends_the_api_requests_and_the_window_answer_follows_it(qtbot, backend,
                                                                              model_path) -> None:
    running = backend.serve(COUNT, LONG)
    waiting = [backend.serve(HELLO, SHORT), backend.serve(HELLO, SHORT)]
    window = backend.stream(HELLO, SHORT, "chat-1")
    with qtbot.waitSignal(backend.loaded, timeout=60_000):
        backend.load(str(model_path), LoadOptions(n_ctx=512))
    results = collect(qtbot, running, *waiting, window)
    for events, errors in results[:3]:
        assert [e.kind for e in errors] == [EngineError.NOT_LOADED] and errors[0].message == MODEL_CHANGED
        assert not any(isinstance(e, GenerationStats) for e in events)
    window_events, window_errors = results[3]
    assert not window_errors and finished(window_events).completion_tokens > 0
    assert backend.model is not None and backend.model.n_ctx == 512
    assert not backend.api_running and backend.api_waiting == 0


def test_an_api_request_needs_a_loaded_model(qtbot) -> None:
    backend = LocalBackend()
    try:
        with pytest.raises(EngineError) as refused:
            backend.serve(HELLO, SHORT)
        assert refused.value.kind == EngineError.NOT_LOADED
    finally:
        backend.close()


def test_an_api_request_asked_while_a_model_loads_runs_after_the_load(qtbot, model_path) -> None:
    backend = LocalBackend()
    try:
        backend.load(str(model_path), LoadOptions(n_ctx=1024))
        api = backend.serve(HELLO, SHORT)
        (events, errors), = collect(qtbot, api)
        assert not errors and finished(events).completion_tokens > 0 and backend.model is not None
    finally:
        backend.close()


def test_a_raw_prompt_is_completed_without_the_chat_template(qtbot, backend) -> None:
    stream = backend.serve([], SamplingParams(temperature=0.0, seed=7, max_tokens=12),
                           prompt="1, 2, 3, 4, 5,")
    (events, errors), = collect(qtbot, stream)
    assert not errors
    text = "".join(e.text for e in events if isinstance(e, Delta))
    assert "6" in text
    stats = finished(events)
    assert 0 < stats.prompt_tokens < 20  # the prompt alone: no template around it


def test_embeddings_are_one_unit_vector_per_input(qtbot, backend) -> None:
    task = start(backend.embed(["The cat sat on the mat.", "Stock prices fell sharply today."]))
    qtbot.waitUntil(task.done, timeout=60_000)
    embeddings = task.result()
    assert len(embeddings.vectors) == 2 and embeddings.tokens > 0
    assert len(embeddings.vectors[0]) == len(embeddings.vectors[1]) > 0
    for vector in embeddings.vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-3)
    assert embeddings.vectors[0] != embeddings.vectors[1]


def test_embeddings_wait_their_turn_in_the_api_queue_and_leave_it_when_cancelled(qtbot, backend) -> None:
    """Nothing reaches the engine around the queue: embeddings wait behind the answer running, are
    counted and bounded like any API request, and an abandoned one never runs."""
    running = backend.serve(COUNT, SamplingParams(temperature=0.0, seed=7, max_tokens=60))
    kept = start(backend.embed(["kept"]))
    abandoned = start(backend.embed(["abandoned"]))
    qtbot.waitUntil(lambda: backend.api_waiting == 2, timeout=60_000)
    backend.api_queue_limit = 2
    refused = start(backend.embed(["one too many"]))
    qtbot.waitUntil(refused.done, timeout=60_000)
    assert isinstance(refused.exception(), QueueFull)
    abandoned.cancel()
    qtbot.waitUntil(lambda: backend.api_waiting == 1, timeout=60_000)
    window = backend.stream(HELLO, SHORT, "chat-1")  # goes before the waiting embeddings
    (events, errors), (window_events, _) = collect(qtbot, running, window)
    assert not errors and finished(events).completion_tokens > 0
    qtbot.waitUntil(kept.done, timeout=60_000)
    assert kept.result().tokens > 0 and abandoned.cancelled()
    assert isinstance(window_events[0], Waiting) and finished(window_events).completion_tokens > 0
    assert not backend.api_running and backend.api_waiting == 0
