"""File ▸ Export and File ▸ Import: dialogs in front, the work in a background thread."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QRadioButton,
    QVBoxLayout,
)

from app.core.errors import UserFacingError
from app.core.store import ConversationStore
from app.workers.background import run_in_background

FORMAT_NAMES = {"md": "Markdown (.md)", "html": "HTML (.html)", "json": "JSON (.json)",
                "txt": "Plain text (.txt)"}


class ExportOptions(QDialog):
    def __init__(self, parent, has_current: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export conversations")
        self.current = QRadioButton("This conversation")
        self.all = QRadioButton("All conversations")
        self.current.setEnabled(has_current)
        (self.current if has_current else self.all).setChecked(True)
        self.format = QComboBox()
        for key, name in FORMAT_NAMES.items():
            self.format.addItem(name, key)
        form = QFormLayout()
        form.addRow("Export", self.current)
        form.addRow("", self.all)
        form.addRow("Format", self.format)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def chosen_format(self) -> str:
        return self.format.currentData()


def _transcripts():
    from app.core import transcripts  # Pygments and friends: loaded on first use

    return transcripts


def export_dialog(window) -> None:
    controller = window.controller
    saved = any(s.id == controller.conversation.id for s in controller.summaries)
    options = ExportOptions(window, has_current=saved)
    if options.exec() != QDialog.DialogCode.Accepted:
        return
    fmt = options.chosen_format()
    ids = [controller.conversation.id] if options.current.isChecked() else None
    if ids is None and fmt != "json":
        out = QFileDialog.getExistingDirectory(window, "Export all conversations to a folder")
    else:
        title = "conversations" if ids is None else controller.conversation.title
        suggested = _transcripts().safe_filename(title) + f".{fmt}"
        out, _ = QFileDialog.getSaveFileName(window, "Export to", suggested)
    if out:
        export(window, ids, fmt, Path(out))


def export(window, conversation_ids: list[str] | None, fmt: str, out: Path) -> None:
    """Export in the background on a store connection of its own; report in the window."""
    path = window.store.path

    def work() -> list[Path]:
        store = ConversationStore(path)
        try:
            ids = conversation_ids or [s.id for s in store.list_conversations()]
            return _transcripts().export_to_path([store.load(i) for i in ids], fmt, out,
                                              folder=conversation_ids is None)
        finally:
            store.close()

    def done(written: list[Path]) -> None:
        where = written[0] if len(written) == 1 else out
        window.show_info(f"Exported {len(written)} file{'s' * (len(written) != 1)} to {where}")

    run_in_background(work, done, lambda error: window.show_error(f"Export failed: {_reason(error)}"))


def import_dialog(window) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Import conversations", "", "Llamadesk JSON (*.json)")
    if path:
        import_file(window, Path(path))


def import_file(window, path: Path) -> None:
    """Read, validate and write in the background, on a store connection of its own: a large import
    takes seconds, and writes in short chunks that leave the window's saves their turn. All the
    conversations are added, or none."""
    store_path = window.store.path
    read_only = getattr(window.store, "read_only", False)  # a window that must not write: neither may we

    def work() -> list[str]:
        conversations = _transcripts().read_json_file(path)
        store = ConversationStore(store_path, read_only=read_only)
        try:
            return store.insert_conversations(conversations)
        finally:
            store.close()

    def done(ids: list[str]) -> None:
        window.controller.reload_list()
        if ids:
            window.controller.open_conversation(ids[0])
        window.show_info(f"Imported {len(ids)} conversation{'s' * (len(ids) != 1)} from {path.name}")

    def failed(error: Exception) -> None:
        # A StoreError's message (see _reason) says what failed, whether anything changed, what to do.
        if isinstance(error, sqlite3.Error):  # a caller's error the store does not wrap: rolled back
            window.show_error(f"Import failed, nothing was changed: {error}")
        else:
            window.show_error(f"Import failed: {_reason(error)}")

    window.show_info(f"Importing {path.name}…")
    run_in_background(work, done, failed)


def _reason(error: Exception) -> str:
    return error.message if isinstance(error, UserFacingError) else str(error)
