"""The answer being written: the backend's stream, batched into the store and out to the view.

An answer is an asyncio task iterating the backend's stream. Text is buffered and flushed every
FLUSH_MS: handed to the AnswerRecorder (which writes it at least every half second, also when
nothing new came, so a stall loses nothing shown), then announced to the view. A reasoning
model's thought (<think>…</think> at the start) is told apart as it streams: it goes into the
message's `thought`, not its text, and out on `thought_arrived`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.chat.reasoning import THOUGHT, ReasoningSplitter
from app.core.chat.sampling import SamplingParams
from app.core.conversations.answer_recorder import AnswerRecorder
from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import StoreError
from app.core.inference.backend import (
    Backend,
    Delta,
    PromptProgress,
    PromptRead,
    Stream,
    StreamEvent,
    Waiting,
)
from app.core.inference.types import EngineError, GenerationStats
from app.session import tasks
from app.session.answer_records import AnswerRecords

FLUSH_MS = 50  # 20 updates a second: each one costs the GUI thread CPU that llama.cpp competes for
log = logging.getLogger(__name__)


class AnswerWriter(QObject):
    text_arrived = Signal(str)  # new text of the answer (saved at least every AnswerRecorder interval)
    thought_arrived = Signal(str)  # new text of a reasoning model's thought (comes before the answer's)
    prompt_read = Signal(int)  # earlier messages left out (the context report follows)
    progress = Signal(int, int)  # prompt tokens read, of total
    context = Signal(int)  # tokens the chat uses now: the prompt and the answer so far
    waiting = Signal(str)  # why the answer waits (a busy server being retried)
    # How it ended: GenerationStats, an EngineError, or None (stopped because saving failed, or
    # the app closed); the StoreError that kept its text or its end from being saved, if any; the
    # answer (Message) and the conversation it belongs to.
    ended = Signal(object, object, object, object)

    def __init__(self, backend: Backend, records: AnswerRecords, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.records = records
        self.stream: Stream | None = None
        self.answer: Message | None = None
        self.owner: Conversation | None = None  # the conversation being answered
        self.rollback = None  # what the request added (a Rollback), taken back if it is refused
        self.recorder: AnswerRecorder | None = None
        self.prompt_tokens = 0
        self.streamed_tokens = 0
        self.dropped = 0  # earlier messages left out of the answer being written
        self._sampling = SamplingParams()
        self._buffer: list[str] = []
        self._thought: list[str] = []  # thought pieces not flushed yet
        self._splitter = ReasoningSplitter()
        self._thinking_since: float | None = None  # when the first thought piece came (self.clock)
        self._thought_joins = ""  # put before the first piece when a stopped thought is continued
        self.thought_s = 0.0  # seconds from the first thought piece to the closing tag
        self.clock: Callable[[], float] = time.monotonic  # a test gives its own
        self._timer = QTimer(self)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self.flush)

    @property
    def running(self) -> bool:
        return self.stream is not None

    def start(self, stream: Stream, recorder: AnswerRecorder, owner: Conversation,
              sampling: SamplingParams) -> None:
        self.stream, self.recorder, self.answer, self.owner = stream, recorder, recorder.message, owner
        self._sampling = sampling
        self.prompt_tokens = self.streamed_tokens = self.dropped = 0
        answer = recorder.message
        # An answer continued after its thought goes on as answer; one stopped mid-thought goes on
        # thinking, as a new paragraph of the same thought.
        continues_thought = bool(answer.thought) and not answer.text
        self._splitter = ReasoningSplitter(answering=bool(answer.text), opened=continues_thought)
        self._thought_joins = "\n\n" if continues_thought else ""
        self._thinking_since, self.thought_s = None, 0.0
        self._timer.start()
        tasks.start(self._follow(stream), "answer")

    async def _follow(self, stream: Stream) -> None:
        """Every answer ends here, whatever happens: an answer left running would refuse every
        later question."""
        try:
            async for event in stream:
                self._on_event(stream, event)
        except EngineError as error:
            if stream is self.stream:
                self._fail(error)
        except Exception as error:  # noqa: BLE001 - a bug must end the answer, not leave it open
            log.exception("the answer failed")
            if stream is self.stream:
                self._fail(EngineError(f"The answer failed: {error}", kind=EngineError.GENERATION_FAILED))
        else:
            if stream is self.stream:  # the stream ended without its stats
                self._fail(EngineError("The answer ended before it was complete.",
                                       kind=EngineError.GENERATION_FAILED))

    def take_arrived(self) -> None:
        """The backend was closed (the app quits): take in what arrived, keep it, incomplete."""
        stream = self.stream
        if stream is None:
            return
        for event in stream.take_arrived():
            self._on_event(stream, event)
        self._end_of_stream()
        self.flush()
        if self.recorder is not None:
            problem = self._finish(None, incomplete=True)
            if problem is not None:
                log.warning("the end of the answer could not be saved at exit: %s", problem.message)
            self._end(None, None)

    def _on_event(self, stream: Stream, event: StreamEvent) -> None:
        if stream is not self.stream:
            return  # an answer that already ended here (its save failed)
        if isinstance(event, Delta):
            self._take(self._splitter.feed(event.text))
            self.streamed_tokens += event.tokens
        elif isinstance(event, PromptRead):
            self.prompt_tokens, self.dropped = event.tokens, event.dropped
            self.prompt_read.emit(event.dropped)
            self.context.emit(self.prompt_tokens)
        elif isinstance(event, PromptProgress):
            self.progress.emit(event.done, event.total)
        elif isinstance(event, Waiting):
            self.waiting.emit(event.reason)
        elif isinstance(event, GenerationStats):
            self._succeed(event)

    def _take(self, pieces: list[tuple[str, str]]) -> None:
        """Buffer the thought's and the answer's pieces apart; time the thought."""
        for kind, text in pieces:
            if kind == THOUGHT:
                if self._thinking_since is None:
                    self._thinking_since = self.clock()
                    text, self._thought_joins = self._thought_joins + text, ""
                self._thought.append(text)
            else:
                self._buffer.append(text)
        self._time_thought(ended=False)

    def _time_thought(self, ended: bool) -> None:
        """The thought took from its first piece to its closing tag (or to the end of the stream)."""
        if self._thinking_since is not None and (ended or not self._splitter.thinking):
            self.thought_s = self.clock() - self._thinking_since
            self._thinking_since = None

    def _end_of_stream(self) -> None:
        """Nothing more comes: what the splitter held back is the model's text after all."""
        self._take(self._splitter.finish())
        self._time_thought(ended=True)

    def flush(self) -> None:
        """Save what arrived, then show it; with nothing new, still save what is due."""
        if self.recorder is None:
            return
        chunk, thought = "".join(self._buffer), "".join(self._thought)
        self._buffer.clear()
        self._thought.clear()
        try:
            self.recorder.feed(chunk, thought)
        except StoreError as error:
            self._save_failed(error)
            return
        if thought:
            self.thought_arrived.emit(thought)
        if chunk:
            self.text_arrived.emit(chunk)
        if chunk or thought:
            self.context.emit(self.prompt_tokens + self.streamed_tokens)

    def _save_failed(self, error: StoreError) -> None:
        """Saving failed: the backend stops, and the answer holds exactly what the store holds."""
        if self.stream is not None:
            self.stream.stop()
        assert self.recorder is not None and self.answer is not None
        self.answer.text, self.answer.incomplete = self.recorder.saved_text, True
        self.answer.thought = self.recorder.saved_thought
        self._buffer.clear()
        self._thought.clear()
        self._end(None, error)

    def _finish(self, record, incomplete: bool) -> StoreError | None:
        """Complete the saved answer; if the store refuses, the answer keeps the text as saved."""
        assert self.recorder is not None
        return finish_recorder(self.recorder, record, incomplete)

    def _succeed(self, stats: GenerationStats) -> None:
        self._end_of_stream()
        self.flush()
        if self.recorder is None:  # saving failed in that flush: the answer has ended
            return
        record = self.records.record(self.backend.model, self._sampling, stats, self.dropped)
        record.thought_s = self.thought_s
        problem = self._finish(record, incomplete=stats.stop_reason == "user")
        self.prompt_tokens, self.streamed_tokens = stats.prompt_tokens, stats.completion_tokens
        self.context.emit(stats.prompt_tokens + stats.completion_tokens)
        self._end(stats, problem)

    def _fail(self, error: EngineError) -> None:
        self._end_of_stream()
        self.flush()
        if self.recorder is None:
            return
        self._end(error, self._finish(None, incomplete=True))

    def _end(self, outcome: GenerationStats | EngineError | None, problem: StoreError | None) -> None:
        answer, owner = self.answer, self.owner
        self._timer.stop()
        self.stream = self.recorder = self.answer = self.owner = None
        self.ended.emit(outcome, problem, answer, owner)


def finish_recorder(recorder: AnswerRecorder, record, incomplete: bool) -> StoreError | None:
    """Complete a saved answer; if the store refuses, the message keeps the text as saved."""
    try:
        recorder.finish(record, incomplete=incomplete)
    except StoreError as error:
        answer = recorder.message
        answer.text, answer.incomplete, answer.generation = recorder.saved_text, True, None
        answer.thought = recorder.saved_thought
        return error
    return None
