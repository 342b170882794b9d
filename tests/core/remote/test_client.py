"""OpenAIClient against llama.cpp's own llama-server on 127.0.0.1 (tests/fixtures/llama_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx2
import pytest

from app.core.remote.client import Finished, OpenAIClient, Piece, RemoteError
from app.core.remote.connections import Connection
from tests.fixtures.llama_server import API_KEY

HELLO = [{"role": "user", "content": "Say hi"}]


def client_for(server, key: str = API_KEY, base_url: str | None = None, timeout_s: float = 60.0
               ) -> OpenAIClient:
    connection = Connection(name="gpu-box", base_url=base_url or server.base_url, timeout_s=timeout_s)
    return OpenAIClient(connection, key)


async def answer(client: OpenAIClient, model: str, messages, fields: dict) -> list:
    return [event async for event in client.chat(model, messages, fields)]


def run(server, coroutine_function, **client_options):
    """Run `coroutine_function(client)` on a fresh client, closed afterwards."""
    async def main():
        client = client_for(server, **client_options)
        try:
            return await coroutine_function(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def text_of(events: list) -> str:
    return "".join(event.text for event in events if isinstance(event, Piece))


def test_models_lists_the_served_model_with_its_context(llama_server):
    models = run(llama_server, lambda client: client.models())
    assert [(m.id, m.n_ctx, m.owned_by) for m in models] == [(llama_server.model_id, 2048, "llamacpp")]


def test_facts_recognise_llama_server_and_its_per_slot_context(llama_server):
    facts = run(llama_server, lambda client: client.facts())
    # -c 4096 shared by --parallel 2: 2048 per slot
    assert (facts.kind, facts.n_ctx, facts.can_tokenize) == ("llama.cpp", 2048, True)
    assert facts.build


def test_count_tokens_is_the_length_of_the_prompt_the_server_builds(llama_server):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello there"},
                {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "Name a colour."}]

    async def both(client):
        return await client.count_tokens(messages), await answer(client, "any", messages, {"max_tokens": 1})

    counted, events = run(llama_server, both)
    assert counted == events[-1].prompt_tokens  # the server's own usage for this very prompt
    assert counted > 20


def test_a_streamed_answer_is_pieces_then_one_finished_with_usage_and_timings(llama_server):
    *pieces, finished = run(llama_server, lambda client: answer(client, llama_server.model_id, HELLO,
                                                                  {"max_tokens": 16}))
    assert pieces and all(isinstance(piece, Piece) for piece in pieces)
    assert text_of(pieces).strip()
    assert isinstance(finished, Finished)
    assert finished.completion_tokens > 0 and finished.prompt_tokens > 0
    assert finished.predicted_per_second > 0 and finished.prompt_ms is not None
    assert finished.model == llama_server.model_id and finished.system_fingerprint


def test_llama_server_serves_its_one_model_whatever_the_id_asked(llama_server):
    """llama-server (single model) does not refuse an unknown model id: it answers with the model it
    has, and says which in its chunks, so the answer's record names the model that really wrote it."""
    events = run(llama_server, lambda client: answer(client, "no-such-model", HELLO, {"max_tokens": 2}))
    assert events[-1].model == llama_server.model_id


