"""Issue 13 in the window: remote engines beside local models. The picker lists each connection's models
("model-id · box") and switches the shown chat to one; an answer streams from llama.cpp's real
llama-server into the chat view and its footer says where it came from; a chat keeps its engine; the
sampling panel greys out what a plain OpenAI-compatible server ignores and the meter marks its
estimates "≈" (the hostile server plays that server: a real llama-server always tokenizes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QHelpEvent, QTextCursor
from PySide6.QtWidgets import QApplication, QToolTip

from app.core.conversations.conversation import Conversation
from app.core.conversations.store import ConversationStore
from app.core.remote.connections import Connection
from app.ui.chat.context_meter import ContextMeter
from app.ui.chat.engine_label import remote_label, short_id
from app.ui.chat.model_picker import ADD_REMOTE, CONNECTIONS, ModelPicker
from app.ui.main_window import MainWindow
from app.ui.models.connections_dialog import ConnectionsDialog
from tests.fixtures.hostile_openai import HostileServer, json_reply
from tests.fixtures.llama_server import API_KEY, LlamaServer, free_port
from tests.ui.conftest import open_window, seed_store, send

TIMEOUT = 60_000  # ms: a bound on a wait for a signal, never an assertion on speed
PLAIN_MODEL = "plain-model"
MIROSTAT_OWN = ("mirostat_tau", "mirostat_eta")  # off while Mirostat is off, whatever the engine


@pytest.fixture
def plain_server() -> Iterator[HostileServer]:
    """A plain OpenAI-compatible server: a model list, no /props, no /tokenize."""
    with HostileServer() as server:
        server.on("/v1/models", json_reply(200, {"data": [{"id": PLAIN_MODEL, "owned_by": "someone"}]}))
        yield server


def add_connection(qtbot, window: MainWindow, name: str, base_url: str, key: str = "") -> None:
    """Saved as the dialog saves it; the picker asks the servers again and lists what they said."""
    picker = window.model_picker
    with qtbot.waitSignal(picker.remote_listed, timeout=TIMEOUT,
                          check_params_cb=lambda: any(c.name == name for c, _ in picker.remote)):
        assert window.workspace.connections.save(Connection(name=name, base_url=base_url), key)


def index_of(picker: ModelPicker, data) -> int:
    return next((i for i in range(picker.count()) if picker.itemData(i) == data), -1)


def choose(qtbot, window: MainWindow, data) -> None:
    """Choose an entry as a click in the list does; wait until the remote engine has connected."""
    index = index_of(window.model_picker, data)
    assert index >= 0, f"{data} is not listed"
    with qtbot.waitSignal(window.chat.engine_changed, timeout=TIMEOUT,
                          check_params_cb=lambda info: info is not None):
        window.model_picker.activated.emit(index)


def tooltips_in(window: MainWindow) -> dict[str, int]:
    """The chat view's texts that carry a tooltip: {tooltip: position of its text}."""
    found = {}
    block = window.chat_view.document().begin()
    while block.isValid():
        fragments = block.begin()
        while not fragments.atEnd():
            fragment = fragments.fragment()
            if fragment.charFormat().toolTip():
                found[fragment.charFormat().toolTip()] = fragment.position()
            fragments += 1
        block = block.next()
    return found


def hover_tip(window: MainWindow, position: int) -> str:
    """The tooltip the view shows for the text at `position` (as the mouse resting there asks)."""
    view = window.chat_view
    cursor = QTextCursor(view.document())
    cursor.setPosition(position + 1)
    point = view.cursorRect(cursor).center()
    view.ensureCursorVisible()
    QToolTip.hideText()
    QApplication.sendEvent(view.viewport(), QHelpEvent(QEvent.Type.ToolTip, point,
                                                       view.viewport().mapToGlobal(point)))
    return QToolTip.text()


