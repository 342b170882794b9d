"""The local engine in a process of its own, so a bad model file cannot take the window with it.

llama.cpp can abort (a failed GGML_ASSERT), hang or balloon on a damaged file or a hostile chat
template. In its own process that costs the model, never the window or a chat: the parent sees
the pipe close, reports llama.cpp's last words from the engine's log, keeps the partial answer,
and starts a new process for the next request.

`EngineProcess` is the parent's handle (one thread calls `load`/`generate`/...; `request_stop`
and `kill` are safe from any thread). `serve` is the child: one Engine, one request at a time.
Messages are tuples over a multiprocessing pipe; Stop is a shared integer the child reads after
every token and between prompt batches, so it needs no message and no round trip.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from app.core.engine_types import EngineError, GenerationStats, LoadOptions, Message, ModelInfo

log = logging.getLogger(__name__)

# Text is sent to the window at most this often (the first piece at once): each message wakes the
# window's threads, which on a machine with as many busy llama.cpp threads as cores costs speed.
# The window draws every 50 ms anyway; Stop is read in the engine after every token regardless.
SEND_EVERY_S = 0.05
STOP_GRACE_S = 5.0  # Stop not honoured by then (llama.cpp stuck in C code): the process is ended
_HEADROOM = 1536 * 1024**2  # beyond the memory estimate: Python, llama.cpp's buffers, KV snapshots in RAM
_NO_MODEL_LIMIT = 2 * 1024**3  # before a model is loaded
_LOG_TAIL = 64 * 1024


class EngineCrashed(EngineError):
    """The engine's process ended unexpectedly (or was ended): kind "crashed"."""

    def __init__(self, message: str, stopped: bool = False) -> None:
        super().__init__("crashed", message)
        self.stopped = stopped  # ended by us after a Stop that llama.cpp did not honour


