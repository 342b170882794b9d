"""The chat column: the conversation (or, while it has no messages, the welcome page), the composer
with its Send/Stop button, the context meter.

It observes a ChatSession and sends it intents: what the user typed, the actions under each
message (copy, edit, versions, delete, regenerate, continue), Stop. Editing a question happens in
the composer: Enter resends it as a new version, Esc cancels.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QHBoxLayout, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from app.core.chat.context_window import answer_reserve
from app.core.conversations.conversation import Conversation
from app.core.inference.types import ModelInfo
from app.session.chat_session import ChatSession
from app.session.models import ModelSession
from app.ui.chat.chat_view import ChatView
from app.ui.chat.composer import Composer
from app.ui.chat.context_meter import ContextMeter
from app.ui.chat.welcome import Welcome

COUNT_PAUSE_MS = 250  # the context meter counts the draft once typing pauses this long


class ChatPanel(QWidget):
    info = Signal(str)  # a short note for the status bar ("Copied to the clipboard", …)
    sending = Signal()  # the user sent something: an old error banner may go

    def __init__(self, chat: ChatSession, models: ModelSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.chat = chat
        self.view = ChatView()
        self.welcome = Welcome(models, chat=chat)
        self.stack = QStackedWidget()  # the welcome page while the chat has no messages, else the chat
        self.stack.addWidget(self.view)
        self.stack.addWidget(self.welcome)
        self.composer = Composer()
        self.context_meter = ContextMeter()
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.editing: str | None = None  # the message being edited in the composer
        self.count_timer = QTimer(self, singleShot=True, interval=COUNT_PAUSE_MS)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.stack, 1)
        row = QHBoxLayout()
        row.addWidget(self.composer, 1)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        column.addLayout(row)
        column.addWidget(self.context_meter)
        self.view.follow(chat)
        chat.redrawn.connect(self._show_welcome_if_empty)
        chat.message_started.connect(lambda *_: self.stack.setCurrentWidget(self.view))
        self.welcome.prompt_chosen.connect(self._use_starter)
        self._show_welcome_if_empty(chat.conversation)
        self.composer.submitted.connect(self._send)
        self.send_button.clicked.connect(self._send_or_stop)
        self.view.action_requested.connect(self._on_message_action)
        self.view.link_opened.connect(lambda url: self.info.emit(f"Opened {url} in the browser"))
        chat.generating_changed.connect(self._on_generating_changed)
        chat.context_used.connect(self._show_context)
        chat.engine_changed.connect(self._on_engine_changed)
        chat.draft_returned.connect(self._return_draft)
        chat.conversation_shown.connect(self.count_timer.start)
        chat.redrawn.connect(self.recount)  # another version shown, a message deleted: count again
        self.composer.textChanged.connect(self.count_timer.start)
        self.count_timer.timeout.connect(lambda: chat.count_context(self.composer.toPlainText()))
        self.context_meter.policy_changed.connect(self._on_policy_changed)

    def _show_welcome_if_empty(self, conversation: Conversation, _keep_open: bool = False) -> None:
        self.stack.setCurrentWidget(self.welcome if not conversation.thread() else self.view)

    def _use_starter(self, text: str) -> None:
        """A starter prompt goes into the message box, to send as it is or to change first."""
        self.composer.setPlainText(text)
        self.composer.setFocus()

    def _send(self, text: str) -> None:
        self.sending.emit()
        sent = self.chat.edit(self.editing, text) if self.editing else self.chat.send(text)
        if sent:
            self.composer.clear()
            self.editing = None  # the status bar says the answer is coming: not "Ready"
            self.view.mark_editing(None)

    def _send_or_stop(self) -> None:
        if self.chat.generating:
            self.chat.stop()
        else:
            self.composer.submit()

    def escape(self) -> None:
        """Esc: stop an answer, or cancel an edit."""
        if self.chat.generating:
            self.chat.stop()
        elif self.editing is not None:
            self.composer.clear()
            self._stop_editing()

    def _stop_editing(self) -> None:
        if self.editing is not None:
            self.editing = None
            self.view.mark_editing(None)
            self.info.emit("Ready")

    def _on_message_action(self, action: str, message_id: str) -> None:
        handler = {"copy": self._copy, "copy-plain": self._copy_plain, "copy-code": self._copy_code,
                   "edit": self._edit, "previous": self._previous, "next": self._next,
                   "delete": self._delete, "regenerate": self._regenerate,
                   "continue": self._continue}.get(action)
        if handler is not None:
            handler(message_id)

    def recount(self, *_: object) -> None:
        """Count the context again soon (the model, the messages shown, the system prompt or the
        policy changed)."""
        self.count_timer.start()

    def _copy(self, message_id: str) -> None:
        QApplication.clipboard().setText(self.chat.message_text(message_id))
        self.info.emit("Copied to the clipboard (Markdown)")

    def _copy_plain(self, message_id: str) -> None:
        from app.core.chat.markdown_render import plain_text  # markdown-it: not at start

        QApplication.clipboard().setText(plain_text(self.chat.message_text(message_id)))
        self.info.emit("Copied to the clipboard (plain text)")

    def _copy_code(self, target: str) -> None:
        message_id, _, index = target.rpartition(":")
        QApplication.clipboard().setText(self.view.code_block(message_id, int(index)))
        self.info.emit("Code copied to the clipboard")

    def _edit(self, message_id: str) -> None:
        self.editing = message_id
        self.view.mark_editing(message_id)
        self.composer.setPlainText(self.chat.message_text(message_id))
        self.composer.setFocus()
        self.info.emit("Editing a message: Enter resends it as a new version, Esc cancels")

    def show_hit(self, conversation_id: str, message_id: str | None, query: str = "") -> None:
        """Open a search hit: its chat, at its message (in the version that holds it), the first
        word of the query selected there."""
        self.chat.open_conversation(conversation_id, message_id)
        words = query.split()
        if message_id and words and self.chat.conversation.find(message_id) is not None:
            self.view.find(words[0])  # from the message's start, where the view put the cursor

    def _previous(self, message_id: str) -> None:
        self.chat.show_version(message_id, -1)

    def _next(self, message_id: str) -> None:
        self.chat.show_version(message_id, 1)

    def _delete(self, message_id: str) -> None:
        self.chat.delete_message(message_id)

    def _regenerate(self, message_id: str) -> None:
        self.chat.regenerate(message_id)

    def _continue(self, message_id: str) -> None:
        self.chat.continue_answer(message_id)

    def copy_last_answer(self) -> None:
        answers = [m for m in self.chat.conversation.thread() if m.role == "assistant"]
        if not answers or not answers[-1].text:
            self.info.emit("There is no answer to copy yet")
            return
        QApplication.clipboard().setText(answers[-1].text)
        self.info.emit("Copied the last answer to the clipboard")

    def _on_generating_changed(self, generating: bool) -> None:
        self.send_button.setText("Stop" if generating else "Send")
        self.send_button.setToolTip("Stop the answer (Esc)" if generating else "Send (Enter)")

    def _show_context(self, used: int, n_ctx: int) -> None:
        """While typing, the room kept for the answer counts too: that is when a chat gets cut."""
        reserve = 0 if self.chat.generating else answer_reserve(n_ctx, self.chat.sampling.params.max_tokens)
        messages = len(self.chat.conversation.thread()) + bool(self.composer.toPlainText().strip())
        exact = self.chat.model is None or self.chat.model.exact_count  # a server's estimate: "≈"
        self.context_meter.show_usage(used, n_ctx, reserve, single_message=messages <= 1, exact=exact)

    def _on_engine_changed(self, info: ModelInfo | None) -> None:
        """Another engine answers the shown chat: its count follows (a remote one once connected)."""
        if info is None:
            self.context_meter.show_no_model("Context: connecting…" if self.chat.conversation.connection
                                             else "Context: no model")
        else:
            self.recount()

    def _return_draft(self, text: str) -> None:
        """A refused message comes back to the composer, before anything typed since."""
        typed = self.composer.toPlainText().strip()
        self.composer.setPlainText(f"{text}\n\n{typed}" if typed else text)

    def _on_policy_changed(self, policy: str) -> None:
        self.chat.overflow_policy = policy
        self.recount()  # the meter's words depend on the policy