def test_a_long_model_id_is_shortened_in_the_middle_and_a_path_named_by_its_file() -> None:
    assert remote_label("qwen2.5-7b", "gpu-box") == "qwen2.5-7b · gpu-box"
    long_id = "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo-with-a-long-suffix"
    assert short_id(long_id) == "meta-llama/Me…t-Turbo-with-a-long-suffix" and len(short_id(long_id)) == 40
    assert short_id("/srv/models/llama/unsloth/SmolLM2-135M-Instruct.Q4_1.gguf") == \
        "…/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_the_meter_marks_an_estimate_and_a_limit_it_does_not_know(qtbot) -> None:
    meter = ContextMeter()
    qtbot.addWidget(meter)
    meter.show_usage(120, 2048, exact=False)
    assert meter.text() == "Context: ≈120 / 2,048 tokens (≈6%)"
    meter.show_usage(120, 0, reserve=256, exact=False)  # no limit known: never "full"
    assert meter.text() == "Context: ≈120 tokens (limit unknown)"
    meter.show_usage(0, 0, exact=False)
    assert meter.text() == "Context: 0 tokens (limit unknown)"
    meter.show_usage(120, 2048)
    assert meter.text() == "Context: 120 / 2,048 tokens (6%)"


def test_without_connections_the_picker_and_the_menu_open_the_connections_dialog(qtbot) -> None:
    window = open_window(qtbot)
    picker = window.model_picker
    qtbot.waitUntil(lambda: picker.findData(CONNECTIONS) >= 0, timeout=TIMEOUT)
    assert picker.itemText(picker.findData(CONNECTIONS)) == ADD_REMOTE
    picker.activated.emit(picker.findData(CONNECTIONS))
    dialog = window.models.connections_dialog
    assert isinstance(dialog, ConnectionsDialog) and dialog.isVisible()
    assert dialog.session is window.workspace.connections
    assert picker.currentIndex() == -1  # an action, not a model
    dialog.close()
    menu_action = next(a for a in window.menuBar().actions() if a.text() == "&Model")
    connections = next(a for a in menu_action.menu().actions() if a.text() == "&Connections…")
    connections.trigger()
    assert window.models.connections_dialog is dialog and dialog.isVisible()
    dialog.close()
    window.close()


def test_a_connection_that_fails_is_one_greyed_entry_saying_so(qtbot) -> None:
    window = open_window(qtbot)
    add_connection(qtbot, window, "gpu-box", f"http://127.0.0.1:{free_port()}/v1")  # nobody listens
    picker = window.model_picker
    failed = [i for i in range(picker.count()) if picker.itemText(i).startswith("gpu-box")]
    assert [picker.itemText(i) for i in failed] == ["gpu-box: unreachable"]
    assert not picker.model().item(failed[0]).isEnabled()
    assert "connection refused" in picker.itemData(failed[0], Qt.ItemDataRole.ToolTipRole)
    assert picker.findData(CONNECTIONS) == -1  # there is a connection now
    window.close()


def test_the_picker_lists_remote_models_and_choosing_one_switches_the_chat(qtbot, llama_server: LlamaServer
                                                                          ) -> None:
    window = open_window(qtbot)
    add_connection(qtbot, window, "box", llama_server.base_url, API_KEY)
    picker, model_id = window.model_picker, llama_server.model_id
    index = index_of(picker, ("box", model_id))
    assert picker.itemText(index) == f"{short_id(model_id)} · box"
    assert model_id in picker.itemData(index, Qt.ItemDataRole.ToolTipRole)  # the whole id
    assert not window.welcome.starters.isVisible()  # no local model loaded: "choose a model"
    choose(qtbot, window, ("box", model_id))
    assert (window.chat.conversation.connection, window.chat.conversation.model) == ("box", model_id)
    assert picker.currentData() == ("box", model_id) and picker.currentText() == remote_label(model_id, "box")
    assert window.model_label.text() == remote_label(model_id, "box")
    assert window.backend_label.text() == f"llama.cpp at 127.0.0.1:{llama_server.port}"
    assert window.welcome.starters.isVisible()  # a chat with a remote engine is not "without a model"
    assert not window.top_bar.chat_model_button.isVisible()  # nothing to load
    rows = window.sampling_panel.rows  # llama-server takes every field (tau and eta wait for Mirostat)
    assert all(row.isEnabled() for name, row in rows.items() if name not in MIROSTAT_OWN)
    assert window.sampling_panel.mirostat_combo.isEnabled()
    window.close()


