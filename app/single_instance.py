"""One Llamadesk window per user and data folder: a second launch hands its model path to the first.

    instance = SingleInstance()
    if not instance.claim():            # another Llamadesk runs with this data folder
        instance.send(model_path)       # it loads the model and comes to the front
        return 0
    instance.opened.connect(...)        # paths handed over by later launches

The first process listens on a local socket (QLocalServer: a Unix socket, a named pipe on
Windows); a later one connects, sends one JSON line {"open": "/absolute/path.gguf"} ("" when
it has no model to hand over: the window only comes to the front) and waits for "ok".

The instance is per data folder (LLAMADESK_HOME or the platform's data folder), whatever the
environment: two launches that see different XDG_RUNTIME_DIR or TMPDIR values still find each
other, so there are never two windows on one database. The rendezvous is in the data folder: a
lock file (launches take turns) and a file naming the socket the running instance listens on
(written by it; its socket itself lives where the environment allows, a path of a hundred bytes at
most). A later launch connects to the published name first, then to the name its own environment
gives (an instance of an older version). A name or socket left behind by a crashed instance is
detected (nobody answers) and replaced.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QDir, QEventLoop, QLockFile, QObject, QTimer, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

_ACK = b"ok\n"
_MAX_MESSAGE = 64 * 1024  # one path; anything longer is not ours
_CONNECT_MS = 500
LOCK_FILE = "instance.lock"  # in the data folder
NAME_FILE = "instance-socket"  # in the data folder: the running instance's full socket name
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


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


def _listen_name(name: str) -> str:
    """Where to listen: the name, or on Unix a short path in /tmp when the name's full path (in a
    long TMPDIR) would not fit in a socket address. The published name makes either findable."""
    if sys.platform == "win32":
        return name
    full = name if os.path.isabs(name) else os.path.join(QDir.tempPath(), name)
    if len(os.fsencode(full)) <= _MAX_SOCKET_PATH:
        return name
    return os.path.join("/tmp", os.path.basename(name))


def _read_published(path: Path) -> str:
    """The socket name a running (or crashed) instance wrote, or "" (none, unreadable, garbage)."""
    try:
        with path.open("rb") as f:
            name = f.read(4096).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return name if name and "\n" not in name and "\0" not in name else ""


def _publish(path: Path, name: str) -> None:
    """Write name to path atomically (a launch reading it sees the old name or the new)."""
    temp = path.with_name(path.name + ".tmp")
    try:
        temp.unlink(missing_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(name + "\n")
        os.replace(temp, path)
    except OSError as error:  # a read-only data folder: later launches fall back on server_name()
        log.warning("cannot record the instance's socket name in %s: %s", path, error)
        temp.unlink(missing_ok=True)


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

    def __init__(self, parent: QObject | None = None, data_dir: str | os.PathLike[str] | None = None):
        """data_dir: the data folder this instance is for (default: paths.data_dir())."""
        super().__init__(parent)
        self._server: QLocalServer | None = None
        self._peer: QLocalSocket | None = None  # the running instance, when claim() lost
        self._data_dir = data_dir
        self._name_file: Path | None = None  # where the primary published its name
        self.name = ""

    @property
    def is_primary(self) -> bool:
        return self._server is not None and self._server.isListening()

    def claim(self, name: str | None = None) -> bool:
        """True: this process is the first (it now listens for handovers). False: another
        instance runs; send() hands it a path. Any other failure to listen is logged and returns
        True: the app then runs on its own rather than not at all.

        Without a name (the app), the instance is the data folder's: the lock and the published
        name are there. With a name (tests of the handover), the lock is beside that socket.

        Launches at the same moment (several files opened at once) take turns through a lock
        file: Qt's listen() on Unix replaces a live socket instead of failing, so "connect, else
        listen" must not interleave."""
        if name:
            self.name = name
            lock_path = os.path.join(_lock_dir(name), os.path.basename(name) + ".lock")
        else:
            if self._data_dir is None:
                from app import paths

                self._data_dir = paths.data_dir()
            folder = Path(self._data_dir)
            self.name = server_name(folder)
            self._name_file = folder / NAME_FILE
            lock_path = str(folder / LOCK_FILE)
        lock = QLockFile(lock_path)
        if not lock.tryLock(_CONNECT_MS * 4):
            log.warning("the single-instance lock %s is busy; going on without it", lock.fileName())
        try:  # read the published name under the lock: the launch before may just have written it
            published = _read_published(self._name_file) if self._name_file is not None else ""
            return self._connect_or_listen(list(dict.fromkeys(n for n in (published, self.name) if n)))
        finally:
            lock.unlock()

    def _connect_or_listen(self, known: list[str]) -> bool:
        for name in known:  # the published name first: the running instance may see another TMPDIR
            self._peer = _connect(name)
            if self._peer is not None:
                self.name = name
                return False
        if self._listen(_listen_name(self.name)):
            if self._name_file is not None:
                _publish(self._name_file, self.name)
            return True
        if self._peer is not None:
            return False
        log.warning("running without the single-instance handover")
        return True

    def _listen(self, name: str) -> bool:
        """Listen on name, replacing a socket that nobody answers on. False if that fails, or if
        someone does answer there (then self._peer is set): an instance of an older version."""
        self.name = name
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        in_use = QAbstractSocket.SocketError.AddressInUseError
        if not server.listen(self.name) and server.serverError() == in_use:
            self._peer = _connect(self.name)
            if self._peer is not None:
                server.deleteLater()
                return False
            log.info("removing the socket of an instance that is gone: %s", self.name)
            QLocalServer.removeServer(self.name)
            server.listen(self.name)
        if not server.isListening():
            log.warning("cannot listen on %s: %s", self.name, server.errorString())
            server.deleteLater()
            return False
        server.newConnection.connect(self._accept)
        self._server = server
        self.name = server.fullServerName()  # absolute: what another environment must connect to
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
        """Stop listening (the socket file is removed, and the published name if it is ours)."""
        if self._server is not None:
            name = self._server.fullServerName()
            self._server.close()
            self._server.deleteLater()
            self._server = None
            if self._name_file is not None:
                self._unpublish(self._name_file, name)
        if self._peer is not None:
            self._peer.abort()
            self._peer = None

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _unpublish(name_file: Path, name: str) -> None:
        """Remove the published name if it is still ours; under the lock, so that a launch that is
        taking over (it found this instance gone) does not lose the name it just wrote."""
        lock = QLockFile(str(name_file.with_name(LOCK_FILE)))
        if not lock.tryLock(_CONNECT_MS):
            return  # a launch is claiming: it replaces the name anyway
        try:
            if _read_published(name_file) == name:
                name_file.unlink(missing_ok=True)
        except OSError as error:
            log.warning("cannot remove %s: %s", name_file, error)
        finally:
            lock.unlock()

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
