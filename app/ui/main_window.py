"""The main window. It composes: the sessions (chat, conversations, model) and the widgets that
observe them, the menus, and what the window remembers between runs."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QFont, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox, QTabWidget, QVBoxLayout, QWidget

import app
from app.core.inference.types import ModelInfo
from app.session import tasks
from app.session.workspace import Workspace
from app.ui.chat.chat_panel import ChatPanel
from app.ui.chat.sampling_panel import SamplingPanel
from app.ui.chat.system_prompt_panel import SystemPromptPanel
from app.ui.chat.top_bar import TopBar
from app.ui.conversations import transcript_dialogs
from app.ui.conversations.conversation_list import ConversationList
from app.ui.conversations.undo_bar import UndoBar
from app.ui.models.load_settings_panel import LoadSettingsPanel
from app.ui.models.model_actions import ModelActions
from app.ui.server.server_panel import show_server_panel
from app.ui.shell import help_dialogs
from app.ui.shell.banner import Banner
from app.ui.shell.main_splitter import MainSplitter
from app.ui.shell.preferences import THEMES, Preferences, step_text_size
from app.ui.shell.status_bar import StatusBar
from app.ui.shell.theme import apply_theme

TITLE_LENGTH = 60  # characters of a chat's title in the window's title


class MainWindow(QMainWindow):
    def __init__(self, workspace: Workspace | None = None, store=None) -> None:
        """store: a ConversationStore to use instead of the user's (tests, a read-only database)."""
        super().__init__()
        self.setWindowTitle(app.APP_NAME)
        self.resize(1200, 760)
        self.preferences = Preferences()
        self.workspace = w = workspace or Workspace(store=store, parent=self)
        self.store, self.backend, self.model_session, self.library = w.store, w.backend, w.models, w.library
        self.conversations, self.sampling, self.chat = w.conversations, w.sampling, w.chat
        self.chat_panel = ChatPanel(self.chat, self.model_session)
        panel = self.chat_panel
        self.welcome = panel.welcome
        self.top_bar = TopBar(self.chat, self.model_session, self.library, engines=w.engines,
                              connections=w.connections)
        self.model_picker = self.top_bar.picker
        self.chat_view, self.composer = panel.view, panel.composer
        self.context_meter, self.send_button = panel.context_meter, panel.send_button
        self.banner = Banner()
        self.undo_bar = UndoBar(self.conversations)
        self.sampling_panel = SamplingPanel(self.sampling, defaults=w.defaults)
        self.system_prompt_panel = SystemPromptPanel(defaults=w.defaults)
        self.load_settings_panel = LoadSettingsPanel()
        self.conversation_list = ConversationList(self.conversations)
        self.context_meter.set_policy(self.preferences.overflow_policy)
        self.chat.overflow_policy = self.context_meter.current_policy()
        self.models = ModelActions(self, self.model_session, self.library, self.load_settings_panel,
                                   connections=w.connections)
        self.status_bar = bar = StatusBar(self.model_session, chat=self.chat, server=w.server)
        self.setStatusBar(bar)
        self.state_label, self.model_label = bar.state_label, bar.model_label
        self.backend_label, self.speed_label = bar.backend_label, bar.speed_label
        self.setAcceptDrops(True)  # a .gguf dropped on the window is imported and loaded
        self._build_layout()
        self._build_menus()
        self._connect()
        self._show_system_prompt()  # the first empty chat may start with the default prompt
        self.set_theme(self.preferences.theme)
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._on_system_colors_changed)
        self._default_text_size = self.chat_view.text_size()
        if self.preferences.text_size:
            self.set_text_size(self.preferences.text_size)
        self._restore_state()
        QTimer.singleShot(0, self._show_settings_notices)

    def _show_settings_notices(self) -> None:
        """Settings files found damaged at start: said once, in a dialog that does not block."""
        from app.core.common import settings_file

        notices = settings_file.take_notices()
        if notices:
            box = QMessageBox(QMessageBox.Icon.Warning, "Some settings were reset", "\n\n".join(notices),
                              QMessageBox.StandardButton.Ok, self)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()

    # -- construction ---------------------------------------------------------------------------

    def _build_layout(self) -> None:
        center = QWidget()
        column = QVBoxLayout(center)
        column.setContentsMargins(6, 6, 6, 6)
        column.addWidget(self.top_bar)
        column.addWidget(self.banner)
        column.addWidget(self.undo_bar)
        column.addWidget(self.chat_panel, 1)
        self.side_tabs = QTabWidget()
        self.side_tabs.setObjectName("sideTabs")
        self.side_tabs.addTab(self.sampling_panel, "Sampling")
        self.side_tabs.addTab(self.system_prompt_panel, "System prompt")
        self.side_tabs.addTab(self.load_settings_panel, "Model")
        self.splitter = MainSplitter(self.conversation_list, center, self.side_tabs)
        self.setCentralWidget(self.splitter)

    def _restore_state(self) -> None:
        """Geometry, splitter positions and the last conversation, as they were at the last close."""
        prefs = self.preferences
        if prefs.geometry is not None:
            self.restoreGeometry(prefs.geometry)
        if prefs.splitter is not None:
            self.splitter.restoreState(prefs.splitter)
        self.splitter.restore_panels(prefs.show_list, prefs.show_side)
        self.show_list_action.setChecked(prefs.show_list)
        if prefs.last_conversation and self.conversations.is_saved(prefs.last_conversation):
            self.chat.open_conversation(prefs.last_conversation)
        else:
            self.conversation_list.select(self.chat.conversation.id)  # listed as "New chat"
        self._show_title()

    def _save_state(self) -> None:
        prefs = self.preferences
        prefs.geometry = self.saveGeometry()
        prefs.splitter = self.splitter.saveState()
        prefs.show_list = self.show_list_action.isChecked()
        prefs.show_side = not self.side_tabs.isHidden()  # folded for want of room: still wanted
        shown = self.chat.conversation.id
        prefs.last_conversation = shown if self.conversations.is_saved(shown) else ""

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        chat, conversations, models = self.chat, self.conversations, self.models
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&New chat", chat.new_conversation, QKeySequence.StandardKey.New)
        self._action(file_menu, "&Search chats…", self.focus_search, "Ctrl+K")
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export…", lambda: transcript_dialogs.export_dialog(
            self, conversations, chat.conversation.id), "Ctrl+E")
        self._action(file_menu, "&Import…", lambda: transcript_dialogs.import_dialog(self, conversations))
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, "Ctrl+Q")  # Windows has no standard Quit key
        chat_menu = self.menuBar().addMenu("&Chat")
        self._action(chat_menu, "&Stop the answer", self.chat_panel.escape, Qt.Key.Key_Escape)
        self._action(chat_menu, "&Copy the last answer", self.chat_panel.copy_last_answer, "Ctrl+Shift+C")
        chat_menu.addSeparator()
        self._action(chat_menu, "&Rename", self.conversation_list.rename_current, "F2")
        self.undo_action = self._action(chat_menu, "&Undo delete", conversations.undo_delete,
                                        QKeySequence.StandardKey.Undo)
        self.undo_action.setEnabled(conversations.can_undo)  # only while there is something to bring back
        self._build_view_menu()
        model_menu = self.menuBar().addMenu("&Model")
        self._action(model_menu, "&Models…", models.open_manager, "Ctrl+M")
        self._action(model_menu, "&Download models…", models.open_downloads, "Ctrl+D")
        self._action(model_menu, "&Open GGUF file…", models.choose_file, "Ctrl+O")
        self._action(model_menu, "&Unload the model", models.unload)
        model_menu.addSeparator()
        self._action(model_menu, "&Connections…", models.open_connections)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", lambda: help_dialogs.show_shortcuts(self))
        self._action(help_menu, "&About Llamadesk", lambda: help_dialogs.show_about(self, self.library))

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
        view_menu.addSeparator()
        self.show_list_action = self._action(view_menu, "Show chat &list", self.splitter.set_list_shown,
                                             "Ctrl+Shift+L")
        self.show_side_action = self._action(view_menu, "Show side &panel", self.splitter.set_side_shown,
                                             "Ctrl+Shift+P")
        for action, button in ((self.show_list_action, self.top_bar.list_button),
                               (self.show_side_action, self.top_bar.side_button)):
            action.setCheckable(True)
            action.setChecked(True)
            self.top_bar.bind(button, action)
        self.splitter.side_shown.connect(self.show_side_action.setChecked)  # also when folded for room
        view_menu.addSeparator()
        self.server_action = self._action(view_menu, "Se&rver…", self.open_server_panel, "Ctrl+Shift+S")

    def _connect(self) -> None:
        chat, conversations, models, listing = self.chat, self.conversations, self.model_session, \
            self.conversation_list
        for session in (chat, conversations):
            session.status.connect(self.show_info)
            session.error.connect(self.show_error)
        models.failed.connect(self.show_error)
        models.failed.connect(self._on_model_failed)
        models.unloaded.connect(lambda: chat.conversation.connection or self.context_meter.show_no_model())
        models.loaded.connect(self._on_model_loaded)
        models.unloaded.connect(lambda: self.show_info("Model unloaded"))
        self.top_bar.load_requested.connect(self.models.load)
        self.model_picker.download_requested.connect(self.models.open_downloads)
        self.model_picker.manage_requested.connect(self.models.open_manager)
        self.model_picker.connections_requested.connect(self.models.open_connections)
        chat.engine_changed.connect(self.sampling_panel.engine_fields.show_engine)  # greys what it ignores
        picker = self.model_picker
        picker.listed.connect(lambda: self.welcome.set_library_size(len(picker.entries)))
        self.welcome.download_requested.connect(self.models.open_downloads)
        self.welcome.open_file_requested.connect(self.models.choose_file)
        self.models.download_started.connect(self.status_bar.show_download)
        self.status_bar.downloads_clicked.connect(self.models.open_downloads)
        self.status_bar.server_clicked.connect(self.open_server_panel)
        chat.conversation_shown.connect(self._show_title)
        conversations.changed.connect(self._show_title)  # a first message's title, a rename
        chat.retitled.connect(self._show_title)  # the title the model proposed
        chat.answer_finished.connect(self.status_bar.show_speed)
        chat.conversation_shown.connect(listing.select)
        chat.list_changed.connect(lambda: listing.mark_answering({c.id for c in chat.answering}))
        chat.conversation_shown.connect(self._show_system_prompt)
        chat.conversation_shown.connect(lambda _id: self.banner.hide())  # an error about one chat only
        chat.conversation_shown.connect(lambda _id: self.sampling_panel.clear_hints())
        conversations.undo_available.connect(self.undo_action.setEnabled)
        conversations.exported.connect(self.show_info)
        listing.new_requested.connect(chat.new_conversation)
        listing.selected.connect(chat.open_conversation)
        listing.result_chosen.connect(self.chat_panel.show_hit)
        self.chat_panel.info.connect(self.show_info)
        self.chat_panel.sending.connect(self.banner.hide)
        self.context_meter.policy_changed.connect(lambda policy: setattr(self.preferences, "overflow_policy",
                                                                         policy))
        self.system_prompt_panel.changed.connect(self._on_system_prompt_changed)
        self.models.info.connect(self.show_info)
        self.models.error.connect(self.show_error)

    # -- reactions ------------------------------------------------------------------------------

    def set_theme(self, choice: str) -> None:
        self.preferences.theme = choice
        self.theme_actions[choice].setChecked(True)
        self.colors = apply_theme(choice)
        c = self.colors
        self.banner.set_colors(c)
        self.undo_bar.set_colors(c)
        self.chat_view.set_colors(c)

    def _on_system_colors_changed(self, _scheme) -> None:
        if self.preferences.theme == "system":
            self.set_theme("system")

    def set_text_size(self, points: float) -> None:
        """The whole window: the chat, the message box, the chat list, the side panels, the bars."""
        font = QFont(self.font())
        font.setPointSizeF(points)
        self.setFont(font)
        self.chat_view.set_text_size(points)

    def step_text_size(self, step: int) -> None:
        size = step_text_size(round(self.chat_view.text_size()), step)
        self.set_text_size(size)
        self.preferences.text_size = size
        self.show_info(f"Text size {size} pt")

    def reset_text_size(self) -> None:
        self.set_text_size(self._default_text_size)
        self.preferences.text_size = 0
        self.show_info("Default text size")

    def _show_title(self, *_: object) -> None:
        """The open chat's title first ("Trip to Lisbon — Llamadesk"), as window lists show it."""
        shown = self.chat.conversation
        if self.conversations.is_saved(shown.id):
            title = " ".join(self.conversations.title_of(shown.id).split()) or "Untitled"
        else:
            title = "New chat"
        if len(title) > TITLE_LENGTH:
            title = title[:TITLE_LENGTH - 1] + "…"
        self.setWindowTitle(f"{title} — {app.APP_NAME}")

    def _show_system_prompt(self, _conversation_id: str = "") -> None:
        text = self.chat.conversation.system_prompt
        self.system_prompt_panel.set_prompt(text)
        self.side_tabs.setTabText(1, "System prompt •" if text else "System prompt")

    def _on_system_prompt_changed(self, text: str) -> None:
        self.chat.set_system_prompt(text)
        self.chat_panel.recount()
        self.side_tabs.setTabText(1, "System prompt •" if text else "System prompt")

    def _on_model_loaded(self, info: ModelInfo) -> None:
        self.banner.hide()
        if info.gpu_note:
            self.show_error(info.gpu_note)
        self.chat_panel.recount()

    def _on_model_failed(self, _message: str) -> None:
        if self.model_session.model is None and not self.chat.conversation.connection:
            self.context_meter.show_no_model()

    def show_error(self, message: str) -> None:
        self.banner.show_message(message)

    def show_info(self, message: str) -> None:
        self.status_bar.show_state(message)

    def open_server_panel(self) -> None:
        """View ▸ Server…: the API server's panel (one per window, not modal)."""
        show_server_panel(self, self.workspace.server)

    def focus_search(self) -> None:
        self.conversation_list.search_box.setFocus()
        self.conversation_list.search_box.selectAll()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if any(url.toLocalFile().lower().endswith(".gguf") for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.models.import_and_load([url.toLocalFile() for url in event.mimeData().urls()])
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if not self.models.confirm_quit():
            event.ignore()
            return
        self._save_state()
        self.models.close()  # a running download pauses; its .part stays, listed under Paused downloads
        self.workspace.close()
        tasks.wait_for_background_tasks()
        super().closeEvent(event)
