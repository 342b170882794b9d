"""The model commands with the real model: drop a file to import and load it, per-model load
settings, unload, the models window's load/unload/delete, a finished download loaded, and the
window's wiring of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox, QWidget

from app import paths
from app.core.models.library import ModelLibrary
from app.session.local_backend import LocalBackend
from app.session.model_library import LibrarySession
from app.session.models import ModelSession
from app.ui.models.load_settings_panel import LoadSettingsPanel
from app.ui.models.model_actions import ModelActions
from app.ui.models.models_window import STATUS, ModelsWindow
from tests.core.test_hub import gguf_bytes
from tests.fixtures.gguf_files import truncated_copy


def make_actions(qtbot) -> ModelActions:
    host = QWidget()
    qtbot.addWidget(host)
    backend = LocalBackend(parent=host)
    return ModelActions(host, ModelSession(backend, parent=host), LibrarySession(parent=host),
                        LoadSettingsPanel(parent=host))


@pytest.fixture
def actions(qtbot, model_path):
    """The model commands over a real engine, the embedded model loaded."""
    made = make_actions(qtbot)
    with qtbot.waitSignal(made.models.loaded, timeout=60_000):
        made.load(model_path)
    yield made
    made.models.backend.close()


def row_status(manager: ModelsWindow, name: str) -> str:
    """The Status column of the model's row; "" while it is not listed (yet)."""
    return next((manager.table.item(r, STATUS).text() for r in range(manager.table.rowCount())
                 if manager.table.item(r, 0).text() == name), "")


def select(manager: ModelsWindow, name: str) -> None:
    manager.select_path(next(str(e.path) for e in manager.entries if e.name == name))


def test_a_dropped_gguf_is_copied_into_the_library_and_loaded(qtbot, actions, tmp_path, model_path) -> None:
    source = tmp_path / "Dropped-Model.Q4_1.gguf"
    shutil.copyfile(model_path, source)
    with qtbot.waitSignal(actions.models.loaded, timeout=60_000) as loaded:
        actions.import_and_load([str(source)])
    assert Path(loaded.args[0].path) == paths.models_dir() / source.name
    assert source.exists()  # copied, not moved
    assert actions.settings_panel.model_label.text().startswith("<b>Dropped-Model.Q4_1</b>")


def test_a_dropped_broken_file_is_refused_with_its_reason(qtbot, actions, tmp_path, model_path) -> None:
    broken = truncated_copy(model_path, tmp_path / "broken.gguf")
    with qtbot.waitSignal(actions.error, timeout=30_000) as error:
        actions.import_and_load([str(broken)])
    assert "is incomplete" in error.args[0] and "missing" in error.args[0]
    assert not (paths.models_dir() / "broken.gguf").exists()
    assert actions.models.model is not None  # the loaded model is untouched


def test_only_gguf_files_can_be_dropped(qtbot, actions, tmp_path) -> None:
    with qtbot.waitSignal(actions.error) as error:
        actions.import_and_load([str(tmp_path / "notes.txt")])
    assert "Only GGUF model files" in error.args[0]


def test_load_settings_are_saved_for_the_model_and_used_next_time(qtbot, actions, model_path) -> None:
    panel = actions.settings_panel
    panel.context.setValue(1024)
    with qtbot.waitSignal(actions.models.loaded, timeout=60_000) as loaded:
        panel.apply_button.click()
    assert loaded.args[0].n_ctx == 1024
    assert ModelLibrary().settings_for(model_path).n_ctx == 1024
    again = make_actions(qtbot)
    with qtbot.waitSignal(again.models.loaded, timeout=60_000) as loaded:
        again.load(model_path)
    assert loaded.args[0].n_ctx == 1024
    assert again.settings_panel.context.value() == 1024
    again.models.backend.close()


def test_unload_frees_the_model_and_says_so(qtbot, actions) -> None:
    with qtbot.waitSignal(actions.models.unloaded, timeout=10_000):
        assert actions.unload()
    assert actions.models.model is None
    assert actions.settings_panel.model_label.text() == "No model loaded"


def test_the_model_tab_shows_the_memory_it_needs_and_refuses_bad_settings(qtbot, actions) -> None:
    panel = actions.settings_panel
    qtbot.waitUntil(lambda: "Needs about" in panel.estimate.text(), timeout=10_000)
    assert panel.estimate.text().rstrip(".").split(": ")[1].startswith(("fits", "tight", "won't fit"))
    before = panel.estimate.text()
    panel.context.setValue(8192)
    assert panel.estimate.text() != before and "8,192 tokens" in panel.estimate.text()
    panel.kv_type.setCurrentIndex(panel.kv_type.findData("q8_0"))  # needs flash attention
    assert "flash attention" in panel.problem.text() and not panel.apply_button.isEnabled()
    panel.flash_attn.setChecked(True)
    assert panel.problem.text() == "" and panel.apply_button.isEnabled()


