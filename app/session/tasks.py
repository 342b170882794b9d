"""Flows that wait, as asyncio tasks on the qasync loop (gui.py runs it; tests install one).

A flow is a coroutine: `await in_thread(fn, ...)` runs blocking work (SQLite, hashing, HTTP,
file copies) in a worker thread and resumes on the GUI thread with its result or its exception.
`Latest` keeps one task per purpose: starting a newer one cancels the older, so a stale result
is never shown (no serial counters).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="llamadesk-task")
# Jobs that may take minutes or hours (downloads, hashing a model) get threads of their own, so a
# search or an export never waits behind them.
_long_executor = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="llamadesk-long")
_pending: set[concurrent.futures.Future] = set()  # blocking calls still running in a thread
_tasks: set[asyncio.Task] = set()  # tasks started here, kept alive until they end


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run fn(*args, **kwargs) in a worker thread; the GUI thread keeps turning meanwhile."""
    return await _run_on(_executor, functools.partial(fn, *args, **kwargs))


async def in_long_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """in_thread, for a job that may take minutes (a download, hashing a model file)."""
    return await _run_on(_long_executor, functools.partial(fn, *args, **kwargs))


async def _run_on(executor: concurrent.futures.Executor, call: Callable[[], T]) -> T:
    future = executor.submit(call)
    _pending.add(future)
    future.add_done_callback(_pending.discard)
    return await asyncio.wrap_future(future)


def install_loop(qt_app) -> asyncio.AbstractEventLoop:
    """The qasync loop over a QApplication whose event loop runs by other means (Qt's own exec,
    nested QEventLoops: benchmarks and tests). gui.py runs its loop itself."""
    import qasync

    loop = qasync.QEventLoop(qt_app, already_running=True)
    asyncio.set_event_loop(loop)
    finalize_async_generators(loop)
    return loop


def finalize_async_generators(loop: asyncio.AbstractEventLoop) -> None:
    """An async generator left unfinished (an HTTP stream's readers, when an answer stops early) is
    closed by a task on this loop, as asyncio's own run_forever arranges and qasync does not;
    without it the garbage collector closes it outside any loop and its cleanup cannot run."""
    import sys

    sys.set_asyncgen_hooks(firstiter=loop._asyncgen_firstiter_hook, finalizer=loop._asyncgen_finalizer_hook)


def the_loop() -> asyncio.AbstractEventLoop:
    """The qasync loop flows run on; a clear error where there is none (a script that made the
    window without app.gui or install_loop would otherwise wait for ever)."""
    import qasync

    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        loop = None
    if not isinstance(loop, qasync.QEventLoop):
        raise RuntimeError("Flows run on the qasync loop: run the app through app.gui, or call "
                           "app.session.tasks.install_loop(qt_app) before making the window.")
    return loop


def start(flow: Coroutine[Any, Any, T], name: str = "") -> asyncio.Task[T]:
    """Run a flow on the loop. Its failure is logged (a flow reports its own errors to the user);
    cancellation is silent."""
    try:
        loop = the_loop()
    except RuntimeError:
        flow.close()
        raise
    task = loop.create_task(flow)
    if name:
        task.set_name(name)
    _tasks.add(task)
    task.add_done_callback(_finished)
    return task


def _finished(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())


class Latest:
    """One running task for one purpose (a search, a scan, a count): a newer one cancels it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.task: asyncio.Task | None = None

    def start(self, flow: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        self.cancel()
        self.task = start(flow, self.name)
        return self.task

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


def wait_for_background_tasks(timeout_s: float = 10.0) -> bool:
    """At exit: let blocking calls that are still running end (an export being written, a
    search). True when all ended within timeout_s."""
    done, not_done = concurrent.futures.wait(list(_pending), timeout=timeout_s)
    return not not_done