@pytest.mark.qt_log_ignore("This plugin does not support grabbing the keyboard")  # offscreen: a popup
def test_the_open_list_grows_to_show_the_models_that_come_after_it_opened(qtbot, llama_server: LlamaServer
                                                                          ) -> None:
    window = open_window(qtbot)
    picker = window.model_picker
    qtbot.waitUntil(lambda: picker.findData(CONNECTIONS) >= 0, timeout=TIMEOUT)  # asked: none yet
    window.workspace.connections.file.put(Connection(name="box", base_url=llama_server.base_url))
    window.workspace.connections.keys.set("box", API_KEY)  # saved behind the window's back: no `changed`
    with qtbot.waitSignal(picker.remote_listed, timeout=TIMEOUT):
        picker.showPopup()  # the servers are asked as the list opens; the answer comes after
    view = picker.view()
    assert view.isVisible() and index_of(picker, ("box", llama_server.model_id)) >= 0
    last = view.visualRect(picker.model().index(picker.count() - 1, 0))
    assert last.top() >= 0 and last.bottom() < view.viewport().height(), "the last entry is out of sight"
    picker.hidePopup()
    window.close()


def test_a_remote_answer_streams_into_the_chat_and_its_footer_names_the_connection(
        qtbot, llama_server: LlamaServer) -> None:
    window = open_window(qtbot)
    add_connection(qtbot, window, "box", llama_server.base_url, API_KEY)
    window.sampling.update(max_tokens=24, temperature=0.0, seed=7)
    choose(qtbot, window, ("box", llama_server.model_id))
    send(qtbot, window, "Name three colours.")
    answer = window.chat.conversation.thread()[-1]
    assert answer.generation.connection == "box" and answer.text.strip()
    text = window.chat_view.toPlainText()
    words = [word for word in answer.text.split() if word.isalpha()]
    assert words and all(word in text for word in words)  # streamed into the view (Markdown drawn)
    label = remote_label(llama_server.model_id, "box")
    assert f"{label} · {answer.generation.completion_tokens} tokens" in text  # no-break spaces read as spaces
    tips = [tip for tip in tooltips_in(window) if f"127.0.0.1:{llama_server.port}" in tip]
    assert len(tips) == 1
    tip = tips[0]
    assert tip.startswith(f"Answered on box (127.0.0.1:{llama_server.port})")
    assert f"Model the server reported: {llama_server.model_id}" in tip
    assert f"System fingerprint: {answer.generation.system_fingerprint}" in tip
    assert "The server's own speed:" in tip and "tok/s" in tip
    assert hover_tip(window, tooltips_in(window)[tip]) == tip  # the mouse resting on the footer shows it
    qtbot.waitUntil(lambda: "/ 2,048 tokens" in window.context_meter.text(), timeout=TIMEOUT)
    assert "≈" not in window.context_meter.text()  # llama-server counts with the model's tokenizer
    assert API_KEY not in text and all(API_KEY not in t for t in tooltips_in(window))
    window.close()


def test_a_chat_keeps_its_remote_engine_when_another_is_shown_and_it_is_opened_again(
        qtbot, llama_server: LlamaServer) -> None:
    window = open_window(qtbot)
    remote, local = Conversation(title="Remote"), Conversation(title="Local")
    for conversation in (remote, local):
        conversation.append("user", "hello")
        conversation.append("assistant", "hi")
    seed_store(window, remote, local)
    add_connection(qtbot, window, "box", llama_server.base_url, API_KEY)
    window.chat.open_conversation(remote.id)
    choose(qtbot, window, ("box", llama_server.model_id))
    label = remote_label(llama_server.model_id, "box")
    window.chat.open_conversation(local.id)
    assert window.chat.conversation.connection == ""
    assert window.model_picker.currentData() != ("box", llama_server.model_id)
    assert window.model_label.text() == "No model"
    with qtbot.waitSignal(window.chat.engine_changed, timeout=TIMEOUT):
        window.chat.open_conversation(remote.id)  # read from the store again
    assert (window.chat.conversation.connection, window.chat.conversation.model) == ("box",
                                                                                     llama_server.model_id)
    assert window.model_picker.currentText() == label and window.model_label.text() == label
    window.close()


