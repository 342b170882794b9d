"""Start the Qt application on a qasync event loop: the window, or the self-test."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

NO_MODEL = (
    "No model is available yet. Download one (Model ▸ Download models), open a GGUF file "
    "(Model ▸ Open), or drop one on this window."
)


# Known, harmless messages from Qt's offscreen platform plugin.
_QUIET_QT_MESSAGES = ("This plugin does not support propagateSizeHints",
                      "This plugin does not support raise")


def _route_qt_messages_to_logging() -> None:
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
              QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
              QtMsgType.QtFatalMsg: logging.CRITICAL}

    def handler(mode, context, message: str) -> None:
        level = levels.get(mode, logging.WARNING)
        if message.startswith(_QUIET_QT_MESSAGES):
            level = logging.DEBUG
        qt_log.log(level, "%s", message)

    qInstallMessageHandler(handler)


def _default_model(window):
    """The user's default model while its file exists, else the embedded one (found after the
    window shows: importlib.metadata takes a moment)."""
    return window.models.library.default_model()


def app_icon():
    """Llamadesk's icon, from resources/icons beside the app package (inside a bundle: the
    bundle's own copy)."""
    from pathlib import Path

    from PySide6.QtGui import QIcon

    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))
    icon = QIcon()
    for png in sorted((base / "resources" / "icons" / "hicolor").glob("*/apps/llamadesk.png")):
        icon.addFile(str(png))
    return icon


def _handed_over(window, path: str) -> None:
    """Another launch (`llamadesk model.gguf`, a double-click on a .gguf file) handed `path` to
    this window ("" when it had no model): load it and come to the front."""
    if path:
        window.models.load(path)
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


def _open_store(self_test: bool):
    """The conversation store, read once as the window first reads it (damage found there used
    to abort the app). A damaged database gets a dialog that offers to recover it. None: the
    app quits (status 1) after saying why."""
    import app
    from app.core.conversations.store import ConversationStore, StoreError, default_store_path

    path = default_store_path()
    offered = False
    while True:
        try:
            store = ConversationStore(path)
            try:
                store.list_conversations()
            except StoreError:
                store.close()
                raise
            return store
        except StoreError as error:
            if self_test:
                print(f"self-test failed: {' '.join(error.message.split())}")
                return None
            if error.kind != "damaged" or offered:
                from PySide6.QtWidgets import QMessageBox

                QMessageBox.critical(None, app.APP_NAME, error.message)
                return None
            offered = True
            if not _offer_recovery(path, error):
                return None


def _offer_recovery(path, error) -> bool:
    """Recover or Quit. No window exists yet, so the recovery runs on a thread of its own behind a
    modal progress dialog (the dialog keeps painting; nothing else can happen meanwhile)."""
    from PySide6.QtWidgets import QMessageBox

    import app
    from app.core.conversations.recovery import RECOVER_COMMAND, recover

    box = QMessageBox(QMessageBox.Icon.Critical, app.APP_NAME, "The conversation database is damaged.")
    box.setInformativeText(
        f"{path} could not be read ({error.__cause__ or error.message}).\n\nRecover copies every "
        "conversation and message that can still be read into a new database, and keeps the damaged "
        f"file beside it. Quit changes nothing (you can also run `{RECOVER_COMMAND}` later).")
    recover_button = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(recover_button)
    box.exec()
    if box.clickedButton() is not recover_button:
        return False
    try:
        report = _with_progress("Recovering your conversations…", lambda: recover(path))
    except Exception as failure:  # any reason: the user is told, and the damaged file is untouched
        logging.getLogger(__name__).exception("recovering %s failed", path)
        QMessageBox.critical(None, app.APP_NAME, f"Recovery failed: {getattr(failure, 'message', failure)}. "
                             "The damaged database was left as it was.")
        return False
    show = QMessageBox.warning if report.nothing_read else QMessageBox.information
    show(None, app.APP_NAME, report.summary())
    return True


