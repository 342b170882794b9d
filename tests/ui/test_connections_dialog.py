"""Model ▸ Connections…: add a connection to llama.cpp's real llama-server, test it with the right key
and a wrong one, edit it, remove it; the window keeps turning while the server is asked."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.session.connections import ConnectionsSession
from app.ui.models.connections_dialog import NO_KEY, STORED_KEY, ConnectionsDialog
from tests.fixtures.llama_server import API_KEY, LlamaServer

WRONG_KEY = "wrong-key-abcdef"


@pytest.fixture
def dialog(qtbot) -> ConnectionsDialog:
    dialog = ConnectionsDialog(ConnectionsSession())
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def fill(dialog: ConnectionsDialog, name: str, url: str, key: str = "", headers: str = "") -> None:
    dialog.name_edit.setText(name)
    dialog.url_edit.setText(url)
    dialog.key_edit.setText(key)
    dialog.headers_edit.setPlainText(headers)


def names(dialog: ConnectionsDialog) -> list[str]:
    return [dialog.list.item(row).text() for row in range(dialog.list.count())]


def press_test(qtbot, dialog: ConnectionsDialog) -> str:
    with qtbot.waitSignal(dialog.session.tested, timeout=60_000):
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
        assert dialog.result.text().startswith("Testing 127.0.0.1:")  # said at once, answered later
    return dialog.result.text()


def test_add_test_with_the_right_and_a_wrong_key_then_remove(qtbot, dialog: ConnectionsDialog,
                                                            llama_server: LlamaServer, monkeypatch) -> None:
    assert dialog.url_edit.placeholderText() == "http://gpu-box:8080/v1"
    assert dialog.key_edit.echoMode() == dialog.key_edit.EchoMode.Password
    fill(dialog, "local", llama_server.base_url, API_KEY, "X-Team: llm")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert names(dialog) == ["local"] and dialog.list.currentItem().text() == "local"
    assert dialog.result.text() == "Saved local."
    assert dialog.key_edit.text() == ""
    # The keyring is asked off the GUI thread; the placeholder says "stored" once it answers.
    qtbot.waitUntil(lambda: dialog.key_edit.placeholderText() == STORED_KEY)
    assert dialog.session.connections()[0].headers == (("X-Team", "llm"),)

    assert press_test(qtbot, dialog) == f"Found 1 model: {llama_server.model_id}"  # the stored key

    dialog.key_edit.setText(WRONG_KEY)
    message = press_test(qtbot, dialog)
    assert "API key" in message and WRONG_KEY not in message
    assert "c62828" in dialog.result.styleSheet()  # said as a failure

    dialog.key_edit.clear()  # an edit with the key left empty keeps the stored one
    dialog.timeout.setValue(30)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.session.key_for("local") == API_KEY
    assert dialog.session.connections()[0].timeout_s == 30.0

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert names(dialog) == ["local"]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert names(dialog) == [] and dialog.session.key_for("local") == ""
    assert (dialog.name_edit.text(), dialog.result.text()) == ("", "Removed local.")
    assert not dialog.remove_button.isEnabled()


def test_choosing_renaming_and_adding(qtbot, dialog: ConnectionsDialog) -> None:
    fill(dialog, "gpu", "http://gpu-box:8080/v1", API_KEY)
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)  # an empty form for a new one
    assert (dialog.name_edit.text(), dialog.key_edit.placeholderText()) == ("", NO_KEY)
    fill(dialog, "cluster", "https://vllm.lan/v1/")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert names(dialog) == ["gpu", "cluster"] and dialog.url_edit.text() == "https://vllm.lan/v1"

    dialog.list.setCurrentRow(0)
    assert (dialog.name_edit.text(), dialog.url_edit.text()) == ("gpu", "http://gpu-box:8080/v1")
    qtbot.waitUntil(lambda: dialog.key_edit.placeholderText() == STORED_KEY)
    dialog.name_edit.setText("big gpu")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert names(dialog) == ["big gpu", "cluster"] and dialog.session.key_for("big gpu") == API_KEY

    dialog.name_edit.setText("cluster")  # taken: said, nothing changed
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert "already exists" in dialog.result.text() and names(dialog) == ["big gpu", "cluster"]


@pytest.mark.parametrize(("url", "headers", "why"), [
    ("gpu-box:8080", "", "http:// or https://"),
    ("http://gpu-box/v1", "Authorization: Bearer x", "API key field"),
    ("http://gpu-box/v1", "just text", "colon"),
])
def test_a_wrong_form_is_said_under_it_and_stores_nothing(qtbot, dialog: ConnectionsDialog, url: str,
                                                          headers: str, why: str) -> None:
    fill(dialog, "gpu", url, headers=headers)
    for button in (dialog.save_button, dialog.test_button):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert why in dialog.result.text()
    assert names(dialog) == [] and dialog.session.connections() == []


def test_closing_the_dialog_stops_waiting_for_the_server(qtbot, dialog: ConnectionsDialog) -> None:
    import socket

    with socket.socket() as silent:  # takes the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        fill(dialog, "silent", f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
        dialog.timeout.setValue(600)
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
        task = dialog.session._test.task
        dialog.reject()
        qtbot.waitUntil(task.done)
    assert task.cancelled()
