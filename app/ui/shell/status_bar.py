"""The status bar: what is happening, a download going on (click it for the download dialog), which
model answers the shown chat (the local one, or "model-id · connection" for a remote engine), on
what, and how fast it was; "API :7433" while the API server runs (click it for the server panel)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QToolButton

from app.core.inference.types import GenerationStats, ModelInfo
from app.core.models.library_files import human_size
from app.session.models import ModelSession
from app.ui.chat.engine_label import remote_label

if TYPE_CHECKING:
    from app.core.models.hub import DownloadProgress
    from app.session.chat_session import ChatSession
    from app.session.download_task import DownloadTask
    from app.session.server import ApiServer


class StatusBar(QStatusBar):
    downloads_clicked = Signal()  # the download indicator was clicked: show the download dialog
    server_clicked = Signal()  # the API server's indicator was clicked: show the server panel

    def __init__(self, models: ModelSession, parent=None, chat: ChatSession | None = None,
                 server: ApiServer | None = None) -> None:
        """chat: the session whose shown chat's engine is named (None: the local model only);
        server: the API server whose address shows while it runs."""
        super().__init__(parent)
        self.state_label = QLabel("Starting…")
        self.download_button = QToolButton()
        self.download_button.setObjectName("downloadIndicator")
        self.download_button.setAutoRaise(True)
        self.download_button.setToolTip("Show the download (Model ▸ Download models)")
        self.download_button.hide()
        self.download_button.clicked.connect(self.downloads_clicked)
        self._download: DownloadTask | None = None
        self.server_button = QToolButton()
        self.server_button.setObjectName("serverIndicator")
        self.server_button.setAutoRaise(True)
        self.server_button.hide()
        self.server_button.clicked.connect(self.server_clicked)
        self.model_label = QLabel("No model")
        self.backend_label = QLabel("")
        self.speed_label = QLabel("")
        self.addWidget(self.state_label, 1)
        for label in (self.download_button, self.server_button, self.model_label, self.backend_label,
                      self.speed_label):
            self.addPermanentWidget(label)
        self.models = models
        self.chat = chat
        models.status.connect(self.state_label.setText)
        models.loading.connect(lambda path: self._remote() or self._show_loading(path))
        models.loaded.connect(lambda info: self._remote() or self.show_model(info))
        models.failed.connect(lambda _message: self._remote() or self.show_model(models.model))
        models.unloaded.connect(lambda: self._remote() or self.show_model(None))
        if chat is not None:
            chat.engine_changed.connect(self.show_engine)
        self.server = server
        if server is not None:
            server.state_changed.connect(self.show_server)
            server.queue_changed.connect(self.show_server)
            self.show_server()

    def _remote(self) -> bool:
        """The shown chat is answered by a remote engine: the local model's news do not change it."""
        return self.chat is not None and bool(self.chat.conversation.connection)

    def show_engine(self, info: ModelInfo | None) -> None:
        """The engine answering the shown chat: a remote one (named before it has connected), else
        the local model."""
        conversation = self.chat.conversation if self.chat is not None else None
        if conversation is None or not conversation.connection:
            self.show_model(self.models.model)
            return
        self.model_label.setText(remote_label(conversation.model, conversation.connection))
        self.model_label.setToolTip(info.label if info is not None else f"{conversation.model} · "
                                    f"{conversation.connection} (connecting…)")
        self.backend_label.setText(info.backend if info is not None else "")
        self.backend_label.setToolTip(f"{info.backend}, build {info.llama_cpp_version}" if info is not None
                                      and info.llama_cpp_version else "")

    def show_server(self) -> None:
        """"API :7433" while the API server runs; its address and queue in the tooltip."""
        server = self.server
        if server is None or not server.running:
            self.server_button.hide()
            return
        waiting = server.api_waiting
        self.server_button.setText(f"API :{urlsplit(server.url).port}")
        self.server_button.setToolTip(f"The API server runs at {server.url}\n"
                                      f"{waiting} request{'' if waiting == 1 else 's'} waiting"
                                      f"{' · 1 answering' if server.api_running else ''}\n"
                                      "Click for View ▸ Server")
        self.server_button.setAccessibleName(f"API server running at {server.url}")
        self.server_button.show()

    def show_state(self, text: str) -> None:
        self.state_label.setText(text)

    def show_download(self, task: DownloadTask) -> None:
        """Follow a download until it ends, whether or not its dialog is open."""
        self._download = task
        task.progress.connect(lambda p: self._show_progress(task, p))
        task.finished.connect(lambda _path: self._download_ended(task, ""))
        task.failed.connect(lambda _kind, message: self._download_ended(task, message))
        self._show_progress(task, task.last_progress)

    def _show_progress(self, task: DownloadTask, progress: DownloadProgress | None) -> None:
        if task is not self._download or not task.running:
            return
        if progress is None:
            done = "starting"
        elif progress.total:
            done = f"{progress.done * 100 // progress.total} %"
        else:
            done = human_size(progress.done)
        self.download_button.setText(f"Downloading {task.name}: {done}")
        self.download_button.show()

    def _download_ended(self, task: DownloadTask, message: str) -> None:
        """Finished (the window says what follows) or stopped: the reason stays in the status line."""
        if task is not self._download:
            return
        self._download = None
        self.download_button.hide()
        if message:
            self.show_state(message)

    def _show_loading(self, path: str) -> None:
        self.model_label.setText(f"Loading {Path(path).stem}…")
        self.backend_label.setText("")
        self.speed_label.setText("")

    def show_model(self, info: ModelInfo | None) -> None:
        """The model that answers now (after a failed load, the one still loaded, if any)."""
        if info is None:
            self.model_label.setText("No model")
            self.model_label.setToolTip("")
            self.backend_label.setText("")
            self.speed_label.setText("")  # the last answer's speed was that model's
            return
        self.model_label.setText(info.name)
        self.model_label.setToolTip(f"{info.path}\ncontext {info.n_ctx:,} tokens")
        backend = info.backend
        if info.gpu_layers:
            backend += f" · {info.gpu_layers}/{info.n_layers + 1} layers on GPU"
        self.backend_label.setText(backend)
        self.backend_label.setToolTip(f"llama.cpp {info.llama_cpp_version}: {info.system_info}")

    def show_speed(self, stats: GenerationStats) -> None:
        self.speed_label.setText(f"{stats.tokens_per_s:.1f} tok/s" if stats.completion_tokens > 1 else "")
