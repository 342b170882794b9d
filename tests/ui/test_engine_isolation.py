"""The model runs in its own process: what llama.cpp or a model file does there never takes the
window, the model that works or a chat with it (issue 10)."""

from __future__ import annotations

import os
import re
import signal

import pytest
from PySide6.QtCore import Qt

from app.core.chat.sampling import SamplingParams
from app.core.conversations.store import ConversationStore
from app.ui.main_window import MainWindow
from tests.fixtures import hostile_gguf, template_models
from tests.fixtures.hostile_gguf import HOSTILE

LONG = SamplingParams(temperature=0.0, seed=1, max_tokens=400)


def engine_pid(window: MainWindow) -> int:
    pid = window.backend.client.worker.process.pid
    assert pid is not None
    return pid


def start_answer(qtbot, window: MainWindow, text: str, tokens: int = 3) -> None:
    """Send `text` and return once `tokens` tokens of the answer have arrived."""
    window.sampling.set_params(LONG)
    arrived = []
    window.backend.client.worker.token.connect(lambda *_: arrived.append(1))
    qtbot.keyClicks(window.composer, text)
    qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(arrived) >= tokens, timeout=60_000)


def stored_answer(window: MainWindow):
    store = ConversationStore(window.store.path)
    try:
        return store.load(window.chat.conversation.id).thread()[-1]
    finally:
        store.close()


def ask(qtbot, window: MainWindow, text: str):
    with qtbot.waitSignal(window.chat.answer_finished, timeout=120_000) as finished:
        qtbot.keyClicks(window.composer, text)
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    return finished.args[0]


def test_an_engine_that_aborts_mid_answer_costs_neither_the_window_nor_the_answer_so_far(qtbot, window):
    start_answer(qtbot, window, "Write a long story about a lighthouse keeper.")
    with qtbot.waitSignal(window.chat.error, timeout=30_000) as error:
        os.kill(engine_pid(window), signal.SIGABRT)  # what a failed GGML_ASSERT does
    message = error.args[0]
    assert "stopped unexpectedly while writing the answer" in message and "SIGABRT" in message
    assert not window.chat.generating and window.banner.isVisible()
    shown = window.chat.conversation.thread()[-1]
    saved = stored_answer(window)
    assert saved.text == shown.text and saved.text.strip() and saved.incomplete
    window.sampling.set_params(LONG.replace(max_tokens=8))
    stats = ask(qtbot, window, "Say hi.")  # a new engine process, the same model loaded again
    assert stats.completion_tokens > 0
    assert window.backend.client.worker.process.restarts == 1
    assert window.model_label.text() == window.chat.model.name


def test_a_stop_the_engine_cannot_honour_ends_its_process_and_keeps_the_answer(qtbot, window):
    start_answer(qtbot, window, "Write a long story about a lighthouse keeper.")
    os.kill(engine_pid(window), signal.SIGSTOP)  # stuck: it reads no stop flag any more
    with qtbot.waitSignal(window.chat.answer_finished, timeout=30_000) as finished:
        window.chat.stop()
    assert finished.args[0].stop_reason == "user"
    shown = window.chat.conversation.thread()[-1]
    saved = stored_answer(window)
    assert saved.text == shown.text and saved.text.strip() and saved.incomplete
    window.sampling.set_params(LONG.replace(max_tokens=8))
    assert ask(qtbot, window, "Say hi.").completion_tokens > 0


def test_the_recorder_saves_what_was_shown_while_the_engine_stalls(qtbot, window):
    start_answer(qtbot, window, "Write a long story about a lighthouse keeper.", tokens=5)
    pid = engine_pid(window)
    os.kill(pid, signal.SIGSTOP)  # a stall: no token arrives any more
    try:
        shown = window.chat.conversation.thread()[-1]
        qtbot.waitUntil(lambda: stored_answer(window).text == shown.text, timeout=10_000)
    finally:
        os.kill(pid, signal.SIGCONT)
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
        window.chat.stop()


def test_closing_while_the_engine_is_stuck_ends_it_instead_of_waiting_forever(qtbot, model_path):
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000):
        window.model_session.load(str(model_path))
    start_answer(qtbot, window, "Write a long story about a lighthouse keeper.")
    os.kill(engine_pid(window), signal.SIGSTOP)
    window.close()  # waits the shutdown timeout, then ends the process: returns
    assert not window.backend.client.worker.process.running
    assert stored_answer(window).incomplete


