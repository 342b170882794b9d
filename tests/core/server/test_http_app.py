"""The real aiohttp server on a free port, with the real state "no model loaded": every behaviour that
needs no generation (refusals, CORS, keys, the log). Generation through the server is tested by the
session layer's tests, with the real model."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

import httpx2
import pytest

from app.core.chat.sampling import SamplingParams
from app.core.server.http_app import RequestRecord, RunningServer, ServedModel, ServerError, start_server
from app.core.server.protocol import EmbeddingCall, GenerationCall
from app.core.server.settings import ServerSettings

KEY = "ld-test-key"
CHAT = {"model": "", "messages": [{"role": "user", "content": "Hi"}]}


class NoModelLoaded:
    """The app's state before any model is loaded: nothing in the library, nothing answering."""

    def models(self) -> list[ServedModel]:
        return []

    def loaded(self) -> ServedModel | None:
        return None

    def start(self, call: GenerationCall):
        raise AssertionError("the server must not ask for a generation without a model")

    async def embed(self, call: EmbeddingCall):
        raise AssertionError("the server must not ask for embeddings without a model")


Check = Callable[[httpx2.AsyncClient, RunningServer], Awaitable[None]]


def serve(check: Check, settings: ServerSettings | None = None, key: str = "") -> list[RequestRecord]:
    """Start the server on port 0, run `check` with a client pointed at it, stop it; the log's records."""
    records: list[RequestRecord] = []

    async def main() -> None:
        server = await start_server(NoModelLoaded(), settings or ServerSettings(port=0), key, SamplingParams,
                                    records.append)
        try:
            assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/v1"
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", trust_env=False,
                                          timeout=60) as client:
                await check(client, server)
        finally:
            await server.stop()

    asyncio.run(main())
    return records


def error_of(response: httpx2.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_health_and_models_without_a_model() -> None:
    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        health = await client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "no model"})
        models = await client.get("/v1/models")
        assert (models.status_code, models.json()) == (200, {"object": "list", "data": []})

    records = serve(check)
    assert [(r.method, r.path, r.status, r.model) for r in records] == [("GET", "/health", 200, ""),
                                                                       ("GET", "/v1/models", 200, "")]
    assert records[0].client == "127.0.0.1" and records[0].seconds >= 0


def test_a_generation_without_a_model_is_503() -> None:
    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        for path, body in (("/v1/chat/completions", CHAT), ("/v1/completions", {"prompt": "Once"}),
                           ("/v1/embeddings", {"input": "x"}),
                           ("/v1/chat/completions", {**CHAT, "stream": True})):
            error = error_of(await client.post(path, json=body), 503)
            assert error["code"] == "model_not_loaded" and "No model is loaded" in error["message"]

    assert {r.status for r in serve(check)} == {503}


def test_unknown_path_wrong_method_malformed_json_and_bad_fields() -> None:
    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        assert error_of(await client.get("/v1/nothing"), 404)["code"] == "not_found"
        assert error_of(await client.get("/"), 404)["code"] == "not_found"
        wrong = await client.get("/v1/chat/completions")
        assert error_of(wrong, 405)["code"] == "method_not_allowed" and "POST" in wrong.headers["allow"]
        assert error_of(await client.delete("/health"), 405)
        malformed = await client.post("/v1/chat/completions", content=b'{"messages": [',
                                      headers={"content-type": "application/json"})
        assert "not valid JSON" in error_of(malformed, 400)["message"]
        assert "UTF-8" in error_of(await client.post("/v1/completions", content=b"\xff\xfe"), 400)["message"]
        bad = await client.post("/v1/chat/completions", json={**CHAT, "temperature": 9})
        assert error_of(bad, 400)["param"] == "temperature"

    records = serve(check)
    assert [r.status for r in records] == [404, 404, 405, 405, 400, 400, 400]


def test_an_oversized_body_is_413() -> None:
    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4000}]}
        error = error_of(await client.post("/v1/chat/completions", json=big), 413)
        assert error["code"] == "request_too_large" and "1 KB" in error["message"]

        async def chunks():  # no Content-Length: the limit holds while reading
            for _ in range(4):
                yield b"x" * 1000

        assert error_of(await client.post("/v1/completions", content=chunks()), 413)

    records = serve(check, ServerSettings(port=0, body_limit_bytes=1024))
    assert [r.status for r in records] == [413, 413]


