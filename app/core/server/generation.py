"""The three endpoints that ask the model: chat and text completions (whole or streamed) and embeddings.

A stream is opened (headers sent) only when the first text arrives, so a request refused before
any output (no model, a prompt too long, a schema the grammar cannot express) still gets a proper
status and OpenAI's error JSON; a failure after that is sent as `data: {"error": …}`. Whatever ends
a handler early (the client went away, the server stops), its generation is stopped in a finally.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from app.core.chat.sampling import SamplingParams
from app.core.inference.backend import Delta, QueueFull, Stream
from app.core.inference.types import Embeddings, EngineError, GenerationStats
from app.core.server.protocol import (
    ApiError,
    EmbeddingCall,
    GenerationCall,
    bad,
    parse_chat,
    parse_completion,
    parse_embeddings,
)
from app.core.server.responses import Completion, ServedModel, embeddings_response

NO_MODEL = ("No model is loaded in Llamadesk. Load one in the window (or start the server with "
            "`python -m app serve --model PATH`) and send the request again.")
CLIENT_GONE = 499  # nginx's "client closed request": what the log shows for an abandoned request


class ServingEngine(Protocol):
    """What the server asks of the app (app/session/server.py implements it over LocalBackend)."""

    def models(self) -> list[ServedModel]:
        """The library's models."""

    def loaded(self) -> ServedModel | None:
        """What answers now (None: no model loaded)."""

    def start(self, call: GenerationCall) -> Stream:
        """Start (or queue) a generation; raises QueueFull or EngineError."""

    async def embed(self, call: EmbeddingCall) -> Embeddings:
        """The inputs' vectors; raises EngineError (or QueueFull)."""


@dataclass
class ServerContext:
    """What every handler of one running server shares."""

    engine: ServingEngine
    defaults: Callable[[], SamplingParams]
    body_limit: int
    # generations running now, by id() (a stream need not be hashable): stopped with the server
    streams: dict[int, Stream] = field(default_factory=dict)


CONTEXT = web.AppKey("context", ServerContext)


@dataclass
class Tally:
    """What one request's log line says besides its status (never the body, never the key)."""

    model: str = ""
    stats: GenerationStats | None = None
    prompt_tokens: int = 0
    client_gone: bool = False


# The running request's Tally, set by the front door (a context variable: the handler runs in its task).
TALLY: contextvars.ContextVar[Tally] = contextvars.ContextVar("api_request_tally")


def engine_api_error(error: EngineError) -> ApiError:
    """An engine's failure in OpenAI's terms: the request's fault (400), no model (503), or ours (500)."""
    if error.kind == EngineError.BAD_REQUEST:
        return ApiError(400, error.message, code="bad_request")
    if error.kind == EngineError.CONTEXT_TOO_SMALL:
        return ApiError(400, error.message, code="context_length_exceeded")
    if error.kind == EngineError.NOT_LOADED:
        return ApiError(503, error.message, type="server_error", code="model_not_loaded")
    return ApiError(500, error.message, type="server_error", code=error.kind)


def queue_full_error(error: QueueFull) -> ApiError:
    return ApiError(503, error.message, type="server_error", code="queue_full",
                    headers={"Retry-After": str(error.retry_after_s)})


async def read_json(request: web.Request) -> Any:
    """The body as JSON; 413 past the size limit (before reading it when the length is announced), 400
    if it is not JSON."""
    limit = request.app[CONTEXT].body_limit
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        raw = await request.read()
    except web.RequestPayloadError as error:  # a body cut short, or not decodable as its encoding says
        raise bad(None, f"The request body could not be read ({error}).") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise bad(None, "The request body is not UTF-8 text: send JSON.") from None
    except json.JSONDecodeError as error:
        raise bad(None, f"The request body is not valid JSON (line {error.lineno}, column {error.colno}: "
                        f"{error.msg}).") from None
    except RecursionError:
        raise bad(None, "The request body is nested too deeply.") from None


