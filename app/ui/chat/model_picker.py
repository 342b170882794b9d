"""The model picker at the top of the chat, as in LM Studio, Jan and GPT4All: the library's models
with the loaded one marked, then the models of the user's remote connections ("model-id · gpu-box").
Choosing a local model loads it with its own settings; choosing a remote one switches the shown chat
to it (the chat remembers it). Its last entries open the download dialog and the models window, and
without any connection, the Connections dialog.

It observes the model session (loading, loaded, failed, unloaded) and the shown chat's engine, and
rescans the library when files come or go, in a worker thread; the remote servers are asked for
their models on the qasync loop when the list opens and when the connections change. It never loads
anything itself: `load_requested` asks.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QSizePolicy, QWidget

from app.core.inference.types import ModelInfo
from app.core.models.library_files import ModelEntry, human_size
from app.core.remote.client import RemoteError, RemoteModel
from app.core.remote.connections import Connection
from app.session.model_library import LibrarySession
from app.session.models import ModelSession
from app.session.tasks import Latest
from app.ui.chat.engine_label import remote_label

if TYPE_CHECKING:
    from app.session.chat_session import ChatSession
    from app.session.connections import ConnectionsSession
    from app.session.engines import Engines

DOWNLOAD, MANAGE, CONNECTIONS = "action:download", "action:manage", "action:connections"
UNAVAILABLE = "action:unavailable"  # a connection that failed: said, not chosen
NO_MODEL = "No model loaded: choose one"
ADD_REMOTE = "Add a remote engine…"
# A connection's failure, briefly: the Connections dialog's Test says it whole.
_BRIEF = {RemoteError.UNREACHABLE: "unreachable", RemoteError.TLS: "TLS failed",
          RemoteError.KEY: "key refused", RemoteError.MODEL_GONE: "not found", RemoteError.BUSY: "busy",
          RemoteError.TIMEOUT: "no answer", RemoteError.MALFORMED: "not an OpenAI-compatible answer"}
Listing = list[tuple[Connection, list[RemoteModel] | RemoteError]]


class ModelPicker(QComboBox):
    load_requested = Signal(str)  # the path of the model the user chose
    download_requested = Signal()
    manage_requested = Signal()
    connections_requested = Signal()  # "Add a remote engine…": open the Connections dialog
    listed = Signal()  # a scan of the library ended: `entries` is up to date
    remote_listed = Signal()  # the connections' models came: `remote` is up to date

    def __init__(self, models: ModelSession, library: LibrarySession, parent: QWidget | None = None,
                 chat: ChatSession | None = None, engines: Engines | None = None,
                 connections: ConnectionsSession | None = None) -> None:
        """chat: the session whose shown chat the picker names and switches (None: local models only).
        engines, connections: the remote models, listed again when the connections change."""
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setAccessibleName("Model")
        self.setToolTip("The model this chat talks to: choose a local one to load it, or a remote one")
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
        self.chat, self.engines = chat, engines
        self._remote: Listing | None = None  # None: not asked yet
        self._ask = Latest("remote models")
        models.loading.connect(self._on_loading)
        models.loaded.connect(self._on_loaded)
        models.failed.connect(lambda _why: self._on_settled())
        models.unloaded.connect(self._on_settled)
        library.changed.connect(self.refresh)
        self.activated.connect(self._on_activated)
        if chat is not None:
            chat.engine_changed.connect(lambda _info: self._fill())
            chat.conversation_shown.connect(lambda _id: self._fill())
        if connections is not None:
            connections.changed.connect(self.refresh_remote)
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
        """Scan the library again (off the GUI thread), and ask the servers for their models; the
        list follows when each answers."""
        self._scan.start(self._rescan())
        self.refresh_remote()

    def refresh_remote(self) -> None:
        if self.engines is not None:
            self._ask.start(self._ask_servers())

    async def _ask_servers(self) -> None:
        self._remote = await self.engines.models()
        self._fill()
        self.remote_listed.emit()

    @property
    def remote(self) -> Listing:
        """The connections and their models (or what failed), as last asked."""
        return list(self._remote or [])

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

    @property
    def shown_remote(self) -> tuple[str, str] | None:
        """(connection, model id) of the remote model answering the shown chat, if one does."""
        conversation = self.chat.conversation if self.chat is not None else None
        if conversation is None or not conversation.connection:
            return None
        return conversation.connection, conversation.model

    def _fill(self) -> None:
        """The entries, the shown chat's engine chosen (a remote model, or the loaded or loading local
        one); placeholder text when there is none."""
        self.blockSignals(True)
        before = self.count()
        self.clear()
        current = self.current_path
        shown = self.shown_remote
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
        self._add_remote(shown)
        if self.count():
            self.insertSeparator(self.count())
        self.addItem("Download a model…", DOWNLOAD)
        self.addItem("Manage models…", MANAGE)
        if self._remote == []:  # asked, and there is no connection
            self.addItem(ADD_REMOTE, CONNECTIONS)
            self.setItemData(self.count() - 1, "Chat with a model served by llama-server, vLLM, Ollama or "
                             "another OpenAI-compatible server", Qt.ItemDataRole.ToolTipRole)
        if shown is not None:
            index = self._index_of(shown)
        else:
            index = self.findData(current) if current else -1
            if index >= 0 and self._loading:
                self.setItemText(index, f"Loading {Path(self._loading).stem}…")
        self.setCurrentIndex(index)
        self.blockSignals(False)
        if self.view().isVisible() and self.count() != before:  # answers came while the list is open
            super().showPopup()  # its height follows (else the last entries hide under a scroll arrow)

    def _add_remote(self, shown: tuple[str, str] | None) -> None:
        """Each connection's models, "model-id · name"; one greyed entry for a connection that failed.
        The shown chat's remote model is listed even before (or without) its server's answer."""
        if self.count() and (self._remote or shown):
            self.insertSeparator(self.count())
        listed = False
        for connection, models in self._remote or []:
            if isinstance(models, RemoteError):
                self.addItem(f"{connection.name}: {_BRIEF.get(models.kind, 'failed')}", UNAVAILABLE)
                self.setItemData(self.count() - 1, models.message, Qt.ItemDataRole.ToolTipRole)
                self.model().item(self.count() - 1).setEnabled(False)
                continue
            for model in models:
                self._add_remote_item(connection.name, model.id, f"{model.id}\non {connection.name} "
                                      f"({connection.host})")
                listed = listed or (connection.name, model.id) == shown
        if shown is not None and not listed:
            self._add_remote_item(*shown, f"{shown[1]}\non {shown[0]}")

    def _add_remote_item(self, connection: str, model_id: str, tooltip: str) -> None:
        self.addItem(remote_label(model_id, connection), (connection, model_id))
        self.setItemData(self.count() - 1, tooltip, Qt.ItemDataRole.ToolTipRole)

    def _index_of(self, remote: tuple[str, str]) -> int:
        return next((i for i in range(self.count()) if self.itemData(i) == remote), -1)

    def _on_activated(self, index: int) -> None:
        choice = self.itemData(index)
        if choice == DOWNLOAD:
            self.download_requested.emit()
        elif choice == MANAGE:
            self.manage_requested.emit()
        elif choice == CONNECTIONS:
            self.connections_requested.emit()
        if isinstance(choice, tuple):  # a remote model: the chat switches to it (nothing loads)
            if self.chat is not None:
                self.chat.choose_engine(*choice)
            self._fill()
            return
        if self.chat is not None and choice is not None and not str(choice).startswith("action:"):
            self.chat.choose_engine()  # a local model: the chat is answered by the local engine
        loaded = self.models.model.path if self.models.model else None
        if choice is None or str(choice).startswith("action:") or choice in (loaded, self._loading):
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
