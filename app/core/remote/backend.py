"""A model served by a remote OpenAI-compatible engine, as a `Backend` (app/core/inference/backend.py).

Each answer is an asyncio task reading the server's SSE stream (app/core/remote/client.py) into a
queue the chat session iterates; answers run side by side (the server's parallel slots batch them),
and each stops on its own: its task is cancelled, which closes the HTTP stream at once. A reasoning
model's `reasoning_content` is handed on inside <think>…</think>, so the session keeps it apart from
the answer exactly as it does a local model's thought.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable

from app.core.chat.context_window import ContextFullError, OverflowPolicy, answer_reserve, fit_messages
from app.core.chat.reasoning import CLOSE, OPEN
from app.core.chat.sampling import SamplingParams
from app.core.inference.backend import Delta, PromptRead, QueuedStream, Waiting
from app.core.inference.types import ChatMessages, EngineError, GenerationStats, LoadOptions, ModelInfo
from app.core.remote import sampling_map
from app.core.remote.client import Finished, OpenAIClient, Piece, RemoteError, Retrying, ServerFacts
from app.core.remote.connections import Connection

log = logging.getLogger(__name__)
STOP_REASONS = {"stop": "eos", "length": "length", "eos": "eos"}


class RemoteStream(QueuedStream):
    """One answer being written by the server."""

    def __init__(self, backend: RemoteBackend, messages: ChatMessages, sampling: SamplingParams,
                 policy: str = OverflowPolicy.DROP_OLDEST) -> None:
        self.backend = backend
        self.sampling = sampling
        self.policy = OverflowPolicy(policy)
        super().__init__()
        self._started = time.monotonic()
        self._first: float | None = None  # when the first text came
        self._pieces = 0  # chunks of text: about one token each, until the server's usage says
        self._thinking = False
        self._task = asyncio.get_running_loop().create_task(self._pump(messages))

    async def _pump(self, messages: ChatMessages) -> None:
        try:
            await self.backend.ensure_connected()
            messages = await self._fit(messages)
        except EngineError as error:
            self.push(error)
            return
        fields = sampling_map.request_fields(self.sampling, self.backend.kind)
        chat = self.backend.client.chat(self.backend.model_id, messages, fields)
        try:
            async for event in chat:
                if isinstance(event, Piece):
                    self._piece(event)
                elif isinstance(event, Retrying):
                    self.push(Waiting(self.backend.busy_notice(event)))
                elif isinstance(event, Finished):
                    self._finish(event)
                    return
            self.push(RemoteError(f"{self.backend.connection.name} ({self.backend.connection.host}) "
                                   "ended the answer without saying it was complete.", kind=RemoteError.CUT))
        except EngineError as error:
            self.push(error)
        except Exception as error:  # noqa: BLE001 - a bug must end the answer, not leave it open
            log.exception("the remote answer failed")
            self.push(EngineError(f"The answer failed: {error}", kind=EngineError.GENERATION_FAILED))
        finally:
            await chat.aclose()

    async def _fit(self, messages: ChatMessages) -> ChatMessages:
        """The chat as the user's overflow policy sends it when it would not fit the server's
        context (as the local engine does), said with a PromptRead. Counted once by the server
        (or estimated); the turns to drop are chosen on the estimate scaled to that count."""
        n_ctx = self.backend.model.n_ctx if self.backend.model else 0
        if not n_ctx:  # the server did not say: it decides
            return messages
        reserve = answer_reserve(n_ctx, self.sampling.max_tokens)
        if most_tokens(messages) <= n_ctx - reserve:  # surely fits: no count, no extra request
            return messages
        total = await self.backend.count(messages) or estimate_tokens(messages)
        if total <= n_ctx - reserve:
            self.push(PromptRead(total, 0))
            return messages
        scale = total / max(1, estimate_tokens(messages))
        try:
            fit = fit_messages(messages, n_ctx, reserve, lambda m: math.ceil(estimate_tokens(m) * scale),
                               self.policy)
        except ContextFullError as error:
            raise EngineError(error.message, kind=EngineError.CONTEXT_TOO_SMALL) from None
        self.push(PromptRead(fit.prompt_tokens, fit.dropped))
        return fit.messages

    def _piece(self, piece: Piece) -> None:
        text = ""
        if piece.reasoning:
            text = piece.reasoning if self._thinking else OPEN + "\n" + piece.reasoning
            self._thinking = True
        if piece.text:
            text += (CLOSE + "\n" if self._thinking else "") + piece.text
            self._thinking = False
        if text:
            self._first = self._first or time.monotonic()
            self._pieces += 1
            self.push(Delta(text, 1))

    def _finish(self, finished: Finished | None) -> None:
        """The stats of the answer: the server's usage when it sent it, else what was counted here."""
        if self._thinking:
            self.push(Delta(CLOSE, 0))
            self._thinking = False
        now = time.monotonic()
        first = self._first or now
        completion = (finished.completion_tokens if finished and finished.completion_tokens is not None
                      else self._pieces)
        decode_s = now - first
        self.push(GenerationStats(
            prompt_tokens=(finished.prompt_tokens or 0) if finished else 0,
            completion_tokens=completion,
            ttft_s=first - self._started,
            tokens_per_s=(completion - 1) / decode_s if completion > 1 and decode_s > 0 else 0.0,
            total_s=now - self._started,
            stop_reason="user" if finished is None else STOP_REASONS.get(finished.finish_reason,
                                                                          finished.finish_reason),
            seed=self.sampling.seed or 0,
            cached_tokens=(finished.cached_tokens or 0) if finished else 0,
            server_model=finished.model if finished else "",
            system_fingerprint=finished.system_fingerprint if finished else "",
            server_tokens_per_s=(finished.predicted_per_second or 0.0) if finished else 0.0,
        ))

    def stop(self) -> None:
        """Close the HTTP stream now; the answer ends with what came, stop_reason "user"."""
        if not self.ended:
            self._task.cancel()
            self._finish(None)

    def end(self) -> None:
        """The app closes: no more events; what came stays in `take_arrived`."""
        self._task.cancel()
        super().end()


