"""Help ▸ Keyboard shortcuts and Help ▸ About."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox, QWidget

import app
from app.session.model_library import LibrarySession
from app.session.tasks import start

# Keys no menu item carries (the composer's, the chat list's): every other row is read from the
# window's actions, so a shortcut added to a menu is listed without anyone remembering to.
KEYS_OUTSIDE_MENUS = (
    ("Enter", "Send (in the message box)"), ("Shift+Enter", "New line (in the message box)"),
    ("Esc", "Cancel editing a message"), ("Esc", "Clear the search (in the search box)"),
    ("Delete", "Delete the selected chat (in the chat list)"),
)


def shortcut_rows(window: QWidget) -> list[tuple[str, str]]:
    """(keys, what they do) for every action of the window that has a shortcut, in menu order,
    then the keys that belong to one widget."""
    bar = getattr(window, "menuBar", None)
    in_menus = [a for menu in bar().actions() if menu.menu() for a in _walk(menu.menu())] if bar else []
    rows = []
    for action in dict.fromkeys(in_menus + window.findChildren(QAction)):  # each once, menus first
        keys = [k for k in action.shortcuts() if not k.isEmpty()]
        if keys:
            shown = " or ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in keys)
            rows.append((shown, action.iconText()))  # the menu text without "&" and "…"
    return rows + list(KEYS_OUTSIDE_MENUS)


def _walk(menu: QMenu) -> list[QAction]:
    return [a for action in menu.actions() for a in (_walk(action.menu()) if action.menu() else [action])]


def show_shortcuts(parent: QWidget) -> QMessageBox:
    """The window's shortcuts as a table; opened, not exec()'d: no nested event loop."""
    rows = "".join(f"<tr><td><b>{html.escape(keys)}</b></td><td>{html.escape(what)}</td></tr>"
                   for keys, what in shortcut_rows(parent))
    box = QMessageBox(QMessageBox.Icon.Information, "Keyboard shortcuts",
                      f"<table cellpadding='3'>{rows}</table>", QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("shortcutsBox")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


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