class EngineProcess:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded Qt process
        self._stop_upto = self._context.RawValue("q", 0)
        self._process = None
        self._connection = None
        self._ended_by = ""  # why this side ended the process, if it did: "stop" or "shutdown"
        self._starts = 0

    # -- safe from any thread ---------------------------------------------------------------------

    def request_stop(self, request_id: int) -> None:
        """Requests with an id up to this one stop after their current token or batch."""
        self._stop_upto.value = max(self._stop_upto.value, request_id)

    def kill(self, reason: str) -> None:
        """End the process now (a Stop not honoured in time, or closing)."""
        process = self._process
        if process is not None and process.is_alive():
            log.warning("ending the engine process (%s)", reason)
            self._ended_by = reason
            process.kill()

    @property
    def restarts(self) -> int:
        """Processes started after the first (after crashes and ended stops)."""
        return max(0, self._starts - 1)

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    # -- from the one calling thread --------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def load(self, path: str, options: LoadOptions) -> ModelInfo:
        for event in self._call("load", path, options):
            if event[0] == "loaded":
                return event[1]
        raise AssertionError("unreachable")

    def unload(self) -> None:
        if self.running:
            for _ in self._call("unload"):
                pass

    def info(self) -> ModelInfo | None:
        """The model the process has loaded, if any."""
        for event in self._call("info"):
            if event[0] == "info":
                return event[1]
        return None

    def keep_kv(self, keys: set[str]) -> None:
        """Only these conversations' KV caches may remain (see Engine.keep_kv)."""
        for _ in self._call("keep_kv", set(keys)):
            pass

    def count(self, messages: Sequence[Message]) -> int | None:
        for event in self._call("count", list(messages)):
            if event[0] == "counted":
                return event[1]
        return None

    def generate(self, request_id: int, messages: Sequence[Message], sampling, cache_key: str | None,
                 continue_text: str, policy: str) -> Iterator[tuple]:
        """Events: ("prompt_ready", tokens, dropped), ("progress", done, total), ("token", text, pieces),
        then ("finished", GenerationStats). Failures raise EngineError (EngineCrashed)."""
        for event in self._call("generate", request_id, list(messages), sampling, cache_key, continue_text,
                                policy):
            if event[0] != "done":
                yield event

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the process to save its KV snapshots and end; end it if it does not in time."""
        process, connection = self._process, self._connection
        if process is None:
            return
        with contextlib.suppress(OSError, EOFError, ValueError):
            if process.is_alive():
                connection.send(("shutdown",))
                if connection.poll(timeout_s):
                    connection.recv()
        process.join(timeout_s)
        if process.is_alive():
            self.kill("shutdown")
            process.join()
        self._forget()

    # -- inside -------------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._process is not None:
            self._forget()
        self._starts += 1
        parent, child = self._context.Pipe()
        self._ended_by = ""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        process = self._context.Process(target=serve, args=(child, self._stop_upto, str(self.log_path)),
                                        name="llamadesk-engine", daemon=True)
        process.start()
        child.close()
        self._process, self._connection = process, parent

    def _forget(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._process is not None:
            self._process.join(1)
        self._process = self._connection = None

    def _call(self, *command) -> Iterator[tuple]:
        """Send one command and yield its events up to and including the final one."""
        if not self.running:
            self._start()
        try:
            self._connection.send(command)
            while True:
                event = self._connection.recv()
                if event[0] == "error":
                    raise EngineError(event[1], event[2])
                yield event
                if event[0] in ("loaded", "unloaded", "counted", "info", "kept", "done"):
                    return
        except (EOFError, OSError) as error:
            raise self._crash_error(command[0]) from error

    def _crash_error(self, doing: str) -> EngineCrashed:
        process = self._process
        if process is not None:
            process.join(5)
        code = process.exitcode if process is not None else None
        reason = self._ended_by
        self._forget()
        if reason == "stop":
            return EngineCrashed("The model did not stop in time, so its process was ended; the answer "
                                 "so far is kept.", stopped=True)
        if reason == "shutdown":
            return EngineCrashed("The model's process was ended while closing.", stopped=True)
        how = _exit_description(code)
        last = last_log_line(self.log_path)
        what = {"load": "loading the model", "generate": "writing the answer",
                "count": "counting tokens"}.get(doing, "working")
        message = f"The model's process stopped unexpectedly while {what} ({how})."
        if last:
            message += f" llama.cpp said: {last}"
        if doing == "generate":
            message += " The answer so far is kept; the model is loaded again for your next message."
        else:
            message += " The window and your conversations are fine."
        return EngineCrashed(message)


def _exit_description(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def last_log_line(path: Path) -> str:
    """The most telling recent line of the engine's log: an assertion or error, else the last."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - _LOG_TAIL))
            lines = [line.strip() for line in file.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    for marker in ("GGML_ASSERT", "error", "terminate called", "Error"):
        for line in reversed(lines):
            if marker in line:
                return line[:300]
    return lines[-1][:300] if lines else ""


# -- the child ------------------------------------------------------------------------------------

def serve(connection, stop_upto, log_path: str) -> None:
    """The engine process: run one command at a time until told to shut down or the parent goes."""
    _log_to(Path(log_path))
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb attach on an assertion: just the line
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the window's to handle
    _limit_memory(_NO_MODEL_LIMIT)
    from app import paths
    from app.core.engine import Engine
    from app.core.kv_cache import KVCacheStore

    engine = Engine(KVCacheStore(paths.cache_dir() / "kv"))
    handler = _Handler(engine, connection, lambda request_id: request_id <= stop_upto.value)
    while True:
        try:
            command = connection.recv()
        except (EOFError, OSError):
            break  # the window has gone
        if command[0] == "shutdown":
            with contextlib.suppress(Exception):
                engine.unload()  # writes the KV snapshots
            with contextlib.suppress(OSError):
                connection.send(("bye",))
            break
        try:
            handler.run(*command)
        except (BrokenPipeError, EOFError):
            break
    sys.stderr.flush()


class _Handler:
    def __init__(self, engine, connection, stopped: Callable[[int], bool]) -> None:
        self.engine, self.connection, self.stopped = engine, connection, stopped

    def send(self, *event) -> None:
        self.connection.send(event)

    def run(self, name: str, *args) -> None:
        from app.core.chat_template import TemplateError
        from app.core.context_window import ContextFullError

        try:
            getattr(self, name)(*args)
        except EngineError as error:
            self.send("error", error.kind, error.message)
        except ContextFullError as error:
            self.send("error", EngineError.CONTEXT_TOO_SMALL, error.message)
        except TemplateError as error:
            self.send("error", EngineError.GENERATION_FAILED, error.message)
        except MemoryError:
            self.send("error", EngineError.DOES_NOT_FIT, "The model's process ran out of the memory it may "
                      "use (the model's estimate plus headroom), so the request was stopped. Choose a "
                      "shorter context or a smaller model.")
        except (BrokenPipeError, EOFError):
            raise
        except Exception as error:  # noqa: BLE001 - the window must hear of any failure
            log.exception("%s failed", name)
            self.send("error", EngineError.GENERATION_FAILED, f"{name.capitalize()} failed: {error}")

    def load(self, path: str, options: LoadOptions) -> None:
        _limit_memory(_memory_allowance(path, options))
        info = self.engine.load(path, options)
        self.send("loaded", info)

    def unload(self) -> None:
        self.engine.unload()
        _limit_memory(_NO_MODEL_LIMIT)
        self.send("unloaded")

    def info(self) -> None:
        self.send("info", self.engine.info)

    def keep_kv(self, keys: set[str]) -> None:
        self.engine.keep_kv(keys)
        self.send("kept")

    def count(self, messages: list[Message]) -> None:
        n = len(self.engine.tokenize_chat(messages)) if self.engine.is_loaded else None
        self.send("counted", n)

    def generate(self, request_id: int, messages: list[Message], sampling, cache_key: str | None,
                 continue_text: str, policy: str) -> None:
        from app.core.chat_template import TemplateError

        def should_stop() -> bool:
            return self.stopped(request_id)

        pending: list[str] = []
        sent_at = 0.0
        try:
            if should_stop():  # stopped while it waited
                self.send("finished", GenerationStats(0, 0, 0.0, 0.0, 0.0, "user"))
            else:
                messages = self._fit(messages, sampling, continue_text, policy, should_stop)
                stream = self.engine.stream(messages, sampling, should_stop, cache_key, continue_text,
                                            on_prompt_progress=lambda done, total: self.send("progress", done,
                                                                                            total))
                for event in stream:
                    if isinstance(event, str):
                        pending.append(event)
                        now = time.perf_counter()
                        if now - sent_at >= SEND_EVERY_S:  # the first at once, then batched
                            self.send("token", "".join(pending), len(pending))
                            pending.clear()
                            sent_at = now
                    else:
                        if pending:
                            self.send("token", "".join(pending), len(pending))
                        self.send("finished", event)
        except TemplateError as error:
            if not error.stopped:
                raise
            self.send("finished", GenerationStats(0, 0, 0.0, 0.0, 0.0, "user"))
        finally:
            with contextlib.suppress(Exception):
                self.engine.save_kv()  # after the answer: disk writes never delay a first token
        self.send("done")

    def _fit(self, messages: list[Message], sampling, continue_text: str, policy: str,
             should_stop: Callable[[], bool]) -> list[Message]:
        """The part of the chat that fits the context, by the user's overflow policy."""
        from app.core.context_window import OverflowPolicy, answer_reserve, fit_messages

        engine = self.engine
        if engine.info is None:
            return messages  # stream() says that no model is loaded
        n_ctx = engine.info.n_ctx

        def count(chat: list[Message]) -> int:
            return len(engine.tokenize_chat(chat, continue_text, should_stop))

        fit = fit_messages(messages, n_ctx, answer_reserve(n_ctx, sampling.max_tokens), count,
                           OverflowPolicy(policy))
        self.send("prompt_ready", fit.prompt_tokens, fit.dropped)
        return fit.messages


def _log_to(path: Path) -> None:
    """llama.cpp's log and anything written to stderr (a failed assertion) go to the engine's log,
    kept from the previous process as .1 for a look after a crash."""
    with contextlib.suppress(OSError):
        if path.exists() and path.stat().st_size:
            os.replace(path, path.with_suffix(path.suffix + ".1"))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return
    sys.stderr.flush()
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _memory_allowance(path: str, options: LoadOptions) -> int | None:
    """What the process may allocate with this model: the estimate plus headroom (None: no limit)."""
    from app.core import memory
    from app.core.gguf_info import GGUFError, read_model

    if options.n_gpu_layers != 0:
        return None  # GPU drivers map large host areas; the limit would refuse them, not a balloon
    try:
        header = read_model(Path(path))
        n_ctx = options.n_ctx or int(header.context_length or 4096)
        need = memory.estimate(header, n_ctx, 0, options.kv_cache_type).ram_bytes
    except (GGUFError, OSError, ValueError):
        return _NO_MODEL_LIMIT  # Engine.load reports the file's problem
    return int(need * 1.25) + _HEADROOM + 1024**3  # + the in-RAM KV snapshots' budget


def _limit_memory(limit: int | None) -> None:
    """A ceiling on the data the process allocates (Linux's RLIMIT_DATA: heap and anonymous maps,
    not the model file's read-only map): past it an allocation fails, Python raises MemoryError and
    llama.cpp reports a failed allocation, instead of the machine swapping until the OOM killer."""
    try:
        import resource
    except ImportError:  # Windows
        return
    if not sys.platform.startswith("linux"):
        return  # macOS does not enforce RLIMIT_DATA
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = resource.RLIM_INFINITY if limit is None else limit
    if hard != resource.RLIM_INFINITY:
        soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
