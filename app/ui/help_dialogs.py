"""Help ▸ Keyboard shortcuts and Help ▸ About."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

import app

SHORTCUTS_HELP = (
    ("Enter", "Send"), ("Shift+Enter", "New line"), ("Esc", "Stop the answer / cancel an edit"),
    ("Ctrl+N", "New chat"), ("Ctrl+K", "Search chats"), ("Ctrl+E", "Export"),
    ("Ctrl+Shift+C", "Copy the last answer"), ("Ctrl+= / Ctrl+-", "Bigger / smaller text"),
    ("Ctrl+0", "Default text size"), ("F2", "Rename the chat"), ("Ctrl+O", "Open a GGUF model"),
)


def show_shortcuts(parent: QWidget) -> None:
    rows = "".join(f"<tr><td><b>{keys}</b></td><td>{what}</td></tr>" for keys, what in SHORTCUTS_HELP)
    QMessageBox.information(parent, "Keyboard shortcuts", f"<table cellpadding='3'>{rows}</table>")


def show_about(parent: QWidget) -> None:
    """The version, llama-cpp-python's, and the backends this llama.cpp build has."""
    from importlib.metadata import version

    from app.core import backends

    gpu = "GPU offload" if backends.gpu_offload_supported() else "CPU only"
    build = f"<br>llama.cpp backends: {backends.backend_name()} ({gpu})"
    QMessageBox.about(
        parent, f"About {app.APP_NAME}",
        f"<b>{app.APP_NAME}</b> {app.__version__}<br>Private, local chat with GGUF models."
        f"<br>llama-cpp-python {version('llama-cpp-python')}{build}",
    )