def resolve_model(context: ServerContext, asked: str) -> ServedModel:
    """The loaded model, if the request asks for it (by id or name) or for none; else 503 or 404."""
    loaded = context.engine.loaded()
    if loaded is None:
        raise ApiError(503, NO_MODEL, type="server_error", code="model_not_loaded")
    if asked and asked.lower() not in {loaded.id.lower(), loaded.name.lower()}:
        raise ApiError(404, f"The model “{asked[:200]}” is not loaded. Llamadesk serves one model at a "
                            f"time, and “{loaded.id}” is loaded now: ask for it (or leave “model” out), or "
                            f"load the other model in Llamadesk.",
                       param="model", code="model_not_found")
    return loaded


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, parse_chat)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, parse_completion)


async def embeddings(request: web.Request) -> web.Response:
    context, tally = request.app[CONTEXT], TALLY.get()
    call = parse_embeddings(await read_json(request))
    model = resolve_model(context, call.model)
    tally.model = model.id
    try:
        result = await context.engine.embed(call)
    except QueueFull as error:
        raise queue_full_error(error) from None
    except EngineError as error:
        raise engine_api_error(error) from None
    tally.prompt_tokens = result.tokens
    return web.json_response(embeddings_response(model.id, result, call.encoding_format))


async def _generate(request: web.Request,
                    parse: Callable[[Any, SamplingParams], GenerationCall]) -> web.StreamResponse:
    context, tally = request.app[CONTEXT], TALLY.get()
    call = parse(await read_json(request), context.defaults())
    model = resolve_model(context, call.model)
    tally.model = model.id
    try:
        stream = context.engine.start(call)
    except QueueFull as error:
        raise queue_full_error(error) from None
    except EngineError as error:
        raise engine_api_error(error) from None
    run = _Run(stream, Completion(call.kind, model.id, call.include_usage), tally)
    context.streams[id(stream)] = stream
    try:
        if call.stream:
            return await run.stream_events(request)
        return await run.collect()
    finally:
        context.streams.pop(id(stream), None)
        if not run.finished:
            stream.stop()  # the client went away, or the server stops: free the model within one token


class _Run:
    """One generation being answered: iterates its stream and writes the response."""

    def __init__(self, stream: Stream, completion: Completion, tally: Tally) -> None:
        self.stream = stream
        self.completion = completion
        self.tally = tally
        self.finished = False  # the stream ended by itself (stats, a failure, or its end)
        self.response: web.StreamResponse | None = None

    async def collect(self) -> web.Response:
        texts: list[str] = []
        try:
            async for event in self.stream:
                if isinstance(event, Delta):
                    texts.append(event.text)
                elif isinstance(event, GenerationStats):
                    self.tally.stats = event
        except EngineError as error:
            self.finished = True
            raise engine_api_error(error) from None
        self.finished = True
        return web.json_response(self.completion.whole("".join(texts), self.tally.stats))

    async def stream_events(self, request: web.Request) -> web.StreamResponse:
        try:
            try:
                async for event in self.stream:
                    if isinstance(event, Delta) and event.text:
                        await self._open(request)
                        await self._send(self.completion.text_chunk(event.text))
                    elif isinstance(event, GenerationStats):
                        self.tally.stats = event
            except EngineError as error:
                self.finished = True
                if self.response is None:
                    raise engine_api_error(error) from None
                await self._send(engine_api_error(error).to_json())
                await self.response.write_eof()
                return self.response
            self.finished = True
            await self._open(request)
            await self._send(self.completion.last_chunk(self.tally.stats))
            if self.completion.include_usage:
                await self._send(self.completion.usage_chunk(self.tally.stats))
            assert self.response is not None
            await self.response.write(b"data: [DONE]\n\n")
            await self.response.write_eof()
            return self.response
        except ConnectionError:  # the client went away between two writes
            self.tally.client_gone = True
            return self.response or web.Response(status=CLIENT_GONE)

    async def _open(self, request: web.Request) -> None:
        if self.response is not None:
            return
        response = web.StreamResponse(status=200, headers={"Cache-Control": "no-cache",
                                                           "X-Accel-Buffering": "no"})
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        await response.prepare(request)
        self.response = response
        first = self.completion.first_chunk()
        if first is not None:
            await self._send(first)

    async def _send(self, data: dict[str, Any]) -> None:
        assert self.response is not None
        await self.response.write(b"data: " + json.dumps(data, ensure_ascii=False).encode("utf-8") + b"\n\n")
