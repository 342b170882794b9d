"""File ▸ Export and File ▸ Import: the dialogs that ask what and where. The work is a flow of
the Conversations session, which reports on its `exported`, `imported`, `status` and `error`.

The file dialogs offer the chosen format only ("Markdown (*.md)", not "All Files (*)") and open in
the folder used last, or the user's Documents folder; never the process's working directory.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.session.conversations import Conversations

FORMAT_NAMES = {"md": "Markdown (.md)", "html": "HTML (.html)", "json": "JSON (.json)",
                "txt": "Plain text (.txt)"}
FILE_FILTERS = {"md": "Markdown (*.md)", "html": "HTML (*.html)", "json": "JSON (*.json)",
                "txt": "Plain text (*.txt)"}
IMPORT_FILTER = "Llamadesk JSON (*.json)"
_last_folder: Path | None = None  # where the user last exported to or imported from, this session


def start_folder() -> Path:
    """The folder a file dialog opens in: the one used last, else Documents (else home)."""
    if _last_folder is not None:
        return _last_folder
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(documents or Path.home())


def _remember(chosen: str | Path, is_folder: bool = False) -> None:
    global _last_folder
    _last_folder = Path(chosen) if is_folder else Path(chosen).parent


class ExportOptions(QDialog):
    """This conversation or all of them, in which format, and whether reasoning models' thoughts go
    with their answers (left out unless chosen: they are the model's notes, often long)."""

    def __init__(self, parent: QWidget | None, has_current: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export conversations")
        self.current = QRadioButton("This conversation")
        self.all = QRadioButton("All conversations")
        self.current.setEnabled(has_current)
        (self.current if has_current else self.all).setChecked(True)
        self.format = QComboBox()
        for key, name in FORMAT_NAMES.items():
            self.format.addItem(name, key)
        self.thoughts = QCheckBox("Include the model's reasoning")
        self.thoughts.setToolTip("What reasoning models wrote inside <think>…</think> before answering. "
                                 "Left out unless this is ticked.")
        form = QFormLayout()
        form.addRow("Export", self.current)
        form.addRow("", self.all)
        form.addRow("Format", self.format)
        form.addRow("", self.thoughts)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def chosen_format(self) -> str:
        return self.format.currentData()

    def with_thoughts(self) -> bool:
        return self.thoughts.isChecked()


def export_dialog(parent: QWidget, conversations: Conversations, current_id: str) -> None:
    """Ask what to export (the conversation shown, if it is saved, or all) and where, then start it."""
    options = ExportOptions(parent, has_current=conversations.is_saved(current_id))
    if options.exec() != QDialog.DialogCode.Accepted:
        return
    fmt = options.chosen_format()
    ids = [current_id] if options.current.isChecked() else None
    to_folder = ids is None and fmt != "json"
    if to_folder:
        out = QFileDialog.getExistingDirectory(parent, "Export all conversations to a folder",
                                               str(start_folder()))
    else:
        from app.core.conversations.transcripts import safe_filename  # Pygments: loaded on first use

        title = "conversations" if ids is None else conversations.title_of(current_id)
        suggested = start_folder() / f"{safe_filename(title)}.{fmt}"
        out, _ = QFileDialog.getSaveFileName(parent, "Export to", str(suggested), FILE_FILTERS[fmt])
        if out and not Path(out).suffix:  # a name typed without its extension gets the format's
            out = f"{out}.{fmt}"
    if out:
        _remember(out, is_folder=to_folder)
        conversations.export(fmt, Path(out), ids, thoughts=options.with_thoughts())


def import_dialog(parent: QWidget, conversations: Conversations) -> None:
    """Ask for Llamadesk JSON files, then import them one after the other."""
    paths, _ = QFileDialog.getOpenFileNames(parent, "Import conversations", str(start_folder()),
                                            IMPORT_FILTER)
    if paths:
        _remember(paths[0])
        conversations.import_files([Path(p) for p in paths])
