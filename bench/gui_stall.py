"""GUI stalls: the longest gap between turns of the GUI event loop while the app works.

    python bench/gui_stall.py [--quick] [--conversations 2000] [--messages-per-conversation 100]
                              [--import-messages 10000] [--models 50] [--tokens 256] [--clients 20]
                              [--model PATH]

A 5 ms repeating QTimer (precise) runs on the GUI thread; each tick records when it came. Its
lateness (the gap between two ticks less 5 ms) is how long the window could not repaint or take a
key press. Measured per activity, from the moment it is started until it has finished plus 100 ms
(work left behind counts too):

  stream   an answer of --tokens tokens from the embedded model, typed into the composer
  import   File ▸ Import of a JSON file of --import-messages messages
  export   File ▸ Export of all conversations (--conversations of them), Markdown, to a folder
  search   four searches (common word, two words, rare word, absent word) over the store
  load     loading the model (the window's model commands)
  models   opening the models window, until its first scan is shown
  scan     adding a folder of --models GGUF files to the models window, until they are shown
  serve    the API server (View ▸ Server) answering --clients clients at once (another process,
           a thread per client), while the window answers a message too: until every answer has come
  idle     the window doing nothing for 1 s: the meter's own floor on this machine

Everything runs in the real window (app.ui.main_window.MainWindow) on the qasync loop as gui.py
starts it, offscreen, with LLAMADESK_HOME in a temporary folder. The store is built like
bench/store.py builds it (seeded text, insert_conversations in batches); the GGUF files are
sparse copies of the model (its real header, then a hole), so reading them costs what a real
scan costs. Target: no gap over 50 ms. Prints a table, then one JSON object as the last line.

The calls into the window are the adapter functions below: when the window's API changes, they
are what changes. Each returns once its activity has finished (a signal, a message shown, or a
state reached while the loop turns).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/qt_waits.py

from qt_waits import next_emission  # noqa: E402

TICK_MS = 5
TARGET_MS = 50.0
TAIL_S = 0.1  # measured after an activity ends: what it leaves for the loop counts
TIMEOUT_S = 600.0  # one activity; a hang fails the bench instead of stalling it forever
PROMPT = "Write a long story about a llama who travels the world."
ORDER = ["stream", "import", "export", "search", "load", "models", "scan", "serve", "idle"]
LABELS = {"stream": "streaming an answer", "import": "importing a JSON file", "export": "exporting all",
          "search": "searching", "load": "loading the model", "models": "opening the models window",
          "scan": "scanning a folder of GGUF files", "serve": "API clients while the window answers",
          "idle": "idle (the meter's floor)"}


# -- adapters: every call into the window --------------------------------------------------------

async def load_model(window, path: str) -> None:
    """Model ▸ Open: until the model is loaded (or the load failed)."""
    models = window.model_session
    waiter = _signal(models.loaded, failures=[models.failed])
    window.models.load(path)
    await waiter


async def send(window, text: str) -> int:
    """Type `text` in the composer and press Enter: until the answer has finished; its tokens."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    chat = window.chat
    waiter = _signal(chat.answer_finished, failures=[chat.error])
    window.composer.setPlainText(text)
    QTest.keyClick(window.composer, Qt.Key.Key_Return)
    (stats,) = await waiter
    return stats.completion_tokens


CLIENTS = """
import concurrent.futures, json, sys
import httpx2
url, clients, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def ask(i):
    body = {"messages": [{"role": "user", "content": f"Write a line about the number {i}."}],
            "temperature": 0, "max_tokens": tokens}
    reply = httpx2.post(url + "/chat/completions", json=body, timeout=600)
    reply.raise_for_status()
    return reply.json()["usage"]["completion_tokens"]
with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
    print(json.dumps(list(pool.map(ask, range(clients)))))
"""


