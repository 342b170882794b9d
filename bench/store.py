"""Conversation store at scale: start to a shown list, search, opening a long conversation.

    python bench/store.py [--conversations 2000] [--messages-per-conversation 100] [--big 2000]
                          [--db PATH] [--seed 7] [--start-runs 3] [--search-rounds 3] [--open-rounds 3]

Builds a database (in a temporary LLAMADESK_HOME, or at --db PATH, reused when it already holds
conversations) of --conversations conversations: one of them is the "big" one with --big
messages, every other one has --messages-per-conversation. Text comes from a fixed word list
and a seeded random (20-120 words a message, some with code fences), roles alternate, each
message's parent is the one before it, answers carry a GenerationRecord, and timestamps spread
over the last year. It is written with ConversationStore.insert_conversations in batches.

Then, against the targets of the issue:
  start    a fresh process (this script with a hidden flag) imports what the app imports,
           creates the QApplication, opens the store, builds MainWindow(store=...) (with its
           real InferenceClient thread), shows it and processes events. Timed from the moment
           the parent launched it (time.time() passed in argv, so interpreter start counts);
           the part spent in list_conversations + set_conversations is timed inside.
           Target < 0.5 s.
  search   ConversationStore.search on ~20 queries (common words, two words, rare words):
           with an open store, and with a fresh store per search (as MainWindow.search does).
           Target median and p95 < 100 ms.
  open     ChatController.open_conversation(big) on the real window (offscreen): store.load,
           ChatView.show_conversation, and the rest, until events are processed and the view's
           scroll bar rests at its maximum. Target < 300 ms.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from time import perf_counter

MODULE_TOP = perf_counter()  # the child's own clock starts here, after these few stdlib imports

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START_TARGET_S = 0.5
SEARCH_TARGET_MS = 100.0
OPEN_TARGET_S = 0.3
DAY = 86400.0

# Frequent words first: weights follow Zipf's law over this order.
_COMMON_TEXT = """
the to of and a in is it you that for on with as this be are or can if your not by use from
at an will one have but all which when so more then there these each some would they we how
what also only into just like about other than should could make value first new time file
model data function code example return list string error test user system memory name case
type number line output input class object text change version run call set work way need
check result step problem path key server request response query table message window thread
build option default config module package library script command process network image local
python model's token context prompt answer question layer weight matrix vector cache buffer
loop index range print import define variable argument parameter method instance field record
update delete insert select create open close read write start stop load save send receive
simple better faster slower large small short long early late clear quick common rare useful
important different possible similar specific general current previous next last final main
array dictionary tuple integer float boolean null pointer reference copy move sort filter map
reduce merge split join parse format encode decode hash compare match search replace count sum
average median total limit offset batch stream queue stack tree graph node edge path root leaf
parent child branch commit push pull merge rebase review deploy release issue bug fix patch
feature support document guide note comment summary detail reason because therefore however
although while since until unless whether either neither both many much most several few
every any same own such very really quite rather almost always never often sometimes usually
here where why who whom whose after before during through between among above below under over
again further once still already yet even though instead otherwise indeed perhaps probably
database schema migration transaction connection cursor statement row column primary foreign
frontend backend browser client service endpoint route handler middleware session cookie token
training inference evaluation accuracy precision recall loss gradient optimizer epoch dataset
benchmark latency throughput bandwidth storage disk processor core kernel driver device screen
keyboard mouse widget button label dialog menu panel layout signal slot event timer callback
"""
_RARE_TEXT = """
quokka zeppelin marzipan obsidian harpsichord kumquat basilisk tamarind gondola albatross
pangolin sassafras yttrium zucchini mandolin origami narwhal kerfuffle bergamot xylophone
"""
WORDS = _COMMON_TEXT.split()
RARE_WORDS = _RARE_TEXT.split()
ABSENT_WORD = "floccinaucinihilipilification"  # in no message
CODE_LINES = [
    "def {a}({b}, {c}):", "    return {b} + {c}", "for {a} in range({n}):", "    print({a}, {b})",
    "{a} = {{'{b}': {n}, '{c}': None}}", "if {a} is None:", "    raise ValueError('{b} {c}')",
    "class {A}:", "    def __init__(self, {b}):", "        self.{b} = {b}", "import {a}",
    "{a}.{b}({c}, timeout={n})", "with open('{a}.txt') as {b}:", "    {c} = {b}.read()",
]
GENERATION = {
    "model_file": "SmolLM2-135M-Instruct.Q4_1.gguf", "model_size": 96_000_000,
    "model_sha256": "ab" * 32, "llama_cpp_version": "0.3.36",
    "sampling": {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05,
                 "repeat_penalty": 1.0, "max_tokens": 1024, "seed": None},
}
QUERIES = {
    "common": ["model", "function", "error", "python", "memory", "database", "the", "window"],
    "two words": ["python function", "memory error", "database schema", "user input",
                  "training loss", "return value"],
    "rare": ["quokka", "zeppelin", "harpsichord", "kumquat xylophone", "narwhal model", ABSENT_WORD],
}


# -- building the database -------------------------------------------------------------------

class TextMaker:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.cum = []
        total = 0.0
        for rank in range(len(WORDS)):
            total += 1.0 / (rank + 2)
            self.cum.append(total)

    def words(self, n: int) -> list[str]:
        words = self.rng.choices(WORDS, cum_weights=self.cum, k=n)
        if self.rng.random() < 0.005:  # each rare word: about 1 message in 4,000
            words[self.rng.randrange(n)] = self.rng.choice(RARE_WORDS)
        return words

    def prose(self, n: int) -> str:
        words, out, i = self.words(n), [], 0
        while i < len(words):
            size = self.rng.randint(6, 16)
            sentence = words[i:i + size]
            out.append(" ".join(sentence).capitalize() + self.rng.choice(".....?!"))
            if self.rng.random() < 0.2:
                out.append("\n\n")
            i += size
        return " ".join(out).replace(" \n\n ", "\n\n").strip()

    def code(self) -> str:
        rng = self.rng
        lines = []
        for _ in range(rng.randint(3, 10)):
            a, b, c = (rng.choice(WORDS[60:]) for _ in range(3))
            lines.append(rng.choice(CODE_LINES).format(a=a, b=b, c=c, A=a.capitalize(),
                                                       n=rng.randint(1, 999)))
        return "```python\n" + "\n".join(lines) + "\n```"

    def message(self, role: str) -> str:
        text = self.prose(self.rng.randint(20, 120))
        if role == "assistant" and self.rng.random() < 0.15:
            cut = text.find(". ") + 1 or len(text)
            text = f"{text[:cut]}\n\n{self.code()}\n\n{text[cut:].strip()}".strip()
        return text


def make_conversation(maker: TextMaker, n_messages: int, now: float, big: bool = False):
    from app.core.conversations.conversation import Conversation, GenerationRecord, Message, title_from

    rng = maker.rng
    created = now - rng.uniform(0.0, 365 * DAY)
    if big:
        created = now - 20 * DAY
    step = 60.0 if big else rng.uniform(10.0, 300.0)
    messages: list[Message] = []
    parent = None
    for i in range(n_messages):
        role = "user" if i % 2 == 0 else "assistant"
        text = maker.message(role)
        generation = None
        if role == "assistant":
            tokens = int(len(text.split()) * 1.3)
            generation = GenerationRecord(
                **GENERATION, seed=rng.randrange(2**31), prompt_tokens=rng.randint(20, 4000),
                completion_tokens=tokens, ttft_s=round(rng.uniform(0.05, 0.8), 3),
                tokens_per_s=round(rng.uniform(15.0, 90.0), 1),
                stop_reason=rng.choice(("eos", "eos", "eos", "length")))
        message = Message(role, text, parent_id=parent, created=created + i * step, generation=generation)
        messages.append(message)
        parent = message.id
    title = "Long project notes" if big else title_from(messages[0].text if messages else "Empty")
    return Conversation(title=title, created=created, updated=messages[-1].created if messages else created,
                        pinned=rng.random() < 0.002, messages=messages)


def build(db_path: Path, args) -> float:
    from app.core.conversations.store import ConversationStore

    rng = random.Random(args.seed)
    maker = TextMaker(rng)
    now = time.time()
    started = perf_counter()
    store = ConversationStore(db_path)
    try:
        big_at = args.conversations // 2  # somewhere in the middle of the insert order
        batch = []
        for n in range(args.conversations):
            is_big = n == big_at
            count = args.big if is_big else args.messages_per_conversation
            batch.append(make_conversation(maker, count, now, big=is_big))
            if len(batch) >= args.batch or n == args.conversations - 1:
                store.insert_conversations(batch)
                batch = []
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    os.sync()  # write back the new file now, not under the timings that follow
    return perf_counter() - started


def database_facts(db_path: Path) -> dict:
    import sqlite3

    db = sqlite3.connect(db_path)
    try:
        conversations = db.execute("SELECT COUNT(*) FROM conversations WHERE deleted IS NULL").fetchone()[0]
        messages = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        big_id, big_n = db.execute("""SELECT conversation_id, COUNT(*) AS n FROM messages
            GROUP BY conversation_id ORDER BY n DESC LIMIT 1""").fetchone()
    finally:
        db.close()
    size = sum(p.stat().st_size for p in db_path.parent.glob(db_path.name + "*"))
    return {"conversations": conversations, "messages": messages, "big_id": big_id,
            "big_messages": big_n, "db_mb": round(size / 1e6, 1)}


# -- start: runs in a fresh process ----------------------------------------------------------

def child_start(db_path: str, launched: float) -> int:
    """From launch to the window shown with its list; one JSON line on stdout."""
    marks: dict[str, float] = {"module_top": MODULE_TOP}

    def mark(name: str) -> None:
        marks[name] = perf_counter()
        walls[name] = time.time() - launched

    walls: dict[str, float] = {}
    import qasync  # noqa: F401 - the app imports it before its window
    from PySide6.QtWidgets import QApplication

    from app import gui  # what `python -m app` imports on its way to the window
    from app.core.conversations.store import ConversationStore
    from app.ui.conversations.conversation_list import ConversationList
    from app.ui.main_window import MainWindow

    gui._route_qt_messages_to_logging()  # as gui.run does
    mark("imports")
    spent = {"list_conversations": 0.0, "set_conversations": 0.0}

    def timed(cls, name):
        original = getattr(cls, name)

        def wrapper(*a, **k):
            t = perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[name] += perf_counter() - t
        setattr(cls, name, wrapper)

    timed(ConversationStore, "list_conversations")
    timed(ConversationList, "set_conversations")

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.session import tasks

    tasks.install_loop(qt_app)  # the window's flows run on it, as under app.gui
    mark("qapp")
    store = ConversationStore(db_path)
    mark("store")
    window = MainWindow(store=store)
    mark("window")
    window.show()
    qt_app.processEvents()
    mark("shown")
    handle = window.windowHandle()
    result = {
        "wall_s": walls, "from_module_top_s": {k: marks[k] - MODULE_TOP for k in walls},
        "list_conversations_s": spent["list_conversations"],
        "set_conversations_s": spent["set_conversations"],
        "items": window.conversation_list.list.count(), "exposed": bool(handle and handle.isExposed()),
    }
    window.close()
    store.close()
    result["thread_running"] = window.backend.client._thread.isRunning()
    print(json.dumps(result))
    return 0


def measure_start(db_path: Path, runs: int, env: dict) -> list[dict]:
    out = []
    for _ in range(runs):
        launched = time.time()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-start", str(db_path),
                               repr(launched)], env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"start child failed ({proc.returncode}):\n{proc.stderr}")
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


# -- search ----------------------------------------------------------------------------------

def measure_search(db_path: Path, rounds: int) -> dict:
    from app.core.conversations.store import ConversationStore

    store = ConversationStore(db_path)
    rows = []
    try:
        store.search("warm up")
        for category, queries in QUERIES.items():
            for query in queries:
                open_times, fresh_times, hits = [], [], 0
                for _ in range(rounds):
                    t = perf_counter()
                    hits = len(store.search(query))
                    open_times.append(perf_counter() - t)
                    t = perf_counter()
                    fresh = ConversationStore(db_path)
                    try:
                        fresh.search(query)
                    finally:
                        fresh.close()
                    fresh_times.append(perf_counter() - t)
                matching = store.db.execute("SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH ?",
                                            (_match(query),)).fetchone()[0]
                rows.append({"category": category, "query": query, "hits": hits, "matching": matching,
                             "open_ms": statistics.median(open_times) * 1000,
                             "fresh_ms": statistics.median(fresh_times) * 1000})
    finally:
        store.close()
    return {"rows": rows}


def _match(query: str) -> str:
    from app.core.conversations.search import _fts_query

    return _fts_query(query)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=20, method="inclusive")[-1]


# -- opening the big conversation --------------------------------------------------------------

def measure_open(db_path: Path, big_id: str, rounds: int) -> dict:
    from PySide6.QtWidgets import QApplication

    from app import gui
    from app.core.conversations.store import ConversationStore
    from app.ui.main_window import MainWindow

    gui._route_qt_messages_to_logging()  # the offscreen plugin's known warning, quiet as in the app
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    from app.session import tasks

    tasks.install_loop(qt_app)  # the window's flows run on it, as under app.gui
    store = ConversationStore(db_path)
    window = MainWindow(store=store)
    window.show()
    qt_app.processEvents()
    chat, view = window.chat, window.chat_view
    bar = view.verticalScrollBar()
    spent = {"load": 0.0, "render": 0.0}

    def timed(obj, name, key):
        original = getattr(obj, name)

        def wrapper(*a, **k):
            t = perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[key] += perf_counter() - t
        setattr(obj, name, wrapper)

    timed(store, "load", "load")
    timed(view, "show_conversation", "render")
    results = []
    try:
        for _ in range(rounds):
            chat.new_conversation()  # away from the big one (an empty chat)
            qt_app.processEvents()
            spent.update(load=0.0, render=0.0)
            started = perf_counter()
            chat.open_conversation(big_id)
            returned = perf_counter()
            shown, previous_max, spins = None, -1, 0
            while perf_counter() - started < 10.0:
                qt_app.processEvents()
                spins += 1
                if bar.maximum() > 0 and bar.value() == bar.maximum() and bar.maximum() == previous_max:
                    shown = perf_counter()
                    break
                previous_max = bar.maximum()
            if shown is None:
                raise RuntimeError("the view never came to rest at its end")
            end_max = bar.maximum()
            for _ in range(20):  # does anything (lazy layout) move the end afterwards?
                qt_app.processEvents()
            results.append({"total_s": shown - started, "call_s": returned - started,
                            "load_s": spent["load"], "render_s": spent["render"], "spins": spins,
                            "max_moved_after": bar.maximum() != end_max,
                            "at_end_after": bar.value() == bar.maximum(),
                            "blocks": view.document().blockCount()})
    finally:
        window.close()
        qt_app.processEvents()
        running = window.backend.client._thread.isRunning()
        store.close()
    return {"rounds": results, "thread_running": running}


# -- main -------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000, help="in all, the big one included")
    parser.add_argument("--messages-per-conversation", type=int, default=100)
    parser.add_argument("--big", type=int, default=2000, help="messages in the one big conversation")
    parser.add_argument("--batch", type=int, default=100, help="conversations per insert transaction")
    parser.add_argument("--db", type=Path, help="build here (kept), or reuse if it holds conversations")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start-runs", type=int, default=3)
    parser.add_argument("--search-rounds", type=int, default=3)
    parser.add_argument("--open-rounds", type=int, default=3)
    parser.add_argument("--child-start", nargs=2, metavar=("DB", "LAUNCHED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_start:
        return child_start(args.child_start[0], float(args.child_start[1]))

    load_before = os.getloadavg()[0]  # other work on the machine skews every figure: reported
    with tempfile.TemporaryDirectory(prefix="llamadesk-bench-") as home:
        os.environ["LLAMADESK_HOME"] = home  # nothing touches the user's own data
        env = dict(os.environ)
        db_path = args.db.resolve() if args.db else Path(home) / "data" / "conversations.sqlite3"
        reused = db_path.exists() and db_path.stat().st_size > 0 and database_facts(db_path)["messages"] > 0
        build_s = 0.0 if reused else build(db_path, args)
        facts = database_facts(db_path)
        starts = measure_start(db_path, args.start_runs, env)
        search = measure_search(db_path, args.search_rounds)
        opened = measure_open(db_path, facts["big_id"], args.open_rounds)
    return report(args, facts, build_s, reused, starts, search, opened, load_before)


def report(args, facts, build_s, reused, starts, search, opened, load_before) -> int:
    def med(values):
        return statistics.median(values)

    shown = [s["wall_s"]["shown"] for s in starts]
    rows = search["rows"]
    open_ms = [r["open_ms"] for r in rows]
    fresh_ms = [r["fresh_ms"] for r in rows]
    slowest = max(rows, key=lambda r: r["open_ms"])
    rounds = opened["rounds"]
    open_total = med([r["total_s"] for r in rounds])
    open_load = med([r["load_s"] for r in rounds])
    open_render = med([r["render_s"] for r in rounds])
    figures = {
        "conversations": facts["conversations"], "messages": facts["messages"],
        "big_messages": facts["big_messages"], "db_mb": facts["db_mb"], "reused_db": bool(reused),
        "build_s": round(build_s, 2),
        "start_to_list_s": round(med(shown), 4),
        "start_to_list_first_s": round(shown[0], 4),
        "start_from_module_top_s": round(med([s["from_module_top_s"]["shown"] for s in starts]), 4),
        "start_imports_s": round(med([s["wall_s"]["imports"] for s in starts]), 4),
        "start_qapp_s": round(med([s["wall_s"]["qapp"] for s in starts]), 4),
        "start_store_s": round(med([s["wall_s"]["store"] for s in starts]), 4),
        "start_window_s": round(med([s["wall_s"]["window"] for s in starts]), 4),
        "list_part_s": round(med([s["list_conversations_s"] + s["set_conversations_s"] for s in starts]), 4),
        "list_query_s": round(med([s["list_conversations_s"] for s in starts]), 4),
        "list_widget_s": round(med([s["set_conversations_s"] for s in starts]), 4),
        "list_items": starts[0]["items"],
        "search_queries": len(rows),
        "search_median_ms": round(med(open_ms), 2),
        "search_p95_ms": round(p95(open_ms), 2),
        "search_max_ms": round(max(open_ms), 2),
        "search_slowest_query": slowest["query"],
        "search_with_open_median_ms": round(med(fresh_ms), 2),
        "search_with_open_p95_ms": round(p95(fresh_ms), 2),
        "open_big_s": round(open_total, 4),
        "open_big_first_s": round(rounds[0]["total_s"], 4),
        "open_big_load_s": round(open_load, 4),
        "open_big_render_s": round(open_render, 4),
        "open_big_other_s": round(open_total - open_load - open_render, 4),
        "start_target_s": START_TARGET_S,
        "search_target_ms": SEARCH_TARGET_MS,
        "open_big_target_s": OPEN_TARGET_S,
    }
    figures["start_ratio"] = round(figures["start_to_list_s"] / START_TARGET_S, 3)
    figures["search_ratio"] = round(max(figures["search_p95_ms"], figures["search_with_open_p95_ms"])
                                    / SEARCH_TARGET_MS, 3)
    figures["open_big_ratio"] = round(open_total / OPEN_TARGET_S, 3)
    figures["pass"] = {"start": figures["start_ratio"] < 1, "search": figures["search_ratio"] < 1,
                       "open_big": figures["open_big_ratio"] < 1}
    figures["all_pass"] = all(figures["pass"].values())
    figures["open_big_end_stable"] = all(r["at_end_after"] and not r["max_moved_after"] for r in rounds)
    figures["cpus"] = os.cpu_count()
    figures["loadavg_1m_before"] = round(load_before, 2)
    figures["threads_left_running"] = opened["thread_running"] or any(s["thread_running"] for s in starts)

    print(f"store: {facts['conversations']} conversations, {facts['messages']} messages "
          f"(big: {facts['big_messages']}), {facts['db_mb']} MB; "
          + ("reused " + str(args.db) if reused else f"built in {build_s:.1f} s")
          + f"; {os.cpu_count()} CPUs, load average {load_before:.2f} before the run")
    print()
    print("search, per query (median of rounds):")
    print(f"  {'category':<10}{'query':<34}{'matching':>9}{'hits':>6}{'open ms':>9}{'fresh ms':>10}")
    for r in rows:
        print(f"  {r['category']:<10}{r['query'][:33]:<34}{r['matching']:>9}{r['hits']:>6}"
              f"{r['open_ms']:>9.1f}{r['fresh_ms']:>10.1f}")
    print()
    print("start, from launch (wall): " + ", ".join(
        f"{k} {med([s['wall_s'][k] for s in starts]):.3f} s" for k in ("imports", "qapp", "store", "window",
                                                                       "shown")))
    print("open big, per round: " + "; ".join(
        f"{r['total_s'] * 1000:.0f} ms (load {r['load_s'] * 1000:.0f}, render {r['render_s'] * 1000:.0f})"
        for r in rounds))
    print()

    def line(name, value, target, ok):
        verdict = "" if ok is None else "pass" if ok else "FAIL"
        print(f"{name:<42}{value:>14}{target:>12}{verdict:>7}")

    print(f"{'figure':<42}{'measured':>14}{'target':>12}{'':>7}")
    line("build (not a target)", f"{build_s:.1f} s", "-", None)
    line("start -> list shown (median, from launch)", f"{figures['start_to_list_s'] * 1000:.0f} ms",
         "< 500 ms", figures["pass"]["start"])
    line("  first start", f"{figures['start_to_list_first_s'] * 1000:.0f} ms", "", None)
    line("  from module top", f"{figures['start_from_module_top_s'] * 1000:.0f} ms", "", None)
    line("  list_conversations + set_conversations", f"{figures['list_part_s'] * 1000:.0f} ms", "", None)
    line("search median (open store)", f"{figures['search_median_ms']:.1f} ms", "< 100 ms",
         figures["search_median_ms"] < SEARCH_TARGET_MS)
    line("search p95 (open store)", f"{figures['search_p95_ms']:.1f} ms", "< 100 ms",
         figures["search_p95_ms"] < SEARCH_TARGET_MS)
    line("search median (store opened per search)", f"{figures['search_with_open_median_ms']:.1f} ms",
         "< 100 ms", figures["search_with_open_median_ms"] < SEARCH_TARGET_MS)
    line("search p95 (store opened per search)", f"{figures['search_with_open_p95_ms']:.1f} ms", "< 100 ms",
         figures["search_with_open_p95_ms"] < SEARCH_TARGET_MS)
    line("open big conversation (median)", f"{open_total * 1000:.0f} ms", "< 300 ms",
         figures["pass"]["open_big"])
    line("  store.load", f"{open_load * 1000:.0f} ms", "", None)
    line("  ChatView.show_conversation", f"{open_render * 1000:.0f} ms", "", None)
    line("  rest (list refresh, events, layout)", f"{figures['open_big_other_s'] * 1000:.0f} ms", "", None)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
