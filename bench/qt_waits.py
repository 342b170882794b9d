"""Waiting on a Qt signal from a bench's asyncio flow (bench/gui_stall.py, bench/remote.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


def next_emission(signal, failures: list = (), when=lambda *args: True,
                  timeout_s: float = 600.0) -> Awaitable[Any]:
    """The arguments of the next emission of `signal` that satisfy `when`; one of `failures`
    emitting fails it, and so does a wait over `timeout_s` (a hang fails the bench instead of
    stalling it)."""
    future = asyncio.get_event_loop().create_future()

    def done(*args) -> None:
        if not future.done() and when(*args):
            future.set_result(args)

    def failed(*args) -> None:
        if not future.done():
            future.set_exception(RuntimeError(" ".join(map(str, args))))

    signal.connect(done)
    for failure in failures:
        failure.connect(failed)

    async def wait() -> Any:
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            signal.disconnect(done)
            for failure in failures:
                failure.disconnect(failed)
    return wait()
