"""Tokens used of the model's context, and what to do when the context is full."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QProgressBar, QWidget

from app.core.chat.context_window import POLICY_LABELS, OverflowPolicy

TIGHT = 0.85  # from this share of the context on, the meter warns


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
        self.bar.setToolTip("Tokens this chat uses (with what you are typing, or the answer as it "
                            "streams) of the model's context length.")
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
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.bar, 1)
        row.addWidget(QLabel("When full:"))
        row.addWidget(self.policy)
        self.used = self.n_ctx = 0

    def set_policy(self, policy: str) -> None:
        index = self.policy.findData(str(OverflowPolicy(policy)))
        self.policy.setCurrentIndex(max(index, 0))

    def current_policy(self) -> str:
        return self.policy.currentData()

    def show_usage(self, used: int, n_ctx: int, reserve: int = 0) -> None:
        """`reserve`: tokens kept free for the next answer; a chat past n_ctx - reserve is over."""
        self.used, self.n_ctx = used, n_ctx
        self.bar.setRange(0, max(n_ctx, 1))
        self.bar.setValue(min(used, n_ctx))
        share = used / n_ctx if n_ctx else 0.0
        over = used > n_ctx - reserve
        text = f"Context: {used:,} / {n_ctx:,} tokens ({share:.0%})"
        if over:
            text += " — full: older messages will be left out" \
                if self.current_policy() != OverflowPolicy.STOP else " — full: the next message is refused"
        self.bar.setFormat(text)
        state = "over" if over else "tight" if share >= TIGHT else "ok"
        if self.bar.property("state") != state:  # a style sheet costs a re-polish: only on change
            self.bar.setProperty("state", state)
            self.bar.setStyleSheet("QProgressBar::chunk { background: %s; }" % (
                "#d9534f" if state == "over" else "#e0a526" if state == "tight" else "#4a90d9"))

    def show_no_model(self) -> None:
        self.used = self.n_ctx = 0
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("Context: no model")
