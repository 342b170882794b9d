"""The real window, driven through its widgets as a user would, on the real model."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.core.chat.sampling import SamplingParams
from app.ui.main_window import MainWindow

HELLO = "Say hello in five words."
STORY = "Write a long story about a llama who travels the world."


def type_and_send(qtbot, window: MainWindow, text: str) -> None:
    qtbot.keyClicks(window.composer, text)
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)


def start_long_answer(qtbot, window: MainWindow) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(400)
    type_and_send(qtbot, window, STORY)
    qtbot.waitUntil(lambda: len(window.chat_view.last_message_text()) > 10, timeout=30_000)


def test_a_message_sent_through_the_composer_streams_into_the_chat_view(qtbot, window) -> None:
    window.sampling_panel.rows["temperature"].spin.setValue(0.0)  # greedy: a known answer
    window.sampling_panel.rows["max_tokens"].spin.setValue(60)
    shown: list[str] = []
    window.chat_view.textChanged.connect(lambda: shown.append(window.chat_view.last_message_text()))
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000) as finished:
        type_and_send(qtbot, window, STORY)
        assert window.composer.toPlainText() == ""
        assert window.send_button.text() == "Stop"
        assert window.state_label.text() == "Generating…"
    stats = finished.args[0]
    answer = window.chat.conversation.messages[-1]
    assert answer.role == "assistant" and not answer.incomplete
    assert answer.generation.completion_tokens == stats.completion_tokens
    assert answer.generation.model_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    # Streamed as plain text, then drawn as Markdown (a plain story: the same words).
    assert window.chat_view.last_message_text().split() == answer.text.split()
    assert "llama" in answer.text.lower()
    assert stats.completion_tokens == 60 and stats.stop_reason == "length"
    growing = [s for s in dict.fromkeys(shown) if s and answer.text.startswith(s) and s != answer.text]
    assert len(growing) >= 2, "the answer appeared at once instead of streaming in"
    assert stats.completion_tokens > 0 and stats.tokens_per_s > 0
    assert window.send_button.text() == "Send"
    assert window.state_label.text() == "Ready"
    assert window.model_label.text() == "SmolLM2-135M-Instruct.Q4_1"
    assert window.backend_label.text() == "CPU"
    assert window.speed_label.text().endswith("tok/s")
    assert window.conversation_list.list.item(0).text() == "Today"
    assert window.conversation_list.list.item(1).text() == STORY[:47] + "…"


def test_shift_enter_is_a_new_line_and_sends_nothing(qtbot, window) -> None:
    qtbot.keyClicks(window.composer, "first line")
    qtbot.keyClick(window.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.composer, "second line")
    assert window.composer.toPlainText() == "first line\nsecond line"
    assert not window.chat.generating
    assert window.chat.conversation.messages == []


def test_stop_ends_the_answer_within_one_token(qtbot, window) -> None:
    emitted = []  # tokens per message from the engine (it sends text at most every SEND_EVERY_S)
    window.backend.client.worker.token.connect(
        lambda request, text, tokens: emitted.append(tokens), Qt.ConnectionType.DirectConnection
    )
    start_long_answer(qtbot, window)
    with qtbot.waitSignal(window.chat.answer_finished, timeout=10_000) as finished:
        qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
        emitted_at_stop, batch = sum(emitted), max(emitted)
    stats = finished.args[0]
    assert stats.stop_reason == "user"
    # What had arrived, what the engine held back for its next message, and at most one more.
    assert stats.completion_tokens <= emitted_at_stop + batch + 1 < 400
    answer = window.chat.conversation.messages[-1]
    assert answer.incomplete and answer.text
    assert "stopped" in window.chat_view.toPlainText().splitlines()[-1]


def test_a_second_request_while_one_runs_is_refused(qtbot, window) -> None:
    start_long_answer(qtbot, window)
    assert window.chat.send("And another thing") is False
    assert window.backend.client.generate([{"role": "user", "content": "x"}],
                                             SamplingParams()) is None
    with qtbot.waitSignal(window.chat.answer_finished, timeout=10_000):
        window.chat.stop()
    roles = [m.role for m in window.chat.conversation.messages]
    assert roles == ["user", "assistant"]


def test_closing_mid_answer_ends_the_thread_and_keeps_the_answer(qtbot, window, no_dangling_qthreads):
    """Closing does not wait for the answer to end: Stop takes effect within one token (a close
    that hung would fail on the suite's timeout)."""
    start_long_answer(qtbot, window)
    assert window.chat.generating
    answer = window.chat.conversation.thread()[-1]
    window.close()
    assert all(not t.isRunning() for t in no_dangling_qthreads)
    assert not window.backend.client.worker.process.running
    assert answer.incomplete and answer.text


def test_the_window_shows_loading_and_accepts_a_message_before_the_model_is_ready(
    qtbot, model_path
) -> None:
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    labels: list[str] = []
    win.model_session.loading.connect(lambda path: labels.append(win.model_label.text()))
    win.model_session.load(str(model_path))
    assert win.state_label.text() == "Loading model…"
    with qtbot.waitSignal(win.chat.answer_finished, timeout=60_000) as finished:
        type_and_send(qtbot, win, HELLO)  # sent while the model is still loading
        assert win.chat.generating
    assert finished.args[0].completion_tokens > 0
    assert win.chat_view.last_message_text().strip()
    assert labels == ["Loading SmolLM2-135M-Instruct.Q4_1…"]
    assert win.model_label.text() == "SmolLM2-135M-Instruct.Q4_1"
    win.close()


def test_a_broken_model_shows_a_clear_banner_and_the_app_keeps_working(
    qtbot, model_path, tmp_path
) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.model_session.failed, timeout=30_000):
        win.model_session.load(str(bad))
    assert win.banner.isVisible()
    assert "notes.gguf is not a GGUF model file" in win.banner.text()
    assert win.state_label.text() == "No model" and win.model_label.text() == "No model"
    with qtbot.waitSignal(win.model_session.loaded, timeout=60_000):
        win.model_session.load(str(model_path))
    assert not win.banner.isVisible()
    with qtbot.waitSignal(win.chat.answer_finished, timeout=60_000):
        type_and_send(qtbot, win, HELLO)
    win.close()


