"""The main window. It only composes widgets and wires them to the chat controller."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

import app
from app.core.engine import GenerationStats, ModelInfo
from app.ui.chat_controller import ChatController
from app.ui.chat_view import ChatView
from app.ui.composer import Composer
from app.ui.conversation_list import ConversationList
from app.ui.sampling_panel import SamplingPanel, SamplingSettings
from app.workers.inference import InferenceClient


class MainWindow(QMainWindow):
    def __init__(self, client: InferenceClient | None = None) -> None:
        super().__init__()
        self.setWindowTitle(app.APP_NAME)
        self.resize(1200, 760)
        self.chat_view = ChatView()
        self.composer = Composer()
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(
            "QLabel#banner { background: #fdecea; color: #611a15; padding: 8px; border-radius: 4px; }"
        )
        self.banner.hide()
        self.sampling = SamplingSettings(parent=self)
        self.sampling_panel = SamplingPanel(self.sampling)
        self.conversation_list = ConversationList()
        self.controller = ChatController(
            self.chat_view, self.sampling, client or InferenceClient(self), parent=self
        )
        self._build_layout()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self._refresh_conversations()

    # -- construction ---------------------------------------------------------------------------

    def _build_layout(self) -> None:
        center = QWidget()
        column = QVBoxLayout(center)
        column.setContentsMargins(6, 6, 6, 6)
        column.addWidget(self.banner)
        column.addWidget(self.chat_view, 1)
        row = QHBoxLayout()
        row.addWidget(self.composer, 1)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        column.addLayout(row)
        splitter = QSplitter()
        splitter.addWidget(self.conversation_list)
        splitter.addWidget(center)
        splitter.addWidget(self.sampling_panel)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 700, 280])
        self.setCentralWidget(splitter)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        new_chat = QAction("&New chat", self, shortcut=QKeySequence.StandardKey.New)
        new_chat.triggered.connect(self.controller.new_conversation)
        file_menu.addAction(new_chat)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        model_menu = self.menuBar().addMenu("&Model")
        open_model = QAction("&Open GGUF file…", self, shortcut=QKeySequence("Ctrl+O"))
        open_model.triggered.connect(self._choose_model)
        model_menu.addAction(open_model)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About Llamadesk", self)
        about.triggered.connect(self._about)
        help_menu.addAction(about)
        stop = QAction("Stop", self, shortcut=QKeySequence(Qt.Key.Key_Escape))
        stop.triggered.connect(self.controller.stop)
        self.addAction(stop)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.state_label = QLabel("Starting…")
        self.model_label = QLabel("No model")
        self.backend_label = QLabel("")
        self.speed_label = QLabel("")
        bar.addWidget(self.state_label, 1)
        for label in (self.model_label, self.backend_label, self.speed_label):
            bar.addPermanentWidget(label)

    def _connect(self) -> None:
        c = self.controller
        self.composer.submitted.connect(self._send)
        self.send_button.clicked.connect(self._send_or_stop)
        c.status.connect(self.state_label.setText)
        c.model_loading.connect(self._on_model_loading)
        c.model_failed.connect(lambda message: self.model_label.setText("No model"))
        c.error.connect(self.show_error)
        c.model_loaded.connect(self._on_model_loaded)
        c.generating_changed.connect(self._on_generating_changed)
        c.answer_finished.connect(self._on_answer_finished)
        c.conversations_changed.connect(self._refresh_conversations)
        self.conversation_list.new_requested.connect(c.new_conversation)
        self.conversation_list.selected.connect(c.select)

    # -- reactions ------------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        self.banner.hide()
        if self.controller.send(text):
            self.composer.clear()

    def _send_or_stop(self) -> None:
        if self.controller.generating:
            self.controller.stop()
        else:
            self.composer.submit()

    def _on_generating_changed(self, generating: bool) -> None:
        self.send_button.setText("Stop" if generating else "Send")
        self.send_button.setToolTip("Stop the answer (Esc)" if generating else "Send (Enter)")

    def _on_model_loading(self, path: str) -> None:
        self.model_label.setText(f"Loading {Path(path).stem}…")
        self.backend_label.setText("")

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.banner.hide()
        self.model_label.setText(info.name)
        self.model_label.setToolTip(f"{info.path}\ncontext {info.n_ctx:,} tokens")
        backend = info.backend
        if info.gpu_layers:
            backend += f" · {info.gpu_layers}/{info.n_layers + 1} layers on GPU"
        self.backend_label.setText(backend)

    def _on_answer_finished(self, stats: GenerationStats) -> None:
        self.speed_label.setText(f"{stats.tokens_per_s:.1f} tok/s")

    def show_error(self, message: str) -> None:
        self.banner.setText(message)
        self.banner.show()

    def _refresh_conversations(self) -> None:
        self.conversation_list.set_conversations(
            self.controller.conversations, self.controller.current
        )

    def _choose_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.controller.load_model(path)

    def _about(self) -> None:
        from importlib.metadata import version

        QMessageBox.about(
            self, f"About {app.APP_NAME}",
            f"<b>{app.APP_NAME}</b> {app.__version__}<br>Private, local chat with GGUF models."
            f"<br>llama-cpp-python {version('llama-cpp-python')}",
        )

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.controller.shutdown()
        super().closeEvent(event)
