"""GUI fixtures (a test fails if it leaves a QThread running, napari's _dangling_qthreads) and the
helpers the GUI test modules share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from PySide6.QtCore import Qt, QThread

if TYPE_CHECKING:
    from app.core.conversations.conversation import Conversation
    from app.ui.main_window import MainWindow


@pytest.fixture(autouse=True)
def _flows(flows):
    """Every GUI test runs on the qasync loop, as the app does."""
    return flows


@pytest.fixture(autouse=True)
def no_model_titles(monkeypatch, request):
    """The model's chat titles arrive after the first answer, at a moment no test chooses: off, so a
    list or a title a test checks does not change under it (tests marked `model_titles` keep them)."""
    if "model_titles" not in request.keywords:
        monkeypatch.setattr("app.session.workspace.PROPOSE_TITLES", False)


@pytest.fixture(autouse=True)
def no_dangling_qthreads(monkeypatch):
    started: list[QThread] = []
    original_start = QThread.start

    def recording_start(self, *args, **kwargs):
        started.append(self)
        return original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield started
    running = [t.objectName() or repr(t) for t in started if t.isRunning()]
    for thread in started:  # do not let one failure crash the rest of the run
        if thread.isRunning():
            thread.quit()
            thread.wait(5000)
    assert not running, f"QThreads left running: {running}"


@pytest.fixture(autouse=True)
def no_engine_process_left():
    """Closing the window ends the engine's process (app/core/inference/local/engine_process.py)."""
    import multiprocessing

    yield
    left = [p for p in multiprocessing.active_children() if p.name == "llamadesk-engine"]
    for process in left:
        process.kill()
        process.join(5)
    assert not left, f"engine processes left running: {left}"


@pytest.fixture
def window(qtbot, model_path):
    """The real main window with the embedded model loaded."""
    from app.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.model_session.loaded, timeout=60_000):
        win.model_session.load(str(model_path))
    yield win
    win.close()


# -- the sampling panel on its own (test_sampling_panel.py, test_sampling_fields.py) ------------------

@pytest.fixture
def settings():
    """The sampling settings a lone panel edits."""
    from app.session.sampling import SamplingSettings

    return SamplingSettings()


@pytest.fixture
def presets(tmp_path):
    from app.core.chat.presets import PresetStore

    return PresetStore(tmp_path / "presets.json")


@pytest.fixture
def panel(qtbot, settings, presets):
    from app.ui.chat.sampling_panel import SamplingPanel

    widget = SamplingPanel(settings, presets=presets)
    qtbot.addWidget(widget)
    widget.show()
    return widget


@pytest.fixture
def restore_theme():
    """A test that switches the theme puts the application's style and palette back; it gets
    apply_theme to switch with."""
    from PySide6.QtWidgets import QApplication

    from app.ui.shell.theme import apply_theme

    app = QApplication.instance()
    style, palette = app.style().name(), app.palette()
    yield apply_theme
    app.setStyle(style)
    app.setPalette(palette)


# -- helpers shared by the GUI test modules ---------------------------------------------------------

def open_window(qtbot, width: int = 1200, height: int = 760) -> MainWindow:
    from app.ui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(width, height)
    window.show()
    window.activateWindow()  # shortcuts (Ctrl+K, Ctrl+E) go to the active window
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    return window


def seed_store(window: MainWindow, *conversations: Conversation) -> None:
    window.store.insert_conversations(conversations)
    window.conversations.refresh()


def send(qtbot, window: MainWindow, text: str) -> None:
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
        qtbot.keyClicks(window.composer, text)
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)
