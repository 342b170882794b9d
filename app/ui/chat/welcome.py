"""What an empty chat shows instead of a blank pane (LM Studio, Jan, GPT4All): with a model, a few
starter prompts that fill the message box; without one, the ways to get one.

It observes the model session and the shown chat's engine (a chat answered by a remote engine has
a model); how many models the library holds comes from the picker's scan (`set_library_size`). The
chat panel shows it exactly while the open chat has no messages.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from app.session.chat_session import ChatSession
from app.session.models import ModelSession

STARTERS = (
    "Explain how a large language model works, in plain words",
    "Help me plan three days in Lisbon",
    "Write a short poem about the sea",
    "Give me five ideas for a quick dinner",
)
STARTERS_WIDTH = 440  # px at most: a column of suggestions, not a banner across a wide window
WITH_MODEL = "What can I help you with?"
CHOOSE_MODEL = "Choose a model at the top to start, or get another one."
NO_MODELS = ("There is no model yet. Download one (a small one takes a few minutes), "
             "or open a GGUF file you already have.")


class Welcome(QWidget):
    prompt_chosen = Signal(str)  # a starter prompt, for the message box
    download_requested = Signal()
    open_file_requested = Signal()

    def __init__(self, models: ModelSession, parent: QWidget | None = None,
                 chat: ChatSession | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self.models = models
        self.chat = chat
        self._library_size: int | None = None  # not scanned yet
        self._loading = False
        self.heading = QLabel()
        self.heading.setTextFormat(Qt.TextFormat.RichText)  # <h2>: relative to the window's text size
        self.heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.heading.setWordWrap(True)
        self.starters = QWidget()
        self.starters.setMaximumWidth(STARTERS_WIDTH)
        stack = QVBoxLayout(self.starters)
        stack.setContentsMargins(0, 0, 0, 0)
        self.starter_buttons = []
        for text in STARTERS:
            button = QPushButton(text)
            button.setToolTip("Put this in the message box")
            # the column's width, not the text's, sets the button's: a narrow window stays narrow
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            button.clicked.connect(lambda _=False, t=text: self.prompt_chosen.emit(t))
            stack.addWidget(button)
            self.starter_buttons.append(button)
        self.download_button = QPushButton("Download a model…")
        self.open_button = QPushButton("Open a model file…")
        self.download_button.clicked.connect(self.download_requested)
        self.open_button.clicked.connect(self.open_file_requested)
        self.get_model = QWidget()
        buttons = QHBoxLayout(self.get_model)
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        column = QVBoxLayout(self)
        column.addStretch(1)
        column.addWidget(self.heading)
        centred = QHBoxLayout()
        centred.addStretch(1)
        centred.addWidget(self.starters, 10)  # as wide as the pane allows, up to STARTERS_WIDTH
        centred.addStretch(1)
        column.addLayout(centred)
        column.addWidget(self.get_model)
        column.addStretch(2)
        models.loading.connect(lambda _path: self._set_loading(True))
        for signal in (models.loaded, models.failed):
            signal.connect(lambda *_: self._set_loading(False))
        models.unloaded.connect(lambda: self._set_loading(False))
        if chat is not None:
            chat.engine_changed.connect(lambda _info: self._update())
        self._update()

    def set_library_size(self, count: int) -> None:
        """How many usable models the library has (from the picker's scan)."""
        self._library_size = count
        self._update()

    def _set_loading(self, loading: bool) -> None:
        self._loading = loading
        self._update()

    def _update(self) -> None:
        remote = self.chat is not None and bool(self.chat.conversation.connection)
        with_model = self.models.model is not None or self._loading or remote
        text = WITH_MODEL if with_model else NO_MODELS if self._library_size == 0 else CHOOSE_MODEL
        self.heading.setText(f"<h2>{text}</h2>" if with_model else f"<p>{text}</p>")
        self.starters.setVisible(with_model)
        self.get_model.setVisible(not with_model)