async def serve_clients(window, clients: int, tokens: int) -> dict:
    """Start the API server (port 0), have `clients` programs ask at once (another process, one
    thread per client, with httpx2 as any client would) while the window answers a message of its
    own; until all have their answers. What each got, for the facts."""
    import dataclasses
    import subprocess

    server = window.workspace.server
    waiter = _signal(server.state_changed)
    server.start(dataclasses.replace(server.settings, port=0))
    await waiter
    if not server.running:
        raise RuntimeError(f"the API server did not start: {server.error}")

    def run_clients() -> list[int]:
        done = subprocess.run([sys.executable, "-c", CLIENTS, server.url, str(clients), str(tokens)],
                              capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
        return json.loads(done.stdout)

    asked = asyncio.get_running_loop().run_in_executor(None, run_clients)
    await _until(lambda: server.api_running or server.api_waiting)
    window_tokens = await send(window, "Say something kind.")
    answered = await asked
    server.stop()
    return {"clients": clients, "api_tokens": sum(answered), "window_tokens": window_tokens,
            "answered": sum(1 for tokens in answered if tokens > 0)}


async def import_file(window, path: Path) -> None:
    """File ▸ Import of `path`: until the conversations are added (the window's own reactions to
    that, such as the list refreshing, run before this returns)."""
    conversations = window.conversations
    waiter = _signal(conversations.imported, failures=[conversations.error])
    conversations.import_files([path])
    await waiter


async def export_all(window, folder: Path) -> None:
    """File ▸ Export, all conversations as Markdown into `folder`: until they are written."""
    conversations = window.conversations
    waiter = _signal(conversations.exported, failures=[conversations.error])
    conversations.export("md", folder)
    await waiter


async def search(window, query: str) -> int:
    """The search box: until the hits are shown in the list; how many."""
    conversations = window.conversations
    waiter = _signal(conversations.search_finished, failures=[conversations.error])
    conversations.search(query)
    _query, hits = await waiter
    return len(hits)


async def open_models_window(window) -> None:
    """Model ▸ Models…: until its scan of the library is shown."""
    window.models.open_manager()
    manager = window.models.manager
    await _until(lambda: manager.isVisible() and manager.message.text() != "Looking for models…")


async def scan_folder(window, folder: Path, expected: int) -> None:
    """Add folder… in the models window: until the folder's `expected` models are listed."""
    manager = window.models.manager
    manager.add_folder(str(folder))
    await _until(lambda: manager.message.text() != "Looking for models…"
                 and sum(str(e.path).startswith(str(folder)) for e in manager.entries) >= expected)


# -- waiting while the loop turns -----------------------------------------------------------------

def _signal(signal, failures: list = (), when=lambda *args: True) -> Awaitable[Any]:
    return next_emission(signal, failures, when, TIMEOUT_S)


async def _until(condition: Callable[[], bool]) -> None:
    """Until condition() holds, checked every few ms while the loop turns (for states no signal
    announces)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the activity did not finish")
        await asyncio.sleep(0.002)


# -- the meter ---------------------------------------------------------------------------------

class StallMeter:
    """A precise 5 ms QTimer on the GUI thread; the lateness of each tick is one sample."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self.first = self.last = 0.0

    def start(self) -> None:
        self.gaps = []
        self.first = self.last = perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def stop(self) -> dict:
        self.timer.stop()
        self.gaps.append(perf_counter() - self.last)  # a stall at the very end counts too
        longest = max(range(len(self.gaps)), key=self.gaps.__getitem__)
        late = sorted(max(0.0, gap * 1000 - TICK_MS) for gap in self.gaps)
        p99 = late[-1] if len(late) < 2 else statistics.quantiles(late, n=100, method="inclusive")[98]
        return {"max_ms": round(late[-1], 1), "p99_ms": round(p99, 1), "ticks": len(late),
                "seconds": round(sum(self.gaps), 2), "over_target": sum(v > TARGET_MS for v in late),
                "max_at_s": round(sum(self.gaps[:longest]), 2)}  # when the longest gap began


async def measured(meter: StallMeter, activity: Awaitable[Any], outcome: dict | None = None) -> dict:
    """The meter's figures over the activity and TAIL_S after it; what it returned goes in outcome."""
    meter.start()
    started = perf_counter()
    result = await activity
    took = perf_counter() - started
    await asyncio.sleep(TAIL_S)
    figures = meter.stop()
    figures["activity_s"] = round(took, 2)
    if outcome is not None:
        outcome["result"] = result
    return figures


# -- data ----------------------------------------------------------------------------------------

def build_store(db_path: Path, args) -> float:
    """--conversations conversations of --messages-per-conversation messages, as bench/store.py
    builds them (no big one: every conversation the same size)."""
    from bench.store import build

    options = argparse.Namespace(conversations=args.conversations, messages_per_conversation=args.messages,
                                 big=args.messages, batch=100, seed=7)
    return build(db_path, options)


def write_import_file(path: Path, messages: int, per_conversation: int = 100) -> int:
    """A Llamadesk JSON export of `messages` messages in conversations of `per_conversation`."""
    from app.core.conversations.transcripts import to_json
    from bench.store import TextMaker, make_conversation

    maker, now = TextMaker(random.Random(11)), time.time()
    conversations = [make_conversation(maker, min(per_conversation, messages - done), now)
                     for done in range(0, messages, per_conversation)]
    path.write_text(to_json(conversations), encoding="utf-8")
    return len(conversations)


def write_gguf_folder(folder: Path, model: Path, count: int) -> None:
    """`count` sparse copies of the model: its header bytes, then a hole to its full size."""
    from app.core.models.gguf_info import read_model

    header = read_model(model)
    with model.open("rb") as f:
        head = f.read(header.data_offset)
    size = model.stat().st_size
    folder.mkdir(parents=True)
    for n in range(count):
        with (folder / f"copy-{n:02d}-{model.name}").open("wb") as f:
            f.write(head)
            f.truncate(size)


# -- main ----------------------------------------------------------------------------------------

async def run_all(window, meter: StallMeter, args, work: Path, model: str, facts: dict) -> dict[str, dict]:
    """Every activity in turn, each measured alone; facts gets what they produced."""
    from app.core.chat.sampling import GREEDY

    results: dict[str, dict] = {}
    await asyncio.sleep(0.5)  # the window's own start settles first (notices, first paint)
    results["idle"] = await measured(meter, asyncio.sleep(1.0))
    results["load"] = await measured(meter, load_model(window, model))
    window.sampling.set_params(GREEDY.replace(max_tokens=args.tokens))
    answer: dict = {}
    results["stream"] = await measured(meter, send(window, PROMPT), answer)
    facts["answer_tokens"] = answer["result"]
    results["models"] = await measured(meter, open_models_window(window))
    results["scan"] = await measured(meter, scan_folder(window, work / "models", args.models))
    window.models.manager.close()

    async def searches() -> None:
        from bench.store import ABSENT_WORD

        facts["hits"] = {query: await search(window, query)
                         for query in ("model", "python function", "quokka", ABSENT_WORD)}
    results["search"] = await measured(meter, searches())
    results["export"] = await measured(meter, export_all(window, work / "export"))
    results["import"] = await measured(meter, import_file(window, work / "import.json"))
    window.sampling.set_params(GREEDY.replace(max_tokens=16))
    served: dict = {}
    results["serve"] = await measured(meter, serve_clients(window, args.clients, 16), served)
    facts["serve"] = served["result"]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the data, a shorter answer")
    parser.add_argument("--conversations", type=int)
    parser.add_argument("--messages-per-conversation", dest="messages", type=int, default=100)
    parser.add_argument("--import-messages", type=int)
    parser.add_argument("--models", type=int)
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--clients", type=int, default=20, help="API clients at once (serve)")
    parser.add_argument("--model")
    args = parser.parse_args()
    quick = args.quick
    args.conversations = args.conversations or (200 if quick else 2000)
    args.import_messages = args.import_messages or (1000 if quick else 10000)
    args.models = args.models or (10 if quick else 50)
    args.tokens = args.tokens or (48 if quick else 256)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="llamadesk-stall-") as home:
        os.environ["LLAMADESK_HOME"] = home  # nothing touches the user's own data
        figures = run(args, Path(home))
    figures.update(quick=quick, cpus=os.cpu_count(), loadavg_1m_before=round(load_before, 2))
    report(figures)
    return 0


