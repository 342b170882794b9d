"""`python -m app ask "prompt"`: one answer on stdout, from a local model or a remote server.

Only the answer goes to stdout, flushed as it arrives; a reasoning model's thought goes to stderr,
so a script gets just the answer. The question and the answer are stored as a new conversation as
the window stores them (unless --no-save): the question before the model starts, the answer as it
streams, so a kill or Ctrl+C mid-answer keeps what came, marked incomplete. Exit codes as in
app/cli.py, and 130 after Ctrl+C. A local model runs in the engine's own process (as the window's
does), so a model file that makes llama.cpp abort ends in a one-line message, not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from app.cli import CLI_BUSY_TIMEOUT_MS, _one_line, _printable
from app.core.chat.reasoning import THOUGHT, ReasoningSplitter
from app.core.chat.sampling import RANGES, SamplingParams
from app.core.chat.system_prompts import MAX_PROMPT_LENGTH
from app.core.common.errors import UserFacingError
from app.core.conversations.answer_recorder import AnswerRecorder
from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import ConversationStore, StoreError, default_store_path
from app.core.inference.types import ChatMessages, GenerationStats, LoadOptions, ModelInfo

INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command ended by Ctrl+C
ENGINE_LOG = "engine-ask.log"  # not the window's engine.log, which a running window is writing
REQUEST = 1  # the one request this process makes of its engine


def _prompt(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the prompt is empty")
    return text


def _system(text: str) -> str:
    if len(text) > MAX_PROMPT_LENGTH:
        raise argparse.ArgumentTypeError(f"a system prompt can be at most {MAX_PROMPT_LENGTH:,} characters")
    return text


def _max_tokens(text: str) -> int:
    limit = RANGES["max_tokens"]
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not limit.low <= value <= limit.high:
        raise argparse.ArgumentTypeError(f"a whole number from {limit.low:.0f} (no limit) to "
                                         f"{limit.high:.0f}, not {text!r}")
    return value


def add_parser(subparsers) -> None:
    ask = subparsers.add_parser("ask", help="answer one prompt on stdout and store it as a conversation")
    ask.add_argument("prompt", type=_prompt, help="the question, in quotes")
    ask.add_argument("--model", dest="ask_model", metavar="NAME-or-PATH",
                     help="a library model's name (see `models list`) or a .gguf file (default: your "
                          "default model); with --connection, the model id on the server (default: the first "
                          "it lists)")
    ask.add_argument("--connection", metavar="NAME",
                     help="a saved connection (see `connections list`): that server answers")
    ask.add_argument("--system", type=_system, metavar="TEXT",
                     help="the conversation's system prompt (default: your default for new chats)")
    ask.add_argument("--max-tokens", type=_max_tokens, metavar="N",
                     help="the longest answer in tokens, 0 for no limit (default: your default sampling's)")
    ask.add_argument("--no-save", action="store_true", help="do not store the conversation")


def run(args: argparse.Namespace) -> int:
    from app.core.chat.defaults import DefaultsStore

    store = None
    try:
        defaults = DefaultsStore().load()
        sampling = defaults.sampling
        if args.max_tokens is not None:
            sampling = sampling.replace(max_tokens=args.max_tokens)
        system = defaults.system_prompt if args.system is None else args.system
        conversation = Conversation(system_prompt=system, sampling=sampling)
        conversation.append("user", args.prompt)
        if not args.no_save:
            store = ConversationStore(default_store_path(), busy_timeout_ms=CLI_BUSY_TIMEOUT_MS)
        answer = Answer(store, conversation)
        if args.connection is not None:
            return asyncio.run(ask_remote(args.connection, args.ask_model or "", answer))
        return ask_local(args.ask_model, answer)
    except (UserFacingError, StoreError) as error:
        print(_one_line(error.message), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # while loading or connecting, before anything was stored
        print("Stopped; nothing was stored.", file=sys.stderr)
        return INTERRUPTED
    finally:
        if store is not None:
            store.close()


class Answer:
    """One answer: printed as it streams (its thought on stderr) and stored as it grows."""

    def __init__(self, store: ConversationStore | None, conversation: Conversation) -> None:
        self.store = store
        self.conversation = conversation
        self.recorder: AnswerRecorder | None = None
        self.interrupted = False  # Ctrl+C
        self.reader_gone = False  # stdout's reader went away (`| head`): nothing more is written
        self.dropped = 0
        self._splitter = ReasoningSplitter()
        self._thinking_since: float | None = None
        self._thought_s = 0.0
        self._last = {sys.stdout: "\n", sys.stderr: "\n"}  # the last character written to each

    @property
    def chat(self) -> ChatMessages:
        return self.conversation.chat_messages()

    @property
    def sampling(self) -> SamplingParams:
        return self.conversation.sampling

    def begin(self, model: str, connection: str = "") -> None:
        """The question and the empty answer, committed in one transaction before the model starts."""
        conversation = self.conversation
        conversation.model, conversation.connection = model, connection
        if self.store is None:
            return
        question = conversation.thread()[-1]
        answer = Message("assistant", "", parent_id=question.id)
        conversation.messages.append(answer)
        with self.store.transaction():
            self.store.add_message(conversation, question)
            self.recorder = AnswerRecorder(self.store, conversation, answer)

    def feed(self, text: str) -> None:
        self._take(self._splitter.feed(text))

    def notice(self, text: str) -> None:
        """A line on stderr (a busy server being retried), never among the answer's text."""
        self._write(sys.stderr, ("" if self._last[sys.stderr] == "\n" else "\n") + _printable(text) + "\n")

    def _take(self, pieces: list[tuple[str, str]]) -> None:
        """Stored first, then shown: a reader gone from stdout loses nothing of what came."""
        answer = "".join(text for kind, text in pieces if kind != THOUGHT)
        thought = "".join(text for kind, text in pieces if kind == THOUGHT)
        if self.recorder is not None and (answer or thought):
            self.recorder.feed(answer, thought)
        for kind, text in pieces:
            if kind == THOUGHT:
                if self._thinking_since is None:
                    self._thinking_since = time.monotonic()
                self._write(sys.stderr, text)
            else:
                self._thought_ended()
                self._write(sys.stdout, text)

    def _thought_ended(self) -> None:
        if self._thinking_since is not None:
            self._thought_s = time.monotonic() - self._thinking_since
            self._thinking_since = None
            if self._last[sys.stderr] != "\n":
                self._write(sys.stderr, "\n")

    def _write(self, stream, text: str) -> None:
        if not text or self.reader_gone:
            return
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            self.reader_gone = True
            raise
        self._last[stream] = text[-1]

    def finish(self, info: ModelInfo | None, stats: GenerationStats | None) -> None:
        """The end of the stream (stats None: it failed or was cut short): the rest of the text, a
        final newline, and the answer completed in the store with how it was made."""
        self._take(self._splitter.finish())
        self._thought_ended()
        if self._last[sys.stdout] != "\n":
            self._write(sys.stdout, "\n")
        if self.recorder is None:
            return
        record = None
        if stats is not None:
            from app.session.answer_records import AnswerRecords

            records = AnswerRecords(self.store)
            if info is not None and not info.remote and self.store.cached_sha256(Path(info.path)):
                records.hash_model(Path(info.path))  # known already: no hashing of a large file here
            record = records.record(info, self.sampling, stats, self.dropped)
            record.thought_s = self._thought_s
        self.recorder.finish(record, incomplete=stats is None or stats.stop_reason == "user")

    def outcome(self) -> int:
        """Said on stderr after the answer: where it is stored."""
        where = f"conversation {self.conversation.id}"
        if self.interrupted:
            print(f"Stopped: the answer so far is stored as {where}, marked incomplete." if self.recorder
                  else "Stopped.", file=sys.stderr)
            return INTERRUPTED
        if self.recorder is not None:
            print(f"Saved as {where}", file=sys.stderr)
        return 0

    def failed(self, error: UserFacingError) -> int:
        """The answer broke off: one line saying why, and where what came is stored."""
        stored = (f" What came is stored as conversation {self.conversation.id}, marked incomplete."
                  if self.recorder is not None else "")
        print(_one_line(error.message) + stored, file=sys.stderr)
        return 1


