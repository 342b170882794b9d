"""Robustness: issue 10's adversarial trials, rerun for real against the app as it is now.

    python bench/robustness.py [--quick] [--seed 10] [--model PATH] [--keep]

 1 SIGKILL of the whole app (`python -m app`, through a driver) at random points of an answer
 2 SIGKILL, SIGABRT or SIGSTOP of the engine's process mid-answer (the real window, in this process)
 3 hostile GGUF files (tests/fixtures/hostile_gguf.py, the bit-flipped model, random header bit
   flips) through `python -m app models info` and through the window's Model > Open
 4 hostile chat templates (tests/fixtures/template_models.py) in the window
 5 hostile and mutated transcripts through `python -m app import`
 6 store faults under the window: disk full (PRAGMA max_page_count), locked, read-only
 7 damaged database pages: `conversations list`, `--self-test`, `doctor --recover`
 8 damaged KV snapshots: the next answer equals the one read with no snapshot
 9 malformed settings files: `python -m app --self-test` passes, the file is kept as .bad

survived: the app (window or command) kept running, or exited 1 with one plain line and no traceback
within its time limit, and did what its category promises (refused, kept the model, answered the
next question, memory equal to disk). lost: messages that were stored, or text shown for over a
second before a kill (the recorder saves every 0.5 s), missing or cut afterwards. --quick runs fewer
tries (about 2 minutes). Prints a table, then every failure with what reproduces it, then one JSON
object as the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from robustness_cases import REPO, Row, disk_messages, missing  # noqa: E402

TRIES = {"full": {"kills": 6, "engine": 6, "flips": 6, "imports": 300, "pages": 6, "kv": 6, "settings": 99},
         "quick": {"kills": 2, "engine": 3, "flips": 1, "imports": 60, "pages": 2, "kv": 3, "settings": 5}}
FAULTS = {"full": ["full at send", "full mid-answer", "full mid-answer", "locked at send", "locked at send",
                   "locked mid-answer", "locked mid-answer", "read-only"],
          "quick": ["full at send", "full mid-answer", "locked at send", "locked mid-answer", "read-only"]}
STORY = "Write a long story about a llama who travels the world."

# Runs `python -m app ARGS` in-process and prints, as JSON lines, the engine's pid and every piece
# of the answer the chat view shows, with the time it was shown.
DRIVER = r"""
import json, sys, time
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
import app.__main__
from app.core.chat.sampling import SamplingParams
from app.ui import main_window

made = main_window.MainWindow.__init__

def init(self, *args, **kwargs):
    made(self, *args, **kwargs)
    show, begin, state = self.chat_view.append_text, self.chat_view.begin_message, {"asked": 0, "on": 0}
    def begin_message(role, *a, **k):
        state["on"] = state["asked"] and role == "assistant"
        if state["on"]:
            print(json.dumps({"begin": time.time()}), flush=True)
        begin(role, *a, **k)
    def append_text(text):
        show(text)
        if state["on"]:
            print(json.dumps({"t": time.time(), "text": text}), flush=True)
    def ask(info):
        if not state["asked"]:
            state["asked"] = 1
            self.sampling.set_params(SamplingParams(temperature=0.0, seed=1, max_tokens=2000))
            print(json.dumps({"engine": self.backend.client.worker.process.pid}), flush=True)
            self.composer.setPlainText(sys.argv[1])
            QTest.keyClick(self.composer, Qt.Key.Key_Return)
    self.chat_view.append_text, self.chat_view.begin_message = append_text, begin_message
    self.model_session.loaded.connect(ask)

if __name__ == "__main__":  # not in the engine's process, which multiprocessing spawns
    main_window.MainWindow.__init__ = init
    sys.exit(app.__main__.main(sys.argv[2:]))