def test_a_body_that_cannot_be_decoded_is_400_not_a_failure_of_ours(caplog: pytest.LogCaptureFixture) -> None:
    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        garbled = await client.post("/v1/chat/completions", content=b"0123456789",
                                    headers={"content-encoding": "gzip", "content-type": "application/json"})
        assert "could not be read" in error_of(garbled, 400)["message"]

    assert [r.status for r in serve(check)] == [400]
    assert not [r for r in caplog.records if r.name.startswith("app.")]  # not logged as a failure of ours


def test_a_foreign_host_is_refused_even_for_unknown_paths() -> None:
    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        for path in ("/health", "/v1/models", "/nowhere"):
            error = error_of(await client.get(path, headers={"Host": f"evil.example:{server.port}"}), 403)
            assert error["code"] == "host_not_allowed"
        refused = await client.get("/health", headers={"Host": "localhost:1"})
        assert refused.status_code == 403
        ok = await client.get("/health", headers={"Host": f"localhost:{server.port}"})
        assert ok.status_code == 200

    assert [r.status for r in serve(check)] == [403, 403, 403, 403, 200]


def test_origins_and_preflights() -> None:
    listed = "http://localhost:3000"

    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        foreign = await client.get("/v1/models", headers={"Origin": "http://evil.example"})
        assert error_of(foreign, 403)["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in foreign.headers
        foreign_preflight = await client.options("/v1/chat/completions", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert foreign_preflight.status_code == 403
        preflight = await client.options("/v1/chat/completions", headers={
            "Origin": listed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == listed
        assert preflight.headers["vary"] == "Origin"
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        models = await client.get("/v1/models", headers={"Origin": listed, "Authorization": f"Bearer {KEY}"})
        assert models.status_code == 200 and models.headers["access-control-allow-origin"] == listed
        refused = await client.get("/v1/models", headers={"Origin": listed})  # no key: CORS still says who
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == listed
        plain = await client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers

    serve(check, ServerSettings(port=0, allowed_origins=(listed,)), key=KEY)


def test_the_key_is_required_on_v1_when_set() -> None:
    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        missing = await client.get("/v1/models")
        assert error_of(missing, 401)["code"] == "invalid_api_key"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "no API key" in missing.json()["error"]["message"]
        wrong = await client.post("/v1/chat/completions", json=CHAT,
                                  headers={"Authorization": "Bearer ld-wrong"})
        assert "wrong API key" in error_of(wrong, 401)["message"]
        assert error_of(await client.get("/v1/nothing"), 401)  # under /v1/: the key comes before the route
        assert (await client.get("/health")).status_code == 200  # no key needed
        right = await client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert right.status_code == 200

    records = serve(check, key=KEY)
    assert [r.status for r in records] == [401, 401, 401, 200, 200]
    assert all(KEY not in repr(r) and "wrong" not in repr(r) for r in records)


def test_refuses_the_network_without_a_key() -> None:
    for host in ("0.0.0.0", "::"):
        with pytest.raises(ServerError) as caught:
            asyncio.run(start_server(NoModelLoaded(), ServerSettings(host=host, port=0), "", SamplingParams,
                                     lambda record: None))
        assert "no API key" in caught.value.message


def test_a_taken_port_is_said_plainly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError) as caught:
            asyncio.run(start_server(NoModelLoaded(), ServerSettings(port=port), "", SamplingParams,
                                     lambda record: None))
    assert caught.value.message == f"Port {port} is in use by another program: choose another port."


def test_stop_closes_the_socket() -> None:
    async def main() -> int:
        server = await start_server(NoModelLoaded(), ServerSettings(port=0), "", SamplingParams,
                                    lambda record: None)
        await server.stop()
        await server.stop()  # twice is harmless
        return server.port

    port = asyncio.run(main())
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_the_body_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    secret = "my-private-question"

    async def check(client: httpx2.AsyncClient, server: RunningServer) -> None:
        body = {**CHAT, "messages": [{"role": "user", "content": secret}]}
        await client.post("/v1/chat/completions", content=json.dumps(body).encode())

    with caplog.at_level("DEBUG"):
        records = serve(check)
    assert secret not in caplog.text and secret not in repr(records)