# ---------------------------------------------------------------------------- a local model


def local_model(given: str | None) -> tuple[Path, LoadOptions]:
    """The model file and its load settings: a path, a library model's name or file name, or the
    default model (the user's choice, else the embedded one)."""
    from app.core.models.library import ModelLibrary

    library = ModelLibrary()
    if given is None:
        path = library.default_model()
        if path is None:
            raise UserFacingError("There is no default model: give one with --model (a .gguf file or a name "
                                  "from `python -m app models list`), or download one with "
                                  "`python -m app models download`.")
    elif Path(given).is_file():
        path = Path(given)
    else:
        found = [e.path for e in library.scan() if given in (e.name, e.path.name)]
        if not found:
            raise UserFacingError(f"No model named {given} in the library and no such file: see "
                                  "`python -m app models list`.")
        path = found[0]
    return path, library.settings_for(path).load_options()


def ask_local(given: str | None, answer: Answer) -> int:
    from app import paths
    from app.core.chat.context_window import OverflowPolicy
    from app.core.inference.local.engine_process import EngineProcess
    from app.core.inference.types import EngineError

    path, options = local_model(given)
    engine = EngineProcess(paths.log_dir() / ENGINE_LOG)
    try:
        info = engine.load(str(path), options)
        answer.begin(Path(info.path).name)
        stats = None

        def stop(signum, frame) -> None:
            """Ctrl+C: the engine stops after its current token and the answer ends as stopped;
            a second Ctrl+C ends it at once."""
            if answer.interrupted:
                raise KeyboardInterrupt
            answer.interrupted = True
            engine.request_stop(REQUEST)

        previous = signal.signal(signal.SIGINT, stop)
        try:
            events = engine.generate(REQUEST, answer.chat, answer.sampling, None, "", OverflowPolicy.STOP)
            for event in events:
                if event[0] == "token":
                    answer.feed(event[1])
                elif event[0] == "prompt_ready":
                    answer.dropped = event[2]
                elif event[0] == "finished":
                    stats = event[1]
        except EngineError as error:
            answer.finish(info, None)
            return answer.failed(error)
        finally:
            signal.signal(signal.SIGINT, previous)
        answer.finish(info, stats)
        return answer.outcome()
    except (KeyboardInterrupt, BrokenPipeError) as stopped:
        if answer.recorder is None:
            raise
        answer.finish(None, None)  # what came, incomplete
        if isinstance(stopped, BrokenPipeError):
            raise  # app/__main__.py ends quietly with 141
        answer.interrupted = True
        return answer.outcome()
    finally:
        engine.request_stop(REQUEST)  # if it is still answering (a second Ctrl+C): it stops, then ends
        engine.close()


