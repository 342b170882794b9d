"""Start the Qt application on a qasync event loop: the window, or the self-test."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

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


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM") or sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(model: str | None = None, self_test: bool = False, timeout_s: float = 180.0) -> int:
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
    from app.core.store import ConversationStore, StoreError, default_store_path

    try:
        store = ConversationStore(default_store_path())
    except StoreError as error:
        if self_test:
            print(f"self-test failed: {error.message}")
        else:
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.critical(None, app.APP_NAME, error.message)
        return 1
    window = MainWindow(store=store)
    if instance is not None:
        instance.opened.connect(lambda path: _handed_over(window, path))
    # Ctrl+C in the terminal closes the window the normal way (stopping the model thread).
    signal.signal(signal.SIGINT, lambda *_: window.close())
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
            code = loop.run_until_complete(test.run(timeout_s))
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
    from app.workers.background import wait_for_background_tasks

    wait_for_background_tasks()  # a task started while closing finishes before Qt's objects go
    return 0