class RemoteBackend:
    """One model on one connection. `ensure_connected()` asks the server what it is (its kind, the
    context per slot, whether it tokenizes) before the first answer, and again after a failure (the
    server may be back); answers may run side by side."""

    side_by_side = True  # its answers go on while another chat is shown and answered

    def __init__(self, connection: Connection, model_id: str, api_key: str = "",
                 key_source: Callable[[], Awaitable[str]] | None = None) -> None:
        """key_source: reads the API key when first needed (the OS keyring may take a while)."""
        self.connection = connection
        self.model_id = model_id
        self.client = OpenAIClient(connection, api_key)
        self._key_source = key_source
        self.facts: ServerFacts | None = None
        self._model: ModelInfo | None = None
        self._streams: set[RemoteStream] = set()
        self._connecting: asyncio.Future | None = None

    async def ensure_connected(self) -> ModelInfo:
        """Connect once; answers and counts asked meanwhile wait for the same attempt."""
        if self._model is not None:
            return self._model
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect_once())
        return await asyncio.shield(self._connecting)

    async def _connect_once(self) -> ModelInfo:
        if self._key_source is not None:
            key, self._key_source = await self._key_source(), None
            await self.client.aclose()
            self.client = OpenAIClient(self.connection, key)
        return await self.connect()

    @property
    def kind(self) -> str:
        return self.facts.kind if self.facts else "openai-compatible"

    async def connect(self) -> ModelInfo:
        """What the server offers; RemoteError when it cannot be reached or no longer has the model."""
        models = await self.client.models()
        found = next((m for m in models if m.id == self.model_id), None)
        if found is None:
            offered = ", ".join(m.id for m in models[:5]) or "none"
            raise RemoteError(f"{self.connection.name} ({self.connection.host}) no longer offers the model "
                              f"{self.model_id} (it offers: {offered}).", kind=RemoteError.MODEL_GONE)
        self.facts = await self.client.facts()
        n_ctx = self.facts.n_ctx or found.n_ctx or 0
        facts, connection = self.facts, self.connection
        self._model = ModelInfo(
            path=self.model_id, name=self.model_id, architecture="remote", n_ctx=n_ctx, n_layers=0,
            gpu_layers=0, backend=f"{facts.kind} at {connection.host}", chat_template="the server's",
            llama_cpp_version=facts.build, connection=connection.name, host=connection.host,
            sampling_fields=sampling_map.supported_fields(facts.kind), exact_count=facts.can_tokenize)
        return self._model

    def busy_notice(self, retrying: Retrying) -> str:
        return (f"{self.connection.name} is busy ({retrying.status}): trying again in "
                f"{retrying.wait_s:.0f} s (attempt {retrying.attempt + 1})")

    # -- Backend ------------------------------------------------------------------------------------

    def load(self, source: str, options: LoadOptions) -> None:  # noqa: ARG002 - a server loads its own
        """Nothing to load here: `connect()` asks the server."""

    def unload(self) -> None:
        self.stop()

    @property
    def model(self) -> ModelInfo | None:
        return self._model

    @property
    def is_loading(self) -> bool:
        """Until connected: an answer asked now connects first (and says why if it cannot)."""
        return self._model is None

    @property
    def busy(self) -> bool:
        return False  # the server queues and batches: another answer may always start

    def stream(self, messages: ChatMessages, sampling: SamplingParams, cache_key: str | None = None,
               continue_text: str = "", policy: str = OverflowPolicy.DROP_OLDEST) -> RemoteStream:
        """cache_key is the server's business (its slots keep their own caches); policy says what is
        sent of a chat longer than the server's context."""
        if continue_text:
            messages = [*messages, {"role": "assistant", "content": continue_text}]
        stream = RemoteStream(self, messages, sampling, policy)
        self._streams = {s for s in self._streams if not s.ended}
        self._streams.add(stream)
        return stream

    def stop(self) -> None:
        for stream in self._streams:
            stream.stop()

    async def count(self, messages: ChatMessages) -> int | None:
        """The server's own count when it tokenizes (llama-server), else an estimate (~4 characters
        a token, as `exact_count` tells the meter)."""
        try:
            await self.ensure_connected()
        except EngineError:
            return None
        if self.facts is not None and self.facts.can_tokenize:
            try:
                counted = await self.client.count_tokens(messages)
            except RemoteError as error:
                log.info("counting on %s failed: %s", self.connection.name, error.message)
                counted = None
            if counted is not None:
                return counted
        return estimate_tokens(messages)

    def close(self) -> None:
        for stream in self._streams:
            stream.end()
        self._streams.clear()
        with contextlib.suppress(RuntimeError):  # no loop runs any more: the sockets close with the process
            asyncio.get_running_loop().create_task(self.client.aclose())


def most_tokens(messages: ChatMessages) -> int:
    """More tokens than the chat can be: a byte-level tokenizer makes at most one token of each
    byte, plus the chat template's framing of each message."""
    return sum(len(m.get("content", "").encode()) + 16 for m in messages) + 64


def estimate_tokens(messages: ChatMessages) -> int:
    """About 4 characters a token, plus a few for each message's framing."""
    return sum(len(m.get("content", "")) // 4 + 4 for m in messages)
