"""OpenAIClient's failures, each specific: against a closed port and a hand-written hostile server
(tests/fixtures/hostile_openai.py) for what a real llama-server cannot be made to do."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.core.remote import client as client_module
from app.core.remote.client import Finished, OpenAIClient, Piece, RemoteError, Retrying
from app.core.remote.connections import Connection
from tests.fixtures.hostile_openai import HostileServer, chunk, hang_up, json_reply, silent, sse_reply
from tests.fixtures.llama_server import free_port

KEY = "sk-hostile-6f2d1a9b"
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello"}]
USAGE = {"choices": [], "model": "hostile-model", "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
GOOD = sse_reply([chunk("Hel"), chunk("lo"), chunk(finish="stop"), USAGE])


@pytest.fixture
def hostile():
    with HostileServer() as server:
        yield server


def events_of(base_url: str, *, call=None, timeout_s: float = 10.0, key: str = KEY, headers=(), **options):
    """Run one chat (or `call(client)`), returning (events before the failure, the RemoteError or None)."""
    async def main():
        connection = Connection(name="gpu-box", base_url=base_url, timeout_s=timeout_s, headers=headers)
        client = OpenAIClient(connection, key, **options)
        events: list = []
        try:
            if call is not None:
                events.append(await call(client))
            else:
                async for event in client.chat("hostile-model", HELLO, {"max_tokens": 8}):
                    events.append(event)
        except RemoteError as error:
            return events, error
        finally:
            await client.aclose()
        return events, None
    return asyncio.run(main())


def text_of(events: list) -> str:
    return "".join(event.text for event in events if isinstance(event, Piece))


def test_a_closed_port_is_unreachable():
    events, error = events_of(f"http://127.0.0.1:{free_port()}/v1")
    assert error.kind == RemoteError.UNREACHABLE and not events
    assert "connection refused" in error.message
    assert "gpu-box" in error.message and "127.0.0.1" in error.message


def test_a_server_that_never_answers_times_out(hostile):
    hostile.on(CHAT, silent()).on("/v1/models", silent())
    for call in (None, lambda client: client.models()):
        events, error = events_of(hostile.base_url, call=call, timeout_s=0.5)
        assert error.kind == RemoteError.TIMEOUT and "0.5 s" in error.message


def test_busy_is_retried_as_said_then_answered(hostile):
    hostile.on(CHAT, json_reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}),
               json_reply(503, {"error": {"message": "loading model"}}), GOOD)
    events, error = events_of(hostile.base_url, retries=3, backoff_s=0.01)
    assert error is None
    assert events[:2] == [Retrying(1, 0.0, 429), Retrying(2, 0.02, 503)]  # Retry-After, then backoff
    assert text_of(events) == "Hello" and isinstance(events[-1], Finished)
    assert len(hostile.requests) == 3


def test_still_busy_after_the_retries_is_busy(hostile, monkeypatch):
    monkeypatch.setattr(client_module, "MAX_WAIT_S", 0.01)
    hostile.on(CHAT, json_reply(503, {"error": {"message": "all slots are busy"}}, {"Retry-After": "3600"}))
    events, error = events_of(hostile.base_url, retries=2, backoff_s=0.001)
    assert events == [Retrying(1, 0.01, 503), Retrying(2, 0.01, 503)]  # a long Retry-After is capped
    assert error.kind == RemoteError.BUSY and "all slots are busy" in error.message


def test_a_chunk_that_is_not_json_is_malformed_after_the_pieces_before_it(hostile):
    hostile.on(CHAT, sse_reply([chunk("Hi"), "this is not json", chunk(finish="stop")]))
    events, error = events_of(hostile.base_url)
    assert text_of(events) == "Hi"
    assert error.kind == RemoteError.MALFORMED and "not the JSON expected" in error.message


def test_an_html_page_instead_of_a_stream_is_malformed(hostile):
    hostile.on(CHAT, json_reply(200, "<html><body>Welcome to nginx</body></html>", content_type="text/html"))
    events, error = events_of(hostile.base_url)
    assert error.kind == RemoteError.MALFORMED and "an HTML page" in error.message and "/v1" in error.message


def test_a_stream_cut_mid_answer_is_cut_after_the_pieces_that_came(hostile):
    hostile.on(CHAT, sse_reply([chunk("Once"), chunk(" upon")], cut=True))
    events, error = events_of(hostile.base_url)
    assert events == [Piece("Once"), Piece(" upon")]
    assert error.kind == RemoteError.CUT and "kept" in error.message


def test_a_stream_ending_without_its_final_chunk_is_cut(hostile):
    hostile.on(CHAT, sse_reply([chunk("Once")], done=False))
    events, error = events_of(hostile.base_url)
    assert events == [Piece("Once")] and error.kind == RemoteError.CUT


def test_a_stream_cut_after_its_finish_reason_is_a_whole_answer(hostile):
    hostile.on(CHAT, sse_reply([chunk("Done", system_fingerprint="fp-1"), chunk(finish="length")], cut=True))
    events, error = events_of(hostile.base_url)
    assert error is None
    assert events[-1] == Finished("length", None, None, "hostile-model", "fp-1", None, None, None)


def test_an_error_inside_the_stream_says_the_servers_words(hostile):
    hostile.on(CHAT, sse_reply([chunk("A"), {"error": {"code": 500, "message": "context overflow"}}]))
    events, error = events_of(hostile.base_url)
    assert events == [Piece("A")]
    assert error.kind == RemoteError.HTTP
    assert "context overflow" in error.message and "HTTP 500" in error.message


def test_reasoning_content_is_kept_apart_from_the_answer(hostile):
    hostile.on(CHAT, sse_reply([chunk(reasoning="Let me think."), chunk(reasoning=" Yes."), chunk("42"),
                                chunk(finish="stop")]))
    events, error = events_of(hostile.base_url)
    assert events[:3] == [Piece(reasoning="Let me think."), Piece(reasoning=" Yes."), Piece("42")]
    assert error is None and isinstance(events[-1], Finished)


@pytest.mark.parametrize(("status", "body", "kind"), [
    (404, {"object": "error", "message": "The model `hostile-model` does not exist.", "code": 404},
     RemoteError.MODEL_GONE),
    (400, {"error": {"message": "model 'hostile-model' not found"}}, RemoteError.MODEL_GONE),
    (500, {"error": "the GPU caught fire"}, RemoteError.HTTP),
    (403, {"detail": "Forbidden"}, RemoteError.KEY),
])
def test_statuses_are_specific_and_quote_the_server(hostile, status, body, kind):
    hostile.on(CHAT, json_reply(status, body))
    events, error = events_of(hostile.base_url)
    assert error.kind == kind and f"HTTP {status}" in error.message and "gpu-box" in error.message


def test_no_key_or_header_value_reaches_a_message_or_a_log_line(hostile, caplog):
    """Even when a server echoes the request's Authorization header back in its error."""
    caplog.set_level(logging.DEBUG)
    secret_header = ("X-Team-Token", "team-token-77c1")
    hostile.on(CHAT, json_reply(400, {"error": {"message": f"bad request: Authorization: Bearer {KEY}, "
                                                           f"X-Team-Token: {secret_header[1]}"}}))
    hostile.on("/v1/models", json_reply(401, {"error": f"Invalid API key: Bearer {KEY}"}))
    _, error = events_of(hostile.base_url, headers=(secret_header,))
    _, error2 = events_of(hostile.base_url, call=lambda client: client.models(), headers=(secret_header,))
    assert hostile.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent…
    assert hostile.requests[0].headers["x-team-token"] == secret_header[1]
    for text in (error.message, str(error), error2.message, caplog.text):  # …and is never shown
        assert KEY not in text and secret_header[1] not in text
    assert error.kind == RemoteError.HTTP and "bad request" in error.message
    assert error2.kind == RemoteError.KEY and "Invalid API key" in error2.message


