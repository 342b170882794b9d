"""Model ▸ Connections…: add, edit, test and remove the remote servers Llamadesk can chat through.

The list on the left; the chosen connection's form on the right. "Add" starts an empty form,
"Save" stores the form (a new connection, or the chosen one, renamed if its name changed), "Test"
asks the server in the form for its models (as typed, saved or not) without freezing the window.
The key field never shows a stored key: it says one is stored, and left empty keeps it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.common.errors import UserFacingError
from app.core.remote.connections import (
    EXAMPLE_URL,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    Connection,
    checked,
    parse_headers,
)
from app.session.connections import ConnectionsSession

STORED_KEY = "stored — leave empty to keep"
NO_KEY = "none (optional)"
GOOD, BAD = "color: #2e7d32;", "color: #c62828;"


class ConnectionsDialog(QDialog):
    def __init__(self, session: ConnectionsSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connections")
        self.setObjectName("connectionsDialog")
        self.resize(720, 420)
        self.session = session
        self.editing: str | None = None  # the saved connection in the form; None: a new one
        self._build()
        session.changed.connect(self._reload)
        session.tested.connect(self._tested)
        session.key_known.connect(self._key_known)
        session.error.connect(lambda message: self._say(message, ok=False))
        self._reload()
        self._new()

    def _build(self) -> None:
        self.list = QListWidget()
        self.list.setObjectName("connectionList")
        self.list.currentTextChanged.connect(self._chosen)
        self.name_edit = QLineEdit(placeholderText="gpu-box")
        self.url_edit = QLineEdit(placeholderText=EXAMPLE_URL)
        self.key_edit = QLineEdit(placeholderText=NO_KEY)
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.headers_edit = QPlainTextEdit()
        self.headers_edit.setPlaceholderText("Name: value (one per line)")
        self.headers_edit.setTabChangesFocus(True)
        self.headers_edit.setFixedHeight(self.fontMetrics().lineSpacing() * 4)
        self.timeout = QSpinBox()
        self.timeout.setRange(int(MIN_TIMEOUT_S), int(MAX_TIMEOUT_S))
        self.timeout.setToolTip("How long to wait for the server: to connect, and between two pieces "
                                "of an answer.")
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Base URL", self.url_edit)
        form.addRow("API key", self.key_edit)
        form.addRow("Extra headers", self.headers_edit)
        form.addRow("Timeout (s)", self.timeout)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("Start a new connection")
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.remove_button = QPushButton("Remove")
        self.test_button = QPushButton("Test")
        self.test_button.setToolTip("Ask the server for its models")
        self.add_button.clicked.connect(self._new)
        self.save_button.clicked.connect(self.save)
        self.remove_button.clicked.connect(self.remove)
        self.test_button.clicked.connect(self.test)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.save_button, self.remove_button, self.test_button):
            buttons.addWidget(button)
        buttons.addStretch()
        self.result = QLabel("")
        self.result.setObjectName("connectionResult")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        right = QVBoxLayout()
        right.addLayout(form)
        right.addLayout(buttons)
        right.addWidget(self.result)
        right.addStretch()
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        right.addWidget(close)
        layout = QHBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(right, 2)

    # -- the list and the form -------------------------------------------------------------------

    def _reload(self) -> None:
        names = [c.name for c in self.session.connections()]
        self.list.blockSignals(True)
        self.list.clear()
        self.list.addItems(names)
        if self.editing in names:
            self.list.setCurrentRow(names.index(self.editing))
        self.list.blockSignals(False)
        if self.editing is not None and self.editing not in names:
            self._new()

    def _new(self) -> None:
        """An empty form for a new connection."""
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)
        self.list.blockSignals(False)
        self._fill(Connection("", ""), has_key=False)
        self.editing = None
        self.remove_button.setEnabled(False)
        self.name_edit.setFocus()

    def _chosen(self, name: str) -> None:
        connection = next((c for c in self.session.connections() if c.name == name), None)
        if connection is None:
            return
        self.editing = connection.name
        self._fill(connection, has_key=False)
        self.session.ask_has_key(connection.name)  # the placeholder says so once the store answers
        self.remove_button.setEnabled(True)

    def _fill(self, connection: Connection, has_key: bool) -> None:
        self.name_edit.setText(connection.name)
        self.url_edit.setText(connection.base_url)
        self.key_edit.clear()
        self.key_edit.setPlaceholderText(STORED_KEY if has_key else NO_KEY)
        self.headers_edit.setPlainText("\n".join(f"{n}: {v}" for n, v in connection.headers))
        self.timeout.setValue(round(connection.timeout_s))
        self._say("")

    def _form(self) -> Connection:
        """The connection in the form, checked; UserFacingError saying what to fix."""
        headers = parse_headers(self.headers_edit.toPlainText())
        return checked(Connection(self.name_edit.text(), self.url_edit.text(), headers,
                                  float(self.timeout.value())))

    def _say(self, message: str, ok: bool = True) -> None:
        self.result.setText(message)
        self.result.setStyleSheet(GOOD if ok else BAD)

    # -- the buttons ------------------------------------------------------------------------------

    def save(self) -> None:
        try:
            connection = self._form()
        except UserFacingError as error:
            self._say(error.message, ok=False)
            return
        typed = self.key_edit.text()
        key = typed if typed or self.editing is None else None  # empty while editing: keep the stored one
        previous, self.editing = self.editing, connection.name  # the list reloads on `changed`
        if self.session.save(connection, key, replacing=previous):
            self._chosen(connection.name)
            self._say(f"Saved {connection.name}.")
        else:
            self.editing = previous

    def remove(self) -> None:
        name = self.editing
        if name is None:
            return
        answer = QMessageBox.question(self, "Remove connection",
                                      f"Remove the connection “{name}” and its stored key?")
        if answer == QMessageBox.StandardButton.Yes and self.session.remove(name):
            self._new()
            self._say(f"Removed {name}.")

    def test(self) -> None:
        """The form as it stands, with the typed key, else the stored one."""
        try:
            connection = self._form()
        except UserFacingError as error:
            self._say(error.message, ok=False)
            return
        typed = self.key_edit.text()
        self._say(f"Testing {connection.host}…")
        self.session.test(connection, typed or None, stored_as=self.editing or "")

    def _key_known(self, name: str, stored: bool) -> None:
        if name == self.editing:
            self.key_edit.setPlaceholderText(STORED_KEY if stored else NO_KEY)

    def _tested(self, name: str, ok: bool, message: str) -> None:
        self._say(message, ok)

    def done(self, result: int) -> None:
        self.session.cancel_test()  # a server that does not answer must not answer into a closed dialog
        super().done(result)
