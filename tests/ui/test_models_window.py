"""The model manager on a real library folder: good, split and broken files, default, import,
delete, load settings, the llama.cpp build. Loading from it: test_models_in_window.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from app import paths
from app.core.models.library import ModelLibrary
from app.session.model_library import LibrarySession
from app.ui.models.models_window import STATUS, ModelsWindow
from app.ui.shell import help_dialogs
from tests.fixtures.gguf_files import write_split_llama, write_tiny_llama


@pytest.fixture
def library_folder() -> Path:
    folder = paths.models_dir()
    write_tiny_llama(folder / "tiny.gguf")
    write_split_llama(folder, "big", n_parts=2)
    (folder / "notes.gguf").write_text("not a model\n")
    return folder


def open_manager(qtbot, library: ModelLibrary | None = None) -> ModelsWindow:
    manager = ModelsWindow(LibrarySession(library or ModelLibrary()))
    qtbot.addWidget(manager)
    manager.show()
    qtbot.waitUntil(lambda: manager.table.rowCount() > 0 and "models" in manager.message.text(),
                    timeout=10_000)
    return manager


def row_of(manager: ModelsWindow, name: str) -> list[str]:
    for r in range(manager.table.rowCount()):
        if manager.table.item(r, 0).text() == name:
            return [manager.table.item(r, c).text() for c in range(manager.table.columnCount())]
    raise AssertionError(f"{name} not listed")


def select(manager: ModelsWindow, name: str) -> None:
    manager.select_path(next(str(e.path) for e in manager.entries if e.name == name))


def test_lists_built_in_good_split_and_broken_models(qtbot, library_folder, model_path) -> None:
    manager = open_manager(qtbot)
    assert manager.table.item(0, 0).text() == "SmolLM2-135M-Instruct.Q4_1"
    built_in = row_of(manager, "SmolLM2-135M-Instruct.Q4_1")
    assert built_in[2:5] == ["llama", "135M", "Q4_1"] and built_in[6] == "8,192"
    assert "built-in" in built_in[STATUS] and "default" in built_in[STATUS]
    assert row_of(manager, "tiny")[2] == "llama"
    assert row_of(manager, "big")[2] == "llama"  # two files, one model
    broken = row_of(manager, "notes")
    assert broken[STATUS].startswith("broken: ") and "GGUF" in broken[STATUS]
    assert "1 broken" in manager.message.text()
    select(manager, "notes")
    assert not manager.buttons["load"].isEnabled()
    select(manager, "SmolLM2-135M-Instruct.Q4_1")
    assert not manager.buttons["delete"].isEnabled()  # the built-in model cannot be deleted


def test_set_default_is_remembered(qtbot, library_folder) -> None:
    manager = open_manager(qtbot)
    select(manager, "tiny")
    manager.buttons["default"].click()
    assert "default" in row_of(manager, "tiny")[STATUS]
    assert ModelLibrary().default_model() == library_folder / "tiny.gguf"


def test_delete_asks_and_removes_only_after_yes(qtbot, library_folder, monkeypatch) -> None:
    manager = open_manager(qtbot)
    select(manager, "tiny")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    manager.buttons["delete"].click()
    assert (library_folder / "tiny.gguf").exists()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(manager.library.changed, timeout=10_000):
        manager.buttons["delete"].click()
    assert not (library_folder / "tiny.gguf").exists()
    qtbot.waitUntil(lambda: all(e.name != "tiny" for e in manager.entries), timeout=10_000)
    assert "Deleted tiny.gguf" in manager.message.text()


def test_import_copies_into_the_library_and_refuses_a_bad_file(qtbot, library_folder, tmp_path) -> None:
    manager = open_manager(qtbot)
    outside = write_tiny_llama(tmp_path / "elsewhere.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 10)
    manager.import_files([str(outside), str(bad)])
    qtbot.waitUntil(lambda: any(e.name == "elsewhere" for e in manager.entries), timeout=10_000)
    assert (library_folder / "elsewhere.gguf").exists() and outside.exists()
    assert "bad.gguf" in manager.message.text() and not (library_folder / "bad.gguf").exists()


def test_settings_are_saved_per_model_with_their_memory(qtbot, library_folder, model_path) -> None:
    manager = open_manager(qtbot)
    select(manager, "SmolLM2-135M-Instruct.Q4_1")
    panel = manager.settings
    assert "Needs about" in panel.estimate.text()
    panel.context.setValue(2048)
    panel.apply_button.click()
    assert ModelLibrary().settings_for(model_path).n_ctx == 2048
    select(manager, "tiny")
    assert panel.context.value() == 4096  # another model, its own settings
    select(manager, "SmolLM2-135M-Instruct.Q4_1")
    assert panel.context.value() == 2048


def test_a_newer_scan_cancels_the_older(qtbot, library_folder) -> None:
    manager = open_manager(qtbot)
    manager.refresh()
    older = manager._scan.task
    manager.refresh(message="the newer one")
    qtbot.waitUntil(lambda: manager.message.text() == "the newer one", timeout=10_000)
    assert older.cancelled()


@pytest.fixture
def engine():
    """A real engine process to describe the llama.cpp build (the window's process never loads it)."""
    from app.session.local_backend import LocalBackend

    backend = LocalBackend()
    yield backend
    backend.close()


def test_it_says_which_llama_cpp_build_runs_the_models(qtbot, library_folder, engine) -> None:
    manager = ModelsWindow(LibrarySession(ModelLibrary(), describe_build=engine.build))
    qtbot.addWidget(manager)
    manager.show()
    qtbot.waitUntil(lambda: manager.backends.text().startswith("llama.cpp backends: "), timeout=30_000)
    assert "GPU offload" in manager.backends.text() and "unknown" not in manager.backends.text()


def test_about_names_the_llama_cpp_build(qtbot, engine) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    help_dialogs.show_about(parent, LibrarySession(describe_build=engine.build))
    qtbot.waitUntil(lambda: parent.findChild(QMessageBox, "aboutBox") is not None, timeout=30_000)
    box = parent.findChild(QMessageBox, "aboutBox")
    assert "llama-cpp-python 0." in box.text() and "llama.cpp backends: CPU" in box.text()
    box.close()


# Issue 12, items 12 and 19: where a downloaded file came from; Unload, a broken model, the status column.


def test_a_downloaded_model_says_which_repository_it_came_from(qtbot, library_folder) -> None:
    (library_folder / "alice" / "Tiny-GGUF").mkdir(parents=True)
    write_tiny_llama(library_folder / "alice" / "Tiny-GGUF" / "tiny.gguf")  # same name, another source
    manager = open_manager(qtbot)
    sources = sorted((e.name, manager.table.item(r, 1).text()) for r, e in enumerate(manager.entries)
                     if e.name == "tiny")
    assert sources == [("tiny", ""), ("tiny", "alice/Tiny-GGUF")]
    assert manager.table.horizontalHeaderItem(1).text() == "From"


def test_unload_is_off_while_no_model_is_loaded(qtbot, library_folder) -> None:
    manager = ModelsWindow(LibrarySession(ModelLibrary()))
    qtbot.addWidget(manager)
    manager.set_current(None)  # what the window's model commands say with no model
    assert not manager.buttons["unload"].isEnabled()  # before the scan answers, too
    manager.show()
    qtbot.waitUntil(lambda: manager.table.rowCount() > 0, timeout=10_000)
    assert not manager.buttons["unload"].isEnabled()
    manager.set_current(str(library_folder / "tiny.gguf"))
    assert manager.buttons["unload"].isEnabled()


def test_a_broken_models_settings_are_shown_but_not_editable(qtbot, library_folder) -> None:
    manager = open_manager(qtbot)
    select(manager, "notes")
    panel = manager.settings
    assert not panel.context.isEnabled() and not panel.apply_button.isEnabled()
    assert "GGUF" in panel.model_label.text() and panel.model_label.isEnabled()  # the reason stays legible
    select(manager, "tiny")
    assert panel.context.isEnabled()


def test_the_status_column_shows_a_broken_models_whole_reason(qtbot, library_folder) -> None:
    manager = open_manager(qtbot)
    manager.resize(800, 600)
    table = manager.table
    row = next(r for r, e in enumerate(manager.entries) if e.name == "notes")

    def needed() -> int:
        width = table.columnWidth(STATUS) - 8  # less the cell's margins
        return table.fontMetrics().boundingRect(QRect(0, 0, width, 10_000), Qt.TextFlag.TextWordWrap,
                                                table.item(row, STATUS).text()).height()

    qtbot.waitUntil(lambda: table.columnWidth(STATUS) < 400, timeout=5_000)  # laid out at 800 px
    assert needed() > table.fontMetrics().height()  # the reason takes several lines at this width
    qtbot.waitUntil(lambda: table.rowHeight(row) >= needed(), timeout=5_000)
