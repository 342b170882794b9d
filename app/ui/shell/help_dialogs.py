"""Help ▸ Keyboard shortcuts and Help ▸ About."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

import app
from app.session.model_library import LibrarySession
from app.session.tasks import start

SHORTCUTS_HELP = (
    ("Enter", "Send"), ("Shift+Enter", "New line"), ("Esc", "Stop the answer / cancel an edit"),
    ("Ctrl+N", "New chat"), ("Ctrl+K", "Search chats"), ("Ctrl+E", "Export"),
    ("Ctrl+Shift+C", "Copy the last answer"), ("Ctrl+= / Ctrl+-", "Bigger / smaller text"),
    ("Ctrl+0", "Default text size"), ("F2", "Rename the chat"), ("Ctrl+O", "Open a GGUF model"),
)


def show_shortcuts(parent: QWidget) -> None:
    rows = "".join(f"<tr><td><b>{keys}</b></td><td>{what}</td></tr>" for keys, what in SHORTCUTS_HELP)
    QMessageBox.information(parent, "Keyboard shortcuts", f"<table cellpadding='3'>{rows}</table>")


def show_about(parent: QWidget, library: LibrarySession) -> None:
    """The version, llama-cpp-python's, and the backends this llama.cpp build has. The build is
    read in a worker thread (the first time it loads llama.cpp), so the box opens once it is known."""
    start(_about(parent, library), "about")


async def _about(parent: QWidget, library: LibrarySession) -> QMessageBox:
    build = await library.build()
    box = QMessageBox(QMessageBox.Icon.Information, f"About {app.APP_NAME}",
                      f"<b>{app.APP_NAME}</b> {app.__version__}<br>Private, local chat with GGUF models."
                      f"<br>llama-cpp-python {build.llama_cpp_version}<br>{build.description}",
                      QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("aboutBox")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()  # not exec(): a flow must not spin a nested event loop
    return box
