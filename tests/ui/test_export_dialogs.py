"""Issue 12, item 20: the export and import file dialogs offer the real format, not "All Files (*)",
and open in the user's Documents folder (then the folder used last), not the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QDialog, QFileDialog, QWidget

from app.ui.conversations import transcript_dialogs
from app.ui.conversations.transcript_dialogs import ExportOptions


class FakeConversations:
    """What the dialogs ask of the Conversations session, and what they start."""

    def __init__(self) -> None:
        self.exports: list[tuple[str, Path, list[str] | None]] = []
        self.imports: list[list[Path]] = []

    def is_saved(self, _id: str) -> bool:
        return True

    def title_of(self, _id: str) -> str:
        return "Trip plans"

    def export(self, fmt: str, out: Path, ids: list[str] | None, thoughts: bool = False) -> None:
        self.exports.append((fmt, out, ids))

    def import_files(self, files: list[Path]) -> None:
        self.imports.append(files)


@pytest.fixture
def asked(monkeypatch, tmp_path) -> list[tuple]:
    """Each file dialog's (folder or suggested path, filter); the user picks a file in tmp_path/out."""
    monkeypatch.setattr(transcript_dialogs, "_last_folder", None)
    calls: list[tuple] = []

    def save(_parent, _title, suggested, file_filter):
        calls.append((suggested, file_filter))
        return str(tmp_path / "out" / "trip"), file_filter  # typed without an extension

    def open_many(_parent, _title, folder, file_filter):
        calls.append((folder, file_filter))
        return [str(tmp_path / "in" / "chats.json")], file_filter

    monkeypatch.setattr(QFileDialog, "getSaveFileName", save)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", open_many)
    return calls


@pytest.mark.parametrize(("index", "fmt", "file_filter"), [
    (0, "md", "Markdown (*.md)"), (2, "json", "JSON (*.json)")])
def test_export_offers_the_format_and_starts_in_documents_then_the_last_folder(
        qtbot, monkeypatch, asked, tmp_path, index: int, fmt: str, file_filter: str) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)

    def accept(options: ExportOptions) -> QDialog.DialogCode:
        options.format.setCurrentIndex(index)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ExportOptions, "exec", accept)
    conversations = FakeConversations()
    transcript_dialogs.export_dialog(parent, conversations, "c1")
    suggested, offered = asked[0]
    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    assert offered == file_filter and "All Files" not in offered
    assert Path(suggested) == Path(documents) / f"Trip plans.{fmt}"
    assert conversations.exports == [(fmt, tmp_path / "out" / f"trip.{fmt}", ["c1"])]
    transcript_dialogs.export_dialog(parent, conversations, "c1")
    assert Path(asked[1][0]).parent == tmp_path / "out"  # the folder used last
    transcript_dialogs.import_dialog(parent, conversations)
    assert asked[2] == (str(tmp_path / "out"), "Llamadesk JSON (*.json)")
