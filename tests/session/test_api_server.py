"""The API server with the real model, through the real `openai` client (and httpx2 where a
client must misbehave): what programs that talk to Llamadesk rely on.

The server runs on the test's qasync loop, in this thread; each client call runs in a thread of
its own, and the test waits for it while Qt's events (and so the server) run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math

import httpx2
import openai
import pytest

from app.core.chat.sampling import SamplingParams
from app.core.inference.types import LoadOptions
from app.core.server.settings import ServerSettings
from app.session.local_backend import LocalBackend
from app.session.server import ApiServer

TIMEOUT = 120_000
COUNTING = "Count from one to five hundred, separated by commas."
PERSON_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                 "required": ["name", "age"], "additionalProperties": False}


@pytest.fixture(scope="module")
def pool():
    with concurrent.futures.ThreadPoolExecutor(max_workers=24, thread_name_prefix="client") as pool:
        yield pool


@pytest.fixture
def backend(qtbot, model_path):
    backend = LocalBackend()
    with qtbot.waitSignal(backend.loaded, timeout=60_000):
        backend.load(str(model_path), LoadOptions(n_ctx=2048))
    yield backend
    backend.close()


def started(qtbot, server: ApiServer, settings: ServerSettings | None = None,
            key: str | None = None) -> ApiServer:
    with qtbot.waitSignal(server.state_changed, timeout=TIMEOUT):
        server.start(settings or ServerSettings(port=0), key)
    assert server.running, server.error
    return server


@pytest.fixture
def server(qtbot, backend):
    server = started(qtbot, ApiServer(backend))
    yield server
    server.close()


def wait(qtbot, future: concurrent.futures.Future, timeout: int = TIMEOUT):
    qtbot.waitUntil(future.done, timeout=timeout)
    return future.result()


def client(server: ApiServer, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=600)


def test_chat_streams_and_answers_whole_the_same_text(qtbot, server, backend, pool) -> None:
    ask = dict(model=backend.model.name, messages=[{"role": "user", "content": "Name three colours."}],
               temperature=0, seed=3, max_tokens=40)
    whole = wait(qtbot, pool.submit(lambda: client(server).chat.completions.create(**ask)))
    assert whole.object == "chat.completion" and whole.model == backend.model.name
    assert whole.choices[0].message.role == "assistant" and whole.choices[0].message.content.strip()
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 0

    def streamed():
        return list(client(server).chat.completions.create(**ask, stream=True,
                                                           stream_options={"include_usage": True}))

    chunks = wait(qtbot, pool.submit(streamed))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # greedy with one seed: the same answer
    assert [c for c in chunks if c.choices][-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completions_read_the_prompt_as_it_is(qtbot, server, pool) -> None:
    def complete(**extra):
        return client(server).completions.create(model="", prompt="The capital of France is", temperature=0,
                                                 max_tokens=8, **extra)

    whole = wait(qtbot, pool.submit(complete))
    assert whole.object == "text_completion" and whole.choices[0].text.strip()
    streamed = wait(qtbot, pool.submit(lambda: list(complete(stream=True))))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text
    assert whole.usage.prompt_tokens <= 7  # the bare text (and BOS), no chat template around it


def test_embeddings_of_strings_and_token_arrays(qtbot, server, pool) -> None:
    texts = ["The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly tax filing deadlines."]
    result = wait(qtbot, pool.submit(lambda: client(server).embeddings.create(model="", input=texts)))
    vectors = [d.embedding for d in sorted(result.data, key=lambda d: d.index)]
    assert len(vectors) == 3 and len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 100
    assert all(abs(math.hypot(*v) - 1) < 1e-3 for v in vectors)  # normalised

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    one = wait(qtbot, pool.submit(lambda: client(server).embeddings.create(model="", input=texts[0])))
    assert one.data[0].embedding == pytest.approx(vectors[0], abs=1e-4)
    assert result.usage.prompt_tokens > 0


def test_a_json_schema_constrains_the_answer(qtbot, server, pool) -> None:
    def ask():
        return client(server).chat.completions.create(
            model="", temperature=0, max_tokens=120,
            messages=[{"role": "user", "content": "Describe a person called Ada who is 36, as JSON."}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "person", "schema": PERSON_SCHEMA, "strict": True}})

    answer = wait(qtbot, pool.submit(ask))
    person = json.loads(answer.choices[0].message.content)
    assert set(person) == {"name", "age"} and isinstance(person["name"], str)
    assert isinstance(person["age"], int) and not isinstance(person["age"], bool)


def test_models_lists_the_loaded_model(qtbot, server, backend, pool) -> None:
    models = wait(qtbot, pool.submit(lambda: httpx2.get(f"{server.url}/models", timeout=30))).json()
    assert models["object"] == "list"
    assert backend.model.name in [m["id"] for m in models["data"]]


def test_a_model_that_is_not_loaded_is_said_with_the_one_that_is(qtbot, server, backend, pool) -> None:
    def ask():
        return client(server).chat.completions.create(model="gpt-4o",
                                                      messages=[{"role": "user", "content": "Hi"}])

    with pytest.raises(openai.NotFoundError) as refused:
        wait(qtbot, pool.submit(ask))
    assert backend.model.name in str(refused.value)


def test_a_client_that_goes_away_stops_its_answer(qtbot, server, backend, pool) -> None:
    """The answer would run 400 tokens; the client reads a few pieces and hangs up."""
    records = []
    server.request_logged.connect(records.append)

    def read_a_little() -> int:
        body = {"messages": [{"role": "user", "content": COUNTING}], "temperature": 0, "seed": 7,
                "max_tokens": 400, "stream": True}
        pieces = 0
        with httpx2.stream("POST", f"{server.url}/chat/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                pieces += line.startswith("data: {")
                if pieces == 3:
                    break  # closes the connection
        return pieces

    assert wait(qtbot, pool.submit(read_a_little)) == 3
    qtbot.waitUntil(lambda: bool(records) and not backend.api_running, timeout=TIMEOUT)
    assert records[-1].path == "/v1/chat/completions"
    assert records[-1].completion_tokens < 400  # stopped, not run to its end


def test_the_windows_answer_goes_before_waiting_api_requests(qtbot, server, backend, pool) -> None:
    """The order is the engine's: each stream gets its request id when it is sent to the engine."""
    from app.core.inference.backend import Delta, Waiting
    from app.session.tasks import start

    streams: dict[str, object] = {}
    serve = server.serving.start

    def remembered(call):
        stream = serve(call)
        streams[call.messages[-1]["content"]] = stream
        return stream

    server.serving.start = remembered

    def api(text: str):
        return pool.submit(lambda: client(server).chat.completions.create(
            model="", messages=[{"role": "user", "content": text}], temperature=0, seed=7, max_tokens=60))

    asked = [api(COUNTING)]
    qtbot.waitUntil(lambda: backend.api_running, timeout=TIMEOUT)
    for waiting, text in enumerate(("Hi", "Hello there"), start=1):
        asked.append(api(text))
        qtbot.waitUntil(lambda n=waiting: backend.api_waiting == n, timeout=TIMEOUT)
    window_events: list = []
    window = backend.stream([{"role": "user", "content": "Hello"}],
                            SamplingParams(temperature=0, max_tokens=16), "chat-1")

    async def window_answer() -> None:
        async for event in window:
            window_events.append(event)

    task = start(window_answer())
    for future in asked:
        wait(qtbot, future)
    qtbot.waitUntil(task.done, timeout=TIMEOUT)
    assert isinstance(window_events[0], Waiting)
    assert any(isinstance(e, Delta) for e in window_events)
    sent = sorted([("window", window.request_id), *((text, s.request_id) for text, s in streams.items())],
                  key=lambda named: named[1])
    assert [name for name, _ in sent] == [COUNTING, "window", "Hi", "Hello there"]