def test_the_sampling_panel_edits_the_conversation_settings(qtbot, window) -> None:
    rows = window.sampling_panel.rows
    rows["temperature"].spin.setValue(0.3)
    rows["top_k"].slider.setValue(10)
    conversation = window.chat.conversation
    assert conversation.sampling.temperature == 0.3
    assert conversation.sampling.top_k == 10
    assert rows["top_k"].spin.value() == 10
    qtbot.mouseClick(window.sampling_panel.reset_button, Qt.MouseButton.LeftButton)
    assert rows["temperature"].spin.value() == SamplingParams().temperature
    assert conversation.sampling == SamplingParams()


def test_enter_without_a_model_keeps_the_text_and_says_what_to_do(qtbot) -> None:
    """Issue 12: nothing is saved, the text stays in the composer, the banner names the way out."""
    from tests.ui.conftest import open_window

    win = open_window(qtbot)
    type_and_send(qtbot, win, HELLO)
    assert win.banner.isVisible() and "No model is loaded" in win.banner.text()
    assert win.composer.toPlainText() == HELLO
    assert win.chat.conversation.messages == [] and win.conversations.summaries == []
    assert not win.chat.generating and win.send_button.text() == "Send"
    win.close()


def test_the_status_bar_follows_an_edited_message_and_drops_the_speed_with_the_model(qtbot, window) -> None:
    """Issue 12 item 14: "Ready" showed while an edited message was answered; a stale "46.8 tok/s"
    stayed beside "No model"."""
    window.sampling_panel.rows["max_tokens"].spin.setValue(8)
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
        type_and_send(qtbot, window, "Hello!")
    assert window.speed_label.text().endswith("tok/s")
    question = window.chat.conversation.thread()[0]
    window.chat_view.action_requested.emit("edit", question.id)
    window.composer.clear()
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
        type_and_send(qtbot, window, "Good morning!")
        assert window.state_label.text() == "Generating…"
    assert window.chat.conversation.thread()[0].text == "Good morning!"
    with qtbot.waitSignal(window.model_session.unloaded, timeout=30_000):
        window.model_session.unload()
    assert window.model_label.text() == "No model" and window.speed_label.text() == ""