def test_a_wrong_key_is_refused_without_showing_any_key(llama_server, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-5b1c9e"
    for call in (lambda client: client.models(), lambda client: answer(client, "m", HELLO, {})):
        with pytest.raises(RemoteError) as caught:
            run(llama_server, call, key=wrong)
        assert caught.value.kind == RemoteError.KEY
        assert "refused the API key" in caught.value.message and "gpu-box" in caught.value.message
        for secret in (wrong, API_KEY):
            assert secret not in caught.value.message and secret not in str(caught.value)
    with pytest.raises(RemoteError) as caught:
        run(llama_server, lambda client: client.models(), key="")
    assert caught.value.kind == RemoteError.KEY and "needs an API key" in caught.value.message
    run(llama_server, lambda client: answer(client, "m", HELLO, {"max_tokens": 2}))
    assert API_KEY not in caplog.text and wrong not in caplog.text and "Bearer" not in caplog.text


def test_a_wrong_base_path_is_model_gone(llama_server):
    with pytest.raises(RemoteError) as caught:
        run(llama_server, lambda client: client.models(), base_url=f"{llama_server.root}/nowhere/v1")
    assert caught.value.kind == RemoteError.MODEL_GONE and "HTTP 404" in caught.value.message


def test_seed_and_max_tokens_reach_the_server(llama_server):
    fields = {"temperature": 1.0, "seed": 4242, "max_tokens": 24}
    question = [{"role": "user", "content": "Tell me a short story."}]

    async def twice(client):
        return [await answer(client, "m", question, fields) for _ in range(2)]

    first, second = run(llama_server, twice)
    assert text_of(first) == text_of(second)
    short = run(llama_server, lambda client: answer(client, "m", question, {"max_tokens": 3}))[-1]
    assert (short.completion_tokens, short.finish_reason) == (3, "length")


def test_an_assistant_start_is_continued_not_repeated(llama_server):
    start = "The three colours are purple,"
    messages = [{"role": "user", "content": "Name three colours."}, {"role": "assistant", "content": start}]
    fields = {"temperature": 0.0, "max_tokens": 12}
    continued = text_of(run(llama_server, lambda client: answer(client, "m", messages, fields)))
    assert continued and not continued.lstrip().startswith("The three")
    whole = httpx2.post(f"{llama_server.base_url}/chat/completions", timeout=60,
                        headers={"Authorization": f"Bearer {API_KEY}"},
                        json={"model": "m", "messages": messages, **fields}).json()
    assert start + continued == whole["choices"][0]["message"]["content"]  # llama-server's own prefill


async def busy_slots(server) -> list[int]:
    """Tokens written so far by each slot that is writing an answer (llama-server's GET /slots)."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        slots = (await http.get(f"{server.root}/slots")).json()
    return [slot["next_token"][0]["n_decoded"] for slot in slots if slot["is_processing"]]


@pytest.mark.parametrize("how", ["aclose", "cancel"])
def test_stop_closes_the_stream_and_the_server_stops_writing(llama_server, how):
    """Closing the generator (or cancelling its task) after the first piece frees the server's slot
    long before the answer's 1500 tokens: the most tokens the slot is ever seen at stays small."""
    fields = {"max_tokens": 1500, "ignore_eos": True, "temperature": 1.0}
    question = [{"role": "user", "content": "Write a very long story."}]

    async def stop(client):
        chat = client.chat("m", question, fields)
        if how == "aclose":
            assert isinstance(await anext(chat), Piece)
            assert await busy_slots(llama_server)
            await chat.aclose()
        else:
            first = asyncio.Event()

            async def read():
                async for _ in chat:
                    first.set()

            task = asyncio.create_task(read())
            await first.wait()
            assert await busy_slots(llama_server)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        most = 0
        while decoded := await busy_slots(llama_server):  # until the slot is free
            most = max(most, *decoded)
            await asyncio.sleep(0.02)
        return most

    assert run(llama_server, stop) < 200


def test_https_to_llama_server_which_speaks_plain_http_is_a_tls_failure(llama_server):
    """llama-server waits for an HTTP request line and never answers a TLS handshake: the handshake
    times out, a TLS failure whose message says plain HTTP needs an http:// address."""
    with pytest.raises(RemoteError) as caught:
        run(llama_server, lambda client: client.models(), base_url=f"https://127.0.0.1:{llama_server.port}/v1",
            timeout_s=0.5)
    assert caught.value.kind == RemoteError.TLS and "use an http:// address" in caught.value.message
    assert "handshake" in caught.value.message


def test_a_whole_answer_leaves_no_half_read_stream_behind(llama_server):
    """The client reads each answer's body to its end: nothing of the HTTP stream is left for the
    garbage collector, which would close it outside the event loop (tracebacks at exit, sockets
    kept)."""
    import gc
    import sys

    left: list[str] = []

    async def answers(client: OpenAIClient) -> None:
        loop = asyncio.get_running_loop()
        sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook,
                               finalizer=lambda generator: left.append(generator.__qualname__))
        for _ in range(2):
            events = await answer(client, llama_server.model_id, HELLO, {"max_tokens": 4})
            assert isinstance(events[-1], Finished)
        gc.collect()

    run(llama_server, answers)
    assert left == []
