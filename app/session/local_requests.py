"""What waits in the local backend's queue (local_backend.py): an answer's stream, or an API
request for embeddings. Each is sent to the inference thread when its turn comes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.core.inference.backend import QueuedStream
from app.core.inference.types import EngineError

CLOSING = "Llamadesk is closing; the request was not answered."


class LocalStream(QueuedStream):
    """The events of one answer, in order, as the inference thread sent them. It may wait for
    the engine first (request_id None until it is sent)."""

    def __init__(self, call: dict, api: bool, stop: Callable[[LocalStream], None]) -> None:
        super().__init__()
        self.request_id: int | None = None
        self.api = api  # asked by the API server (else by the window)
        self.stopped = False  # asked to stop while it runs: it ends within one token
        self.model_changed = False  # stopped by a model change: it ends with MODEL_CHANGED
        self.sent_at = 0.0
        self._call = call  # InferenceClient.generate's arguments
        self._stop = stop

    def stop(self) -> None:
        if not self.ended:
            self._stop(self)


class EmbeddingJob:
    """An API request for embeddings, queued like an answer (the engine makes them between two
    answers); its future gets the Embeddings or the EngineError."""

    api = True
    stopped = model_changed = False

    def __init__(self, inputs: list[str] | list[list[int]], future: asyncio.Future) -> None:
        self.inputs = inputs
        self.future = future
        self.request_id: int | None = None
        self.sent_at = 0.0

    @property
    def ended(self) -> bool:
        return self.future.done()

    def push(self, event: object) -> None:
        """Ended while it waited: a model change (its EngineError) or a stop (its client left)."""
        if not self.future.done():
            self.future.set_exception(event if isinstance(event, EngineError)
                                      else EngineError("Stopped.", kind=EngineError.NOT_LOADED))

    def end(self) -> None:
        self.push(EngineError(CLOSING, kind=EngineError.NOT_LOADED))
