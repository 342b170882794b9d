"""The in-process half of bench/robustness.py: the real main window (offscreen) under engine crashes,
hostile model files and chat templates and store faults; the engine under damaged KV snapshots.

Each category function takes a Row, the model, a random generator and its number of tries, and
records every try on the Row. Waits are on the window's signals (or a condition polled while the
event loop runs), each with a deadline, so a hang is a failed try, never a stuck bench.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LONG_PROMPT = "Write a long story about a lighthouse keeper."
ESCAPED: list[str] = []  # exceptions that reached sys.excepthook (a slot that raised)


@dataclass
class Row:
    """One line of the table: tries, how many the app survived, messages lost, and why not."""

    category: str
    tried: int = 0
    survived: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def record(self, what: str, survived: bool, lost: int = 0, why: str = "") -> None:
        self.tried += 1
        self.survived += bool(survived)
        self.lost += lost
        if not survived or lost:
            self.failures.append(f"{what}: {why or 'ok'}" + (f" (lost {lost})" if lost else ""))


def install_excepthook() -> None:
    previous = sys.excepthook

    def hook(kind, value, tb) -> None:
        ESCAPED.append("".join(traceback.format_exception(kind, value, tb))[-800:])
        previous(kind, value, tb)

    sys.excepthook = hook


# -- the database as the disk holds it --------------------------------------------------------------

def disk_messages(path: Path) -> dict[str, tuple[str, str, bool]]:
    """Every stored message: id -> (role, text, incomplete)."""
    from app.core.conversations.store import ConversationStore

    store = ConversationStore(path, read_only=True)
    try:
        return {m.id: (m.role, m.text, m.incomplete)
                for s in store.list_conversations() for m in store.load(s.id).messages}
    finally:
        store.close()


def missing(before: dict, after: dict) -> int:
    """Messages stored before and gone (or cut) after; an incomplete answer may only grow."""
    return sum(1 for i, (_role, text, incomplete) in before.items() if i not in after
               or not after[i][1].startswith(text) or (not incomplete and after[i][1] != text))


def stored_thread(path: Path, conversation_id: str) -> list[tuple[str, str, bool]]:
    from app.core.conversations.store import ConversationStore

    store = ConversationStore(path, read_only=True)
    try:
        if conversation_id not in {s.id for s in store.list_conversations()}:
            return []
        return [(m.role, m.text, m.incomplete) for m in store.load(conversation_id).thread()]
    finally:
        store.close()


def agrees(window) -> bool:
    """The chat in memory (and on screen) is the chat on disk."""
    c = window.chat
    memory = [(m.role, m.text, m.incomplete) for m in c.conversation.thread()]
    return memory == stored_thread(window.store.path, c.conversation.id)


# -- driving the window ------------------------------------------------------------------------------

def wait_signal(signals: list, timeout_s: float, trigger: Callable[[], object] | None = None):
    """Run the event loop until one of `signals` fires (after `trigger`): (index, args) or None.
    A trigger that returns False says nothing will come (None at once)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, timer, got = QEventLoop(), QTimer(), []

    def slot_for(index: int) -> Callable:
        def slot(*args) -> None:
            if not got:
                got.append((index, args))
            loop.quit()
        return slot

    slots = [(s, slot_for(i)) for i, s in enumerate(signals)]
    for s, slot in slots:
        s.connect(slot)
    timer.setSingleShot(True)
    timer.timeout.connect(loop.quit)
    timer.start(int(timeout_s * 1000))
    try:
        waiting = trigger() is not False if trigger is not None else True
        if not got and waiting:
            loop.exec()
    finally:
        timer.stop()
        for s, slot in slots:
            s.disconnect(slot)
    return got[0] if got else None



def load_model(window, path, timeout_s: float = 90, failed_first: bool = False, also=()):
    """Load a model in the window; wait_signal's answer over (loaded, failed) or (failed, loaded)."""
    models = window.model_session
    signals = [models.failed, models.loaded] if failed_first else [models.loaded, models.failed]
    return wait_signal(signals + list(also), timeout_s, lambda: models.load(str(path)))

def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    from PySide6.QtTest import QTest

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        QTest.qWait(20)
    return True


