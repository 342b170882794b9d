"""The model manager: the library as a table, the chosen model's load settings and memory, and
the commands: load, unload, set as default, import, delete, add a folder, download.

Scanning, importing and deleting are flows of the library session (app/session/model_library.py):
the window only shows and asks, and a newer scan cancels the older. Files are never deleted outside
the library's own folder.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QStandardPaths, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.inference.types import LoadOptions
from app.core.models.library import ModelSettings
from app.core.models.library_files import LibraryError, ModelEntry, human_size
from app.session.model_library import LibrarySession
from app.session.tasks import Latest, start
from app.ui.models.load_settings_panel import LoadSettingsPanel

COLUMNS = ("Name", "From", "Architecture", "Parameters", "Quantisation", "Size", "Context", "Status")
STATUS = COLUMNS.index("Status")


def parameters_label(count: int) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}" if count < 10 * scale else f"{count / scale:.0f}{unit}"
    return str(count)


def _downloads_folder() -> str:
    """Where model files usually are before they are imported (not the process's working directory)."""
    return QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DownloadLocation)


class ModelsWindow(QDialog):
    load_requested = Signal(str, object)  # path, ModelSettings
    unload_requested = Signal()
    unload_then_delete = Signal(str)  # the loaded model is to be deleted: unload it, then delete_path
    download_requested = Signal()

    def __init__(self, library: LibrarySession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelsWindow")
        self.resize(1000, 560)
        self.setAcceptDrops(True)
        self.library = library
        self.choices = library.library  # folders, default model, load settings: a small JSON file
        self.entries: list[ModelEntry] = []
        self._current: str | None = None
        self._current_note = ""
        self._scan = Latest("models scan")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STATUS, QHeaderView.ResizeMode.Stretch)  # a broken one's reason
        self.table.setWordWrap(True)  # ... wraps, and its row grows to show all of it
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.settings = LoadSettingsPanel(button_text="Save settings")
        self.settings.model_label.setText("Choose a model")
        self.message = QLabel("")
        self.message.setObjectName("modelsMessage")
        self.message.setWordWrap(True)
        self.backends = QLabel("")
        self.buttons = {name: QPushButton(text) for name, text in (
            ("load", "Load"), ("unload", "Unload"), ("default", "Set as default"),
            ("import", "Import…"), ("delete", "Delete…"), ("folder", "Add folder…"),
            ("download", "Download models…"), ("refresh", "Refresh"))}
        self.link_instead = QCheckBox("Link instead of copying")
        self.link_instead.setToolTip("Import leaves the file where it is and links to it from the library.")
        self._build()
        self._on_selection()  # nothing chosen nor loaded yet: no Load, no Unload
        library.changed.connect(self.refresh)
        self.refresh()
        start(self._show_build(), "llama.cpp build")

    def _build(self) -> None:
        row = QHBoxLayout()
        for name in ("load", "unload", "default", "delete"):
            row.addWidget(self.buttons[name])
        row.addStretch(1)
        for name in ("import", "folder", "download", "refresh"):
            row.addWidget(self.buttons[name])
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.table, 1)
        column.addWidget(self.link_instead)
        column.addWidget(self.message)
        column.addWidget(self.backends)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.settings)
        splitter.setSizes([680, 320])
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(splitter, 1)
        b = self.buttons
        b["load"].clicked.connect(self._load)
        b["unload"].clicked.connect(self.unload_requested)
        b["default"].clicked.connect(self._set_default)
        b["import"].clicked.connect(self._choose_imports)
        b["delete"].clicked.connect(self._delete)
        b["folder"].clicked.connect(self._add_folder)
        b["download"].clicked.connect(self.download_requested)
        b["refresh"].clicked.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.settings.apply_requested.connect(self._save_settings)

    # -- the table ----------------------------------------------------------------------------

    def refresh(self, select: str | None = None, message: str = "") -> None:
        """Scan the library in a worker thread, then show it (with `message`, if given)."""
        select = select or (str(e.path) if (e := self.selected()) else None)
        self.message.setText("Looking for models…")
        self._scan.start(self._rescan(select, message))

    async def _rescan(self, select: str | None, message: str) -> None:
        try:
            entries = await self.library.scan()
        except Exception as error:  # noqa: BLE001 - said in the window, whatever it is
            self.message.setText(f"Scan failed: {error}")
            return
        self._show(entries, select)
        if message:
            self.message.setText(message)

    async def _show_build(self) -> None:
        build = await self.library.build()
        self.backends.setText(build.description)
        self.settings.set_gpu_offload(build.gpu_offload)

    def _show(self, entries: list[ModelEntry], select: str | None) -> None:
        self.entries = entries
        default = self.choices.default_model()
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            header = entry.header
            facts = ("", "", "", "") if header is None else (
                header.architecture, parameters_label(header.parameter_count), header.quantization,
                f"{header.context_length:,}" if header.context_length else "")
            cells = (entry.name, entry.source, *facts[:3], human_size(entry.size), facts[3],
                     self._status(entry, default))
            source = f"\nDownloaded from {entry.source}" if entry.source else ""
            tip = entry.error or f"{entry.path}{source}"
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                if entry.broken:
                    item.setForeground(QColor("#9a9a9a"))
                self.table.setItem(row, column, item)
        broken = sum(e.broken for e in entries)
        count = f"{len(entries)} model" + ("" if len(entries) == 1 else "s")
        self.message.setText(count + (f", {broken} broken (see the Status column)" if broken else ""))
        index = next((i for i, e in enumerate(entries) if str(e.path) == select), 0 if entries else -1)
        if index >= 0:
            self.table.selectRow(index)
        self._on_selection()

    def _status(self, entry: ModelEntry, default: Path | None) -> str:
        if entry.broken:
            return f"broken: {entry.error}"
        marks = ["loaded" + (f" ({self._current_note})" if self._current_note else "")] \
            if str(entry.path) == self._current else []
        if default is not None and entry.path == default:
            marks.append("default")
        if entry.builtin:
            marks.append("built-in")
        return ", ".join(marks)

    def selected(self) -> ModelEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.entries[rows[0].row()] if rows and rows[0].row() < len(self.entries) else None

    def select_path(self, path: str) -> None:
        index = next((i for i, e in enumerate(self.entries) if str(e.path) == str(path)), -1)
        if index >= 0:
            self.table.selectRow(index)

    def set_current(self, path: str | None, note: str = "") -> None:
        """Mark the loaded model (note: e.g. "12/31 layers on the GPU")."""
        self._current, self._current_note = (str(path) if path else None), note
        if self.entries:
            self._show(self.entries, str(e.path) if (e := self.selected()) else None)

    def _on_selection(self) -> None:
        entry = self.selected()
        usable = entry is not None and not entry.broken
        self.buttons["load"].setEnabled(usable)
        self.buttons["default"].setEnabled(usable)
        self.buttons["unload"].setEnabled(self._current is not None)
        self.buttons["delete"].setEnabled(entry is not None and not entry.builtin and self._in_library(entry))
        self.settings.set_editable(usable)
        if entry is None:
            return
        self.settings.model_label.setText(f"<b>{entry.name}</b><br>{entry.error or entry.path}")
        self.settings.set_options(self.choices.settings_for(entry.path).load_options())
        self.settings.set_header(entry.header)

    def _in_library(self, entry: ModelEntry) -> bool:
        folder, parent = self.choices.models_folder.resolve(), Path(entry.path).parent.resolve()
        return parent == folder or folder in parent.parents

    # -- commands ------------------------------------------------------------------------------

    def _load(self) -> None:
        entry = self.selected()
        if entry is not None and not entry.broken:
            self.load_requested.emit(str(entry.path), self.choices.settings_for(entry.path))

    def _save_settings(self, options: LoadOptions) -> None:
        entry = self.selected()
        if entry is None:
            return
        try:
            settings = ModelSettings(**asdict(options))
            self.choices.set_settings(entry.path, settings)
        except LibraryError as error:
            self.message.setText(error.message)
            return
        self.settings.set_options(options)
        self.message.setText(f"Saved the load settings of {entry.name}.")
        if str(entry.path) == self._current:
            self.load_requested.emit(str(entry.path), settings)  # applies them: a reload

    def _set_default(self) -> None:
        entry = self.selected()
        if entry is not None:
            self.choices.set_default_model(None if entry.builtin else entry.path)
            self.message.setText(f"{entry.name} loads when Llamadesk starts.")
            self._show(self.entries, str(entry.path))

    def _choose_imports(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import GGUF models", _downloads_folder(),
                                                "GGUF models (*.gguf)")
        if files:
            self.import_files(files)

    def import_files(self, files: list[str]) -> None:
        """Copy (or link) files into the library in a worker thread; each failure says why."""
        self.message.setText(f"Importing {len(files)} file{'' if len(files) == 1 else 's'}…")
        start(self._import(files, self.link_instead.isChecked()), "models import")

    async def _import(self, files: list[str], link: bool) -> None:
        try:
            result = await self.library.import_files(files, link=link)
        except Exception as error:  # noqa: BLE001 - said in the window, whatever it is
            self.message.setText(f"Import failed: {error}")
            return
        done = result.imported
        text = f"Imported {', '.join(p.name for p in done)}." if done else ""
        message = " ".join([text, *result.problems]).strip()
        self.refresh(select=str(done[0]) if done else None, message=message)

    def _delete(self) -> None:
        entry = self.selected()
        if entry is None:
            return
        answer = QMessageBox.question(
            self, "Delete a model", f"Delete {entry.name} ({human_size(entry.size)}) from the disk?\n"
            f"{entry.path}")
        if answer != QMessageBox.StandardButton.Yes:
            return
        if str(entry.path) == self._current:  # a loaded (memory-mapped) file: unload it first
            self.unload_then_delete.emit(str(entry.path))
        else:
            self.delete_path(str(entry.path))

    def delete_path(self, path: str) -> None:
        """Delete the model's files in a worker thread (the library then rescans)."""
        start(self._delete_path(path), "model delete")

    async def _delete_path(self, path: str) -> None:
        try:
            await self.library.delete(path)
        except LibraryError as error:
            self.message.setText(error.message)
            return
        self.refresh(message=f"Deleted {Path(path).name}.")

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of models", _downloads_folder())
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        try:
            self.choices.add_folder(folder)
        except LibraryError as error:
            self.message.setText(error.message)
            return
        self.refresh()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if any(u.toLocalFile().lower().endswith(".gguf") for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.import_files([u.toLocalFile() for u in event.mimeData().urls()
                           if u.toLocalFile().lower().endswith(".gguf")])
        event.acceptProposedAction()

