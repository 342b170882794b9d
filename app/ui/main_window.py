"""The main window. It only composes widgets and wires them to the chat controller."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
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
from app.core.engine_types import GenerationStats, ModelInfo
from app.core.store import ConversationStore, default_store_path
from app.ui import transcript_actions
from app.ui.chat_controller import ChatController
from app.ui.chat_view import ChatView
from app.ui.composer import Composer
from app.ui.conversation_list import ConversationList
from app.ui.sampling_panel import SamplingPanel, SamplingSettings
from app.workers.background import run_in_background, wait_for_background_tasks
from app.workers.inference import InferenceClient

UNDO_SECONDS = 8


class MainWindow(QMainWindow):
    def __init__(self, client: InferenceClient | None = None,
                 store: ConversationStore | None = None) -> None:
        super().__init__()
        self.setWindowTitle(app.APP_NAME)
        self.resize(1200, 760)
        self.store = store or ConversationStore(default_store_path())
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
        self._build_undo_bar()
        self._editing: str | None = None  # the message being edited in the composer
        self.sampling = SamplingSettings(parent=self)
        self.sampling_panel = SamplingPanel(self.sampling)
        self.conversation_list = ConversationList()
        self.controller = ChatController(
            self.chat_view, self.sampling, client or InferenceClient(self), self.store, parent=self
        )
        self._build_layout()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self._refresh_conversations()

    # -- construction ---------------------------------------------------------------------------

    def _build_undo_bar(self) -> None:
        self.undo_bar = QWidget()
        self.undo_label = QLabel()
        self.undo_button = QPushButton("Undo")
        row = QHBoxLayout(self.undo_bar)
        row.setContentsMargins(8, 2, 8, 2)
        row.addWidget(self.undo_label, 1)
        row.addWidget(self.undo_button)
        self.undo_bar.setStyleSheet("background: #fff4d6; border-radius: 4px;")
        self.undo_bar.hide()
        self._undo_timer = QTimer(self, singleShot=True, interval=UNDO_SECONDS * 1000)
        self._undo_timer.timeout.connect(self._forget_deleted)
        self._deleted_id: str | None = None
        self.undo_button.clicked.connect(self.undo_delete)

    def _build_layout(self) -> None:
        center = QWidget()
        column = QVBoxLayout(center)
        column.setContentsMargins(6, 6, 6, 6)
        column.addWidget(self.banner)
        column.addWidget(self.undo_bar)
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
        splitter.setSizes([240, 680, 280])
        self.setCentralWidget(splitter)

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        c = self.controller
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&New chat", c.new_conversation, QKeySequence.StandardKey.New)
        self._action(file_menu, "&Search chats…", self.focus_search, "Ctrl+K")
        file_menu.addSeparator()
        self.export_action = self._action(
            file_menu, "&Export…", lambda: transcript_actions.export_dialog(self), "Ctrl+E")
        self._action(file_menu, "&Import…", lambda: transcript_actions.import_dialog(self))
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        chat_menu = self.menuBar().addMenu("&Chat")
        self._action(chat_menu, "&Rename", self.conversation_list.rename_current, "F2")
        self._action(chat_menu, "&Undo delete", self.undo_delete, QKeySequence.StandardKey.Undo)
        model_menu = self.menuBar().addMenu("&Model")
        self._action(model_menu, "&Open GGUF file…", self._choose_model, "Ctrl+O")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&About Llamadesk", self._about)
        stop = QAction("Stop", self, shortcut=QKeySequence(Qt.Key.Key_Escape))
        stop.triggered.connect(self._escape)
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
        c, listing = self.controller, self.conversation_list
        self.composer.submitted.connect(self._send)
        self.send_button.clicked.connect(self._send_or_stop)
        c.status.connect(self.state_label.setText)
        c.error.connect(self.show_error)
        c.model_loading.connect(self._on_model_loading)
        c.model_failed.connect(lambda message: self.model_label.setText("No model"))
        c.model_loaded.connect(self._on_model_loaded)
        c.generating_changed.connect(self._on_generating_changed)
        c.answer_finished.connect(self._on_answer_finished)
        c.conversations_changed.connect(self._refresh_conversations)
        c.conversation_shown.connect(self.conversation_list.select)
        self.chat_view.action_requested.connect(self._on_message_action)
        listing.new_requested.connect(c.new_conversation)
        listing.selected.connect(c.open_conversation)
        listing.renamed.connect(c.rename)
        listing.pin_requested.connect(c.set_pinned)
        listing.duplicate_requested.connect(c.duplicate)
        listing.delete_requested.connect(self.delete_conversation)
        listing.search_requested.connect(self.search)
        listing.result_chosen.connect(c.open_conversation)

    # -- reactions ------------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        self.banner.hide()
        editing = self._editing
        sent = self.controller.edit(editing, text) if editing else self.controller.send(text)
        if sent:
            self.composer.clear()
            self._stop_editing()

    def _on_message_action(self, action: str, message_id: str) -> None:
        c = self.controller
        if action == "copy":
            QApplication.clipboard().setText(c.message_text(message_id))
            self.show_info("Copied to the clipboard")
        elif action == "edit":
            self._editing = message_id
            self.composer.setPlainText(c.message_text(message_id))
            self.composer.setFocus()
            self.show_info("Editing a message: Enter resends it as a new version, Esc cancels")
        elif action in ("previous", "next"):
            c.show_version(message_id, -1 if action == "previous" else 1)
        elif action == "delete":
            c.delete_message(message_id)
        elif action == "regenerate":
            c.regenerate(message_id)
        elif action == "continue":
            c.continue_answer(message_id)

    def _stop_editing(self) -> None:
        if self._editing is not None:
            self._editing = None
            self.show_info("Ready")

    def _escape(self) -> None:
        """Esc: stop an answer, or cancel an edit."""
        if self.controller.generating:
            self.controller.stop()
        elif self._editing is not None:
            self.composer.clear()
            self._stop_editing()

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

    def show_info(self, message: str) -> None:
        self.state_label.setText(message)

    def _refresh_conversations(self) -> None:
        self.conversation_list.set_conversations(self.controller.summaries,
                                                 self.controller.conversation.id)

    def focus_search(self) -> None:
        self.conversation_list.search_box.setFocus()
        self.conversation_list.search_box.selectAll()

    def search(self, query: str) -> None:
        """Search off the GUI thread, on a connection of its own."""
        path = self.store.path

        def work():
            store = ConversationStore(path)
            try:
                return store.search(query)
            finally:
                store.close()

        run_in_background(work, lambda hits: self.conversation_list.show_results(query, hits),
                          lambda error: self.show_error(f"Search failed: {error}"))

    def delete_conversation(self, conversation_id: str) -> None:
        self._forget_deleted()  # a newer delete replaces the undo offer
        title = next((s.title for s in self.controller.summaries if s.id == conversation_id), "")
        self.controller.delete(conversation_id)
        self._deleted_id = conversation_id
        self.undo_label.setText(f"Deleted “{title}”.")
        self.undo_bar.show()
        self._undo_timer.start()

    def undo_delete(self) -> None:
        if self._deleted_id is None:
            return
        conversation_id, self._deleted_id = self._deleted_id, None
        self._undo_timer.stop()
        self.undo_bar.hide()
        self.controller.undo_delete(conversation_id)

    def _forget_deleted(self) -> None:
        self._undo_timer.stop()
        self.undo_bar.hide()
        if self._deleted_id is not None:
            self._deleted_id = None
            self.controller.purge_deleted()

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
        wait_for_background_tasks()
        super().closeEvent(event)
