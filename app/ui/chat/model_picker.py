"""The model picker at the top of the chat, as in LM Studio, Jan and GPT4All: the library's models
with the loaded one marked; choosing one loads it with its own settings. Its last two entries open the
download dialog and the models window.

It observes the model session (loading, loaded, failed, unloaded) and rescans the library when files
come or go, in a worker thread; it never loads anything itself: `load_requested` asks.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QSizePolicy, QWidget

from app.core.inference.types import ModelInfo
from app.core.models.library_files import ModelEntry, human_size
from app.session.model_library import LibrarySession
from app.session.models import ModelSession
from app.session.tasks import Latest

DOWNLOAD, MANAGE = "action:download", "action:manage"
NO_MODEL = "No model loaded: choose one"


class ModelPicker(QComboBox):
    load_requested = Signal(str)  # the path of the model the user chose
    download_requested = Signal()
    manage_requested = Signal()
    listed = Signal()  # a scan of the library ended: `entries` is up to date

    def __init__(self, models: ModelSession, library: LibrarySession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setAccessibleName("Model")
        self.setToolTip("The model this chat talks to: choose one to load it")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(18)
        self.setMinimumWidth(110)  # px: on a narrow window the picker shrinks before the window grows
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setPlaceholderText(NO_MODEL)
        self.models = models
        self.library = library
        self._entries: list[ModelEntry] = []
        self._loading: str | None = None  # the path being loaded
        self._scan = Latest("model picker scan")
        models.loading.connect(self._on_loading)
        models.loaded.connect(self._on_loaded)
        models.failed.connect(lambda _why: self._on_settled())
        models.unloaded.connect(self._on_settled)
        library.changed.connect(self.refresh)
        self.activated.connect(self._on_activated)
        self._fill()
        self._scanned = False  # the first scan waits for the window to be on screen

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """The first scan starts once the window is drawn: reading every model's header in a worker
        thread still takes the GIL now and then, and the window comes first."""
        super().showEvent(event)
        if not self._scanned:
            self._scanned = True
            QTimer.singleShot(0, self.refresh)

    def refresh(self) -> None:
        """Scan the library again (off the GUI thread); the list follows when the scan is done."""
        self._scan.start(self._rescan())

    async def _rescan(self) -> None:
        self._entries = [e for e in await self.library.scan() if not e.broken]
        self._fill()
        self.listed.emit()

    @property
    def entries(self) -> list[ModelEntry]:
        """The library's usable models, as last scanned."""
        return list(self._entries)

    @property
    def current_path(self) -> str | None:
        """The model loading now, else the one loaded, else None."""
        return self._loading or (self.models.model.path if self.models.model else None)

    def path_of(self, file_name: str) -> str | None:
        """The library's model with this file name (what a chat remembers), if there is one."""
        return next((str(e.path) for e in self._entries if Path(e.path).name == file_name), None)

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.refresh()  # a model downloaded or copied in meanwhile shows up as the list opens
        super().showPopup()

    def _fill(self) -> None:
        """The entries, the loaded (or loading) model chosen; placeholder text when there is none."""
        self.blockSignals(True)
        self.clear()
        current = self.current_path
        known = {str(e.path) for e in self._entries}
        entries = list(self._entries)
        if current and current not in known:  # opened from elsewhere on the disk
            entries.insert(0, None)
        for entry in entries:
            if entry is None:
                self.addItem(Path(current).stem, current)
                self.setItemData(0, current, Qt.ItemDataRole.ToolTipRole)
                continue
            self.addItem(f"{entry.name}  ·  {human_size(entry.size)}", str(entry.path))
            self.setItemData(self.count() - 1, _describe(entry), Qt.ItemDataRole.ToolTipRole)
        if self.count():
            self.insertSeparator(self.count())
        self.addItem("Download a model…", DOWNLOAD)
        self.addItem("Manage models…", MANAGE)
        index = self.findData(current) if current else -1
        if index >= 0 and self._loading:
            self.setItemText(index, f"Loading {Path(self._loading).stem}…")
        self.setCurrentIndex(index)
        self.blockSignals(False)

    def _on_activated(self, index: int) -> None:
        choice = self.itemData(index)
        if choice == DOWNLOAD:
            self.download_requested.emit()
        elif choice == MANAGE:
            self.manage_requested.emit()
        loaded = self.models.model.path if self.models.model else None
        if choice in (DOWNLOAD, MANAGE) or choice is None or choice in (loaded, self._loading):
            self._fill()  # the action items are not a choice of model: show the model again
            return
        self._loading = str(choice)  # shown at once: the engine says "loading" a moment later
        self._fill()
        self.load_requested.emit(str(choice))

    def _on_loading(self, path: str) -> None:
        self._loading = path
        self._fill()

    def _on_loaded(self, _info: ModelInfo) -> None:
        self._loading = None
        self._fill()

    def _on_settled(self) -> None:
        """A load failed (the old model may still be loaded) or the model was unloaded."""
        self._loading = None
        self._fill()


def _describe(entry: ModelEntry) -> str:
    header = entry.header
    facts = [str(entry.path)]
    if header is not None:
        facts.append(" · ".join(str(f) for f in (header.architecture, header.quantization) if f))
    return "\n".join(facts)