def send(window, text: str) -> bool:
    """Type `text` and press Enter; False when that neither started an answer nor said anything."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    told: list[str] = []
    window.chat.error.connect(told.append)
    window.composer.setPlainText(text)
    QTest.keyClick(window.composer, Qt.Key.Key_Return)
    window.chat.error.disconnect(told.append)
    return window.chat.generating or bool(told)


IGNORED = "Enter did nothing and said nothing"


def ask(window, text: str, tokens: int = 8, timeout_s: float = 180) -> str:
    """'' when answered, else why not (IGNORED: Enter was swallowed silently)."""
    from app.core.chat.sampling import SamplingParams

    c = window.chat
    window.sampling.set_params(SamplingParams(temperature=0.0, seed=1, max_tokens=tokens))
    ignored: list[bool] = []
    got = wait_signal([c.answer_finished, c.error], timeout_s,
                      lambda: send(window, text) or ignored.append(True) or False)
    if ignored:
        return IGNORED
    if got is None:
        return f"no answer to {text!r} within {timeout_s:.0f} s"
    if got[0] == 1:
        return f"{text!r} failed: {got[1][0]}"
    return "" if got[1][0].completion_tokens > 0 else f"{text!r}: an empty answer"


def ask_again(window, swallowed: list[float]) -> str:
    """The user's next question right after a failure. When Enter is swallowed silently (the
    engine still finishing the stopped answer), note for how long, then ask once more."""
    answer = ask(window, "Say hi.")
    if answer == IGNORED:
        started = time.monotonic()
        wait_until(lambda: not window.backend.client.busy, 60)
        swallowed.append(time.monotonic() - started)
        answer = ask(window, "Say hi.")
    return answer


def swallowed_note(swallowed: list[float], tries: int) -> str:
    return (f"Enter swallowed silently right after the error in {len(swallowed)} of {tries} (engine busy "
            f"{max(swallowed, default=0):.1f} s more)")


def open_window(model: Path, store=None):
    from app.session import workspace
    from app.ui.main_window import MainWindow

    workspace.PROPOSE_TITLES = False  # the kills are timed on answers: no title stream beside them
    window = MainWindow(store=store)
    window.show()
    c = window.chat
    got = load_model(window, model, 120, also=[c.error])
    if got is None or got[0] != 0:
        raise RuntimeError(f"the embedded model did not load in the window: {got}")
    return window


def close_window(window) -> None:
    from PySide6.QtTest import QTest

    window.close()
    window.deleteLater()
    QTest.qWait(50)


def start_answer(window, text: str, tokens: int, max_tokens: int = 600) -> bool:
    """Send `text` and return once `tokens` tokens of the answer have arrived (False: the answer
    did not start, or ended before that)."""
    from app.core.chat.sampling import SamplingParams

    worker = window.backend.client.worker
    window.sampling.set_params(SamplingParams(temperature=0.0, seed=1, max_tokens=max_tokens))
    arrived: list[int] = []

    def count(*_args) -> None:
        arrived.append(1)

    worker.token.connect(count)
    try:
        sent = send(window, text)
        # 300 s: on 2 cores shared with a test suite, llama.cpp's two threads can crawl (~1 token/s)
        wait_until(lambda: not sent or len(arrived) >= tokens or not window.chat.generating, 300)
        return len(arrived) >= tokens
    finally:
        worker.token.disconnect(count)


def engine_pid(window) -> int | None:
    return window.backend.client.worker.process.pid


# -- 2. the engine's process killed, aborted or stopped mid-answer ------------------------------------

def engine_signals(row: Row, model: Path, rng: random.Random, tries: int) -> None:
    window = open_window(model)
    c, swallowed = window.chat, []
    try:
        for i in range(tries):
            sig = (signal.SIGKILL, signal.SIGABRT, signal.SIGSTOP)[i % 3]
            tokens = rng.randint(2, 60)
            what = f"{sig.name} of the engine after {tokens} tokens"
            before, escaped = disk_messages(window.store.path), len(ESCAPED)
            c.new_conversation()  # a chat of cut stories and greetings gets short answers
            if not start_answer(window, f"{LONG_PROMPT} Number {i}.", tokens):
                row.record(what, False, why=f"the answer did not reach {tokens} tokens")
                continue
            pid = engine_pid(window)
            if sig == signal.SIGSTOP:  # stuck in C code: Stop must end it after the grace period
                os.kill(pid, sig)
                got = wait_signal([c.answer_finished, c.error], 60, c.stop)
                reacted = got is not None and got[0] == 0 and got[1][0].stop_reason == "user"
            else:
                got = wait_signal([c.error, c.answer_finished], 60, lambda p=pid, s=sig: os.kill(p, s))
                reacted = got is not None and got[0] == 0 and "stopped unexpectedly" in got[1][0]
            shown = c.conversation.thread()[-1]
            after = disk_messages(window.store.path)
            lost = missing(before, after) + (not after.get(shown.id, ("", "", 0))[1].startswith(shown.text))
            problems = [p for p in (
                "" if reacted else f"unexpected outcome {got}",
                "" if agrees(window) else "memory and disk differ",
                "" if window.isVisible() else "the window is gone",
                "" if len(ESCAPED) == escaped else f"exception escaped: {ESCAPED[-1]}",
                ask_again(window, swallowed)) if p]
            row.record(what, not problems, lost, "; ".join(problems))
        restarts = window.backend.client.worker.process.restarts
        row.notes += [f"engine restarts {restarts}", swallowed_note(swallowed, tries)]
    finally:
        close_window(window)


# -- 3. hostile model files through Model > Open ------------------------------------------------------

def hostile_models_in_window(row: Row, model: Path, files: list[tuple[str, Path]]) -> None:
    window = open_window(model)
    c, name, loaded = window.chat, window.model_label.text(), 0
    try:
        for what, path in files:
            escaped, problems = len(ESCAPED), []
            got = load_model(window, path, failed_first=True)
            if got is None:
                problems.append("no answer within 90 s")
                window.backend.client.worker.process.kill("bench")
            elif got[0] == 0 and "still loaded" not in got[1][0]:
                problems.append(f"refused without keeping the model: {got[1][0]}")
            elif got[0] == 1:  # llama.cpp accepts this file: it must answer or fail, not hang
                loaded += 1
                answer = ask(window, "Say hi.", timeout_s=60)
                if answer.startswith("no answer") or answer == IGNORED:
                    problems.append(answer)
                load_model(window, model)
            if window.model_label.text() != name or c.model is None:
                problems.append(f"the model shown is {window.model_label.text()!r}")
            if len(ESCAPED) != escaped:
                problems.append(f"exception escaped: {ESCAPED[-1]}")
            row.record(f"Model > Open {what}", not problems, 0, "; ".join(problems))
        answer = ask(window, "Say hi.")
        row.record("a question after all the files", not answer, 0, answer)
        row.notes.append(f"{loaded} damaged files loaded by llama.cpp, each then answered or failed")
    finally:
        close_window(window)


# -- 4. hostile chat templates -----------------------------------------------------------------------

def rss_mb(pid: int | None, reset: bool = False) -> tuple[float, float]:
    """(peak, now) resident memory of a process in MB; reset: the peak starts again from now."""
    try:
        if reset:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, TypeError, ValueError):
        return 0.0, 0.0
    return int(status["VmHWM"].split()[0]) / 1024, int(status["VmRSS"].split()[0]) / 1024


def hostile_templates(row: Row, model: Path, work: Path) -> None:
    from tests.fixtures import template_models as t

    window = open_window(model)
    c, peaks = window.chat, []
    try:
        for what, template, words in [("empty output", t.EMPTY, "produced no text"),
                                      ("3 GB constant", t.HUGE_CONSTANT, "too large"),
                                      ("8 GiB balloon", t.BALLOON, "memory"),
                                      ("10^10 loop", t.NESTED_LOOPS, "took longer than")]:
            hostile = t.with_chat_template(model, work / "template.gguf", template)
            escaped, problems, took = len(ESCAPED), [], 0.0
            got = load_model(window, hostile)
            pid = engine_pid(window)
            rss_mb(pid, reset=True)
            if got is not None and got[0] == 0:
                started = time.monotonic()
                got = wait_signal([c.error, c.answer_finished], 120, lambda: send(window, "Say hi."))
                took = time.monotonic() - started
                if got is None or got[0] != 0 or words not in got[1][0]:
                    problems.append(f"unexpected outcome {got}")
            elif got is None or "still loaded" not in got[1][0]:
                problems.append(f"load: {got}")
            peak, now = rss_mb(pid)
            if c.generating:
                problems.append("still generating")
            if len(ESCAPED) != escaped:
                problems.append(f"exception escaped: {ESCAPED[-1]}")
            if load_model(window, model) is None:
                problems.append("the embedded model did not load again")
            problems.append(ask(window, "Say hi."))
            peaks.append(f"{what} {peak:.0f} MB (then {now:.0f}) {took:.1f} s")
            problems = [p for p in problems if p]
            row.record(f"template {what}", not problems and window.isVisible(), 0, "; ".join(problems))
            hostile.unlink()
        row.notes.append("engine peak RSS (RSS after), time to the error: " + ", ".join(peaks))
    finally:
        close_window(window)


# -- 6. store faults under the window -----------------------------------------------------------------

NO_LIMIT = "PRAGMA max_page_count = 1073741823"


def full_mid_answer(window, tokens: int) -> list[str]:
    c = window.chat
    if not start_answer(window, LONG_PROMPT, tokens, max_tokens=400):
        return ["the answer did not start"]
    db = c.store.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    limit = f"PRAGMA max_page_count = {pages}"  # SQLite's own "database or disk is full" from now on
    got = wait_signal([c.error, c.answer_finished], 120, lambda: db.execute(limit))
    c.store.db.execute(NO_LIMIT)
    fine = got is not None and (got[0] == 1 or "could not be saved" in got[1][0])  # 1: the limit was not hit
    return [] if fine else [f"outcome {got}"]


def full_at_send(window) -> list[str]:
    c = window.chat
    c.store.db.execute(f"PRAGMA max_page_count = {c.store.db.execute('PRAGMA page_count').fetchone()[0]}")
    text = "A long question. " * 600  # needs new pages
    got = wait_signal([c.error, c.answer_finished], 60, lambda: send(window, text))
    c.store.db.execute(NO_LIMIT)
    kept = window.composer.toPlainText().strip() == text.strip()
    fine = got is not None and got[0] == 0 and kept and not window.backend.client.busy
    return [] if fine else [f"outcome {got}, the composer kept the text: {kept}"]


def locked(window, path: Path, hold_s: float | None) -> list[str]:
    """Another program holds the write lock: at Enter (hold_s None), or for hold_s mid-answer."""
    c, other = window.chat, sqlite3.connect(path, isolation_level=None)
    try:
        if hold_s is None:
            other.execute("BEGIN IMMEDIATE")
            got = wait_signal([c.error, c.answer_finished], 60, lambda: send(window, "Name a colour."))
            other.execute("ROLLBACK")
            refused = got is not None and got[0] == 0 and "not sent" in got[1][0]
            return [] if refused and not c.backend.busy else [f"outcome {got}"]
        if not start_answer(window, LONG_PROMPT, 5, max_tokens=300):
            return ["the answer did not start"]
        other.execute("BEGIN IMMEDIATE")
        wait_until(lambda: False, hold_s)
        other.execute("ROLLBACK")
        return [] if wait_until(lambda: not c.generating, 120) else ["still generating 120 s after"]
    finally:
        other.close()


def store_faults(row: Row, model: Path, rng: random.Random, kinds: list[str]) -> None:
    window = open_window(model)
    path, swallowed = window.store.path, []
    try:
        first = ask(window, "Say hi.")  # something stored to lose
        if first:
            raise RuntimeError(first)
        for kind in [k for k in kinds if k != "read-only"]:
            before, escaped = disk_messages(path), len(ESCAPED)
            if kind == "full mid-answer":
                tokens = rng.randint(3, 80)
                kind, problems = f"{kind} after {tokens} tokens", full_mid_answer(window, tokens)
            elif kind == "full at send":
                problems = full_at_send(window)
            else:
                hold = rng.uniform(0.3, 4.0) if kind == "locked mid-answer" else None
                kind += f", held {hold:.1f} s" if hold else ""
                problems = locked(window, path, hold)
            if not agrees(window):
                problems.append("memory and disk differ")
            if len(ESCAPED) != escaped:
                problems.append(f"exception escaped: {ESCAPED[-1]}")
            answer = ask_again(window, swallowed)
            problems += [f"afterwards {answer}"] if answer else []
            row.record(kind, not problems and agrees(window), missing(before, disk_messages(path)),
                       "; ".join(problems))
        row.notes.append(swallowed_note(swallowed, len(kinds) - ("read-only" in kinds)))
    finally:
        close_window(window)
    if "read-only" in kinds:
        read_only(row, model, path)


def read_only(row: Row, model: Path, path: Path) -> None:
    from app.core.conversations.store import ConversationStore

    before, escaped = disk_messages(path), len(ESCAPED)
    window = open_window(model, ConversationStore(path, read_only=True))
    c = window.chat
    try:
        count = len(c.conversation.messages)
        got = wait_signal([c.error, c.answer_finished], 60, lambda: send(window, "Say hi."))
        fine = (got is not None and got[0] == 0 and "not sent" in got[1][0] and len(ESCAPED) == escaped
                and len(c.conversation.messages) == count and window.composer.toPlainText() == "Say hi.")
        row.record("read-only database", fine, missing(before, disk_messages(path)), f"outcome {got}")
    finally:
        close_window(window)


# -- 8. damaged KV snapshots ---------------------------------------------------------------------------

def damage(data: bytearray, rng: random.Random, kind: str) -> bytearray:
    if kind == "bit":
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "state bytes":
        at = rng.randrange(len(data) // 4, len(data) - 64)
        data[at:at + 16] = rng.randbytes(16)
    elif kind == "first bytes":
        data[:64] = rng.randbytes(64)
    elif kind == "cut short":
        del data[rng.randrange(8, len(data) - 1):]
    elif kind == "header length":
        data[6:10] = (0xFFFFFFF0).to_bytes(4, "little")
    elif kind == "appended":
        data += rng.randbytes(4096)
    return data


def kv_snapshots(row: Row, model: Path, rng: random.Random, tries: int, work: Path) -> None:
    """A snapshot of chat A made as the engine's process makes one (a switch to B, then save_kv);
    each try damages it in a copy of the folder, and the next answer in A must equal the answer
    read with no snapshot at all."""
    from app.core.chat.sampling import GREEDY
    from app.core.inference.local.engine import Engine, LoadOptions
    from app.core.inference.local.kv_cache import KVCacheStore

    first = [{"role": "user", "content": "Tell me about llamas."}]

    def engine(folder: Path | None) -> Engine:
        made = Engine(KVCacheStore(folder) if folder else None)
        made.load(model, LoadOptions(n_ctx=2048, n_threads=2))
        return made

    def answer(made: Engine, chat: list, key: str = "A", tokens: int = 40) -> str:
        return "".join(e for e in made.stream(chat, GREEDY.replace(max_tokens=tokens), cache_key=key)
                       if isinstance(e, str))

    made = engine(work / "kv-pristine")
    reply = answer(made, first)
    answer(made, [{"role": "user", "content": "Say hi."}], "B", 4)
    made.unload()  # saves A's (and B's) snapshot
    chat = [*first, {"role": "assistant", "content": reply}, {"role": "user", "content": "And alpacas?"}]

    def fresh(folder: Path) -> str:
        made = engine(folder)
        try:
            return answer(made, chat)
        finally:
            made.unload()

    expected = fresh(work / "kv-none")
    made = engine(None)  # a restored snapshot matches an in-memory prefix, not a fresh read
    answer(made, first)
    in_memory = answer(made, chat)
    made.unload()
    shutil.copytree(work / "kv-pristine", work / "kv-intact")
    same = fresh(work / "kv-intact") == in_memory
    row.notes.append(f"intact snapshot answers as the in-memory cache does: {same}")
    snapshot = KVCacheStore(work / "kv-pristine")._path("A").name  # the file name is a hash of the key
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kinds = ["bit", "state bytes", "first bytes", "cut short", "header length", "appended"]
    for i in range(tries):
        kind, folder = kinds[i % len(kinds)], work / f"kv-{i}"
        shutil.copytree(work / "kv-pristine", folder)
        (folder / snapshot).write_bytes(damage(bytearray((folder / snapshot).read_bytes()), rng, kind))
        try:
            got = fresh(folder)
        except Exception as error:  # noqa: BLE001 - the bench reports it
            got = f"raised {error!r}"
        left = KVCacheStore(folder).check().removed  # the bad state must not have been saved again
        problems = [p for p in ("" if got == expected else f"answer {got[:60]!r} != {expected[:60]!r}",
                                f"damaged file saved again: {left}" if left else "") if p]
        row.record(f"snapshot damaged ({kind})", not problems, 0, "; ".join(problems))
        shutil.rmtree(folder)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    row.notes.append(f"bench peak RSS grew {grown:.0f} MB over the damaged tries")
