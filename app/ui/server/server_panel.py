"""View ▸ Server…: start and stop the local OpenAI-compatible API server, choose who may reach it,
and watch the requests it answers.

The panel only draws `ApiServer` (app/session/server.py) and sends it intents: start, stop, apply
settings (saved, and a running server restarts with them), make a new key. It is non-modal and
lives as long as the window, so its log keeps the requests that arrived while it was closed
(the server keeps the last 200; the panel reads them when it opens).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.common.errors import UserFacingError
from app.ui.server.key_box import KeyBox
from app.ui.server.request_log import RequestLog
from app.ui.shell.theme import colors_of

if TYPE_CHECKING:
    from app.session.server import ApiServer

LOCAL_HOST, ALL_ADDRESSES = "127.0.0.1", "0.0.0.0"
LOCAL_TEXT = "This computer only (127.0.0.1)"
NETWORK_TEXT = "Other devices on the network (all addresses)"
ORIGINS_TIP = ("Web pages a browser may let call the server, comma-separated, as scheme://host:port "
               "(http://localhost:3000). No web page can call the server unless it is listed here. "
               "Programs outside a browser (scripts, editors) are not affected.")
HOSTS_TIP = ("Other names this computer is reached by (mybox.local, a reverse proxy's name), "
             "comma-separated. Requests sent to any other name are refused, so that a web page cannot "
             "reach the server by pointing a domain of its own at this computer (DNS rebinding). "
             "127.0.0.1, localhost and the address it listens on are always allowed.")
NO_KEY_TEXT = "None. Only needed when other devices can connect."
KEY_UNUSED_TEXT = "Set. Used when other devices can connect; this computer's programs need none."
KEY_USED_TEXT = "Set. Clients send it as 'Authorization: Bearer …'."


def split_origins(text: str) -> tuple[str, ...]:
    """Origins or host names typed in one line, comma-separated (ServerSettings checks each one)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def queue_text(waiting: int, running: bool) -> str:
    """"3 requests waiting · 1 answering"."""
    text = "No requests waiting" if not waiting else \
        f"{waiting} request{'s' if waiting != 1 else ''} waiting"
    return text + (" · 1 answering" if running else "")


