"""The layers of the design (../shared/DESIGN.md): widgets draw and send intents; sessions own the
work; the core knows no Qt (tests/core/test_core_is_qt_free.py). A test per rule, so a shortcut
across layers fails here instead of slowing or crashing the window later."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
# What a widget must not reach itself: the database, llama.cpp, the engine.
UI_FORBIDDEN = ("sqlite3", "llama_cpp", "app.core.conversations.store", "app.core.conversations.database",
                "app.core.inference.local")


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(APP)}:{line} {name}"
            for path in sorted((APP / folder).rglob("*.py"))
            for line, name in imports_of(path)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_no_widget_imports_the_database_or_llama_cpp() -> None:
    assert offenders("ui", UI_FORBIDDEN) == []


def test_sessions_know_no_widgets() -> None:
    assert offenders("session", ("app.ui", "PySide6.QtWidgets", "PySide6.QtGui")) == []


def test_opening_the_window_does_not_load_llama_cpp_into_its_process() -> None:
    """llama.cpp runs in the engine's process; the window's process never loads it by import. The
    hub client and the Markdown renderer load later too (with the download dialog, in a worker
    thread): each costs a quarter of a second of the start."""
    code = ("import sys\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "from app.session import tasks\n"
            "tasks.install_loop(app)\n"
            "from app.ui.main_window import MainWindow\n"
            "window = MainWindow()\n"
            "late = ('llama_cpp', 'numpy', 'huggingface_hub', 'markdown_it', 'pygments')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in late))\n"
            "window.close()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=APP.parent, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr
