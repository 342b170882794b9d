"""window.ini: each value read is checked; one that cannot be used falls back to its default, the
file is kept as window.ini.bad first, and the user is told once."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter

from app import paths
from app.core.common import settings_file, window_settings
from app.ui.shell.preferences import Preferences


@pytest.fixture
def ini() -> Path:
    return paths.config_dir() / "window.ini"


def splitter_state(sizes: list[int]) -> QByteArray:
    """A QSplitter state as Qt 6 writes it, with the given pane sizes."""
    head = struct.pack(">iiI", 0xFF, 1, len(sizes)) + struct.pack(f">{len(sizes)}i", *sizes)
    return QByteArray(head + bytes.fromhex("01ffffffff010000000100"))


def store(ini: Path, **values) -> None:
    settings = QSettings(str(ini), QSettings.Format.IniFormat)
    for key, value in values.items():
        settings.setValue(key.replace("__", "/"), value)
    settings.sync()


def main_splitter(qtbot) -> QSplitter:
    """Three panes sized as the main window sizes them before restoring."""
    splitter = QSplitter()
    for text in ("list", "chat", "side"):
        splitter.addWidget(QLabel(text))
    splitter.setSizes([240, 680, 280])
    splitter.resize(1200, 600)
    qtbot.addWidget(splitter)
    return splitter


def test_a_collapsing_splitter_value_is_not_restored(qtbot, ini: Path) -> None:
    store(ini, window__splitter=splitter_state([0, 0, 0]), view__theme="dark")
    prefs = Preferences()
    splitter = main_splitter(qtbot)
    if prefs.splitter is not None:
        splitter.restoreState(prefs.splitter)
    splitter.show()
    qtbot.waitExposed(splitter)
    assert all(size > 0 for size in splitter.sizes())  # was: [1192, 0, 0], the chat gone
    assert prefs.theme == "dark"
    [notice] = settings_file.take_notices()
    assert notice == (f"Some of your window settings in {ini} could not be used (pane sizes: pane sizes "
                      f"[0, 0, 0] would hide the window's contents); the file was kept as window.ini.bad "
                      f"and they went back to their defaults.")
    assert Preferences().splitter is None and settings_file.take_notices() == []  # said once


@pytest.mark.parametrize("value", ["@ByteArray(garbage)", "-1, -5", "a, b", "@ByteArray()",
                                   "@ByteArray(\\0\\0\\0\\xff\\0\\0\\0\\x1\\0\\0\\0\\x2\\xff\\xff"
                                   "\\xff\\xf0\\0\\0\\0\\x5)"])
def test_garbage_splitter_values_fall_back_to_the_default(ini: Path, value: str) -> None:
    content = f"[view]\ntheme=light\n\n[window]\nsplitter={value}\n"
    ini.write_text(content)
    prefs = Preferences()
    assert prefs.splitter is None and prefs.theme == "light"
    assert ini.with_name("window.ini.bad").read_text() == content


def test_each_bad_value_falls_back_alone(ini: Path) -> None:
    ini.write_text("[window]\ngeometry=@ByteArray(junk)\n\n[view]\ntheme=purple, green\ntext_size=999\n\n"
                   "[chat]\noverflow_policy=stop, never\nlast_conversation=abc\n")
    prefs = Preferences()
    assert (prefs.geometry, prefs.theme, prefs.text_size, prefs.overflow_policy) == \
           (None, "system", None, "drop_oldest")
    assert prefs.last_conversation == "abc"
    [notice] = settings_file.take_notices()
    for label in ("window position", "theme", "text size", "long-chat policy"):
        assert label in notice
    assert window_settings.check_window_file(ini) == "ok"  # the bad values were removed


def test_good_values_round_trip_without_a_word(qtbot, ini: Path) -> None:
    window = QMainWindow()
    qtbot.addWidget(window)
    window.resize(900, 600)
    window.show()
    qtbot.waitExposed(window)
    splitter = main_splitter(qtbot)
    prefs = Preferences()
    prefs.geometry, prefs.splitter = window.saveGeometry(), splitter.saveState()
    prefs.theme, prefs.text_size, prefs.overflow_policy = "dark", 14, "stop"
    prefs.last_conversation = "0123abcd"
    again = Preferences()
    assert (again.geometry, again.splitter) == (window.saveGeometry(), splitter.saveState())
    assert (again.theme, again.text_size, again.overflow_policy, again.last_conversation) == \
           ("dark", 14, "stop", "0123abcd")
    assert settings_file.take_notices() == [] and not ini.with_name("window.ini.bad").exists()
    assert window_settings.check_window_file(ini) == "ok"


def test_an_earlier_bad_copy_is_never_overwritten(ini: Path) -> None:
    ini.with_name("window.ini.bad").write_text("earlier")
    ini.write_text("[view]\ntheme=purple\n")
    assert Preferences().theme == "system"
    assert ini.with_name("window.ini.bad").read_text() == "earlier"
    assert ini.with_name("window.ini.1.bad").read_text() == "[view]\ntheme=purple\n"


def test_a_fifo_in_place_of_the_file_is_set_aside(ini: Path) -> None:
    os.mkfifo(ini)
    prefs = Preferences()  # QSettings would wait for a writer forever
    assert prefs.theme == "system" and ini.with_name("window.ini.bad").exists() and not ini.exists()
    assert "not a regular file" in settings_file.take_notices()[0]


def test_a_file_qt_cannot_parse_is_set_aside_whole(ini: Path) -> None:
    ini.write_text("[view\ntheme=dark\n")
    prefs = Preferences()
    assert prefs.theme == "system" and ini.with_name("window.ini.bad").read_text() == "[view\ntheme=dark\n"
    prefs.theme = "light"
    assert Preferences().theme == "light"
    [notice] = settings_file.take_notices()
    assert notice == (f"Your window settings in {ini} could not be read (it is not a valid settings file); "
                      f"the file was kept as window.ini.bad and Llamadesk started with the default layout.")


def test_the_window_starts_with_every_settings_file_damaged(qtbot, ini: Path) -> None:
    from app.ui.main_window import MainWindow

    config = ini.parent
    (config / "system-prompts.json").write_text('{"prompts": ["a"]}')  # was: AttributeError, no window
    (config / "sampling-presets.json").write_text("[" * 100_000)
    (config / "library.json").write_text('{"folders": "x"}')
    ini.write_text("[window]\nsplitter=@ByteArray(\\0\\0\\0\\xff\\0\\0\\0\\x1\\0\\0\\0\\x1\\0\\0\\0\\0)\n")
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert all(size > 0 for size in window.splitter.sizes())
    notices = settings_file.take_notices()
    assert len(notices) == 4
    for name in ("system-prompts.json", "sampling-presets.json", "library.json", "window.ini"):
        assert (config / f"{name}.bad").exists() and any(name in notice for notice in notices)
    window.close()