class ServerPanel(QDialog):
    def __init__(self, server: ApiServer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("API server")
        self.setObjectName("serverPanel")
        self.resize(720, 520)
        self.server = server
        self._build()
        server.state_changed.connect(self._show_state)
        server.queue_changed.connect(self._show_queue)
        server.request_logged.connect(self.log.add)
        self.log.show_records(list(server.records))
        self._show_settings()
        self._show_state()
        self._show_queue()

    # -- construction ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.state_label = QLabel("Stopped")
        self.state_label.setObjectName("serverState")
        self.state_label.setWordWrap(True)
        self.state_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("serverStartStop")
        self.start_button.clicked.connect(self.start_or_stop)
        state_row = QHBoxLayout()
        state_row.addWidget(self.state_label, 1)
        state_row.addWidget(self.start_button)
        self.address_field = QLineEdit()
        self.address_field.setObjectName("serverAddress")
        self.address_field.setReadOnly(True)
        self.address_field.setPlaceholderText("Not running")
        self.address_field.setAccessibleName("The server's address")
        self.address_field.setToolTip("The base URL to give an OpenAI-compatible client")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setAccessibleName("Copy the server's address")
        self.copy_button.clicked.connect(self.copy_address)
        address_row = QHBoxLayout()
        address_row.addWidget(self.address_field, 1)
        address_row.addWidget(self.copy_button)

        self.port_box = QSpinBox()
        self.port_box.setObjectName("serverPort")
        self.port_box.setRange(1024, 65535)
        self.port_box.setKeyboardTracking(False)  # applied when typed in full, not per digit
        self.port_box.setAccessibleName("Port")
        self.port_box.setToolTip("The TCP port the server listens on; a running server restarts on it")
        self.port_box.valueChanged.connect(lambda port: self._apply(port=port))
        port_row = QHBoxLayout()
        port_row.addWidget(self.port_box)
        port_row.addStretch()
        self.local_button = QRadioButton(LOCAL_TEXT)
        self.local_button.setAccessibleName("Only this computer can connect")
        self.network_button = QRadioButton(NETWORK_TEXT)
        self.network_button.setAccessibleName("Other devices on the network can connect")
        self.network_button.setToolTip("Any device that can reach this computer, with the API key")
        self.reach_group = QButtonGroup(self)
        who_row = QHBoxLayout()
        for button in (self.local_button, self.network_button):
            self.reach_group.addButton(button)
            who_row.addWidget(button)
        who_row.addStretch()
        self.reach_group.buttonClicked.connect(self._reach_chosen)
        self.key_label = QLabel(NO_KEY_TEXT)
        self.key_label.setObjectName("serverKeyState")
        self.key_label.setWordWrap(True)
        self.new_key_button = QPushButton("New key…")
        self.new_key_button.setAccessibleName("Make a new API key")
        self.new_key_button.setToolTip("Make a new key; clients that use the old one are refused")
        self.new_key_button.clicked.connect(self.make_new_key)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_label, 1)
        key_row.addWidget(self.new_key_button)
        self.key_box = KeyBox()
        self.origins_field = QLineEdit()
        self.origins_field.setObjectName("serverOrigins")
        self.origins_field.setPlaceholderText("none (e.g. http://localhost:3000, https://notes.example)")
        self.origins_field.setAccessibleName("Allowed origins for browser pages")
        self.origins_field.setToolTip(ORIGINS_TIP)
        self.origins_field.editingFinished.connect(self._origins_edited)
        self.hosts_field = QLineEdit()
        self.hosts_field.setObjectName("serverHosts")
        self.hosts_field.setPlaceholderText("none besides localhost and this computer's address")
        self.hosts_field.setAccessibleName("Allowed host names")
        self.hosts_field.setToolTip(HOSTS_TIP)
        self.hosts_field.editingFinished.connect(self._hosts_edited)
        self.problem_label = QLabel("")
        self.problem_label.setObjectName("serverSettingsProblem")
        self.problem_label.setWordWrap(True)
        self.problem_label.hide()
        self.start_with_app_box = QCheckBox("Start the server when Llamadesk starts")
        self.start_with_app_box.setAccessibleName("Start the server when Llamadesk starts")
        self.start_with_app_box.toggled.connect(lambda on: self._apply(start_with_app=on))
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Address", address_row)
        form.addRow("Port", port_row)
        form.addRow("Who can connect", who_row)
        form.addRow("API key", key_row)
        form.addRow("", self.key_box)
        form.addRow("Browser pages (CORS)", self.origins_field)
        form.addRow("Host names", self.hosts_field)
        form.addRow("", self.start_with_app_box)
        form.addRow("", self.problem_label)

        self.log = RequestLog()
        log_title = QLabel("<b>Requests</b>")
        self.queue_label = QLabel("")
        self.queue_label.setObjectName("serverQueue")
        self.queue_label.setAccessibleName("Requests waiting")
        log_header = QHBoxLayout()
        log_header.addWidget(log_title)
        log_header.addStretch()
        log_header.addWidget(self.queue_label)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(state_row)
        layout.addLayout(form)
        layout.addLayout(log_header)
        layout.addWidget(self.log, 1)
        layout.addWidget(close)

    # -- what the server says ----------------------------------------------------------------------

    def _show_state(self) -> None:
        server = self.server
        self.start_button.setEnabled(not server.starting)
        self.start_button.setText("Stop" if server.running else "Start")
        self.start_button.setAccessibleName("Stop the server" if server.running else "Start the server")
        if server.starting:
            self.state_label.setText("Starting…")
        elif server.running:
            self.state_label.setText(f"Running at {server.url}")
        elif server.error:
            self.state_label.setText(server.error)
        else:
            self.state_label.setText("Stopped")
        self._color_state()
        self.address_field.setText(server.url if server.running else "")
        self.address_field.setCursorPosition(0)
        self.copy_button.setEnabled(server.running)
        self._show_settings()  # a restart may have come from elsewhere (the command line, another apply)

    def _color_state(self) -> None:
        server = self.server
        failed = not server.running and bool(server.error) and not server.starting
        self.state_label.setStyleSheet(f"color: {colors_of(self.palette()).error};" if failed else "")

    def _show_queue(self) -> None:
        self.queue_label.setText(queue_text(self.server.api_waiting, self.server.api_running))

    def _show_settings(self) -> None:
        settings = self.server.settings
        quiet = (self.port_box, self.start_with_app_box)  # showing a setting does not apply it again
        for widget in quiet:
            widget.blockSignals(True)
        self.port_box.setValue(settings.port)
        self.start_with_app_box.setChecked(settings.start_with_app)
        (self.network_button if settings.on_network else self.local_button).setChecked(True)
        specific = settings.on_network and settings.host not in (ALL_ADDRESSES, "::")
        self.network_button.setText(f"Other devices on the network ({settings.host})" if specific
                                    else NETWORK_TEXT)
        if not self.origins_field.hasFocus() and self.problem_label.isHidden():  # keep what was refused
            self.origins_field.setText(", ".join(settings.allowed_origins))
        if not self.hosts_field.hasFocus() and self.problem_label.isHidden():
            self.hosts_field.setText(", ".join(settings.allowed_hosts))
        for widget in quiet:
            widget.blockSignals(False)
        self._show_key_state()

    def _show_key_state(self) -> None:
        has_key = self.server.has_key
        used = self.server.settings.on_network
        self.key_label.setText((KEY_USED_TEXT if used else KEY_UNUSED_TEXT) if has_key else NO_KEY_TEXT)
        self.new_key_button.setText("New key…" if has_key else "Make a key")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            self._color_state()
            self.problem_label.setStyleSheet(f"color: {colors_of(self.palette()).error};")

    # -- what the user asks ----------------------------------------------------------------------

    def start_or_stop(self) -> None:
        if self.server.running:
            self.server.stop()
            return
        self.server.start()
        self._show_state()  # "Starting…" until the server says how it went

    def copy_address(self) -> None:
        QGuiApplication.clipboard().setText(self.address_field.text())

    def _apply(self, **changes) -> bool:
        """Save the changed settings (a running server restarts with them); a value refused, or a
        file that could not be written, is said under the form. True when applied."""
        try:
            settings = replace(self.server.settings, **changes)
            if settings != self.server.settings:
                self.server.apply(settings)
        except ValueError as error:
            self._say_problem(str(error))
            return False
        except UserFacingError as error:
            self._say_problem(error.message)
            return False
        self._say_problem("")
        self._show_settings()
        return True

    def _say_problem(self, message: str) -> None:
        self.problem_label.setText(message)
        self.problem_label.setStyleSheet(f"color: {colors_of(self.palette()).error};")
        self.problem_label.setVisible(bool(message))

    def _reach_chosen(self, button: QRadioButton) -> None:
        if button is self.local_button:
            self._apply(host=LOCAL_HOST)
            return
        if not self.server.has_key and not self._show_new_key():  # the network needs a key: made, shown once
            self.local_button.setChecked(True)
            return
        if self.server.settings.on_network:
            return  # a specific address chosen elsewhere stays
        self._apply(host=ALL_ADDRESSES)

    def make_new_key(self) -> None:
        """A new key replaces the old one (asked first: clients using it will be refused)."""
        if self.server.has_key:
            answer = QMessageBox.question(
                self, "Replace the API key?",
                "Clients that use the current key will be refused until they are given the new one.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._show_new_key()

    def _show_new_key(self) -> bool:
        """Make a key and show it once; False when it could not be stored (said under the form)."""
        try:
            key = self.server.new_key()
        except UserFacingError as error:
            self._say_problem(error.message)
            return False
        self._say_problem("")
        self.key_box.show_key(key)
        self._show_key_state()
        return True

    def _origins_edited(self) -> None:
        if self._apply(allowed_origins=split_origins(self.origins_field.text())):
            self.origins_field.setText(", ".join(self.server.settings.allowed_origins))  # as checked

    def _hosts_edited(self) -> None:
        if self._apply(allowed_hosts=split_origins(self.hosts_field.text())):
            self.hosts_field.setText(", ".join(self.server.settings.allowed_hosts))  # as checked

    def done(self, result: int) -> None:
        """Closing forgets a key still shown: it is shown once."""
        self.key_box.forget()
        super().done(result)


def show_server_panel(parent: QWidget, server: ApiServer) -> ServerPanel:
    """The window's one server panel, made the first time, shown and raised."""
    panel = parent.findChild(ServerPanel, "serverPanel")
    if panel is None:
        panel = ServerPanel(server, parent)
    panel.show()
    panel.raise_()
    panel.activateWindow()
    return panel