def run(args, home: Path) -> dict:
    import qasync
    from PySide6.QtWidgets import QApplication

    from app import gui
    from app.core.conversations.store import ConversationStore, default_store_path
    from app.core.models.library import default_model_path

    model = args.model or str(default_model_path())
    work = home / "bench"
    work.mkdir()
    started = perf_counter()
    build_s = build_store(default_store_path(), args)
    imported = write_import_file(work / "import.json", args.import_messages)
    write_gguf_folder(work / "models", Path(model), args.models)
    data_s = perf_counter() - started

    gui._route_qt_messages_to_logging()  # as gui.run does
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    from app.session import workspace
    from app.ui.main_window import MainWindow

    workspace.PROPOSE_TITLES = False  # a chat title after the answer would run into the next activity
    store = ConversationStore(default_store_path())
    window = MainWindow(store=store)
    window.show()
    meter = StallMeter()
    with loop:
        facts: dict = {}
        results = loop.run_until_complete(run_all(window, meter, args, work, model, facts))
        window.close()
    store.close()
    exported = len(list((work / "export").glob("*.md")))
    shutil.rmtree(work, ignore_errors=True)
    return {"activities": {name: results[name] for name in ORDER},
            "conversations": args.conversations, "messages": args.conversations * args.messages,
            "import_messages": args.import_messages, "import_conversations": imported,
            "exported_files": exported, "gguf_files": args.models, "tokens": args.tokens,
            "model": Path(model).name, "data_build_s": round(data_s, 1), "store_build_s": round(build_s, 1),
            "tick_ms": TICK_MS, "target_ms": TARGET_MS, **facts}


