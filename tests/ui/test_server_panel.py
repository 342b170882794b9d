"""View ▸ Server…: the API server's panel over the real ApiServer (the window's Workspace), real
HTTP requests from httpx2 (in threads of their own: the server runs on this thread's qasync loop)
and, where an answer is needed, the real model."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import socket

import httpx2
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox

from app.core.server.http_app import RequestRecord
from app.core.server.settings import load_settings
from app.ui.server.key_box import SHOWN_ONCE
from app.ui.server.request_log import COLUMNS, MAX_ROWS, RequestLog
from app.ui.server.server_panel import ServerPanel, queue_text, show_server_panel
from app.ui.shell import help_dialogs
from app.ui.shell.theme import colors_of

TIMEOUT = 120_000
COUNTING = "Count from one to five hundred, separated by commas."


@pytest.fixture(scope="module")
def pool():
    with concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="client") as pool:
        yield pool


@pytest.fixture
def workspace(qtbot):
    """A Workspace of its own, with no model loaded: for what needs no answer."""
    from app.session.workspace import Workspace

    workspace = Workspace(propose_titles=False)
    yield workspace
    workspace.close()


@pytest.fixture
def panel(qtbot, workspace) -> ServerPanel:
    panel = ServerPanel(workspace.server)
    qtbot.addWidget(panel)
    panel.show()
    return panel


def wait(qtbot, future: concurrent.futures.Future):
    qtbot.waitUntil(future.done, timeout=TIMEOUT)
    return future.result()


def cells(log: RequestLog, row: int) -> dict[str, str]:
    return {name: log.item(row, column).text() for column, name in enumerate(COLUMNS)}


def click(qtbot, widget) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def press_start_or_stop(qtbot, panel: ServerPanel) -> None:
    with qtbot.waitSignal(panel.server.state_changed, timeout=TIMEOUT):
        click(qtbot, panel.start_button)


def test_view_menu_opens_the_panel_start_serves_logs_and_stop(qtbot, window, pool) -> None:
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    action = next(a for a in view.actions() if a.text() == "Se&rver…")
    assert action.shortcut().toString() == "Ctrl+Shift+S"
    assert ("Ctrl+Shift+S", "Server") in help_dialogs.shortcut_rows(window)
    action.trigger()
    panel = window.findChild(ServerPanel, "serverPanel")
    assert panel is not None and panel.isVisible() and not panel.isModal()
    assert (panel.state_label.text(), panel.start_button.text(), panel.address_field.text()) == \
        ("Stopped", "Start", "")
    assert not panel.copy_button.isEnabled() and not window.status_bar.server_button.isVisible()
    assert panel.queue_label.text() == "No requests waiting"

    server = panel.server
    server.apply(dataclasses.replace(server.settings, port=0))  # any free port
    press_start_or_stop(qtbot, panel)
    assert server.running, server.error
    url = server.url
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    assert port > 0 and url == f"http://127.0.0.1:{port}/v1"
    assert panel.state_label.text() == f"Running at {url}" and panel.start_button.text() == "Stop"
    assert panel.address_field.text() == url
    click(qtbot, panel.copy_button)
    assert QGuiApplication.clipboard().text() == url
    indicator = window.status_bar.server_button
    assert indicator.isVisible() and indicator.text() == f"API :{port}"
    assert url in indicator.toolTip() and "0 requests waiting" in indicator.toolTip()

    with qtbot.waitSignal(server.request_logged, timeout=TIMEOUT):
        listed = pool.submit(httpx2.get, f"{url}/models", timeout=60)
    assert wait(qtbot, listed).status_code == 200
    last = cells(panel.log, panel.log.rowCount() - 1)
    assert (last["Method"], last["Path"], last["Status"]) == ("GET", "/v1/models", "200")
    assert last["Client"] == "127.0.0.1" and last["Tokens"] == ""

    ask = {"messages": [{"role": "user", "content": COUNTING}], "max_tokens": 48, "temperature": 0}
    first = pool.submit(httpx2.post, f"{url}/chat/completions", json=ask, timeout=TIMEOUT)
    second = pool.submit(httpx2.post, f"{url}/chat/completions", json=ask, timeout=TIMEOUT)
    # One answers while the other waits its turn in the queue: the panel says so as it happens.
    with qtbot.waitSignal(server.queue_changed, timeout=TIMEOUT,
                          check_params_cb=lambda *_: panel.queue_label.text() == queue_text(1, True)):
        pass
    assert panel.queue_label.text() == "1 request waiting · 1 answering"
    assert wait(qtbot, first).status_code == 200 and wait(qtbot, second).status_code == 200
    qtbot.waitUntil(lambda: panel.log.rowCount() == 3 and server.api_waiting == 0 and not server.api_running,
                    timeout=TIMEOUT)
    usage = second.result().json()["usage"]
    last = cells(panel.log, 2)
    assert (last["Method"], last["Path"], last["Status"]) == ("POST", "/v1/chat/completions", "200")
    assert last["Tokens"] == f"{usage['prompt_tokens']} + {usage['completion_tokens']}"
    assert float(last["tok/s"]) > 0 and float(last["Seconds"]) > 0
    assert panel.queue_label.text() == "No requests waiting"

    with qtbot.waitSignal(server.request_logged, timeout=TIMEOUT):
        missing = pool.submit(httpx2.get, f"{url}/nothing-here", timeout=60)
    assert wait(qtbot, missing).status_code == 404
    refused = panel.log.item(3, COLUMNS.index("Status"))
    tint = colors_of(panel.palette()).banner_bg
    assert refused.text() == "404" and refused.background().color().name() == tint
    assert panel.log.item(2, 0).background().style() == Qt.BrushStyle.NoBrush  # a 200 is not tinted

    panel.close()
    click(qtbot, indicator)  # the status bar's indicator opens the panel again, log kept
    assert panel.isVisible() and panel.log.rowCount() == 4
    press_start_or_stop(qtbot, panel)
    assert not server.running
    assert (panel.state_label.text(), panel.start_button.text(), panel.address_field.text()) == \
        ("Stopped", "Start", "")
    assert not indicator.isVisible()


def test_the_network_needs_a_key_shown_once(qtbot, panel: ServerPanel, monkeypatch) -> None:
    server = panel.server
    assert panel.local_button.isChecked() and not server.has_key and panel.key_box.isHidden()
    click(qtbot, panel.network_button)
    assert server.has_key and server.settings.host == "0.0.0.0" and server.settings.on_network
    assert panel.key_box.isVisible() and panel.key_box.note.text() == SHOWN_ONCE
    key = panel.key_box.key_field.text()
    assert key.startswith("ld-") and len(key) > 40
    click(qtbot, panel.key_box.copy_button)
    assert QGuiApplication.clipboard().text() == key
    assert load_settings().host == "0.0.0.0"  # saved

    click(qtbot, panel.local_button)
    click(qtbot, panel.network_button)  # a key exists now: none is made, none shown
    assert panel.key_box.key_field.text() == key

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    click(qtbot, panel.new_key_button)
    assert panel.key_box.key_field.text() == key
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    click(qtbot, panel.new_key_button)
    replaced = panel.key_box.key_field.text()
    assert replaced.startswith("ld-") and replaced != key

    panel.close()  # shown once: closing forgets it
    assert panel.key_box.key_field.text() == "" and panel.key_box.isHidden()
    panel.show()
    assert panel.key_box.isHidden() and "Authorization: Bearer" in panel.key_label.text()
    click(qtbot, panel.local_button)
    assert server.settings.host == "127.0.0.1" and server.has_key


def test_port_origins_and_start_with_the_app_are_saved(qtbot, panel: ServerPanel) -> None:
    server = panel.server
    assert panel.port_box.value() == 7433 and panel.origins_field.text() == ""
    assert "unless it is listed" in panel.origins_field.toolTip()
    panel.port_box.setValue(18765)
    assert server.settings.port == 18765 and load_settings().port == 18765

    panel.origins_field.setText("localhost:3000")
    panel.origins_field.editingFinished.emit()
    assert "not an origin" in panel.problem_label.text() and panel.problem_label.isVisible()
    assert server.settings.allowed_origins == () and panel.origins_field.text() == "localhost:3000"
    panel.origins_field.setText("http://localhost:3000/, https://Notes.example")
    panel.origins_field.editingFinished.emit()
    assert server.settings.allowed_origins == ("http://localhost:3000", "https://notes.example")
    assert panel.problem_label.isHidden()
    assert panel.origins_field.text() == "http://localhost:3000, https://notes.example"

    panel.start_with_app_box.click()
    assert server.settings.start_with_app and load_settings().start_with_app


def test_a_host_name_listed_in_the_panel_is_answered_and_others_not(qtbot, panel: ServerPanel, pool) -> None:
    """DNS rebinding: a request sent to a name the user did not list is refused, a listed one answered."""
    server = panel.server
    assert "DNS rebinding" in panel.hosts_field.toolTip()
    server.apply(dataclasses.replace(server.settings, port=0))
    panel.hosts_field.setText("mybox.local, ")
    panel.hosts_field.editingFinished.emit()
    assert server.settings.allowed_hosts == load_settings().allowed_hosts == ("mybox.local",)
    assert panel.hosts_field.text() == "mybox.local"
    press_start_or_stop(qtbot, panel)
    assert server.running, server.error
    url = f"http://127.0.0.1:{server.port}/health"

    def status(host: str) -> int:
        answer = wait(qtbot, pool.submit(lambda: httpx2.get(url, headers={"Host": host}, timeout=30)))
        return answer.status_code

    assert status(f"mybox.local:{server.port}") == 200
    assert status(f"rebound.example:{server.port}") == 403
    press_start_or_stop(qtbot, panel)


def test_a_start_that_fails_says_why_in_the_error_colour(qtbot, panel: ServerPanel) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        panel.port_box.setValue(taken.getsockname()[1])
        press_start_or_stop(qtbot, panel)
        assert not panel.server.running and panel.server.error
        assert panel.state_label.text() == panel.server.error
        assert colors_of(panel.palette()).error in panel.state_label.styleSheet()
        assert panel.start_button.text() == "Start" and panel.start_button.isEnabled()


def test_the_log_keeps_the_last_rows_and_follows_the_newest(qtbot) -> None:
    log = RequestLog()
    qtbot.addWidget(log)
    log.resize(600, 200)
    log.show()

    def record(n: int, status: int = 200) -> RequestRecord:
        return RequestRecord(at=1_700_000_000 + n, client="127.0.0.1", method="POST", path=f"/v1/r{n}",
                             model="", status=status, prompt_tokens=3, completion_tokens=n,
                             tokens_per_s=12.5, seconds=0.25)

    log.show_records([record(n) for n in range(MAX_ROWS + 5)])
    assert log.rowCount() == MAX_ROWS
    assert cells(log, 0)["Path"] == "/v1/r5" and cells(log, MAX_ROWS - 1)["Path"] == f"/v1/r{MAX_ROWS + 4}"
    log.add(record(999, 503))
    assert log.rowCount() == MAX_ROWS and cells(log, 0)["Path"] == "/v1/r6"
    newest = cells(log, MAX_ROWS - 1)
    assert (newest["Status"], newest["Tokens"], newest["tok/s"], newest["Seconds"]) == \
        ("503", "3 + 999", "12.5", "0.25")

    log.show_records([record(n) for n in range(20)])
    bar = log.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)  # the view lays its rows out after the event loop turns
    assert bar.value() == bar.maximum()  # the newest row in sight
    end = bar.maximum()
    log.add(record(20))
    qtbot.waitUntil(lambda: bar.maximum() == end + 1)
    assert bar.value() == bar.maximum()  # followed
    bar.setValue(0)  # the reader scrolled up: rows arriving do not pull the view down
    log.add(record(21))
    qtbot.waitUntil(lambda: bar.maximum() == end + 2)
    assert bar.value() == 0 and cells(log, 21)["Path"] == "/v1/r21"


def test_show_server_panel_keeps_one_panel(qtbot, workspace) -> None:
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    first = show_server_panel(parent, workspace.server)
    assert show_server_panel(parent, workspace.server) is first and first.isVisible()
    assert (first.width(), first.height()) == (720, 520)