def test_a_plain_server_greys_out_what_it_ignores_and_its_count_is_an_estimate(
        qtbot, plain_server: HostileServer, model_path) -> None:
    window = open_window(qtbot)
    add_connection(qtbot, window, "plain", plain_server.base_url)
    panel = window.sampling_panel
    temperature_tip = panel.rows["temperature"].toolTip()
    choose(qtbot, window, ("plain", PLAIN_MODEL))
    why = f"Not taken by openai-compatible at 127.0.0.1:{plain_server.port}"
    for name in ("top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n", "mirostat_tau"):
        assert not panel.rows[name].isEnabled() and panel.rows[name].toolTip() == why, name
    assert not panel.mirostat_combo.isEnabled() and panel.mirostat_combo.toolTip() == why
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "max_tokens"):
        assert panel.rows[name].isEnabled(), name
    assert panel.rows["temperature"].toolTip() == temperature_tip
    assert panel.seed_row.isEnabled() and panel.stop_edit.isEnabled()

    with qtbot.waitSignal(window.chat.context_used, timeout=TIMEOUT,  # the draft's, not the empty chat's
                          check_params_cb=lambda used, _n_ctx: used > 0):
        qtbot.keyClicks(window.composer, "How long is this?")
    meter = window.context_meter.text()
    assert meter.startswith("Context: ≈") and "limit unknown" in meter

    picker = window.model_picker  # the local model, from the same list: the local engine answers
    qtbot.waitUntil(lambda: picker.findData(str(model_path)) >= 0, timeout=TIMEOUT)
    with qtbot.waitSignal(window.model_session.loaded, timeout=TIMEOUT):
        picker.activated.emit(picker.findData(str(model_path)))
    assert window.chat.conversation.connection == "" and window.chat.backend is window.chat.local
    assert all(row.isEnabled() for name, row in panel.rows.items() if name not in MIROSTAT_OWN)
    assert panel.mirostat_combo.isEnabled() and panel.rows["top_k"].toolTip() != why
    window.close()


def test_a_chat_answered_by_a_remote_engine_offers_no_load(qtbot, model_path) -> None:
    """Its model id may be a file name in the library (llama-server --alias): still nothing to load."""
    window = open_window(qtbot)
    remote = Conversation(title="Remote", connection="box", model=model_path.name)
    remote.append("user", "hello")
    remote.append("assistant", "hi")
    seed_store(window, remote)
    qtbot.waitUntil(lambda: window.model_picker.path_of(model_path.name) is not None, timeout=TIMEOUT)
    with qtbot.waitSignal(window.chat.error, timeout=TIMEOUT):  # "There is no connection named box any more…"
        window.chat.open_conversation(remote.id)
    assert not window.top_bar.chat_model_button.isVisible()
    label = remote_label(model_path.name, "box")
    assert window.model_picker.currentText() == label and window.model_label.text() == label
    window.close()


def test_closing_the_window_mid_remote_answer_keeps_what_came(qtbot, llama_server: LlamaServer) -> None:
    window = open_window(qtbot)
    add_connection(qtbot, window, "box", llama_server.base_url, API_KEY)
    window.sampling.update(max_tokens=0, temperature=0.0, seed=7)  # greedy: it counts on till closed
    choose(qtbot, window, ("box", llama_server.model_id))
    assert window.chat.send("Count from one to five hundred, one number per line.")
    answer = window.chat.conversation.thread()[-1]
    qtbot.waitUntil(lambda: bool(answer.text), timeout=TIMEOUT)
    store_path = window.store.path
    window.close()
    assert answer.incomplete and answer.text
    store = ConversationStore(store_path)
    try:
        stored = store.load(window.chat.conversation.id).thread()[-1]
    finally:
        store.close()
    assert stored.incomplete and stored.text == answer.text


def test_a_chat_answered_in_the_background_is_marked_in_the_list(qtbot, llama_server: LlamaServer) -> None:
    window = open_window(qtbot)
    add_connection(qtbot, window, "box", llama_server.base_url, API_KEY)
    window.sampling.update(max_tokens=0, temperature=0.0, seed=7)  # greedy: it counts on until stopped
    choose(qtbot, window, ("box", llama_server.model_id))
    assert window.chat.send("Count from one to five hundred, one number per line.")
    first = window.chat.conversation
    qtbot.waitUntil(lambda: bool(first.thread()[-1].text), timeout=TIMEOUT)
    window.chat.new_conversation()  # the answer goes on in the background
    listing = window.conversation_list
    qtbot.waitUntil(lambda: listing.item_for(first.id) is not None, timeout=TIMEOUT)
    item = listing.item_for(first.id)
    assert listing.tooltip_for(item).endswith("Being answered…") and not item.icon().isNull()
    with qtbot.waitSignal(window.chat.answer_finished, timeout=TIMEOUT):
        window.chat.stop_all()
    item = listing.item_for(first.id)
    assert "Being answered" not in listing.tooltip_for(item) and item.icon().isNull()
    window.close()
