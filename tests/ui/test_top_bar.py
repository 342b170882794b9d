"""Issue 12, the screen people expect: the model picker at the top of the chat loads a model with its
own settings and opens the download dialog and the models window; a chat remembers its model and
offers it (never loading it by itself)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from app.core.conversations.conversation import Conversation
from app.core.models.library import ModelSettings
from app.ui.chat.model_picker import DOWNLOAD, MANAGE
from app.ui.main_window import MainWindow
from tests.ui.conftest import open_window, seed_store


def wait_listed(qtbot, window: MainWindow, path: Path) -> None:
    qtbot.waitUntil(lambda: window.model_picker.path_of(path.name) is not None, timeout=30_000)


def chat_written_with(model_file: str, title: str) -> Conversation:
    conversation = Conversation(title=title, titled_by_user=True, model=model_file)
    conversation.append("user", "hello")
    conversation.append("assistant", "hi")
    return conversation


def test_the_picker_sits_above_the_chat_and_loads_with_the_models_own_settings(qtbot, model_path) -> None:
    window = open_window(qtbot)
    picker = window.model_picker
    assert picker.isVisible()
    top_of_chat = window.chat_panel.mapTo(window, QPoint(0, 0)).y()
    assert picker.mapTo(window, QPoint(0, picker.height())).y() <= top_of_chat
    window.library.library.set_settings(model_path, ModelSettings(n_ctx=1024))
    wait_listed(qtbot, window, model_path)
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000):
        picker.activated.emit(picker.findData(str(model_path)))
    assert window.model_session.model.n_ctx == 1024  # the settings stored for this model
    assert window.model_label.text() == model_path.stem and picker.currentData() == str(model_path)
    window.close()


def test_the_pickers_last_entries_open_the_download_dialog_and_the_models_window(qtbot, fake_hub) -> None:
    window = open_window(qtbot)
    picker = window.model_picker
    picker.activated.emit(picker.findData(DOWNLOAD))
    assert window.models.downloads is not None and window.models.downloads.isVisible()
    window.models.downloads.close()
    picker.activated.emit(picker.findData(MANAGE))
    assert window.models.manager is not None and window.models.manager.isVisible()
    assert picker.currentIndex() == -1  # still "no model": the actions are not models
    window.models.manager.close()
    window.close()


def test_a_chat_offers_the_model_it_was_written_with_and_loads_it_only_when_asked(qtbot, model_path) -> None:
    window = open_window(qtbot)
    own = chat_written_with(model_path.name, "With SmolLM")
    gone = chat_written_with("deleted-model.Q4_K_M.gguf", "With a deleted model")
    seed_store(window, own, gone)
    wait_listed(qtbot, window, model_path)
    hint = window.top_bar.chat_model_button
    window.chat.open_conversation(own.id)
    assert hint.isVisible() and hint.text() == f"This chat used {model_path.stem} — Load"
    QApplication.processEvents()  # the layouts take the shown hint into account
    assert window.minimumSizeHint().width() <= 800, "the hint widens the window past an 800 px screen"
    assert window.model_session.model is None and not window.backend.is_loading  # offered, not loaded
    window.chat.open_conversation(gone.id)
    assert not hint.isVisible()  # not in the library: nothing to offer
    window.chat.open_conversation(own.id)
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000):
        qtbot.mouseClick(hint, Qt.MouseButton.LeftButton)
    assert window.model_session.model.path == str(model_path)
    assert not hint.isVisible()  # the chat's model is the one loaded
    window.close()