def test_a_key_a_header_cannot_carry_is_refused_before_any_request(hostile):
    for key in ("sk-line\nbreak-123", "sk-clé-123"):
        events, error = events_of(hostile.base_url, key=key)
        assert error.kind == RemoteError.KEY and key not in error.message and "Connections" in error.message
    assert hostile.requests == []
    hostile.on(CHAT, GOOD)
    events, error = events_of(hostile.base_url, key=f"  {KEY}\n")  # a pasted key's blanks are dropped
    assert error is None and hostile.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_tls_to_a_plain_http_server_says_to_use_http(hostile):
    events, error = events_of(f"https://127.0.0.1:{hostile.port}/v1")
    assert error.kind == RemoteError.TLS and "use an http:// address" in error.message


def test_vllm_continues_an_assistant_start_when_asked_to(hostile):
    qwen = {"id": "qwen", "owned_by": "vllm", "max_model_len": 32768}
    hostile.on("/v1/models", json_reply(200, {"data": [qwen]}))
    hostile.on(CHAT, GOOD)

    async def continued(client):
        facts = await client.facts()
        messages = [*HELLO, {"role": "assistant", "content": "Well,"}]
        return facts, [event async for event in client.chat("qwen", messages, {})]

    ((facts, events),), error = events_of(hostile.base_url, call=continued)
    assert facts.kind == "vllm" and facts.n_ctx == 32768 and not facts.can_tokenize
    body = hostile.requests[-1].body
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert text_of(events) == "Hello"  # vLLM sends only the continuation: nothing is cut from it