def report(figures: dict) -> None:
    activities = figures["activities"]
    measured_ones = {k: v for k, v in activities.items() if k != "idle"}
    worst = max(measured_ones, key=lambda k: measured_ones[k]["max_ms"])
    figures["worst"] = worst
    figures["worst_max_ms"] = measured_ones[worst]["max_ms"]
    figures["pass"] = {k: v["max_ms"] <= TARGET_MS for k, v in measured_ones.items()}
    figures["all_pass"] = all(figures["pass"].values())
    print(f"store {figures['conversations']} conversations, {figures['messages']} messages; import "
          f"{figures['import_messages']} messages; {figures['gguf_files']} GGUF files; answer of "
          f"{figures['tokens']} tokens; data built in {figures['data_build_s']} s; {figures['cpus']} CPUs, "
          f"load average {figures['loadavg_1m_before']} before the run")
    print(f"lateness of a {TICK_MS} ms timer on the GUI thread (target: max <= {TARGET_MS:.0f} ms)")
    print(f"{'activity':<34}{'took s':>8}{'ticks':>7}{'max ms':>9}{'at s':>7}{'p99 ms':>9}{'>50 ms':>8}")
    for name in ORDER:
        row = activities[name]
        verdict = "" if name == "idle" else "pass" if figures["pass"][name] else "FAIL"
        print(f"{LABELS[name]:<34}{row['activity_s']:>8.2f}{row['ticks']:>7}{row['max_ms']:>9.1f}"
              f"{row['max_at_s']:>7.2f}{row['p99_ms']:>9.1f}{row['over_target']:>8}{verdict:>6}")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
