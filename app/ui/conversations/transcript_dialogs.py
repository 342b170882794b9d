"""File ▸ Export and File ▸ Import: the dialogs that ask what and where. The work is a flow of
the Conversations session, which reports on its `exported`, `imported`, `status` and `error`."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
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


class ExportOptions(QDialog):
    """This conversation or all of them, and in which format."""

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


def export_dialog(parent: QWidget, conversations: Conversations, current_id: str) -> None:
    """Ask what to export (the conversation shown, if it is saved, or all) and where, then start it."""
    options = ExportOptions(parent, has_current=conversations.is_saved(current_id))
    if options.exec() != QDialog.DialogCode.Accepted:
        return
    fmt = options.chosen_format()
    ids = [current_id] if options.current.isChecked() else None
    if ids is None and fmt != "json":
        out = QFileDialog.getExistingDirectory(parent, "Export all conversations to a folder")
    else:
        from app.core.conversations.transcripts import safe_filename  # Pygments: loaded on first use

        title = "conversations" if ids is None else conversations.title_of(current_id)
        out, _ = QFileDialog.getSaveFileName(parent, "Export to", f"{safe_filename(title)}.{fmt}")
    if out:
        conversations.export(fmt, Path(out), ids)


def import_dialog(parent: QWidget, conversations: Conversations) -> None:
    """Ask for Llamadesk JSON files, then import them one after the other."""
    paths, _ = QFileDialog.getOpenFileNames(parent, "Import conversations", "", "Llamadesk JSON (*.json)")
    if paths:
        conversations.import_files([Path(p) for p in paths])