def _with_progress(label: str, work):
    """work() on a thread while a modal, busy progress dialog shows; its result, or its error."""
    import threading

    from PySide6.QtCore import QEventLoop, QMetaObject, Qt
    from PySide6.QtWidgets import QProgressDialog

    loop = QEventLoop()
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as error:  # handed to the GUI thread, raised there
            outcome["error"] = error
        finally:
            QMetaObject.invokeMethod(loop, "quit", Qt.ConnectionType.QueuedConnection)

    progress = QProgressDialog(label, None, 0, 0)  # a busy bar, no Cancel: stopping halfway helps no one
    progress.setWindowModality(Qt.WindowModality.ApplicationModal)
    progress.setMinimumDuration(0)
    progress.show()
    thread = threading.Thread(target=target, name="recover-database", daemon=True)
    thread.start()
    loop.exec()
    thread.join()
    progress.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class _CloseOnSignals:
    """SIGINT (Ctrl+C in the terminal) and SIGTERM (`kill`, a logout, a service manager) close the
    window as Ctrl+Q does: the answer being written is saved, the model thread stops, the exit
    status is 0. A signal that comes before the window exists closes it as soon as it does. Python
    runs a handler between any two bytecodes, so the close itself waits for the event loop."""

    def __init__(self) -> None:
        self.requested = ""  # the name of the signal that asked to close
        self._window = None
        self._instead: Callable[[], None] | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _CloseOnSignals:
        if threading.current_thread() is threading.main_thread():  # only there can Python catch them
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._window = None

    def _handle(self, number: int, _frame) -> None:
        self.requested = self.requested or signal.Signals(number).name
        if self._window is not None:
            self._close_soon()

    def _close_soon(self) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, self._close)

    def _close(self) -> None:
        logging.getLogger(__name__).info("%s received: closing the window", self.requested)
        if self._instead is not None:
            self._instead()
        elif self._window is not None:
            self._window.close()

    def attach(self, window) -> None:
        self._window = window
        if self.requested:
            self._close_soon()

    def instead(self, callback: Callable[[], None]) -> None:
        """Call `callback` rather than close the window when a signal asks to close (at once if one
        already did): the caller closes it when it is done. Closing the last window would stop the
        event loop under the caller's feet."""
        self._instead = callback
        if self.requested:
            callback()


async def _self_test_unless_stopped(run_test, closing: _CloseOnSignals) -> int:
    """The self-test's exit status, or 1 at once when a signal asks to close."""
    stopped = asyncio.get_running_loop().create_future()
    closing.instead(lambda: stopped.done() or stopped.set_result(None))
    test = asyncio.ensure_future(run_test)
    await asyncio.wait([test, stopped], return_when=asyncio.FIRST_COMPLETED)
    if test.done():
        return test.result()
    print(f"self-test failed: stopped by {closing.requested}", flush=True)
    while not test.done():  # asyncio.wait_for (3.11) ignores a cancel that comes as its result does
        test.cancel()
        await asyncio.sleep(0)
    return 1


def run(model: str | None = None, self_test: bool = False, timeout_s: float = 180.0) -> int:
    with _CloseOnSignals() as closing:
        return _run(model, self_test, timeout_s, closing)


def _run(model: str | None, self_test: bool, timeout_s: float, closing: _CloseOnSignals) -> int:
    if self_test:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif not has_display():
        print("Llamadesk needs a display. Run it in a desktop session, or try "
              "`python -m app --self-test`, which runs offscreen.", file=sys.stderr)
        return 2
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    import app
    from app.session import tasks
    from app.ui.main_window import MainWindow

    _route_qt_messages_to_logging()
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName(app.APP_NAME)
    qt_app.setApplicationVersion(app.__version__)
    qt_app.setDesktopFileName("llamadesk")  # Wayland's app id: packaging/linux/llamadesk.desktop
    qt_app.setWindowIcon(app_icon())
    instance = None
    if not self_test:
        from app.single_instance import SingleInstance

        instance = SingleInstance()
        if not instance.claim():  # a Llamadesk with this data folder runs: it opens the model
            if instance.send(model):
                return 0
            logging.getLogger(__name__).warning("the running Llamadesk did not answer; starting another")
            instance = None
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    tasks.finalize_async_generators(loop)
    store = _open_store(self_test)
    if store is None:
        return 1
    window = MainWindow(store=store)
    if instance is not None:
        instance.opened.connect(lambda path: _handed_over(window, path))
    closing.attach(window)  # Ctrl+C or SIGTERM close it the normal way (the model thread stops)
    wake = QTimer(window)  # Python runs signal handlers only when it gets control
    wake.timeout.connect(lambda: None)
    wake.start(250)
    with loop:
        if self_test:
            from app.self_test import SelfTest

            test = SelfTest(window)  # listens before the load starts
            window.show()
            path = model or _default_model(window)
            if path is None:
                print(f"self-test failed: {NO_MODEL}")
                window.close()
                return 1
            window.models.load(path)
            code = loop.run_until_complete(_self_test_unless_stopped(test.run(timeout_s), closing))
            window.close()
            return code
        window.show()
        path = model or _default_model(window)
        if path is None:
            window.show_error(NO_MODEL)
            window.models.open_downloads()  # first start without a model: offer one
        else:
            window.models.load(path)
        closed = asyncio.Event()
        qt_app.aboutToQuit.connect(closed.set)
        loop.run_until_complete(closed.wait())
    if instance is not None:
        instance.close()
    from app.session.tasks import wait_for_background_tasks

    wait_for_background_tasks()  # a call started while closing finishes before Qt's objects go
    return 0
