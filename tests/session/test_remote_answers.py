"""What a remote engine does that llama-server cannot be made to do here, through a chat session
(tests/fixtures/hostile_openai.py speaks real HTTP and SSE): a busy server is retried and the wait is
said; a reasoning model's `reasoning_content` is stored as the answer's thought, not its text; a
malformed stream fails plainly and keeps what came."""

from __future__ import annotations

import pytest

from app.core.remote.connections import Connection, ConnectionsFile
from app.core.remote.keys import key_store
from app.session.chat_session import ChatSession
from app.session.engines import Engines
from app.session.sampling import SamplingSettings
from tests.fakes.fake_backend import FakeBackend
from tests.fixtures.hostile_openai import HostileServer, chunk, json_reply, sse_reply

CHAT = "/v1/chat/completions"
MODELS = {"object": "list", "data": [{"id": "thinker", "object": "model", "owned_by": "someone"}]}
USAGE = {"choices": [], "model": "thinker", "system_fingerprint": "fp_test",
         "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
TIMEOUT = 30_000


@pytest.fixture
def hostile():
    with HostileServer() as server:
        server.on("/v1/models", json_reply(200, MODELS))
        yield server


def chat_on(qtbot, store, server: HostileServer) -> ChatSession:
    ConnectionsFile().put(Connection(name="odd", base_url=server.base_url))
    key_store().set("odd", "sk-odd-123456")
    chat = ChatSession(FakeBackend(model=None), store, SamplingSettings(), engines=Engines())
    with qtbot.waitSignal(chat.engine_changed, timeout=TIMEOUT,
                          check_params_cb=lambda info: info is not None):
        chat.choose_engine("odd", "thinker")
    return chat


def test_a_busy_server_is_retried_and_the_wait_is_said(qtbot, store, hostile) -> None:
    hostile.on(CHAT, json_reply(503, {"error": {"message": "all slots are busy"}}, {"Retry-After": "0"}),
               sse_reply([chunk("Hello", model="thinker"), chunk(finish="stop", model="thinker"), USAGE]))
    chat = chat_on(qtbot, store, hostile)
    said: list[str] = []
    chat.status.connect(said.append)
    with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT):
        assert chat.send("Hi")
    assert any("odd is busy (503)" in line and "trying again" in line for line in said)
    answer = chat.conversation.thread()[-1]
    assert answer.text == "Hello" and not answer.incomplete
    assert answer.generation.system_fingerprint == "fp_test"


def test_reasoning_content_is_kept_apart_as_the_thought(qtbot, store, hostile) -> None:
    hostile.on(CHAT, sse_reply([chunk(reasoning="The user greets. ", model="thinker"),
                                chunk(reasoning="Greet back.", model="thinker"),
                                chunk("Hello there.", model="thinker"), chunk(finish="stop", model="thinker"),
                                USAGE]))
    chat = chat_on(qtbot, store, hostile)
    thoughts: list[str] = []
    chat.thought_appended.connect(thoughts.append)
    with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT):
        assert chat.send("Hi")
    answer = store.load(chat.conversation.id).thread()[-1]
    assert answer.text == "Hello there."
    assert answer.thought.strip() == "The user greets. Greet back."
    assert "".join(thoughts).strip() == "The user greets. Greet back."
    # What the model reads next time is the answer only.
    assert chat.conversation.chat_messages()[-1] == {"role": "assistant", "content": "Hello there."}


def test_a_malformed_stream_fails_plainly_and_keeps_what_came(qtbot, store, hostile) -> None:
    hostile.on(CHAT, sse_reply([chunk("Half an ", model="thinker"), "this is not JSON"]))
    chat = chat_on(qtbot, store, hostile)
    with qtbot.waitSignal(chat.error, timeout=TIMEOUT) as failed:
        assert chat.send("Hi")
    assert "odd" in failed.args[0] and "not the JSON expected" in failed.args[0]
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    answer = store.load(chat.conversation.id).thread()[-1]
    assert answer.text == "Half an " and answer.incomplete
