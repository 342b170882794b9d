"""The API server: aiohttp's web server on the app's own asyncio loop (qasync in the window, plain
asyncio headless), so that no thread of its own touches the model.

aiohttp because it is the long-kept asyncio HTTP server (aio-libs, since 2014) with streaming
responses, a request size limit and the cancellation of a handler whose client went away built in;
it runs on any running loop, which is what qasync gives us. Every request passes one front door
first: the Host check, the Origin check (and CORS preflights), then the key, then its route; every
request, refused ones too, becomes one RequestRecord (never its body, never the key).
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from app.core.chat.sampling import SamplingParams
from app.core.common.errors import UserFacingError
from app.core.server import generation
from app.core.server.generation import (
    CLIENT_GONE,
    CONTEXT,
    TALLY,
    ServerContext,
    ServingEngine,
    Tally,
)
from app.core.server.guard import Guard
from app.core.server.protocol import ApiError
from app.core.server.responses import ServedModel, models_response
from app.core.server.settings import ServerSettings, is_wildcard

__all__ = ["RequestRecord", "RunningServer", "ServedModel", "ServerError", "ServingEngine", "start_server"]

log = logging.getLogger(__name__)
GUARD = web.AppKey("guard", Guard)
SHUTDOWN_TIMEOUT_S = 3.0  # how long stop() lets stopped generations write their last chunk
ENDPOINTS = "/health, /v1/models, /v1/chat/completions, /v1/completions and /v1/embeddings"


class ServerError(UserFacingError):
    """The server could not start; `.message` says why and what to do."""


@dataclass(frozen=True)
class RequestRecord:
    """One line of the panel's live log (never the body, never the key)."""

    at: float  # unix time the request arrived
    client: str  # the client's address
    method: str
    path: str
    model: str  # "" when it did not reach a model
    status: int  # 499: the client went away before the answer was complete
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float
    seconds: float


def _error_response(error: ApiError) -> web.Response:
    return web.json_response(error.to_json(), status=error.status, headers=error.headers)


