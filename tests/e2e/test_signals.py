"""SIGTERM (`kill`, a logout, a service manager) closes Llamadesk as Ctrl+Q does; it never acts like
kill -9 on a chat.

The app runs as a separate process with LLAMADESK_HOME in a temporary folder and the embedded model.
Where the signal must come at an exact moment (mid-answer, before the window exists, during the
self-test), a small driver script runs the real entry point, `app.__main__.main`, and sends the
signal to its own process from a hook at that moment; the tests wait on the log, on output lines or on
the database, never on a fixed delay.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.conversations import transcripts
from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.store import ConversationStore, default_store_path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")

REPO = Path(__file__).resolve().parents[2]

# Runs `python -m app ARGS` in-process, with a hook that sees the window as it is made.
DRIVER = """
import json, os, signal, sys
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
import app.__main__
from app.ui import main_window

when = sys.argv[1]
PROMPT = "Write a long story about a llama who travels the world."  # greedy: 1,500+ tokens
made = main_window.MainWindow.__init__

def kill_me():
    os.kill(os.getpid(), signal.SIGTERM)

def init(self, *args, **kwargs):
    if when == "before-window":
        kill_me()  # Python runs the handler here, before the window exists
    made(self, *args, **kwargs)
    models, chat = self.model_session, self.chat
    if when == "loaded":
        models.loaded.connect(lambda info: kill_me())
    if when == "mid-answer":
        def ask(info):
            self.composer.setPlainText(PROMPT)
            QTest.keyClick(self.composer, Qt.Key.Key_Return)
        def started(conversation, role, message_id):
            shown.clear()
            answering[:] = [role == "assistant"]
        def appended(text):  # the chat view (connected first) has just drawn this text
            shown.append(text)
            if answering[0] and "".join(shown).strip() and not sent:
                sent.append(True)
                print(json.dumps({"asked": PROMPT, "shown": "".join(shown)}), flush=True)
                kill_me()
        shown, sent, answering = [], [], [False]
        chat.message_started.connect(started)
        chat.text_appended.connect(appended)
        models.loaded.connect(ask)

if __name__ == "__main__":  # not in the model's own process, which multiprocessing may start
    main_window.MainWindow.__init__ = init
    sys.exit(app.__main__.main(sys.argv[2:]))
"""


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LLAMADESK_DEBUG"}
    env.update({"LLAMADESK_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", "PYTHONIOENCODING": "utf-8",
                "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    return env


def drive(home: Path, when: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", DRIVER, when, *args], cwd=REPO, env=environment(home),
                          capture_output=True, text=True, timeout=300)


def log_text(home: Path) -> str:
    log = home / "logs" / "llamadesk.log"
    return log.read_text(encoding="utf-8") if log.exists() else ""


def assert_closed_cleanly(home: Path, result_stderr: str) -> None:
    """What a normal close leaves: the log says why it closed, the window saved its state, no
    traceback and no thread left running."""
    assert "Traceback" not in result_stderr and "QThread: Destroyed" not in result_stderr, result_stderr
    assert "SIGTERM received: closing the window" in log_text(home)
    window_ini = home / "config" / "window.ini"
    assert window_ini.exists() and "geometry" in window_ini.read_text(encoding="utf-8", errors="replace")


def stored_conversations() -> list[Conversation]:
    """What the app's database holds (conftest points LLAMADESK_HOME at the test's own folder)."""
    store = ConversationStore(default_store_path())
    try:
        return [store.load(s.id) for s in store.list_conversations()]
    finally:
        store.close()


def test_sigterm_closes_the_window_like_ctrl_q(running_app, llamadesk_home: Path, model_path: Path) -> None:
    closed = running_app("--model", str(model_path)).stop(signal.SIGTERM)  # once the model loaded
    assert closed.returncode == 0, closed.stderr
    assert_closed_cleanly(llamadesk_home, closed.stderr)


def test_sigterm_mid_answer_saves_everything_shown_as_a_close_does(llamadesk_home: Path,
                                                                   model_path: Path) -> None:
    home = llamadesk_home
    result = drive(home, "mid-answer", "--model", str(model_path))
    assert result.returncode == 0, result.stderr
    assert_closed_cleanly(home, result.stderr)
    seen = json.loads(result.stdout.splitlines()[0])
    [conversation] = stored_conversations()
    question, answer = conversation.thread()
    assert (question.role, question.text, question.incomplete) == ("user", seen["asked"], False)
    assert answer.role == "assistant" and answer.incomplete, "the answer was stopped, not finished"
    assert answer.text.startswith(seen["shown"]), (answer.text, seen["shown"])


def test_sigterm_before_the_window_exists_still_exits_cleanly(llamadesk_home: Path, model_path: Path) -> None:
    home = llamadesk_home
    result = drive(home, "before-window", "--model", str(model_path))
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert_closed_cleanly(home, result.stderr)


def test_sigterm_during_the_self_test_ends_it_with_a_reason(llamadesk_home: Path, model_path: Path) -> None:
    home = llamadesk_home
    result = drive(home, "loaded", "--self-test", "--model", str(model_path))
    assert (result.returncode, result.stdout) == (1, "self-test failed: stopped by SIGTERM\n"), result.stderr
    assert "Traceback" not in result.stderr and "QThread: Destroyed" not in result.stderr, result.stderr


# ------------------------------------------------------------------------------ the command line

def big_export(path: Path, conversations: int = 400, messages: int = 100) -> int:
    convs = [Conversation(title=f"Chat {c}", id=f"big-{c:05d}",
                          messages=[Message("user" if m % 2 == 0 else "assistant", "word " * 200,
                                            id=f"big-{c:05d}-{m:04d}") for m in range(messages)])
             for c in range(conversations)]
    for conv in convs:
        for earlier, later in zip(conv.messages, conv.messages[1:], strict=False):
            later.parent_id = earlier.id
    path.write_text(transcripts.to_json(convs), encoding="utf-8")
    return conversations


def test_sigterm_during_a_cli_import_leaves_all_or_nothing(llamadesk_home: Path, tmp_path: Path) -> None:
    """The import writes in one logical all-or-nothing operation; a SIGTERM while it writes (the
    write-ahead log growing) leaves the database whole, with none of the file's conversations or
    all of them."""
    export = tmp_path / "big.json"
    count = big_export(export)
    database = default_store_path()
    ConversationStore(database).close()  # created before: the import's writes are what grows
    wal = database.with_name(database.name + "-wal")
    start = wal.stat().st_size if wal.exists() else 0
    process = subprocess.Popen([sys.executable, "-m", "app", "import", str(export)], cwd=REPO,
                               env=environment(llamadesk_home), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        while not (wal.exists() and wal.stat().st_size > start + 1_000_000):  # it is writing now
            if process.poll() is not None:
                pytest.fail(f"the import ended before it was seen writing: {process.communicate()}")
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    db = sqlite3.connect(database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    stored = stored_conversations()
    assert len(stored) in (0, count), f"{len(stored)} of {count} conversations were imported"
