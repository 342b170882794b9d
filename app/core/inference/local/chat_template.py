"""A model's chat template, rendered so that a hostile one cannot hang or balloon the engine.

A GGUF file carries its own Jinja template. llama-cpp-python renders it in Jinja's immutable
sandbox, which stops attribute tricks but not cost: `{% for a in range(99999) %}{% for b in
range(99999) %}` runs for hours, and `{{ 'x' * 3000000000 }}` is folded into a 3 GB constant
while the template compiles. Here the sandbox also intercepts the operators that build large
values (checked before they run, and never folded at compile time), and rendering runs under a
time limit and the user's Stop (a timer signal checks both while Python code runs).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.common.errors import UserFacingError

TIME_LIMIT_S = 10.0  # a real template renders a long chat in milliseconds
MAX_VALUE = 4_000_000  # the longest string or list an operator may build (characters or items)
MAX_EXPONENT_BITS = 4096  # `**` beyond this is no chat formatting
_CHECK_EVERY_S = 0.05


class TemplateError(UserFacingError):
    """The model's chat template failed, took too long, or was stopped."""

    def __init__(self, message: str, stopped: bool = False) -> None:
        super().__init__(message)
        self.stopped = stopped


class _GuardedEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_repeat(left, right)
            _check_repeat(right, left)
        elif operator == "**" and isinstance(right, int) and isinstance(left, int) and left not in (0, 1, -1):
            if right * max(abs(left), 2).bit_length() > MAX_EXPONENT_BITS:
                raise SecurityError("the template computes a number too large for a prompt")
        elif operator == "+" and _size(left) + _size(right) > MAX_VALUE:
            raise SecurityError("the template builds a value too large for a prompt")
        return super().call_binop(context, operator, left, right)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | bytes) else 0


def _check_repeat(sequence: Any, times: Any) -> None:
    if isinstance(times, int) and _size(sequence) * max(times, 0) > MAX_VALUE:
        raise SecurityError("the template repeats a value into one too large for a prompt")


class _SkipGenerationTags(jinja2.ext.Extension):
    """Pass-through for Hugging Face's `{% generation %}` tag (as llama-cpp-python does)."""

    tags = {"generation"}

    def parse(self, parser):
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    raise TemplateError(f"The model's chat template refused this conversation: {message}")


class ChatTemplate:
    """Compile once per model; render the prompt for a list of {"role", "content"} messages."""

    def __init__(self, source: str, bos_token: str, eos_token: str) -> None:
        environment = _GuardedEnvironment(loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
                                          extensions=[_SkipGenerationTags, jinja2.ext.loopcontrols])
        environment.filters["tojson"] = _tojson
        self.bos_token, self.eos_token = bos_token, eos_token
        try:
            with render_guard():
                self._template = environment.from_string(source)
        except TemplateError:
            raise
        except (jinja2.TemplateError, SecurityError, RecursionError, MemoryError) as error:
            raise TemplateError(f"The model's chat template cannot be used: {_reason(error)}") from error

    def render(self, messages: Sequence[dict[str, str]],
               should_stop: Callable[[], bool] = lambda: False) -> str:
        try:
            with render_guard(should_stop=should_stop):
                prompt = self._template.render(
                    messages=list(messages), bos_token=self.bos_token, eos_token=self.eos_token,
                    add_generation_prompt=True, raise_exception=_raise_exception,
                    strftime_now=lambda f: datetime.now().strftime(f))
        except TemplateError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure inside the model's own code
            raise TemplateError(f"The model's chat template failed for this conversation: "
                                f"{_reason(error)}") from error
        if len(prompt) > 64 * MAX_VALUE:
            raise TemplateError("The model's chat template produced a prompt far larger than the chat.")
        return prompt


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    kind = type(error).__name__
    if isinstance(error, MemoryError):
        return "it needs more memory than the model process may use"
    if isinstance(error, RecursionError):
        return "it recurses too deeply"
    return f"{text} ({kind})" if text else kind


@contextlib.contextmanager
def render_guard(time_limit_s: float | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Interrupt Python code that runs past `time_limit_s` or once `should_stop()` says so.

    A timer signal (SIGALRM every 50 ms) checks both; it can interrupt pure-Python loops such
    as a template's, not C code. Only in the main thread of a process with setitimer (the
    engine's own process on Linux and macOS); elsewhere the code runs unguarded and the parent
    process's grace period (ending the engine process) is the backstop.
    """
    limit = TIME_LIMIT_S if time_limit_s is None else time_limit_s
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return
    deadline = time.monotonic() + limit

    def check(_signum, _frame) -> None:
        if should_stop():
            raise TemplateError("Stopped while the model's chat template was being rendered.", stopped=True)
        if time.monotonic() > deadline:
            raise TemplateError(f"The model's chat template took longer than {limit:g} s to render this "
                                "conversation, so it was stopped. The template in this model file "
                                "is broken or hostile: use another file of this model.")

    previous = signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, _CHECK_EVERY_S, _CHECK_EVERY_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
