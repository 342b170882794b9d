"""The engine's process: one Engine, one command at a time, until told to shut down.

It runs in a process of its own (see engine_process) so that a bad model file costs the model,
never the window. Everything here runs in that child; the parent only starts `serve`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.core.inference.types import (
    BuildInfo,
    ChatMessages,
    EngineError,
    GenerationStats,
    LoadOptions,
    OutputFormat,
)

log = logging.getLogger(__name__)

# Text is sent to the window at most this often (the first piece at once): each message wakes the
# window's threads, which on a machine with as many busy llama.cpp threads as cores costs speed.
# The window draws every 50 ms anyway; Stop is read in the engine after every token regardless.
SEND_EVERY_S = 0.05
_HEADROOM = 1536 * 1024**2  # beyond the memory estimate: Python, llama.cpp's buffers, KV snapshots in RAM
_NO_MODEL_LIMIT = 2 * 1024**3  # before a model is loaded


ENGINE_NICENESS = 5  # the window's thread gets ~3x a llama.cpp thread's share of a busy CPU


def _yield_to_the_window(niceness: int) -> None:
    """llama.cpp keeps every core busy while it answers; at a lower priority it still does, but the
    window's thread gets a core at once when it needs one (a key press, a repaint), instead of
    waiting its turn behind the model's threads. Without a window (`serve`) there is nothing to
    yield to: niceness 0."""
    if niceness:
        with contextlib.suppress(AttributeError, OSError):
            os.nice(niceness)


def serve(connection, stop_upto, log_path: str, niceness: int = ENGINE_NICENESS) -> None:
    """The engine process: run one command at a time until told to shut down or the parent goes."""
    _log_to(Path(log_path))
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")  # no gdb attach on an assertion: just the line
    if hasattr(signal, "SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the window's to handle
    _limit_memory(_NO_MODEL_LIMIT)
    _yield_to_the_window(niceness)
    from app import paths
    from app.core.inference.local.engine import Engine
    from app.core.inference.local.kv_cache import KVCacheStore

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
        from app.core.chat.context_window import ContextFullError
        from app.core.inference.local.chat_template import TemplateError

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

    def build(self) -> None:
        self.send("build", describe_build())

    def keep_kv(self, keys: set[str]) -> None:
        self.engine.keep_kv(keys)
        self.send("kept")

    def count(self, messages: ChatMessages) -> None:
        n = len(self.engine.tokenize_chat(messages)) if self.engine.is_loaded else None
        self.send("counted", n)

    def embed(self, inputs: list[str] | list[list[int]]) -> None:
        self.send("embedded", self.engine.embed(inputs))

    def generate(self, request_id: int, messages: ChatMessages, sampling, cache_key: str | None,
                 continue_text: str, policy: str, prompt: str | list[int] | None = None,
                 output_format: OutputFormat | None = None) -> None:
        from app.core.inference.local.chat_template import TemplateError

        def should_stop() -> bool:
            return self.stopped(request_id)

        pending: list[str] = []
        sent_at = 0.0
        try:
            if should_stop():  # stopped while it waited
                self.send("finished", GenerationStats(0, 0, 0.0, 0.0, 0.0, "user"))
            else:
                if prompt is None:
                    messages = self._fit(messages, sampling, continue_text, policy, should_stop)
                else:  # a raw prompt is read whole or refused (too long: CONTEXT_TOO_SMALL)
                    self.send("prompt_ready", len(self.engine.tokenize_prompt(prompt)), 0)
                stream = self.engine.stream(messages, sampling, should_stop, cache_key, continue_text,
                                            on_prompt_progress=lambda done, total: self.send("progress", done,
                                                                                            total),
                                            prompt=prompt, output_format=output_format)
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

    def _fit(self, messages: ChatMessages, sampling, continue_text: str, policy: str,
             should_stop: Callable[[], bool]) -> ChatMessages:
        """The part of the chat that fits the context, by the user's overflow policy."""
        from app.core.chat.context_window import OverflowPolicy, answer_reserve, fit_messages

        engine = self.engine
        if engine.info is None:
            return messages  # stream() says that no model is loaded
        n_ctx = engine.info.n_ctx

        def count(chat: ChatMessages) -> int:
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
    from app.core.models import drafting_plan, memory
    from app.core.models.gguf_info import GGUFError, read_model

    if options.n_gpu_layers != 0:
        return None  # GPU drivers map large host areas; the limit would refuse them, not a balloon
    try:
        header = read_model(Path(path))
        n_ctx = options.n_ctx or int(header.context_length or 4096)
        need = memory.estimate(header, n_ctx, 0, options.kv_cache_type).ram_bytes
        need += drafting_plan.plan(header, n_ctx, options, None).extra_ram  # as if it fits: load decides
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


def describe_build() -> BuildInfo:
    """The devices this llama.cpp build can use, and llama-cpp-python's version."""
    from importlib.metadata import PackageNotFoundError, version

    from app.core.inference.local import devices

    try:
        binding = version("llama-cpp-python")
    except PackageNotFoundError:
        binding = "?"
    return BuildInfo(devices.backend_name(), devices.gpu_offload_supported(), binding)
