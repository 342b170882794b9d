"""Models from the window: drop a file to import and load it, per-model load settings, unload."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app import paths
from app.core.library import ModelLibrary
from app.ui.main_window import MainWindow
from tests.fixtures.gguf_files import truncated_copy


def drop(window: MainWindow, *files: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_a_dropped_gguf_is_copied_into_the_library_and_loaded(qtbot, window, tmp_path, model_path) -> None:
    source = tmp_path / "Dropped-Model.Q4_1.gguf"
    shutil.copyfile(model_path, source)
    with qtbot.waitSignal(window.controller.model_loaded, timeout=60_000) as loaded:
        drop(window, source)
    info = loaded.args[0]
    assert Path(info.path) == paths.models_dir() / source.name
    assert source.exists()  # copied, not moved
    assert window.model_label.text() == "Dropped-Model.Q4_1"


def test_a_dropped_broken_file_is_refused_with_its_reason(qtbot, window, tmp_path, model_path) -> None:
    broken = truncated_copy(model_path, tmp_path / "broken.gguf")
    drop(window, broken)
    qtbot.waitUntil(window.banner.isVisible, timeout=30_000)
    assert "is incomplete" in window.banner.text() and "missing" in window.banner.text()
    assert not (paths.models_dir() / "broken.gguf").exists()
    assert window.controller.model is not None  # the loaded model is untouched


def test_load_settings_are_saved_for_the_model_and_used_next_time(qtbot, window, model_path) -> None:
    panel = window.load_settings_panel
    panel.context.setValue(1024)
    with qtbot.waitSignal(window.controller.model_loaded, timeout=60_000) as loaded:
        panel.apply_button.click()
    assert loaded.args[0].n_ctx == 1024
    assert ModelLibrary().settings_for(model_path).n_ctx == 1024
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    with qtbot.waitSignal(again.controller.model_loaded, timeout=60_000) as loaded:
        again.models.load(model_path)
    assert loaded.args[0].n_ctx == 1024
    assert again.load_settings_panel.context.value() == 1024
    again.close()


def test_unload_frees_the_model_and_says_so(qtbot, window) -> None:
    with qtbot.waitSignal(window.controller.model_unloaded, timeout=10_000):
        window.models.unload()
    assert window.controller.model is None
    assert window.model_label.text() == "No model"
    assert window.context_meter.bar.text() == "Context: no model"


def test_the_model_tab_shows_the_memory_it_needs_and_refuses_bad_settings(qtbot, window) -> None:
    panel = window.load_settings_panel
    qtbot.waitUntil(lambda: "Needs about" in panel.estimate.text(), timeout=10_000)
    assert panel.estimate.text().rstrip(".").split(": ")[1].startswith(("fits", "tight", "won't fit"))
    before = panel.estimate.text()
    panel.context.setValue(8192)
    assert panel.estimate.text() != before and "8,192 tokens" in panel.estimate.text()
    panel.kv_type.setCurrentIndex(panel.kv_type.findData("q8_0"))  # needs flash attention
    assert "flash attention" in panel.problem.text() and not panel.apply_button.isEnabled()
    panel.flash_attn.setChecked(True)
    assert panel.problem.text() == "" and panel.apply_button.isEnabled()
