"""The flow helpers every session uses: work off the GUI thread, newer requests cancel older ones."""

from __future__ import annotations

import threading

from app.session import tasks


def test_in_thread_runs_off_the_gui_thread_and_returns_its_result(qtbot) -> None:
    gui = threading.get_ident()
    seen: list[tuple[int, int]] = []

    async def flow() -> None:
        worker = await tasks.in_thread(threading.get_ident)
        seen.append((worker, threading.get_ident()))

    task = tasks.start(flow())
    qtbot.waitUntil(task.done)
    assert seen and seen[0][0] != gui and seen[0][1] == gui


def test_an_exception_in_the_thread_reaches_the_flow(qtbot) -> None:
    caught: list[str] = []

    def fail() -> None:
        raise OSError("disk full")

    async def flow() -> None:
        try:
            await tasks.in_thread(fail)
        except OSError as error:
            caught.append(str(error))

    task = tasks.start(flow())
    qtbot.waitUntil(task.done)
    assert caught == ["disk full"]


def test_a_newer_request_cancels_the_older_so_its_result_is_never_used(qtbot) -> None:
    latest = tasks.Latest("search")
    release = threading.Event()
    shown: list[str] = []

    async def search(query: str, wait: bool) -> None:
        result = await tasks.in_thread(lambda: (release.wait(10) if wait else None, query)[1])
        shown.append(result)

    older = latest.start(search("old", wait=True))
    newer = latest.start(search("new", wait=False))
    qtbot.waitUntil(newer.done)
    release.set()
    assert tasks.wait_for_background_tasks(10)
    qtbot.waitUntil(older.done)
    assert older.cancelled() and shown == ["new"]
