"""`python -m app doctor` and a damaged database at start, run as a user runs them (a separate
process, LLAMADESK_HOME pointing at a temporary folder); the start dialog in-process, its buttons
pressed by the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.conversations.store import ConversationStore, default_store_path
from tests.core.test_store_faults import corrupt_pages_with, fill

REPO = Path(__file__).resolve().parents[2]


def run_app(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("LLAMADESK_DEBUG", "QT_QPA_PLATFORM")}
    environment.update({"LLAMADESK_HOME": str(home), "PYTHONIOENCODING": "utf-8"})
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=environment,
                          capture_output=True, encoding="utf-8", timeout=120)


def checks(result: subprocess.CompletedProcess[str]) -> list[list[str]]:
    """Every line of the report: ok|problem, what, detail."""
    assert "Traceback" not in result.stderr, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows and all(len(row) == 3 and row[0] in ("ok", "problem") for row in rows), result.stdout
    return rows


def test_a_healthy_home_is_all_ok(llamadesk_home: Path):
    fill(default_store_path(), count=3)
    result = run_app(llamadesk_home, "doctor")
    rows = checks(result)
    assert result.returncode == 0 and {row[0] for row in rows} == {"ok"}
    what = {row[1]: row[2] for row in rows}
    assert what["database"].endswith(": intact") and what["database schema"].startswith("version ")
    assert "kv snapshots" in what


def test_a_home_without_a_database_yet_is_ok(llamadesk_home: Path):
    result = run_app(llamadesk_home, "doctor")
    assert result.returncode == 0
    expected = ["ok", "database", f"{default_store_path()}: none yet (the first start makes one)"]
    assert expected in checks(result)


def test_damaged_pages_are_a_problem_named_and_recover_repairs_them(llamadesk_home: Path):
    database = default_store_path()
    conversations = fill(database)
    corrupt_pages_with(database, b"topic-0060-02", b"Chat number 0090-title")

    found = run_app(llamadesk_home, "doctor")
    assert found.returncode == 1
    [problem] = [row for row in checks(found) if row[0] == "problem"]
    assert problem[1] == "database" and str(database) in problem[2] and "doctor --recover" in problem[2]

    repaired = run_app(llamadesk_home, "doctor", "--recover")
    assert repaired.returncode == 0
    rows = checks(repaired)
    assert rows[0][:2] == ["problem", "database"] and "was damaged" in rows[0][2]
    assert rows[1][:2] == ["ok", "database recovery"] and "Recovered" in rows[1][2]
    kept = list(database.parent.glob("conversations.damaged-*.sqlite3"))
    assert len(kept) == 1 and kept[0].name in rows[1][2]

    store = ConversationStore(database)
    try:
        assert store.load(conversations[0].id) == conversations[0]  # on pages nobody touched
        assert store.load(conversations[-1].id) == conversations[-1]
        assert len(store.list_conversations()) == len(conversations)  # 90's messages rebuild it
    finally:
        store.close()
    again = run_app(llamadesk_home, "doctor")
    assert again.returncode == 0 and {row[0] for row in checks(again)} == {"ok"}


def damage_the_list(database: Path) -> None:
    """Damage what the window reads first (the conversations table)."""
    fill(database, count=120)
    corrupt_pages_with(database, b"Chat number 0060-title")


def test_the_command_line_says_damaged_in_one_line(llamadesk_home: Path):
    damage_the_list(default_store_path())
    result = run_app(llamadesk_home, "conversations", "list")
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert "damaged" in line and "python -m app doctor --recover" in line


def test_the_self_test_says_damaged_instead_of_aborting(llamadesk_home: Path):
    damage_the_list(default_store_path())
    result = run_app(llamadesk_home, "--self-test")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout.startswith("self-test failed: ") and "damaged" in result.stdout


@pytest.mark.parametrize("choice", ["Recover", "Quit"])
def test_the_start_dialog_recovers_or_quits(choice: str, qapp, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from app import gui

    database = default_store_path()
    damage_the_list(database)
    told: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: next(
        b for b in box.buttons() if b.text() == choice).click())
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: told.append(text))
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text: told.append(text))
    store = gui._open_store(self_test=False)
    kept = list(database.parent.glob("conversations.damaged-*.sqlite3"))
    if choice == "Quit":
        assert store is None and kept == [] and told == []
        return
    try:
        assert len(kept) == 1 and told[0].startswith("Recovered ")
        assert len(store.list_conversations()) > 100
    finally:
        store.close()
