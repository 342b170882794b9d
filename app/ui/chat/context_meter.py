"""Tokens used of the model's context, and what to do when the context is full."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from app.core.chat.context_window import POLICY_LABELS, OverflowPolicy

TIGHT = 0.85  # from this share of the context on, the meter warns
_CHUNK = {"ok": "#4a90d9", "tight": "#e0a526", "over": "#d9534f"}  # readable on light and dark
_USAGE_TIP = ("Tokens this chat uses (with what you are typing, or the answer as it streams) of the "
              "model's context length.")
_ESTIMATE_TIP = _USAGE_TIP + (" “≈”: an estimate (about four characters a token), since the server "
                              "cannot count them for us.")
# What each policy does with a chat past its limit (see app/core/chat/context_window.py).
_WHEN_FULL = {
    OverflowPolicy.STOP: "the next message will be refused. Start a new chat, or choose another "
                         "policy under “When full”.",
    OverflowPolicy.DROP_OLDEST: "older messages will be left out of what the model reads.",
    OverflowPolicy.KEEP_FIRST_LAST: "messages in the middle will be left out of what the model reads; "
                                    "the first turn and the latest ones are kept.",
}


def _tokens(count: int) -> str:
    return f"{count:,} token{'' if count == 1 else 's'}"


def full_words(reserve: int, policy: str, single_message: bool) -> str:
    """What happens when the user sends a chat past its limit, and why it is past it."""
    if single_message:
        return ("This message alone is too long for the context, so it will be refused whatever the "
                "policy: shorten it, or load the model with a longer context.")
    kept = f" ({_tokens(reserve)} are kept for the answer)" if reserve else ""
    return f"Full{kept}: " + _WHEN_FULL[OverflowPolicy(policy)]


class ContextMeter(QWidget):
    policy_changed = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("contextMeter")
        self.bar = QProgressBar()
        self.bar.setObjectName("contextBar")
        self.bar.setTextVisible(True)
        self.bar.setMaximumHeight(16)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("Context: no model")
        self.bar.setToolTip(_USAGE_TIP)
        self.bar.setMinimumWidth(80)
        self.policy = QComboBox()
        self.policy.setObjectName("overflowPolicy")
        self.policy.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.policy.setMinimumContentsLength(21)  # narrow windows keep their width; the list shows all
        for policy, label in POLICY_LABELS.items():
            self.policy.addItem(label, str(policy))
        self.policy.setToolTip("When the chat no longer fits the context: stop, drop the oldest turns "
                               "(the system prompt is always kept), or keep the first and the latest "
                               "turns and drop the middle. A marker in the chat shows what was left out.")
        self.policy.currentIndexChanged.connect(lambda _: self.policy_changed.emit(self.policy.currentData()))
        # Past the limit, a line under the bar says why and what sending will do: the bar's own
        # text stays short enough for a narrow window.
        self.status = QLabel()
        self.status.setObjectName("contextStatus")
        self.status.setWordWrap(True)
        self.status.hide()
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(QLabel("When full:"))
        row.addWidget(self.policy)
        column.addLayout(row)
        column.addWidget(self.status)
        self.used = self.n_ctx = 0

    def set_policy(self, policy: str) -> None:
        index = self.policy.findData(str(OverflowPolicy(policy)))
        self.policy.setCurrentIndex(max(index, 0))

    def current_policy(self) -> str:
        return self.policy.currentData()

    def show_usage(self, used: int, n_ctx: int, reserve: int = 0, single_message: bool = False,
                   exact: bool = True) -> None:
        """`reserve`: tokens kept free for the next answer; a chat past n_ctx - reserve is over.
        `single_message`: the chat is one message (besides the system prompt), so no policy can
        make room by leaving others out: past the limit it is refused. `exact`: False for an
        estimate (a server that cannot count for us), shown "≈". n_ctx 0: the limit is not known."""
        self.used, self.n_ctx = used, n_ctx
        self.bar.setRange(0, max(n_ctx, 1))
        self.bar.setValue(min(used, n_ctx))
        share = used / n_ctx if n_ctx else 0.0
        over = bool(n_ctx) and used > n_ctx - reserve
        about = "" if exact or not used else "≈"  # no text, no tokens: that much is exact
        if n_ctx:
            text = f"Context: {about}{used:,} / {n_ctx:,} tokens ({about}{share:.0%})"
        else:
            text = f"Context: {about}{_tokens(used)} (limit unknown)"
        if over:
            text += " — too long" if single_message else " — full"
        self.bar.setFormat(text)
        self.status.setText(full_words(reserve, self.current_policy(), single_message) if over else "")
        self.status.setVisible(over)
        self.bar.setToolTip(_USAGE_TIP if exact else _ESTIMATE_TIP)
        state = "over" if over else "tight" if share >= TIGHT else "ok"
        if self.bar.property("state") != state:
            self.bar.setProperty("state", state)
            # Only the chunk's colour is set: the rest of the palette follows the theme. (A style
            # sheet here froze the bar in the theme it was first drawn in: issue 12, item 7.)
            palette = QPalette()
            palette.setColor(QPalette.ColorRole.Highlight, QColor(_CHUNK[state]))
            self.bar.setPalette(palette)

    def text(self) -> str:
        """What the meter says: the bar's text and, past the limit, the line under it."""
        return " ".join(t for t in (self.bar.text(), self.status.text()) if t)

    def show_no_model(self, text: str = "Context: no model") -> None:
        """Nothing counted: no model, or (text) a remote engine not connected yet."""
        self.used = self.n_ctx = 0
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat(text)
        self.status.setText("")
        self.status.hide()
