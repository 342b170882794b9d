"""One Llamadesk window per user and data folder: a second launch hands its model path to the first.

    instance = SingleInstance()
    if not instance.claim():            # another Llamadesk runs with this data folder
        instance.send(model_path)       # it loads the model and comes to the front
        return 0
    instance.opened.connect(...)        # paths handed over by later launches

The first process listens on a local socket (QLocalServer: a Unix socket, a named pipe on
Windows); a later one connects, sends one JSON line {"open": "/absolute/path.gguf"} ("" when
it has no model to hand over: the window only comes to the front) and waits for "ok".

The server name is per user and per data folder (LLAMADESK_HOME or the platform's data folder),
so tests and portable installs each have their own instance. A socket left behind by a crashed
instance is detected (nobody answers) and replaced.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import sys

from PySide6.QtCore import QCoreApplication, QDir, QEventLoop, QLockFile, QObject, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

_ACK = b"ok\n"
_MAX_MESSAGE = 64 * 1024  # one path; anything longer is not ours
_CONNECT_MS = 500


def server_name(data_dir: str | os.PathLike[str] | None = None) -> str:
    """The instance's local-socket name for this user and data folder (default: paths.data_dir()).

    On Linux it is a path in $XDG_RUNTIME_DIR (private to the user, emptied at logout) when that
    exists; elsewhere a plain name (macOS: in the per-user $TMPDIR; Windows: a named pipe).
    """
    if data_dir is None:
        from app import paths

        data_dir = paths.data_dir()
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    key = f"{user}\0{os.path.normcase(os.path.abspath(data_dir))}"
    name = "llamadesk-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if sys.platform.startswith("linux") and runtime and os.path.isdir(runtime):
        return os.path.join(runtime, name)
    return name


def _lock_dir(name: str) -> str:
    """Beside the socket when the name is a path, else the system's temporary folder."""
    folder = os.path.dirname(name)
    return folder if folder else QDir.tempPath()


def _connect(name: str, timeout_ms: int = _CONNECT_MS) -> QLocalSocket | None:
    """A socket connected to a live instance, or None (no server, or a stale socket file)."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if socket.waitForConnected(timeout_ms):
        return socket
    socket.abort()
    return None


class _Connection(QObject):
    """One handover being received: reads a JSON line, answers "ok", reports the path."""

    def __init__(self, socket: QLocalSocket, owner: SingleInstance):
        super().__init__(owner)
        self._socket = socket
        self._owner = owner
        self._buffer = bytearray()
        socket.setParent(self)
        socket.readyRead.connect(self._read)
        socket.disconnected.connect(self.deleteLater)
        QTimer.singleShot(5000, self, self._give_up)  # a client that never finishes its line
        self._read()

    def _read(self) -> None:
        self._buffer += self._socket.readAll().data()
        if b"\n" not in self._buffer:
            if len(self._buffer) > _MAX_MESSAGE:
                self._give_up()
            return
        line = bytes(self._buffer.split(b"\n", 1)[0])
        try:
            message = json.loads(line.decode("utf-8"))
            path = message["open"]
            if not isinstance(path, str):
                raise TypeError(type(path).__name__)
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            log.warning("ignoring a malformed handover from another launch: %s", error)
            self._give_up()
            return
        self._socket.write(_ACK)
        self._socket.flush()
        self._socket.disconnectFromServer()
        self._buffer.clear()
        log.info("another launch handed over %r", path)
        self._owner.opened.emit(path)

    def _give_up(self) -> None:
        if self._socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
            self._socket.abort()
        self.deleteLater()


class SingleInstance(QObject):
    """The handover between launches. `opened(path)`: a later launch asked this one to open
    `path` (an absolute path; "" to only come to the front)."""

    opened = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._server: QLocalServer | None = None
        self._peer: QLocalSocket | None = None  # the running instance, when claim() lost
        self.name = ""

    @property
    def is_primary(self) -> bool:
        return self._server is not None and self._server.isListening()

    def claim(self, name: str | None = None) -> bool:
        """True: this process is the first (it now listens for handovers). False: another
        instance runs; send() hands it a path. Any other failure to listen is logged and returns
        True: the app then runs on its own rather than not at all.

        Launches at the same moment (several files opened at once) take turns through a lock
        file: Qt's listen() on Unix replaces a live socket instead of failing, so "connect, else
        listen" must not interleave."""
        self.name = name or server_name()
        lock = QLockFile(os.path.join(_lock_dir(self.name), os.path.basename(self.name) + ".lock"))
        if not lock.tryLock(_CONNECT_MS * 4):
            log.warning("the single-instance lock %s is busy; going on without it", lock.fileName())
        try:
            return self._connect_or_listen()
        finally:
            lock.unlock()

    def _connect_or_listen(self) -> bool:
        self._peer = _connect(self.name)
        if self._peer is not None:
            return False
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        in_use = QAbstractSocket.SocketError.AddressInUseError
        if not server.listen(self.name) and server.serverError() == in_use:
            self._peer = _connect(self.name)  # another launch won a race since we looked
            if self._peer is not None:
                server.deleteLater()
                return False
            log.info("removing the socket of an instance that is gone: %s", self.name)
            QLocalServer.removeServer(self.name)
            server.listen(self.name)
        if not server.isListening():
            log.warning("cannot listen on %s (%s): running without the single-instance handover",
                        self.name, server.errorString())
            server.deleteLater()
            return True
        server.newConnection.connect(self._accept)
        self._server = server
        return True

    def send(self, path: str | os.PathLike[str] | None, timeout_ms: int = 5000) -> bool:
        """Hand `path` (made absolute here: the other process has another working folder) to the
        running instance; True once it acknowledged. After claim() returned False."""
        message = json.dumps({"open": os.path.abspath(path) if path else ""}) + "\n"
        socket = self._peer if self._peer is not None else _connect(self.name, timeout_ms)
        self._peer = None
        if socket is None or socket.state() != QLocalSocket.LocalSocketState.ConnectedState:
            return False
        try:
            socket.write(message.encode("utf-8"))
            socket.flush()
            return self._wait_for_ack(socket, timeout_ms)
        finally:
            socket.abort()

    def close(self) -> None:
        """Stop listening (the socket file is removed)."""
        if self._server is not None:
            self._server.close()
            self._server.deleteLater()
            self._server = None
        if self._peer is not None:
            self._peer.abort()
            self._peer = None

    # ------------------------------------------------------------------ internals

    def _accept(self) -> None:
        while self._server is not None and (socket := self._server.nextPendingConnection()) is not None:
            _Connection(socket, self)

    @staticmethod
    def _wait_for_ack(socket: QLocalSocket, timeout_ms: int) -> bool:
        received = bytearray()

        def ack_arrived() -> bool:
            received.extend(socket.readAll().data())
            return received.startswith(_ACK)

        if QCoreApplication.instance() is None:  # no event loop to run: block on the socket
            while socket.waitForReadyRead(timeout_ms):
                if ack_arrived():
                    return True
            return ack_arrived()
        # An event loop, so that a server in this same thread (tests) can answer too.
        loop = QEventLoop()
        socket.readyRead.connect(lambda: ack_arrived() and loop.quit())
        socket.disconnected.connect(loop.quit)
        QTimer.singleShot(timeout_ms, loop, loop.quit)
        if not ack_arrived():
            loop.exec()
        return ack_arrived()  # reads what came with the disconnection too