def test_twenty_clients_at_once_are_all_answered_in_turn(qtbot, server, pool) -> None:
    def ask(i: int) -> str:
        answer = client(server).chat.completions.create(
            model="", messages=[{"role": "user", "content": f"Say the number {i}."}], temperature=0,
            max_tokens=6)
        return answer.choices[0].message.content

    futures = [pool.submit(ask, i) for i in range(20)]
    answers = [wait(qtbot, f, timeout=300_000) for f in futures]
    assert len(answers) == 20 and all(isinstance(a, str) for a in answers)


def test_a_full_queue_answers_503_with_retry_after(qtbot, server, backend, pool) -> None:
    started(qtbot, server, ServerSettings(port=0, queue_limit=1))  # the setting bounds the queue
    body = {"messages": [{"role": "user", "content": COUNTING}], "temperature": 0, "seed": 7,
            "max_tokens": 150}

    def post():
        return httpx2.post(f"{server.url}/chat/completions", json=body, timeout=600)

    running = pool.submit(post)
    qtbot.waitUntil(lambda: backend.api_running, timeout=TIMEOUT)
    waiting = pool.submit(post)
    qtbot.waitUntil(lambda: backend.api_waiting == 1, timeout=TIMEOUT)
    refused = wait(qtbot, pool.submit(post))
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["error"]["message"]
    assert wait(qtbot, running).status_code == 200 and wait(qtbot, waiting).status_code == 200


def test_on_the_network_a_key_is_required_and_checked(qtbot, backend, pool, tmp_path) -> None:
    from app.core.remote.keys import FileKeyStore

    server = ApiServer(backend, keys=FileKeyStore(tmp_path / "keys.json"))
    network = ServerSettings(host="0.0.0.0", port=0)
    with qtbot.waitSignal(server.state_changed, timeout=TIMEOUT):
        server.start(network)
    assert not server.running and "key" in server.error.lower()
    key = server.new_key()
    assert key and server.has_key
    started(qtbot, server, network)
    try:
        url = f"http://127.0.0.1:{server.port}/v1/models"

        def status(key: str = "") -> int:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return wait(qtbot, pool.submit(lambda: httpx2.get(url, headers=headers, timeout=30))).status_code

        assert (status(), status("wrong"), status(key)) == (401, 401, 200)
        assert all(key not in str(dataclasses.astuple(r)) for r in server.records)
    finally:
        server.close()