@pytest.mark.parametrize("name", ["bit_flipped", "huge_block_count"])
def test_a_hostile_model_file_is_refused_and_the_working_model_stays(qtbot, window, tmp_path, model_path,
                                                                      name):
    if name == "bit_flipped":  # llama.cpp itself would abort on its duplicated token
        path = hostile_gguf.bit_flipped_model(model_path, tmp_path / "flipped.gguf")
    else:
        path = HOSTILE[name][0](tmp_path / "hostile.gguf")
    with qtbot.waitSignal(window.model_session.failed, timeout=60_000) as failed:
        window.model_session.load(str(path))
    assert "still loaded" in failed.args[0]
    assert window.model_label.text() == "SmolLM2-135M-Instruct.Q4_1"
    assert window.banner.isVisible() and failed.args[0] in window.banner.text()
    assert window.backend.client.worker.process.restarts == 0
    assert ask(qtbot, window, "Say hi.").completion_tokens > 0


def test_a_file_llama_cpp_cannot_load_brings_the_working_model_back(qtbot, window, tmp_path):
    from tests.fixtures.gguf_files import write_gguf

    alien = write_gguf(tmp_path / "alien.gguf", {"general.architecture": "notarealarch"},
                       [("token_embd.weight", (16, 16))], sparse=False)
    with qtbot.waitSignal(window.model_session.failed, timeout=60_000) as failed:
        window.model_session.load(str(alien))
    assert "notarealarch" in failed.args[0] and "still loaded" in failed.args[0]
    assert window.chat.model is not None and window.model_label.text() == window.chat.model.name
    assert ask(qtbot, window, "Say hi.").completion_tokens > 0


@pytest.mark.parametrize(("template", "words"), [
    (template_models.EMPTY, "produced no text"),
    (template_models.HUGE_CONSTANT, "too large"),
    (template_models.BALLOON, "more memory than the model process may use"),
    (template_models.NESTED_LOOPS, "took longer than"),
])
def test_a_hostile_chat_template_fails_the_answer_not_the_window(qtbot, window, tmp_path, model_path,
                                                                template, words):
    hostile = template_models.with_chat_template(model_path, tmp_path / "hostile.gguf", template)
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000):
        window.model_session.load(str(hostile))
    with qtbot.waitSignal(window.chat.error, timeout=120_000) as error:
        qtbot.keyClicks(window.composer, "Say hi.")
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    assert words in error.args[0]
    assert not window.chat.generating
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000):
        window.model_session.load(str(model_path))
    assert ask(qtbot, window, "Say hi.").completion_tokens > 0


def test_stop_while_a_long_prompt_is_read_takes_effect_between_batches(qtbot, window):
    progress, statuses = [], []
    window.backend.client.worker.prompt_progress.connect(lambda *args: progress.append(args[1:]))
    window.chat.status.connect(statuses.append)
    window.sampling.set_params(LONG)
    long_text = " ".join(f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(150))
    window.chat.send(long_text)  # ~2,300 tokens: five batches of 512
    qtbot.waitUntil(lambda: any(s.startswith("Reading") for s in statuses), timeout=60_000)
    assert re.fullmatch(r"Reading \d,\d{3} tokens — \d+ %", window.state_label.text())
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000) as finished:
        window.chat.stop()
    stats = finished.args[0]
    assert stats.stop_reason == "user" and stats.completion_tokens == 0
    done, total = progress[-1]
    assert total > 1500 and done < total  # it stopped before reading the whole prompt


def test_a_purged_conversation_takes_its_kv_snapshot_with_it(qtbot, window, llamadesk_home):
    from app.core.inference.local.kv_cache import KVCacheStore

    window.sampling.set_params(LONG.replace(max_tokens=8))
    ask(qtbot, window, "My secret word is heliotrope. Say hi.")
    first = window.chat.conversation.id
    window.chat.new_conversation()
    ask(qtbot, window, "Say hello.")  # switching saves the first chat's KV cache to disk
    snapshot = KVCacheStore(llamadesk_home / "cache" / "kv")._path(first)
    qtbot.waitUntil(snapshot.exists, timeout=30_000)
    window.conversations.delete(first)
    window.conversations.purge_deleted()
    qtbot.waitUntil(lambda: not snapshot.exists(), timeout=30_000)
    assert ask(qtbot, window, "Say hi.").completion_tokens > 0
