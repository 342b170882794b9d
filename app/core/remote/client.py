"""An OpenAI-compatible endpoint (llama-server, vLLM, Ollama, …) over httpx2: the model list, what
the server is, token counts, and one streamed answer at a time per `chat()` call.

httpx2 rather than the `openai` package: it is already a dependency, it reads SSE itself, and we need
the raw chunks (llama-server's `timings`, `delta.reasoning_content`, the exact status codes) and a retry
policy of our own that the user is told about. Every failure is a RemoteError of a specific kind whose
message names the connection and the host; none ever carries the API key or a header's value.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2

from app.core.inference.types import ChatMessages, EngineError
from app.core.remote.connections import Connection
from app.core.remote.stream_chunks import ChunkReader, Finished, Piece, as_int, loads, server_message

log = logging.getLogger(__name__)
MAX_WAIT_S = 30.0  # the longest Retry-After honoured before trying again
NOT_OFFERED = frozenset({404, 405, 501})  # an optional endpoint (/props, /tokenize) the server lacks
CHECK_URL = "Is the base URL the server's OpenAI-compatible API (…/v1)?"
KEPT = "What arrived is kept; Continue asks for the rest."


class RemoteError(EngineError):
    """A remote endpoint failed; `kind` says how, `message` what to do (never the key)."""

    UNREACHABLE = "unreachable"
    TLS = "tls"
    KEY = "key"
    MODEL_GONE = "model_gone"
    BUSY = "busy"
    CUT = "cut"
    MALFORMED = "malformed"
    TIMEOUT = "timeout"
    HTTP = "http"
    DEFAULT_KIND = HTTP


@dataclass(frozen=True)
class RemoteModel:
    id: str
    n_ctx: int | None = None  # llama-server meta.n_ctx (per slot), vLLM max_model_len
    owned_by: str = ""


@dataclass(frozen=True)
class ServerFacts:
    kind: str  # "llama.cpp" | "vllm" | "ollama" | "openai-compatible"
    n_ctx: int | None
    build: str = ""
    can_tokenize: bool = False


@dataclass(frozen=True)
class Retrying:
    """The server was busy (429/503) before any text: waiting `wait_s`, then trying again."""

    attempt: int
    wait_s: float
    status: int


class OpenAIClient:
    def __init__(self, connection: Connection, api_key: str = "", *, retries: int = 3,
                 backoff_s: float = 1.0) -> None:
        self.connection = connection
        self.retries, self.backoff_s = retries, backoff_s
        key = api_key.strip()  # a pasted key often brings a newline along
        self._key_ok = all(33 <= ord(c) < 127 for c in key)
        # Never shown: the key and every extra header's value (one may be a token too).
        secrets = {key, *(value for _, value in connection.headers)} - {""}
        self._secrets = sorted(secrets, key=len, reverse=True)
        headers = dict(connection.headers)
        if key and self._key_ok:
            headers["Authorization"] = f"Bearer {key}"
        self._has_key = bool(key)
        self._facts: ServerFacts | None = None
        self._http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(connection.timeout_s))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def models(self) -> list[RemoteModel]:
        """GET {base_url}/models."""
        response = await self._request("GET", f"{self.connection.base_url}/models")
        data = self._json(response, "the model list")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise RemoteError(f"{self._where} sent a model list without a "
                              f"\"data\" list. {CHECK_URL}", kind=RemoteError.MALFORMED)
        models = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
                n_ctx = as_int(meta.get("n_ctx")) or as_int(item.get("max_model_len"))
                models.append(RemoteModel(item["id"], n_ctx, str(item.get("owned_by") or "")))
        return models

    async def facts(self) -> ServerFacts:
        """What the server is: llama-server answers /props; otherwise /v1/models tells vLLM and Ollama."""
        root = self.connection.root
        response = await self._request("GET", f"{root}/props")
        props = loads(response.text) if response.status_code == 200 else None
        if isinstance(props, dict) and ("default_generation_settings" in props or "build_info" in props):
            settings = props.get("default_generation_settings")
            n_ctx = as_int(settings.get("n_ctx")) if isinstance(settings, dict) else None
            probe = await self._request("POST", f"{root}/apply-template",
                                        json={"messages": [{"role": "user", "content": "hi"}]})
            facts = ServerFacts("llama.cpp", n_ctx or as_int(props.get("n_ctx")),
                                str(props.get("build_info") or ""), probe.status_code == 200)
        elif response.status_code in (401, 403):
            raise self._status_error(response, "the server's properties")
        else:
            models = await self.models()
            owners = {model.owned_by.lower() for model in models}
            if "vllm" in owners:
                kind = "vllm"
            elif owners & {"library", "ollama"} or await self._answers_ollama_version():
                kind = "ollama"
            else:
                kind = "openai-compatible"
            facts = ServerFacts(kind, models[0].n_ctx if len(models) == 1 else None)
        self._facts = facts
        return facts

    async def count_tokens(self, messages: ChatMessages) -> int | None:
        """The prompt's exact length as the server's own template and tokenizer make it, or None when the
        server offers no /apply-template and /tokenize (then the caller estimates)."""
        prompt = await self._offered("/apply-template", {"messages": messages}, "prompt", str)
        # The same tokenization the server gives a chat's prompt: special tokens parsed and added.
        body = {"content": prompt, "add_special": True, "parse_special": True}
        tokens = None if prompt is None else await self._offered("/tokenize", body, "tokens", list)
        return None if tokens is None else len(tokens)

    async def chat(self, model: str, messages: ChatMessages, fields: dict
                   ) -> AsyncIterator[Piece | Retrying | Finished]:
        """One streamed answer: Pieces (and Retrying while the server is busy), then exactly one Finished.
        A last assistant message is the start of the answer, continued. Closing this generator (or
        cancelling its task) closes the HTTP response at once: the server stops writing."""
        last = messages[-1] if messages else {}
        prefill = last.get("content") if last.get("role") == "assistant" else None
        body = {**fields, "model": model, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}}
        if prefill is not None and (self._facts or await self.facts()).kind == "vllm":
            body |= {"continue_final_message": True, "add_generation_prompt": False}
        self._check_key()
        attempt, fresh_tried = 0, False
        while True:
            attempt += 1
            reader, wait, status = ChunkReader(prefill or None), None, None
            try:
                async with self._http.stream("POST", f"{self.connection.base_url}/chat/completions",
                                             json=body) as response:
                    status = response.status_code
                    if status in (429, 503) and attempt <= self.retries:
                        wait = self._wait_s(response, attempt)
                        log.info("%s is busy (HTTP %d): trying again in %.1f s (attempt %d of %d)",
                                 self._where, status, wait, attempt, self.retries)
                    elif status != 200:
                        await response.aread()
                        raise self._status_error(response, f"the model “{model}”")
                    else:
                        self._check_stream(response)
                        # Read to the end of the body, past [DONE]: leaving the loop early would
                        # leave httpx2's readers half-way, for the garbage collector to close.
                        async for event in httpx2.EventSource(response):
                            if event.data.strip() == "[DONE]":
                                continue
                            for piece in reader.feed(self._chunk(event.data)):
                                yield piece
            except httpx2.SSEError as exc:
                raise RemoteError(f"{self._where} sent a malformed event stream "
                                  f"({self._scrub(str(exc))}).", kind=RemoteError.MALFORMED) from None
            except httpx2.HTTPError as exc:
                if status is None and _stale(exc) and not fresh_tried:  # nothing was answered: try anew
                    attempt, fresh_tried = attempt - 1, True
                    continue
                if reader.finish_reason is None:  # broken after its final chunk: the answer is whole
                    raise self._transport_error(exc, mid_answer=reader.started) from None
            if wait is None:
                break
            yield Retrying(attempt, wait, status)
            await asyncio.sleep(wait)
        if reader.finish_reason is None:
            raise RemoteError(f"The answer from {self._where} stopped before its end. {KEPT}",
                              kind=RemoteError.CUT)
        yield reader.finished()

    # -- requests and their failures --------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.connection.host} (connection “{self.connection.name}”)"

    def _check_key(self) -> None:
        if not self._key_ok:
            raise RemoteError(f"The API key of the connection “{self.connection.name}” "
                              "contains spaces or characters a request header cannot carry. Enter it again "
                              "in Model ▸ Connections….", kind=RemoteError.KEY)

    async def _request(self, method: str, url: str, json: Any = None) -> httpx2.Response:
        self._check_key()
        try:
            return await self._http.request(method, url, json=json)
        except httpx2.HTTPError as exc:
            if not _stale(exc):
                raise self._transport_error(exc, mid_answer=False) from None
        try:  # once more, on a new connection
            return await self._http.request(method, url, json=json)
        except httpx2.HTTPError as exc:
            raise self._transport_error(exc, mid_answer=False) from None

    async def _offered(self, path: str, body: dict, field: str, kind: type) -> Any:
        """`field` of the answer to POST {root}{path}, or None when the server lacks that endpoint."""
        response = await self._request("POST", f"{self.connection.root}{path}", json=body)
        if response.status_code in NOT_OFFERED:
            return None
        data = self._json(response, f"the answer to {path}")
        if not isinstance(data, dict) or not isinstance(data.get(field), kind):
            raise RemoteError(f"{self._where} sent no {field} from {path}.", kind=RemoteError.MALFORMED)
        return data[field]

    def _json(self, response: httpx2.Response, what: str) -> Any:
        """The body of a 200 answer as JSON, or the specific error."""
        if response.status_code != 200:
            raise self._status_error(response, what)
        data = loads(response.text)
        if data is None:
            raise RemoteError(f"{self._where} sent {what} as something other than "
                              f"JSON ({_kind_of(response)}). {CHECK_URL}", kind=RemoteError.MALFORMED)
        return data

    def _chunk(self, data: str) -> dict:
        chunk = loads(data)
        if not isinstance(chunk, dict):
            raise RemoteError(f"{self._where} sent a stream chunk that is not the "
                              f"JSON expected: {self._scrub(data[:80])!r}.", kind=RemoteError.MALFORMED)
        if "error" in chunk:  # an error after the stream began (llama-server, vLLM)
            raise self._body_error(chunk, 0, "the answer")
        return chunk

    def _check_stream(self, response: httpx2.Response) -> None:
        if response.headers.get("content-type", "").partition(";")[0].strip().lower() != "text/event-stream":
            raise RemoteError(f"{self._where} answered with {_kind_of(response)} "
                              f"instead of a stream of events (SSE). {CHECK_URL}", kind=RemoteError.MALFORMED)

    def _wait_s(self, response: httpx2.Response, attempt: int) -> float:
        """Retry-After when the server says (capped), else exponential backoff."""
        try:
            return max(0.0, min(float(response.headers.get("retry-after", "")), MAX_WAIT_S))
        except ValueError:  # absent, or an HTTP date
            return min(self.backoff_s * 2 ** (attempt - 1), MAX_WAIT_S)

    def _status_error(self, response: httpx2.Response, what: str) -> RemoteError:
        return self._body_error(loads(response.text), response.status_code, what, response.text)

    def _body_error(self, body: Any, status: int, what: str, text: str = "") -> RemoteError:
        said = self._scrub(server_message(body, text))
        if not status and isinstance(body, dict) and isinstance(body.get("error"), dict):
            status = as_int(body["error"].get("code")) or 0  # an error sent inside the stream
        detail = f" (HTTP {status}: {said})" if status else f" ({said or 'an error'})"
        if status in (401, 403):
            if not self._has_key:
                return RemoteError(f"{self._where} needs an API key{detail}. Add it in "
                                   "Model ▸ Connections….", kind=RemoteError.KEY)
            return RemoteError(f"{self._where} refused the API key{detail}. Check the key "
                               "in Model ▸ Connections….", kind=RemoteError.KEY)
        lowered = said.lower()
        if status == 404 or "model" in lowered and ("not exist" in lowered or "not found" in lowered):
            return RemoteError(f"{self._where} does not have {what}{detail}. Choose "
                               "another model, or check the base URL (…/v1).", kind=RemoteError.MODEL_GONE)
        if status in (429, 503):
            return RemoteError(f"{self._where} is busy{detail}. Try again in a moment.",
                               kind=RemoteError.BUSY)
        return RemoteError(f"{self._where} could not answer{detail}.", kind=RemoteError.HTTP)

    def _transport_error(self, exc: httpx2.HTTPError, *, mid_answer: bool) -> RemoteError:
        reason = self._scrub(str(exc)) or type(exc).__name__
        timeout, where = f"{self.connection.timeout_s:g} s", self._where
        if _is_tls(exc):
            if isinstance(exc, httpx2.TimeoutException):
                reason = f"the handshake did not finish within {timeout}"
            return RemoteError(f"Could not make a secure (TLS) connection to {where}: {reason}. If the "
                               "server speaks plain HTTP, use an http:// address.", kind=RemoteError.TLS)
        if isinstance(exc, httpx2.ConnectTimeout):
            return RemoteError(f"{where} did not answer within {timeout}. Check that the host is up, or "
                               "raise the connection's timeout.", kind=RemoteError.TIMEOUT)
        if isinstance(exc, httpx2.TimeoutException):
            during = "in the middle of the answer" if mid_answer else "after the request"
            return RemoteError(f"{where} sent nothing for {timeout} {during}. The server may be overloaded; "
                               "raise the connection's timeout if it is slow.", kind=RemoteError.TIMEOUT)
        if isinstance(exc, httpx2.ConnectError | httpx2.UnsupportedProtocol):
            return RemoteError(f"Could not reach {where} ({self._scrub(_reach_reason(exc))}). Check that the "
                               "server is running and the address is right.", kind=RemoteError.UNREACHABLE)
        if isinstance(exc, httpx2.ReadError | httpx2.RemoteProtocolError | httpx2.CloseError):
            message = (f"The answer from {where} was cut off ({reason}). {KEPT}" if mid_answer
                       else f"{where} closed the connection without answering ({reason}).")
            return RemoteError(message, kind=RemoteError.CUT)
        return RemoteError(f"The request to {where} failed ({reason}).", kind=RemoteError.HTTP)

    def _scrub(self, text: str) -> str:
        """What the server or the network said, without the key or a header value in it."""
        for secret in self._secrets:
            text = text.replace(secret, "•••")
        return text

    async def _answers_ollama_version(self) -> bool:
        try:
            response = await self._http.get(f"{self.connection.root}/api/version")
        except httpx2.HTTPError:
            return False
        data = loads(response.text) if response.status_code == 200 else None
        return isinstance(data, dict) and "version" in data


def _stale(exc: httpx2.HTTPError) -> bool:
    """The connection failed before any answer, as a kept-alive one does when the server closed it
    meanwhile (idle, or restarted): the request is sent again once, on a new connection."""
    return isinstance(exc, httpx2.RemoteProtocolError | httpx2.ReadError | httpx2.WriteError)


def _kind_of(response: httpx2.Response) -> str:
    content_type = response.headers.get("content-type", "").partition(";")[0].strip()
    return "an HTML page" if content_type == "text/html" else (content_type or "no content type")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it came from (httpx2 wraps httpcore's, which wraps the OS's)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def _is_tls(exc: BaseException) -> bool:
    return any(isinstance(e, ssl.SSLError) or "SSL" in str(e) or "CERTIFICATE" in str(e).upper()
               for e in _chain(exc))


def _reach_reason(exc: BaseException) -> str:
    for cause in _chain(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host name not found"
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "no route to the host"
    return str(exc) or type(exc).__name__
