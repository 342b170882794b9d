"""The main window. It only composes widgets and wires them to the chat controller."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

import app
from app.core.engine_types import GenerationStats, ModelInfo
from app.core.store import ConversationStore, default_store_path
from app.ui import help_dialogs, transcript_actions
from app.ui.chat_controller import ChatController
from app.ui.chat_view import ChatView
from app.ui.composer import Composer
from app.ui.context_meter import ContextMeter
from app.ui.conversation_list import ConversationList
from app.ui.load_settings_panel import LoadSettingsPanel
from app.ui.model_actions import ModelActions
from app.ui.preferences import THEMES, Preferences, step_text_size
from app.ui.sampling_panel import SamplingPanel, SamplingSettings
from app.ui.system_prompt_panel import SystemPromptPanel
from app.ui.theme import apply_theme
from app.workers.background import run_in_background, wait_for_background_tasks
from app.workers.inference import InferenceClient

UNDO_SECONDS = 8
COUNT_PAUSE_MS = 250  # the context meter counts the draft once typing pauses this long


class MainWindow(QMainWindow):
    def __init__(self, client: InferenceClient | None = None,
                 store: ConversationStore | None = None) -> None:
        super().__init__()
        self.setWindowTitle(app.APP_NAME)
        self.resize(1200, 760)
        self.preferences = Preferences()
        self.store = store or ConversationStore(default_store_path())
        self.chat_view = ChatView()
        self.composer = Composer()
        self.context_meter = ContextMeter()
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self._build_undo_bar()
        self._editing: str | None = None  # the message being edited in the composer
        self.sampling = SamplingSettings(parent=self)
        self.sampling_panel = SamplingPanel(self.sampling)
        self.system_prompt_panel = SystemPromptPanel()
        self.load_settings_panel = LoadSettingsPanel()
        self.conversation_list = ConversationList()
        self.controller = ChatController(
            self.chat_view, self.sampling, client or InferenceClient(self), self.store, parent=self
        )
        self.context_meter.set_policy(self.preferences.overflow_policy)
        self.controller.overflow_policy = self.context_meter.current_policy()
        self._count_timer = QTimer(self, singleShot=True, interval=COUNT_PAUSE_MS)
        self.models = ModelActions(self)
        self.setAcceptDrops(True)  # a .gguf dropped on the window is imported and loaded
        self._build_layout()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self.set_theme(self.preferences.theme)
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._on_system_colors_changed)
        self._default_text_size = self.chat_view.text_size()
        if self.preferences.text_size:
            self.set_text_size(self.preferences.text_size)
        self._restore_state()
        self._refresh_conversations()
        QTimer.singleShot(0, self._show_settings_notices)

    def _show_settings_notices(self) -> None:
        """Settings files found damaged at start: said once, in a dialog that does not block."""
        from app.core import settings_file

        notices = settings_file.take_notices()
        if notices:
            box = QMessageBox(QMessageBox.Icon.Warning, "Some settings were reset", "\n\n".join(notices),
                              QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    # -- construction ---------------------------------------------------------------------------

    def _build_undo_bar(self) -> None:
        self.undo_bar = QWidget()
        self.undo_label = QLabel()
        self.undo_button = QPushButton("Undo")
        row = QHBoxLayout(self.undo_bar)
        row.setContentsMargins(8, 2, 8, 2)
        row.addWidget(self.undo_label, 1)
        row.addWidget(self.undo_button)
        self.undo_bar.setObjectName("undoBar")
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
        column.addWidget(self.context_meter)
        splitter = QSplitter()
        splitter.setObjectName("mainSplitter")
        splitter.addWidget(self.conversation_list)
        splitter.addWidget(center)
        self.side_tabs = QTabWidget()
        self.side_tabs.setObjectName("sideTabs")
        self.side_tabs.addTab(self.sampling_panel, "Sampling")
        self.side_tabs.addTab(self.system_prompt_panel, "System prompt")
        self.side_tabs.addTab(self.load_settings_panel, "Model")
        splitter.addWidget(self.side_tabs)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 680, 280])
        self.splitter = splitter
        self.setCentralWidget(splitter)

    def _restore_state(self) -> None:
        """Geometry, splitter positions and the last conversation, as they were at the last close."""
        prefs = self.preferences
        if prefs.geometry is not None:
            self.restoreGeometry(prefs.geometry)
        if prefs.splitter is not None:
            self.splitter.restoreState(prefs.splitter)
        last = prefs.last_conversation
        if last and any(s.id == last for s in self.controller.summaries):
            self.controller.open_conversation(last)

    def _save_state(self) -> None:
        prefs = self.preferences
        prefs.geometry = self.saveGeometry()
        prefs.splitter = self.splitter.saveState()
        conversation = self.controller.conversation
        saved = any(s.id == conversation.id for s in self.controller.summaries)
        prefs.last_conversation = conversation.id if saved else ""

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
        self._action(chat_menu, "&Stop the answer", self._escape, Qt.Key.Key_Escape)
        self._action(chat_menu, "&Copy the last answer", self.copy_last_answer, "Ctrl+Shift+C")
        chat_menu.addSeparator()
        self._action(chat_menu, "&Rename", self.conversation_list.rename_current, "F2")
        self._action(chat_menu, "&Undo delete", self.undo_delete, QKeySequence.StandardKey.Undo)
        self._build_view_menu()
        model_menu = self.menuBar().addMenu("&Model")
        self._action(model_menu, "&Models…", self.models.open_manager, "Ctrl+M")
        self._action(model_menu, "&Download models…", self.models.open_downloads, "Ctrl+D")
        self._action(model_menu, "&Open GGUF file…", self.models.choose_file, "Ctrl+O")
        self._action(model_menu, "&Unload the model", self.models.unload)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", lambda: help_dialogs.show_shortcuts(self))
        self._action(help_menu, "&About Llamadesk", lambda: help_dialogs.show_about(self))

    def _build_view_menu(self) -> None:
        view_menu = self.menuBar().addMenu("&View")
        theme_menu = view_menu.addMenu("&Theme")
        group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for name in THEMES:
            label = {"system": "Follow the &system", "light": "&Light", "dark": "&Dark"}[name]
            action = self._action(theme_menu, label, lambda _=False, n=name: self.set_theme(n))
            action.setCheckable(True)
            group.addAction(action)
            self.theme_actions[name] = action
        view_menu.addSeparator()
        bigger = self._action(view_menu, "&Bigger text", lambda: self.step_text_size(1), "Ctrl+=")
        bigger.setShortcuts([QKeySequence("Ctrl+="), QKeySequence("Ctrl++")])
        self._action(view_menu, "&Smaller text", lambda: self.step_text_size(-1), "Ctrl+-")
        self._action(view_menu, "&Default text size", self.reset_text_size, "Ctrl+0")

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
        c.model_failed.connect(self._on_model_failed)
        c.model_loaded.connect(self._on_model_loaded)
        c.generating_changed.connect(self._on_generating_changed)
        c.answer_finished.connect(self._on_answer_finished)
        c.conversations_changed.connect(self._refresh_conversations)
        c.conversation_shown.connect(self.conversation_list.select)
        c.conversation_shown.connect(self._show_system_prompt)
        c.context_used.connect(self._show_context)
        c.draft_returned.connect(self._return_draft)
        c.conversation_shown.connect(self._count_timer.start)
        self.composer.textChanged.connect(self._count_timer.start)
        self._count_timer.timeout.connect(lambda: c.count_context(self.composer.toPlainText()))
        self.context_meter.policy_changed.connect(self._on_policy_changed)
        self.system_prompt_panel.changed.connect(self._on_system_prompt_changed)
        self.load_settings_panel.apply_requested.connect(self.models.reload_with)
        c.model_unloaded.connect(self._on_model_unloaded)
        self.chat_view.action_requested.connect(self._on_message_action)
        self.chat_view.link_opened.connect(lambda url: self.show_info(f"Opened {url} in the browser"))
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
            self.show_info("Copied to the clipboard (Markdown)")
        elif action == "copy-plain":
            from app.core.markdown_render import plain_text

            QApplication.clipboard().setText(plain_text(c.message_text(message_id)))
            self.show_info("Copied to the clipboard (plain text)")
        elif action == "copy-code":
            message_id, _, index = message_id.rpartition(":")
            QApplication.clipboard().setText(self.chat_view.code_block(message_id, int(index)))
            self.show_info("Code copied to the clipboard")
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

    def copy_last_answer(self) -> None:
        answers = [m for m in self.controller.conversation.thread() if m.role == "assistant"]
        if not answers or not answers[-1].text:
            self.show_info("There is no answer to copy yet")
            return
        QApplication.clipboard().setText(answers[-1].text)
        self.show_info("Copied the last answer to the clipboard")

    # -- look -----------------------------------------------------------------------------------

    def set_theme(self, choice: str) -> None:
        self.preferences.theme = choice
        self.theme_actions[choice].setChecked(True)
        self.colors = apply_theme(choice)
        c = self.colors
        self.banner.setStyleSheet(f"QLabel#banner {{ background: {c.banner_bg}; color: {c.banner_fg};"
                                  " padding: 8px; border-radius: 4px; }")
        self.undo_bar.setStyleSheet(f"QWidget#undoBar {{ background: {c.notice_bg}; border-radius: 4px; }}"
                                    f" QLabel {{ color: {c.notice_fg}; }}")
        self.chat_view.set_colors(c)

    def _on_system_colors_changed(self, _scheme) -> None:
        if self.preferences.theme == "system":
            self.set_theme("system")

    def set_text_size(self, points: float) -> None:
        self.chat_view.set_text_size(points)
        font = self.composer.font()
        font.setPointSizeF(points)
        self.composer.setFont(font)

    def step_text_size(self, step: int) -> None:
        size = step_text_size(round(self.chat_view.text_size()), step)
        self.set_text_size(size)
        self.preferences.text_size = size
        self.show_info(f"Text size {size} pt")

    def reset_text_size(self) -> None:
        self.set_text_size(self._default_text_size)
        self.preferences.text_size = 0
        self.show_info("Default text size")

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

    def _show_system_prompt(self, _conversation_id: str = "") -> None:
        text = self.controller.conversation.system_prompt
        self.system_prompt_panel.set_prompt(text)
        self.side_tabs.setTabText(1, "System prompt •" if text else "System prompt")

    def _on_system_prompt_changed(self, text: str) -> None:
        self.controller.set_system_prompt(text)
        self._count_timer.start()
        self.side_tabs.setTabText(1, "System prompt •" if text else "System prompt")

    def _show_context(self, used: int, n_ctx: int) -> None:
        """While typing, the room kept for the answer counts too: that is when a chat gets cut."""
        from app.core.context_window import answer_reserve

        c = self.controller
        reserve = 0 if c.generating else answer_reserve(n_ctx, c.sampling.params.max_tokens)
        self.context_meter.show_usage(used, n_ctx, reserve)

    def _return_draft(self, text: str) -> None:
        """A refused message comes back to the composer, before anything typed since."""
        typed = self.composer.toPlainText().strip()
        self.composer.setPlainText(f"{text}\n\n{typed}" if typed else text)

    def _on_policy_changed(self, policy: str) -> None:
        self.controller.overflow_policy = policy
        self.preferences.overflow_policy = policy
        self._count_timer.start()  # the meter's words depend on the policy

    def _on_model_unloaded(self) -> None:
        self.model_label.setText("No model")
        self.backend_label.setText("")
        self.context_meter.show_no_model()
        self.load_settings_panel.show_model(None)
        self.models.mark_current()
        self.show_info("Model unloaded")

    def _on_model_failed(self, _message: str) -> None:
        """The banner says why (controller.error); the model that works may still be loaded."""
        if self.controller.model is not None:
            self._on_model_loaded(self.controller.model)
        else:
            self.model_label.setText("No model")
            self.context_meter.show_no_model()

    def _on_model_loading(self, path: str) -> None:
        self.model_label.setText(f"Loading {Path(path).stem}…")
        self.backend_label.setText("")

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.banner.hide()
        if info.gpu_note:
            self.show_error(info.gpu_note)
        self.model_label.setText(info.name)
        self.model_label.setToolTip(f"{info.path}\ncontext {info.n_ctx:,} tokens")
        backend = info.backend
        if info.gpu_layers:
            backend += f" · {info.gpu_layers}/{info.n_layers + 1} layers on GPU"
        self.backend_label.setText(backend)
        self.backend_label.setToolTip(f"llama.cpp {info.llama_cpp_version}: {info.system_info}")
        self.load_settings_panel.set_options(self.controller.load_options)
        self.load_settings_panel.show_model(info)
        self.models.show_memory_of(info.path)
        self.models.mark_current()
        self._count_timer.start()

    def _on_answer_finished(self, stats: GenerationStats) -> None:
        self.speed_label.setText(f"{stats.tokens_per_s:.1f} tok/s" if stats.completion_tokens > 1 else "")

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

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if any(url.toLocalFile().lower().endswith(".gguf") for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.models.import_and_load([url.toLocalFile() for url in event.mimeData().urls()])
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self._save_state()
        if self.models.downloads is not None:
            self.models.downloads.cancel_download()  # its .part stays for a resume
        self.controller.shutdown()
        wait_for_background_tasks()
        super().closeEvent(event)