# ---------------------------------------------------------------------------- a remote server


async def ask_remote(name: str, model_id: str, answer: Answer) -> int:
    """Under asyncio.run, which turns Ctrl+C into this task's cancellation: the stream is stopped
    and what came is kept."""
    from app.core.inference.backend import Delta, Waiting
    from app.core.inference.types import EngineError
    from app.core.remote.backend import RemoteBackend
    from app.core.remote.connections import ConnectionsFile
    from app.core.remote.keys import key_store

    connection = ConnectionsFile().get(name)
    if connection is None:
        raise UserFacingError(f"No connection named {name}: see `python -m app connections list`.")
    backend = RemoteBackend(connection, model_id, key_store().get(connection.name))
    try:
        offered = [model.id for model in await backend.client.models()]
        if not model_id and not offered:
            raise UserFacingError(f"{connection.name} ({connection.host}) offers no models.")
        if model_id and model_id not in offered:
            raise UserFacingError(f"{connection.name} ({connection.host}) has no model {model_id}; it offers "
                                  f"{', '.join(offered[:5]) or 'none'} (see `python -m app connections test "
                                  f"{connection.name}`).")
        backend.model_id = model_id or offered[0]
        info = await backend.ensure_connected()
        answer.begin(info.name, connection.name)
        stream = backend.stream(answer.chat, answer.sampling)
        stats = None

        def take(event) -> None:
            nonlocal stats
            if isinstance(event, Delta):
                answer.feed(event.text)
            elif isinstance(event, Waiting):
                answer.notice(event.reason)
            elif isinstance(event, GenerationStats):
                stats = event

        try:
            async for event in stream:
                take(event)
        except EngineError as error:
            answer.finish(info, None)
            return answer.failed(error)
        except asyncio.CancelledError:  # Ctrl+C
            answer.interrupted = True
            stream.stop()  # closes the HTTP stream; the answer ends as stopped
            for event in stream.take_arrived():
                take(event)
        except BrokenPipeError:
            stream.stop()
            answer.finish(info, None)  # what came, incomplete
            raise  # app/__main__.py ends quietly with 141
        answer.finish(info, stats)
        return answer.outcome()
    finally:
        await backend.client.aclose()
