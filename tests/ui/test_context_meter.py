"""Issue 12, items 7 and 15: the context meter follows a theme switch, and its words say what the
chosen policy really does with a chat past its limit."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.core.chat.context_window import OverflowPolicy
from app.ui.chat.context_meter import ContextMeter


@pytest.fixture
def meter(qtbot) -> ContextMeter:
    widget = ContextMeter()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_the_meter_takes_a_new_theme_at_once(qtbot, meter: ContextMeter, restore_theme) -> None:
    """It used to keep the palette it was first drawn with: a style sheet froze it."""
    restore_theme("light")
    meter.show_usage(450, 512, 16)  # "over": a red chunk
    over = meter.bar.palette().color(QPalette.ColorRole.Highlight).name()
    restore_theme("dark")
    dark = QApplication.palette()
    for role in (QPalette.ColorRole.Base, QPalette.ColorRole.Window, QPalette.ColorRole.Text):
        qtbot.waitUntil(lambda role=role: meter.bar.palette().color(role) == dark.color(role), timeout=5_000)
    assert meter.bar.palette().color(QPalette.ColorRole.Highlight).name() == over  # still says "over"
    meter.show_usage(100, 512, 16)
    assert meter.bar.palette().color(QPalette.ColorRole.Highlight).name() != over
    assert meter.bar.palette().color(QPalette.ColorRole.Base) == dark.color(QPalette.ColorRole.Base)


@pytest.mark.parametrize(("policy", "words"), [
    (OverflowPolicy.DROP_OLDEST, "older messages will be left out of what the model reads."),
    (OverflowPolicy.KEEP_FIRST_LAST, "messages in the middle will be left out of what the model reads; "
                                     "the first turn and the latest ones are kept."),
    (OverflowPolicy.STOP, "the next message will be refused. Start a new chat, or choose another policy "
                          "under “When full”."),
])
def test_full_says_what_the_policy_does_and_the_room_kept_for_the_answer(meter: ContextMeter, policy,
                                                                         words: str) -> None:
    meter.set_policy(policy)
    meter.show_usage(420, 512, 128)  # 82 %: full because 128 tokens are kept for the answer
    assert meter.bar.text() == "Context: 420 / 512 tokens (82%) — full"
    assert meter.status.isVisible()
    assert meter.status.text() == f"Full (128 tokens are kept for the answer): {words}"
    if policy is OverflowPolicy.KEEP_FIRST_LAST:
        assert "older" not in meter.text()


def test_a_single_message_too_long_says_it_will_be_refused(meter: ContextMeter) -> None:
    for policy in OverflowPolicy:
        meter.set_policy(policy)
        meter.show_usage(900, 512, 128, single_message=True)
        assert meter.bar.text() == "Context: 900 / 512 tokens (176%) — too long"
        assert meter.status.text().startswith("This message alone is too long for the context, so it will "
                                              "be refused whatever the policy")
        assert "left out" not in meter.text()


def test_a_chat_that_fits_says_only_its_usage(meter: ContextMeter) -> None:
    meter.show_usage(420, 512, 128)
    meter.show_usage(100, 512, 128)  # back under: the explanation goes
    assert meter.text() == "Context: 100 / 512 tokens (20%)" and meter.status.isHidden()
