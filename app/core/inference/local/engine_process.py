"""The local engine in a process of its own, so a bad model file cannot take the window with it.

llama.cpp can abort (a failed GGML_ASSERT), hang or balloon on a damaged file or a hostile chat
template. In its own process that costs the model, never the window or a chat: the parent sees
the pipe close, reports llama.cpp's last words from the engine's log, keeps the partial answer,
and starts a new process for the next request.

`EngineProcess` is the parent's handle (one thread calls `load`/`generate`/...; `request_stop`
and `kill` are safe from any thread). `engine_server.serve` is the child: one Engine, one request at
a time. Messages are tuples over a multiprocessing pipe; Stop is a shared integer the child reads
after every token and between prompt batches, so it needs no message and no round trip.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
from collections.abc import Iterator
from pathlib import Path

from app.core.inference.local.engine_server import ENGINE_NICENESS, serve
from app.core.inference.types import (
    BuildInfo,
    ChatMessages,
    Embeddings,
    EngineError,
    LoadOptions,
    ModelInfo,
    OutputFormat,
)

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # Stop not honoured by then (llama.cpp stuck in C code): the process is ended
_LOG_TAIL = 64 * 1024


class EngineCrashed(EngineError):
    """The engine's process ended unexpectedly (or was ended): kind "crashed"."""

    def __init__(self, message: str, stopped: bool = False) -> None:
        super().__init__(message, kind=EngineError.CRASHED)
        self.stopped = stopped  # ended by us after a Stop that llama.cpp did not honour


class EngineProcess:
    def __init__(self, log_path: Path, niceness: int = ENGINE_NICENESS) -> None:
        """niceness: how much lower than the window's the engine's priority is (0: the same)."""
        self.log_path = log_path
        self.niceness = niceness
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

    def build(self) -> BuildInfo | None:
        """What this llama.cpp build can run on (the process starts if it is not running)."""
        for event in self._call("build"):
            if event[0] == "build":
                return event[1]
        return None

    def keep_kv(self, keys: set[str]) -> None:
        """Only these conversations' KV caches may remain (see Engine.keep_kv)."""
        for _ in self._call("keep_kv", set(keys)):
            pass

    def count(self, messages: ChatMessages) -> int | None:
        for event in self._call("count", list(messages)):
            if event[0] == "counted":
                return event[1]
        return None

    def generate(self, request_id: int, messages: ChatMessages, sampling, cache_key: str | None,
                 continue_text: str, policy: str, prompt: str | list[int] | None = None,
                 output_format: OutputFormat | None = None) -> Iterator[tuple]:
        """Events: ("prompt_ready", tokens, dropped), ("progress", done, total), ("token", text, pieces),
        then ("finished", GenerationStats). Failures raise EngineError (EngineCrashed).
        With `prompt` (text or token ids) the chat is not used: see Engine.stream."""
        if isinstance(prompt, list):
            prompt = list(prompt)
        for event in self._call("generate", request_id, list(messages), sampling, cache_key, continue_text,
                                policy, prompt, output_format):
            if event[0] != "done":
                yield event

    def embed(self, inputs: list[str] | list[list[int]]) -> Embeddings:
        """One mean-pooled, L2-normalised vector per input (see Engine.embed)."""
        for event in self._call("embed", list(inputs)):
            if event[0] == "embedded":
                return event[1]
        raise AssertionError("unreachable")

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
        process = self._context.Process(target=serve, args=(child, self._stop_upto, str(self.log_path),
                                                                     self.niceness),
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
                    raise EngineError(event[2], kind=event[1])
                yield event
                if event[0] in ("loaded", "unloaded", "counted", "info", "build", "kept", "embedded", "done"):
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
                "count": "counting tokens", "embed": "making embeddings"}.get(doing, "working")
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
