"""The model picker at the top of the chat: it lists the library's models, choosing one loads it,
it follows loads from elsewhere, and its action entries do not change the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from app.session.local_backend import LocalBackend
from app.session.model_library import LibrarySession
from app.session.models import ModelSession
from app.ui.chat.model_picker import DOWNLOAD, MANAGE, NO_MODEL, ModelPicker


@pytest.fixture
def picker(qtbot):
    """A picker over a real engine and library, wired as the window wires it; no model loaded."""
    host = QWidget()
    qtbot.addWidget(host)
    models = ModelSession(LocalBackend(parent=host), parent=host)
    made = ModelPicker(models, LibrarySession(parent=host), parent=host)
    made.load_requested.connect(models.load)
    host.show()  # the library is scanned once the picker is on screen
    yield made
    models.backend.close()


def paths_listed(picker: ModelPicker) -> list[str]:
    return [picker.itemData(i) for i in range(picker.count())
            if picker.itemData(i) and not str(picker.itemData(i)).startswith("action:")]


def test_choosing_a_listed_model_loads_it(qtbot, picker, model_path) -> None:
    qtbot.waitUntil(lambda: str(model_path) in paths_listed(picker), timeout=30_000)
    assert picker.currentIndex() == -1 and picker.placeholderText() == NO_MODEL
    index = picker.findData(str(model_path))
    with qtbot.waitSignal(picker.models.loaded, timeout=60_000):
        picker.activated.emit(index)
        assert picker.currentText().startswith("Loading ")  # while it loads
    assert picker.currentData() == str(model_path)
    assert Path(model_path).stem.split(".")[0] in picker.currentText()


def test_the_action_entries_leave_the_model_alone(qtbot, picker, model_path) -> None:
    with qtbot.waitSignal(picker.models.loaded, timeout=60_000):
        picker.models.load(str(model_path))  # loaded from elsewhere (the Model menu)
    assert picker.currentData() == str(model_path)
    for action, signal in ((DOWNLOAD, picker.download_requested), (MANAGE, picker.manage_requested)):
        with qtbot.waitSignal(signal):
            picker.activated.emit(picker.findData(action))
        assert picker.currentData() == str(model_path)
    with qtbot.waitSignal(picker.models.unloaded, timeout=30_000):
        picker.models.unload()
    assert picker.currentIndex() == -1  # the placeholder says there is none