"""


def app_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LLAMADESK_DEBUG"}
    env.update({"LLAMADESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", "PYTHONIOENCODING": "utf-8",
                "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    return env


def run_app(home: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess | None:
    """`python -m app ARGS`; None when it did not end within `timeout` (it is killed)."""
    try:
        return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=app_env(home),
                              capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def refusal_problem(result: subprocess.CompletedProcess | None, may_succeed: bool = False) -> str:
    """'' for a clean refusal (exit 1, one line on stderr, no traceback), else what was wrong."""
    if result is None:
        return "did not end within its time limit"
    last = (result.stderr.strip().splitlines() or [""])[-1][:200]
    if result.returncode == 0 and may_succeed:
        return ""
    if result.returncode != 1:
        return f"exit status {result.returncode}: {last!r}"
    if "Traceback" in result.stderr:
        return f"a traceback: {last!r}"
    lines = len(result.stderr.strip().splitlines())
    return "" if lines == 1 else f"{lines} lines on stderr: {last!r}"


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def alive(pid: int | None) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, TypeError):
        return False
    return "\nState:\tZ" not in status  # a zombie has ended


def integrity(database: Path) -> str:
    db = sqlite3.connect(database)
    try:
        return db.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        db.close()


def read_lines(process: subprocess.Popen, lines: list[dict]) -> None:
    lines.extend(json.loads(line) for line in process.stdout)


# -- 1. SIGKILL of the whole app mid-answer -------------------------------------------------------------

def app_kills(row: Row, model: Path, rng: random.Random, tries: int, home: Path) -> None:
    from app.core.conversations.store import default_store_path

    database, before, in_flight = default_store_path(), {}, []
    for i in range(tries):
        delay = rng.uniform(0.2, 4.0)
        what = f"SIGKILL of the app {delay:.1f} s after the answer's first text (try {i + 1})"
        lines: list[dict] = []
        with (home / "stderr.txt").open("w") as err:
            process = subprocess.Popen([sys.executable, "-c", DRIVER, STORY, "--model", str(model)], cwd=REPO,
                                       env=app_env(home), stdout=subprocess.PIPE, stderr=err, text=True,
                                       start_new_session=True)
        reader = threading.Thread(target=read_lines, args=(process, lines), daemon=True)
        reader.start()
        def answering(p: subprocess.Popen = process, got: list = lines) -> bool:
            return p.poll() is not None or any("text" in x for x in got)

        if not wait_for(answering, 120) or process.poll() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            tail = (home / "stderr.txt").read_text(errors="replace")[-300:]
            row.record(what, False, why=f"no answer shown (exit {process.poll()}): {tail!r}")
            continue
        time.sleep(delay)  # the random point in the answer
        killed_at = time.time()
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        reader.join(10)
        engine = next((x["engine"] for x in lines if "engine" in x), None)
        orphan = not wait_for(lambda e=engine: not alive(e), 15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        begins = [n for n, x in enumerate(lines) if "begin" in x]
        pieces = [(x["t"], x["text"]) for x in lines[begins[-1] if begins else 0:] if "text" in x]
        shown = "".join(text for _, text in pieces)
        shown_before = "".join(text for at, text in pieces if at <= killed_at - 1.0)
        after = disk_messages(database)
        lost, problems = missing(before, after), []
        new = [after[k] for k in after if k not in before]
        if [m[1] for m in new if m[0] == "user"] != [STORY]:
            lost += 1
            problems.append(f"the question was not stored: {new}")
        answer = next((m[1] for m in new if m[0] == "assistant"), "")
        if not (answer.startswith(shown) or shown.startswith(answer)):
            problems.append("the stored answer is not the one shown")
        if not answer.startswith(shown_before):
            lost += 1
            problems.append(f"{len(shown_before)} chars shown over 1 s before the kill, {len(answer)} stored")
        in_flight.append(max(0, len(shown) - len(answer)))
        if integrity(database) != "ok":
            problems.append(f"database check: {integrity(database)}")
        if orphan:
            problems.append(f"the engine's process {engine} outlived the app by 15 s")
        row.record(what, not problems, lost, "; ".join(problems))
        before = after
    result = run_app(home, "--self-test", timeout=120)  # the app starts and answers after the kills
    row.record("--self-test after the kills", result is not None and result.returncode == 0, 0,
               f"self-test: {result and (result.stdout + result.stderr)[-300:]}")
    row.notes.append(f"shown but not yet saved at the kill: at most {max(in_flight, default=0)} chars")


# -- 3. hostile GGUF files through `models info` ------------------------------------------------------

def hostile_files(work: Path, model: Path, rng: random.Random, flips: int) -> list[tuple[str, Path, bool]]:
    """(what, file, must be refused): every hostile writer, the bit-flipped model, random flips."""
    import gguf

    from tests.fixtures import hostile_gguf as h

    files = [(name, writer(work / f"{name}.gguf"), True) for name, (writer, _, _) in h.HOSTILE.items()]
    files.append(("sparse_many_entries", h.sparse_many_entries(work / "sparse.gguf"), True))
    files.append(("bit_flipped_model", h.bit_flipped_model(model, work / "bit_flipped.gguf"), True))
    end = gguf.GGUFReader(model).data_offset
    for _ in range(flips):
        at, bit = rng.randrange(8, end), rng.randrange(8)
        data = bytearray(model.read_bytes())
        data[at] ^= 1 << bit
        path = work / f"flip-{at}-{bit}.gguf"
        path.write_bytes(data)
        files.append((f"{model.name} with bit {bit} of byte {at} flipped", path, False))
    return files


def models_info(row: Row, home: Path, files: list[tuple[str, Path, bool]]) -> None:
    slowest = 0.0
    for what, path, refuse in files:
        started = time.monotonic()
        result = run_app(home, "models", "info", str(path), timeout=30)
        took = time.monotonic() - started
        slowest = max(slowest, took)
        problem = refusal_problem(result, may_succeed=not refuse) or (f"took {took:.0f} s" * (took > 10))
        row.record(f"models info {what}", not problem, 0, problem)
    row.notes.append(f"slowest {slowest:.1f} s")


# -- 5. bad imports --------------------------------------------------------------------------------------

def transcript(rng: random.Random) -> str:
    from app.core.conversations import transcripts
    from app.core.conversations.conversation import Conversation

    conversations = []
    for c in range(3):
        conversation = Conversation(title=f"Imported {c}")
        for m in range(4):
            conversation.append(("user", "assistant")[m % 2], f"Message {c}-{m} " * rng.randint(1, 9))
        conversations.append(conversation)
    return transcripts.to_json(conversations)


OTHER_TYPES = {str: [5, None, [], {"a": 1}], int: ["7", None, [], 10**30, -1], float: ["7", None, [], 1e300],
               bool: ["yes", 2, None], type(None): [{}, [], "x", 3], list: [{}, "x", 7],
               dict: [[], "x", None]}


def nodes(node, at: tuple = ()):
    yield at
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from nodes(child, (*at, key))


def changed(doc: dict, at: tuple, value) -> bytes:
    copy = json.loads(json.dumps(doc))
    target = copy
    for key in at[:-1]:
        target = target[key]
    target[at[-1]] = value
    return json.dumps(copy).encode()


def import_cases(work: Path, rng: random.Random, count: int) -> list[tuple[str, Path, bool]]:
    """(what, file, may be valid): fixed hostile cases, then random mutations of a good export."""
    from app.core.conversations.transcript_json import MAX_TEXT

    text = transcript(rng)
    doc, raw = json.loads(text), text.encode()
    message = ("conversations", 0, "messages", 1)
    first_id, second_id = (m["id"] for m in doc["conversations"][0]["messages"][:2])
    fixed: list[tuple[str, bytes | str]] = [
        ("empty file", b""), ("null", b"null"), ("a list", b"[]"), ("100,000 [", b"[" * 100_000),
        ("objects 10,000 deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000), ("UTF-16", text.encode("utf-16")),
        ("not UTF-8", raw.replace(b"Message 0-0", b"Message \xff\xfe", 1)),
        ("NaN time", text.replace('"created": ', '"created": NaN, "x": ', 1)),
        ("Infinity time", text.replace('"created": ', '"created": Infinity, "x": ', 1)),
        ("newer schema", changed(doc, ("schema_version",), 99)),
        ("other format", changed(doc, ("format",), "x")),
        ("conversation id with a newline", changed(doc, ("conversations", 0, "id"), "abc\ndef")),
        ("conversation id with a tab", changed(doc, ("conversations", 0, "id"), "abc\tdef")),
        ("conversation id with ESC", changed(doc, ("conversations", 0, "id"), "\x1b[2Jabc")),
        ("message id with NUL", changed(doc, (*message, "id"), "ab\x00cd")),
        ("parent id with a newline", changed(doc, (*message, "parent_id"), "x\ny")),
        ("id of 201 chars", changed(doc, (*message, "id"), "a" * 201)),
        ("parent missing", changed(doc, (*message, "parent_id"), "nowhere")),
        ("parent is itself", changed(doc, (*message, "parent_id"), second_id)),
        ("duplicate message id", changed(doc, (*message, "id"), first_id)),
        ("role 'robot'", changed(doc, (*message, "role"), "robot")),
        ("time 1e20", changed(doc, (*message, "created"), 1e20)),
        ("time -5", changed(doc, (*message, "created"), -5)),
        ("a million junk conversations", changed(doc, ("conversations",), [0] * 1_000_000)),
    ]
    cases = []
    for n, (what, data) in enumerate(fixed):
        path = work / f"fixed-{n}.json"
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        cases.append((what, path, False))
    over = work / "over-limit.json"
    with over.open("wb") as f:
        f.truncate(MAX_TEXT + 1)  # sparse: refused by its size before it is read
    (work / "a-folder.json").mkdir()
    os.mkfifo(work / "fifo.json")
    os.symlink("/dev/zero", work / "zero.json")
    cases += [("a file over the size limit", over, False), ("a folder", work / "a-folder.json", False),
              ("a FIFO", work / "fifo.json", False), ("a link to /dev/zero", work / "zero.json", False),
              ("no such file", work / "absent.json", False)]
    all_nodes = [n for n in nodes(doc) if n]
    for n in range(max(0, count - len(cases))):
        kind = ("cut", "flipped byte", "wrong type", "deleted char")[n % 4]
        if kind == "cut":
            data, valid = raw[:rng.randrange(1, len(raw.rstrip()))], False
        elif kind == "flipped byte":
            data, at = bytearray(raw), rng.randrange(len(raw))
            data[at] ^= rng.randrange(1, 256)
            data, valid = bytes(data), True
        elif kind == "wrong type":
            at = rng.choice(all_nodes)
            target = doc
            for key in at:
                target = target[key]
            value = rng.choice(OTHER_TYPES[type(target)])
            kind = f"{'.'.join(map(str, at))} = {json.dumps(value)[:20]}"
            data, valid = changed(doc, at, value), True
        else:
            at = rng.randrange(len(raw))
            data, valid = raw[:at] + raw[at + 1:], True
        path = work / f"mutated-{n}.json"
        path.write_bytes(data)
        cases.append((f"mutation {n} ({kind})", path, valid))
    return cases


def dump(database: Path) -> list[str]:
    db = sqlite3.connect(database)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def bad_imports(row: Row, home: Path, rng: random.Random, count: int) -> None:
    from app.core.conversations.store import ConversationStore, default_store_path
    from app.core.conversations.transcript_json import from_json

    database = default_store_path()
    store = ConversationStore(database)
    store.insert_conversations(from_json(transcript(rng)))
    store.close()
    backup = home / "backup.sqlite3"
    with sqlite3.connect(database) as source, sqlite3.connect(backup) as copy:
        source.backup(copy)
    baseline, stored, accepted = dump(database), disk_messages(database), 0
    (home / "cases").mkdir()
    for what, path, may_be_valid in import_cases(home / "cases", rng, count):
        result = run_app(home, "import", str(path), timeout=20)
        problem = refusal_problem(result, may_succeed=may_be_valid)
        after = dump(database)
        if result is not None and result.returncode == 0 and not problem:
            accepted += 1
            if missing(stored, disk_messages(database)):
                problem = "an accepted import changed what was stored before"
            with sqlite3.connect(backup) as source, sqlite3.connect(database) as target:
                source.backup(target)  # back to the baseline for the next case
        elif after != baseline:
            problem = problem or "the database changed"
        elif result is not None and result.stdout:
            problem = problem or f"printed {result.stdout[:80]!r}"
        lost = missing(stored, disk_messages(database))
        row.record(f"import {what} ({path})", not problem, lost, problem)
    row.notes.append(f"{row.tried - accepted} refused, {accepted} mutations still valid and imported")


# -- 7. damaged database pages -----------------------------------------------------------------------------

def damaged_pages(row: Row, rng: random.Random, tries: int, work: Path) -> None:
    from app.core.conversations.conversation import Conversation
    from app.core.conversations.store import ConversationStore

    on_damaged = []
    for i in range(tries):
        home = work / f"pages-{i}"
        database = home / "data" / "conversations.sqlite3"
        database.parent.mkdir(parents=True)
        conversations = [Conversation(title=f"Chat {c:04d}") for c in range(120)]
        for c, conversation in enumerate(conversations):
            for m in range(6):
                conversation.append(("user", "assistant")[m % 2], f"marker-{c:04d}-{m:02d} " + "Llama. " * 20)
        store = ConversationStore(database)
        store.insert_conversations(conversations)
        store.close()
        with contextlib.closing(sqlite3.connect(database)) as db:
            db.execute("VACUUM")  # no stale copies of a row: each marker is where its row is
        data = database.read_bytes()
        size = int.from_bytes(data[16:18], "big")
        pages = sorted(rng.sample(range(1, len(data) // size), rng.randint(1, 3)))  # never page 1 (header)
        with database.open("r+b") as f:
            for page in pages:
                f.seek(page * size)
                f.write(rng.randbytes(size))
        on_intact = [m.text for c in conversations for m in c.messages  # its row, and any other copy
                     if not {at // size for at in occurrences(data, m.text.split()[0].encode())} & set(pages)]
        on_damaged.append(len(conversations) * 6 - len(on_intact))
        problems = []
        listed = run_app(home, "conversations", "list")
        if refusal_problem(listed, may_succeed=True):
            problems.append(f"list: {refusal_problem(listed)}")
        tested = run_app(home, "--self-test", timeout=120)
        if tested is None or "Traceback" in tested.stderr or tested.returncode not in (0, 1):
            problems.append(f"self-test: {tested and tested.stderr[-200:]}")
        repaired = run_app(home, "doctor", "--recover", timeout=120)
        if repaired is None or repaired.returncode != 0 or "Traceback" in repaired.stderr:
            problems.append(f"doctor --recover: {repaired and (repaired.stdout + repaired.stderr)[-300:]}")
        after = run_app(home, "conversations", "list")
        if after is None or after.returncode != 0 or not after.stdout.strip():
            problems.append(f"list after recovery: {after and after.stderr[-200:]}")
        try:
            texts = {m[1] for m in disk_messages(database).values()}
        except Exception as error:  # noqa: BLE001 - the bench reports it
            texts, problems = set(), [*problems, f"reading after recovery: {error}"]
        lost = sum(1 for text in on_intact if text not in texts)
        row.record(f"pages {[p + 1 for p in pages]} of {database} overwritten", not problems, lost,
                   "; ".join(problems))
    row.notes.append(f"messages on the damaged pages (lost by the damage itself): {on_damaged}")


def occurrences(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


# -- 9. malformed settings files ----------------------------------------------------------------------

def settings_cases(rng: random.Random) -> list[tuple[str, str, bytes | None, bool]]:
    """(file, what, content (None: a FIFO), must be set aside as .bad)."""
    from PySide6.QtCore import QByteArray, QSettings

    prompts = [("a list of prompts", b'{"prompts": ["a"]}'), ("100,000 [", b"[" * 100_000),
               ("a trailing comma", b'{"prompts": {"Mine": "Be brief.",}}'),
               ("not UTF-8", b'{"prompts": {"\xff": "x"}}'), ("null", b"null"),
               ("a number as prompt", b'{"prompts": {"a": 5}}'), ("NaN", b'{"prompts": {"a": NaN}}'),
               ("20 MB", b'{"prompts": {"a": "' + b"x" * 20_000_000 + b'"}}'),
               ("60 deep", b'{"prompts": {"a": ' + b"[" * 60 + b"]" * 60 + b"}}"), ("a FIFO", None)]
    cases = [("system-prompts.json", what, data, True) for what, data in prompts]
    ini = Path(tempfile.mkdtemp()) / "window.ini"
    for what, key, value in [("pane sizes 0,0,0", "window/splitter", QByteArray(
            bytes.fromhex("000000ff00000001000000030000000000000000000000000001ffffffff010000000100"))),
            ("geometry garbage", "window/geometry", QByteArray(rng.randbytes(60))),
            ("theme 42", "view/theme", 42), ("text size 'huge'", "view/text_size", "huge"),
            ("overflow policy 'x'", "chat/overflow_policy", "x")]:
        settings = QSettings(str(ini), QSettings.Format.IniFormat)
        settings.clear()
        settings.setValue(key, value)
        settings.sync()
        del settings
        cases.append(("window.ini", what, ini.read_bytes(), True))
    cases += [("window.ini", "4 KB of random bytes", rng.randbytes(4096), False),
              ("window.ini", "2 MB", b"[window]\n" + b"x=1\n" * 500_000, True),
              ("window.ini", "a FIFO", None, True)]
    shutil.rmtree(ini.parent)
    return cases


def settings_files(row: Row, rng: random.Random, work: Path, limit: int) -> None:
    cases = settings_cases(rng)
    for n, (name, what, data, aside) in enumerate(rng.sample(cases, min(limit, len(cases)))):
        home = work / f"settings-{n}"
        config = home / "config"
        config.mkdir(parents=True)
        if data is None:
            os.mkfifo(config / name)
        else:
            (config / name).write_bytes(data)
        result = run_app(home, "--self-test", timeout=120)
        kept = sorted(config.glob(name + "*.bad"))
        problems = []
        if result is None or result.returncode != 0:
            problems.append(f"self-test: {result and (result.stdout + result.stderr)[-200:]}")
        if aside and not kept:
            problems.append("not kept as .bad")
        if kept and data is not None and kept[0].read_bytes() != data:
            problems.append(f"{kept[0].name} is not the damaged file")
        row.record(f"{name}: {what}", not problems, 0, "; ".join(problems))


# -- the table ---------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tries (about 2 minutes)")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--model")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llamadesk-robustness-"))
    os.environ["LLAMADESK_HOME"] = str(work / "home")
    logging.basicConfig(filename=work / "bench.log", level=logging.INFO,  # in-process app logs (--keep)
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    import robustness_cases as cases
    from PySide6.QtWidgets import QApplication

    from app.core.models.library_files import default_model_path

    model = Path(args.model or default_model_path())
    qt_app = QApplication.instance() or QApplication([])
    from app.session import tasks

    tasks.install_loop(qt_app)  # the window's flows run on it, as under app.gui
    cases.install_excepthook()
    rng = random.Random(args.seed)
    n, faults = TRIES["quick" if args.quick else "full"], FAULTS["quick" if args.quick else "full"]
    files = hostile_files(work, model, rng, n["flips"])
    steps = [
        ("1 app SIGKILL mid-answer", lambda row, home: app_kills(row, model, rng, n["kills"], home)),
        ("2 engine signals mid-answer", lambda row, home: cases.engine_signals(row, model, rng, n["engine"])),
        ("3a hostile GGUF: models info", lambda row, home: models_info(row, home, files)),
        ("3b hostile GGUF: Model > Open", lambda row, home: cases.hostile_models_in_window(
            row, model, [(w, p) for w, p, _ in files])),
        ("4 hostile chat templates", lambda row, home: cases.hostile_templates(row, model, home)),
        ("5 bad imports", lambda row, home: bad_imports(row, home, rng, n["imports"])),
        ("6 store faults in the window", lambda row, home: cases.store_faults(row, model, rng, faults)),
        ("7 damaged database pages", lambda row, home: damaged_pages(row, rng, n["pages"], home)),
        ("8 damaged KV snapshots", lambda row, home: cases.kv_snapshots(row, model, rng, n["kv"], home)),
        ("9 malformed settings files", lambda row, home: settings_files(row, rng, home, n["settings"])),
    ]
    rows, started_all = [], time.monotonic()
    for name, step in steps:
        row, started = Row(name), time.monotonic()
        home = work / name.split()[0]
        home.mkdir()
        os.environ["LLAMADESK_HOME"] = str(home)
        try:
            step(row, home)
        except Exception:  # noqa: BLE001 - one category's failure must not hide the others
            row.record("the category itself", False, why=traceback.format_exc()[-600:])
        row.notes.append(f"{time.monotonic() - started:.0f} s")
        rows.append(row)
        print(f"{name}: {row.survived}/{row.tried} survived, {row.lost} lost", file=sys.stderr, flush=True)
    print(f"{'category':<32}| {'tried':>5} | {'survived':>8} | {'lost':>4} | notes")
    for r in rows:
        print(f"{r.category:<32}| {r.tried:>5} | {r.survived:>8} | {r.lost:>4} | {'; '.join(r.notes)}")
    total = Row("total", sum(r.tried for r in rows), sum(r.survived for r in rows), sum(r.lost for r in rows))
    print(f"{'total':<32}| {total.tried:>5} | {total.survived:>8} | {total.lost:>4} | "
          f"{time.monotonic() - started_all:.0f} s")
    for row in rows:
        for failure in row.failures:
            print(f"FAILED {row.category}: {failure}")
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    seconds = round(time.monotonic() - started_all)
    print(json.dumps({"quick": args.quick, "seed": args.seed, "seconds": seconds, "tried": total.tried,
                      "survived": total.survived, "lost": total.lost,
                      "categories": {r.category: {"tried": r.tried, "survived": r.survived, "lost": r.lost}
                                     for r in rows}}))
    return 0 if total.survived == total.tried and not total.lost else 1


if __name__ == "__main__":
    sys.exit(main())