def test_load_and_unload_from_the_manager(qtbot, actions, model_path) -> None:
    shutil.copyfile(model_path, paths.models_dir() / "copy.gguf")
    actions.open_manager()
    manager = actions.manager
    qtbot.waitUntil(lambda: any(e.name == "copy" for e in manager.entries), timeout=10_000)
    assert "loaded" in row_status(manager, "SmolLM2-135M-Instruct.Q4_1")
    select(manager, "copy")
    with qtbot.waitSignal(actions.models.loaded, timeout=60_000):
        manager.buttons["load"].click()
    assert actions.models.model.path == str(paths.models_dir() / "copy.gguf")
    qtbot.waitUntil(lambda: "loaded" in row_status(manager, "copy"), timeout=5_000)
    with qtbot.waitSignal(actions.models.unloaded, timeout=10_000):
        manager.buttons["unload"].click()
    assert "loaded" not in row_status(manager, "copy")


def test_deleting_the_loaded_model_unloads_it_first(qtbot, actions, model_path, monkeypatch) -> None:
    copy = paths.models_dir() / "copy.gguf"
    shutil.copyfile(model_path, copy)
    with qtbot.waitSignal(actions.models.loaded, timeout=60_000):
        actions.load(copy)
    actions.open_manager()
    manager = actions.manager
    qtbot.waitUntil(lambda: "loaded" in row_status(manager, "copy"), timeout=10_000)
    select(manager, "copy")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(actions.models.unloaded, timeout=10_000):
        manager.buttons["delete"].click()
    qtbot.waitUntil(lambda: not copy.exists(), timeout=5_000)
    assert actions.models.model is None


def test_a_download_finished_without_a_model_is_loaded(qtbot, fake_hub, model_path) -> None:
    fake_hub.add_repo("someone/Smol-GGUF", {"smol-Q4_1.gguf": model_path.read_bytes()})
    actions = make_actions(qtbot)
    actions.open_downloads()
    with qtbot.waitSignal(actions.models.loaded, timeout=60_000) as loaded:
        actions.downloads.start_download("someone/Smol-GGUF", "smol-Q4_1.gguf")
    assert loaded.args[0].path == str(paths.models_dir() / "someone" / "Smol-GGUF" / "smol-Q4_1.gguf")
    actions.downloads.close()
    actions.models.backend.close()


def test_closing_the_app_pauses_the_download_and_keeps_its_part(qtbot, fake_hub, model_path) -> None:
    fake_hub.add_repo("someone/Smol-GGUF", {"smol-Q4_1.gguf": model_path.read_bytes()})
    fake_hub.slow = 200_000
    actions = make_actions(qtbot)
    actions.open_downloads()
    actions.downloads.start_download("someone/Smol-GGUF", "smol-Q4_1.gguf")
    actions.downloads.close()  # the download goes on without its dialog
    with qtbot.waitSignal(actions.download.progress, timeout=10_000):
        pass
    with qtbot.waitSignal(actions.download.failed, timeout=5_000) as failed:
        actions.close()  # what the window's closeEvent calls
    assert failed.args[0] == "paused"
    folder = paths.models_dir() / "someone" / "Smol-GGUF"
    assert (folder / "smol-Q4_1.gguf.part").stat().st_size > 0
    assert not (folder / "smol-Q4_1.gguf").exists()
    actions.models.backend.close()


def test_closing_the_dialog_says_the_download_goes_on_and_quitting_asks_first(qtbot, fake_hub, tmp_path,
                                                                            monkeypatch) -> None:
    """Issue 12, item 12: Esc on the dialog paused silently (to the eye); a quit gave no warning."""
    fake_hub.add_repo("someone/Smol-GGUF", {"smol-Q4_1.gguf": gguf_bytes(tmp_path, "smol-Q4_1.gguf")})
    fake_hub.slow = 200_000
    actions = make_actions(qtbot)
    assert actions.confirm_quit() and actions.downloads_in_progress() == []  # nothing to ask about
    actions.open_downloads()
    actions.downloads.start_download("someone/Smol-GGUF", "smol-Q4_1.gguf")
    with qtbot.waitSignal(actions.download.progress, timeout=10_000):
        pass
    with qtbot.waitSignal(actions.info, timeout=1_000) as told:
        qtbot.keyClick(actions.downloads, Qt.Key.Key_Escape)
    assert "smol-Q4_1.gguf goes on downloading in the background" in told.args[0]
    assert actions.downloads_in_progress() == [actions.download]
    asked: list[str] = []

    def answer(button):
        return lambda _parent, _title, text, *_: asked.append(text) or button

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    assert not actions.confirm_quit() and actions.download.running  # the user stays
    assert asked[0].startswith("smol-Q4_1.gguf is still downloading. Quit anyway?")
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    assert actions.confirm_quit()
    with qtbot.waitSignal(actions.download.failed, timeout=5_000) as failed:
        actions.close()
    assert failed.args[0] == "paused"
    actions.models.backend.close()


def test_a_gguf_dropped_on_the_window_is_imported_and_loaded(qtbot, window, tmp_path, model_path) -> None:
    source = tmp_path / "Dropped-Model.Q4_1.gguf"
    shutil.copyfile(model_path, source)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(source))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.models.models.loaded, timeout=60_000):
        window.dropEvent(event)
    assert window.model_label.text() == "Dropped-Model.Q4_1"
    broken = truncated_copy(model_path, tmp_path / "broken.gguf")
    mime.setUrls([QUrl.fromLocalFile(str(broken))])
    window.dropEvent(event)
    qtbot.waitUntil(window.banner.isVisible, timeout=30_000)
    assert "is incomplete" in window.banner.text()