@pytest.mark.parametrize(("owner", "kind"), [("library", "ollama"), ("someone", "openai-compatible")])
def test_other_servers_are_told_apart_by_their_model_list(hostile, owner, kind):
    hostile.on("/v1/models", json_reply(200, {"data": [{"id": "llama3", "owned_by": owner}]}))
    (facts,), error = events_of(hostile.base_url, call=lambda client: client.facts())
    assert (facts.kind, facts.n_ctx) == (kind, None)


def test_ollama_is_known_by_its_version_endpoint(hostile):
    hostile.on("/v1/models", json_reply(200, {"data": [{"id": "llama3", "owned_by": "me"}]}))
    hostile.on("/api/version", json_reply(200, {"version": "0.5.1"}))
    (facts,), error = events_of(hostile.base_url, call=lambda client: client.facts())
    assert facts.kind == "ollama"


def test_count_tokens_is_none_where_the_server_offers_no_tokenizer(hostile):
    (count,), error = events_of(hostile.base_url, call=lambda client: client.count_tokens(HELLO))
    assert error is None and count is None


def test_usage_and_timings_become_the_finished_record(hostile):
    hostile.on(CHAT, sse_reply([chunk("x"), chunk(finish="stop"), {
        "choices": [], "model": "served-as", "system_fingerprint": "b1234",
        "usage": {"prompt_tokens": 9, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 4}},
        "timings": {"cache_n": 5, "prompt_ms": 12.5, "predicted_per_second": 88.0}}]))
    events, error = events_of(hostile.base_url)
    assert events[-1] == Finished("stop", 9, 1, "served-as", "b1234", 88.0, 12.5, 5)


def test_a_connection_the_server_closed_without_answering_is_tried_once_more(hostile):
    """A kept-alive connection the server closed meanwhile (idle, or restarted) fails before any
    answer: the request goes again, once, on a new connection."""
    hostile.on(CHAT, hang_up(), GOOD).on("/v1/models", hang_up(), json_reply(200, {"data": [{"id": "m"}]}))
    events, error = events_of(hostile.base_url)
    assert error is None and text_of(events) == "Hello"
    assert [r.path for r in hostile.requests] == [CHAT, CHAT]
    models, error = events_of(hostile.base_url, call=lambda client: client.models())
    assert error is None and [m.id for m in models[0]] == ["m"]


def test_a_server_that_always_hangs_up_is_said_after_one_more_try(hostile):
    hostile.on(CHAT, hang_up())
    events, error = events_of(hostile.base_url)
    assert error.kind == RemoteError.CUT and "closed the connection without answering" in error.message
    assert len(hostile.requests) == 2 and not events