def _http_error(request: web.Request, error: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (no route, wrong method, too large) in OpenAI's JSON shape."""
    if error.status == 404:
        return ApiError(404, f"There is no endpoint at {request.path[:200]}. Llamadesk serves {ENDPOINTS}.",
                        code="not_found")
    if error.status == 405:
        allowed = sorted(getattr(error, "allowed_methods", ()) or ())
        return ApiError(405, f"{request.path[:200]} does not take {request.method}: use "
                             f"{' or '.join(allowed) or 'another method'}.", code="method_not_allowed",
                        headers={"Allow": ", ".join(allowed)} if allowed else None)
    if error.status == 413:
        limit = request.app[CONTEXT].body_limit
        return ApiError(413, f"The request body is larger than this server takes ({_size(limit)}). Send a "
                             f"smaller request, or raise the limit in the server settings.",
                        code="request_too_large")
    return ApiError(error.status, error.reason or "The request was refused.")


def _size(n: int) -> str:
    return f"{n / 1024**2:g} MB" if n >= 1024**2 else f"{n / 1024:g} KB"


def _needs_key(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


async def _answer(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    guard = request.app[GUARD]
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    local_address = sockname[0] if isinstance(sockname, tuple) and sockname else ""
    if not guard.host_allowed(request.headers.get("Host"), str(local_address)):
        return _error_response(ApiError(
            403, "This server does not answer to the host name this request was sent to. If you reach "
                 "Llamadesk through another name, add it to the allowed host names in the server "
                 "settings.", type="permission_error", code="host_not_allowed"))
    origin = request.headers.get("Origin")
    if not guard.origin_allowed(origin):
        return _error_response(ApiError(
            403, "Web pages from this origin may not use the server. To let one, add its origin to the "
                 "allowed origins in the server settings.", type="permission_error",
            code="origin_not_allowed"))
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    if preflight and origin is not None:
        return web.Response(status=204, headers=guard.preflight_headers(
            origin, request.headers.get("Access-Control-Request-Headers")))
    if _needs_key(request.path) and not guard.key_ok(request.headers.get("Authorization")):
        said = "has no API key" if not request.headers.get("Authorization") else "has a wrong API key"
        return _error_response(ApiError(
            401, f"The request {said}. Send the server's key as “Authorization: Bearer KEY” (the key is "
                 f"shown in Llamadesk's server panel when it is made).", code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"}))
    try:
        return await handler(request)
    except web.HTTPException as error:
        return _error_response(_http_error(request, error))
    except ApiError as error:
        return _error_response(error)
    except ConnectionError:
        TALLY.get().client_gone = True
        return web.Response(status=CLIENT_GONE)
    except Exception as error:  # a bug of ours: the client gets a 500, the log the trace (not the body)
        log.exception("the API server failed on %s %s", request.method, request.path[:200])
        return _error_response(ApiError(500, f"Llamadesk failed on this request ({type(error).__name__}).",
                                        type="server_error", code="internal_error"))


def _front_door(on_request: Callable[[RequestRecord], None]) -> Callable:
    @web.middleware
    async def front_door(request: web.Request, handler: Callable) -> web.StreamResponse:
        at, started = time.time(), time.monotonic()
        tally = Tally()
        TALLY.set(tally)
        status = CLIENT_GONE
        try:
            response = await _answer(request, handler)
            status = CLIENT_GONE if tally.client_gone else response.status
            return response
        finally:  # also when the handler is cancelled because the client went away
            stats = tally.stats
            record = RequestRecord(at=at, client=request.remote or "", method=request.method,
                                   path=request.path[:200], model=tally.model, status=status,
                                   prompt_tokens=stats.prompt_tokens if stats else tally.prompt_tokens,
                                   completion_tokens=stats.completion_tokens if stats else 0,
                                   tokens_per_s=stats.tokens_per_s if stats else 0.0,
                                   seconds=time.monotonic() - started)
            try:
                on_request(record)
            except Exception:  # the log's listener must not break the server
                log.exception("recording an API request failed")

    return front_door


async def _add_cors(request: web.Request, response: web.StreamResponse) -> None:
    """Listed origins get Access-Control-Allow-Origin on every response, streamed ones too."""
    for name, value in request.app[GUARD].cors_headers(request.headers.get("Origin")).items():
        response.headers.setdefault(name, value)


async def _health(request: web.Request) -> web.Response:
    loaded = request.app[CONTEXT].engine.loaded()
    if loaded is None:
        return web.json_response({"status": "no model"})
    return web.json_response({"status": "ok", "model": loaded.id})


async def _models(request: web.Request) -> web.Response:
    engine = request.app[CONTEXT].engine
    return web.json_response(models_response(engine.models(), engine.loaded()))


def build_app(engine: ServingEngine, settings: ServerSettings, guard: Guard,
              defaults: Callable[[], SamplingParams],
              on_request: Callable[[RequestRecord], None]) -> web.Application:
    app = web.Application(middlewares=[_front_door(on_request)], client_max_size=settings.body_limit_bytes)
    app[CONTEXT] = ServerContext(engine, defaults, settings.body_limit_bytes)
    app[GUARD] = guard
    app.on_response_prepare.append(_add_cors)
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/chat/completions", generation.chat_completions)
    app.router.add_post("/v1/completions", generation.completions)
    app.router.add_post("/v1/embeddings", generation.embeddings)
    return app


class RunningServer:
    """A started server: where it listens, and how to stop it."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port
        self._stopped = False

    @property
    def url(self) -> str:
        """The base URL clients use: "http://127.0.0.1:7433/v1" (this computer's name when bound to
        every address)."""
        host = socket.gethostname() if is_wildcard(self.host) else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    async def stop(self) -> None:
        """Close the socket and stop the generations still running (they end within one token)."""
        if self._stopped:
            return
        self._stopped = True
        for stream in list(self._runner.app[CONTEXT].streams.values()):
            stream.stop()
        await self._runner.cleanup()


async def start_server(engine: ServingEngine, settings: ServerSettings, api_key: str,
                       defaults: Callable[[], SamplingParams],
                       on_request: Callable[[RequestRecord], None]) -> RunningServer:
    """Listen on exactly settings.host:settings.port (port 0: a free one); ServerError if it cannot."""
    if settings.on_network and not api_key:
        raise ServerError(f"The server would listen on {settings.host}, where other computers can reach it, "
                          f"but it has no API key. Make a key first, or listen on 127.0.0.1 (this computer "
                          f"only).")
    guard = Guard.for_server(settings, settings.port, api_key)
    runner = web.AppRunner(build_app(engine, settings, guard, defaults, on_request),
                           handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as error:
        await runner.cleanup()
        raise ServerError(_bind_failure(settings, error)) from None
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    guard.port = port  # port 0 picked a free one: the Host check needs the real one
    log.info("API server listening on %s port %d", settings.host, port)
    return RunningServer(runner, settings.host, port)


def _bind_failure(settings: ServerSettings, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"Port {settings.port} is in use by another program: choose another port."
    if error.errno == errno.EADDRNOTAVAIL:
        return (f"{settings.host} is not an address of this computer: choose 127.0.0.1 (this computer "
                f"only), 0.0.0.0 (every network) or one of this computer's addresses.")
    if error.errno in (errno.EACCES, errno.EPERM):
        return (f"Llamadesk may not listen on port {settings.port} (ports below 1024 need administrator "
                f"rights): choose a port from 1024 up.")
    return f"The server could not listen on {settings.host} port {settings.port}: {error.strerror or error}."

