"""The sampling panel edits a SamplingSettings model and follows it; presets from the combo and buttons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QPalette, QWheelEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QMessageBox, QScrollArea

from app.core.chat.presets import PresetStore
from app.core.chat.sampling import RANGES, SamplingParams
from app.session.sampling import SamplingSettings
from app.ui.chat.sampling_panel import SamplingPanel
from app.ui.chat.sampling_rows import format_stops, parse_stops
from app.ui.shell.theme import LIGHT

NUMERIC = {"temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "repeat_last_n",
           "presence_penalty", "frequency_penalty", "mirostat_tau", "mirostat_eta", "max_tokens"}


def choose(panel: SamplingPanel, name: str) -> None:
    """What a user picking `name` in the preset combo does."""
    index = panel.preset_combo.findData(name)
    assert index != -1, name
    panel.preset_combo.setCurrentIndex(index)
    panel.preset_combo.activated.emit(index)


def test_a_row_with_tooltip_for_every_numeric_parameter_inside_a_scroll_area(panel: SamplingPanel) -> None:
    assert set(panel.rows) == NUMERIC
    for name, row in panel.rows.items():
        assert row.toolTip().startswith(RANGES[name].help.split(";")[0]), name
        assert f"rom {row.range_text}" in row.toolTip(), name  # says its range
    assert panel.findChild(QScrollArea) is panel.scroll_area
    assert panel.mirostat_combo.toolTip() == RANGES["mirostat"].help


def test_float_row_slider_field_and_model_stay_in_step(panel: SamplingPanel, settings) -> None:
    row = panel.rows["presence_penalty"]
    row.slider.setValue(75)
    assert row.spin.value() == 0.75 and settings.params.presence_penalty == 0.75
    row.spin.setValue(1.2)
    assert row.slider.value() == 120 and settings.params.presence_penalty == 1.2
    settings.update(presence_penalty=0.3)
    assert row.spin.value() == 0.3 and row.slider.value() == 30


def test_int_row_slider_field_and_model_stay_in_step(panel: SamplingPanel, settings) -> None:
    row = panel.rows["repeat_last_n"]
    row.slider.setValue(256)
    assert row.spin.value() == 256 and settings.params.repeat_last_n == 256
    assert isinstance(settings.params.repeat_last_n, int)
    row.spin.setValue(-1)  # the whole context
    assert row.slider.value() == -1 and settings.params.repeat_last_n == -1
    row.spin.setValue(4096)  # beyond the slider's end: the field takes it, the slider stops at its end
    assert settings.params.repeat_last_n == 4096 and row.slider.value() == row.slider.maximum()


def test_mirostat_enables_tau_and_eta(panel: SamplingPanel, settings) -> None:
    tau, eta = panel.rows["mirostat_tau"], panel.rows["mirostat_eta"]
    assert panel.mirostat_combo.currentText() == "Off"
    assert not tau.isEnabled() and not eta.isEnabled()
    panel.mirostat_combo.setCurrentIndex(2)
    assert settings.params.mirostat == 2 and panel.mirostat_combo.currentText() == "Mirostat 2"
    assert tau.isEnabled() and eta.isEnabled()
    tau.spin.setValue(3.5)
    assert settings.params.mirostat_tau == 3.5
    settings.update(mirostat=0)
    assert panel.mirostat_combo.currentIndex() == 0 and not tau.isEnabled()


def test_seed_random_or_fixed(panel: SamplingPanel, settings, qtbot) -> None:
    seed = panel.seed_row
    assert seed.random.isChecked() and not seed.spin.isEnabled() and settings.params.seed is None
    qtbot.mouseClick(seed.random, Qt.MouseButton.LeftButton)
    assert not seed.random.isChecked() and seed.spin.isEnabled()
    assert settings.params.seed == seed.spin.value()
    seed.spin.setValue(1234)
    assert settings.params.seed == 1234
    seed.random.setChecked(True)
    assert settings.params.seed is None and not seed.spin.isEnabled()
    settings.update(seed=99)
    assert not seed.random.isChecked() and seed.spin.value() == 99


def type_stops(qtbot, panel: SamplingPanel, text: str) -> None:
    """Type into the stop strings field (without Enter)."""
    panel.stop_edit.selectAll()
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Delete)
    qtbot.keyClicks(panel.stop_edit, text)


def test_valid_stop_strings_reach_the_model(panel: SamplingPanel, settings, qtbot) -> None:
    type_stops(qtbot, panel, "User:, \\n\\n,  ###")
    assert settings.params.stop == ()  # while typing: nothing yet
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Return)
    assert settings.params.stop == ("User:", "\n\n", "###")
    assert panel.stop_hint.isHidden()
    panel.stop_edit.setText("A\nB")  # line breaks separate too (pasted text)
    panel.stop_edit.editingFinished.emit()
    assert settings.params.stop == ("A", "B")
    type_stops(qtbot, panel, "")
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Return)
    assert settings.params.stop == ()


def test_invalid_stop_strings_show_a_red_hint_and_change_nothing(panel: SamplingPanel, settings,
                                                                 qtbot) -> None:
    settings.update(stop=("User:",))
    assert panel.stop_edit.text() == "User:"
    qtbot.keyClicks(panel.stop_edit, ", " + "x" * 65)
    assert panel.stop_hint.isVisible() and "1 to 64 characters" in panel.stop_hint.text()
    assert panel.stop_hint.palette().color(QPalette.ColorRole.WindowText).name() == LIGHT.error
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Return)
    assert settings.params.stop == ("User:",)
    type_stops(qtbot, panel, ",".join("abcdefghi"))
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Return)
    assert "at most 8" in panel.stop_hint.text() and settings.params.stop == ("User:",)
    panel.rows["temperature"].spin.setValue(0.5)  # another change keeps what is being typed
    assert panel.stop_edit.text() == ",".join("abcdefghi") and panel.stop_hint.isVisible()
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Backspace)
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Backspace)
    assert panel.stop_hint.isHidden()  # 8 now: fine
    qtbot.keyClick(panel.stop_edit, Qt.Key.Key_Return)
    assert settings.params.stop == tuple("abcdefgh") and panel.stop_hint.isHidden()


def test_stop_text_round_trips() -> None:
    stops = ("User:", "\n\n", " x ", "a,b", "c\\d")
    assert parse_stops(format_stops(stops)) == stops
    assert parse_stops(" a ,, b ,") == ("a", "b")


def test_the_panel_follows_a_model_change(panel: SamplingPanel, settings) -> None:
    other = SamplingParams(temperature=1.3, top_k=5, min_p=0.2, typical_p=0.5, repeat_penalty=1.4,
                           repeat_last_n=128, presence_penalty=0.4, frequency_penalty=0.6, mirostat=1,
                           mirostat_tau=6.0, mirostat_eta=0.3, max_tokens=700, seed=77, stop=("Q:", "A,B"))
    settings.set_params(other)  # e.g. another conversation opened
    for name in NUMERIC:
        assert panel.rows[name].spin.value() == pytest.approx(getattr(other, name)), name
    assert panel.rows["temperature"].slider.value() == 130
    assert panel.mirostat_combo.currentText() == "Mirostat 1" and panel.rows["mirostat_tau"].isEnabled()
    assert panel.seed_row.spin.value() == 77 and not panel.seed_row.random.isChecked()
    assert parse_stops(panel.stop_edit.text()) == ("Q:", "A,B")
    assert panel.preset_combo.currentIndex() == -1 and panel.preset_combo.placeholderText() == "Custom"
    assert settings.params == other  # showing it changed nothing


def test_reset_to_defaults(panel: SamplingPanel, settings, qtbot) -> None:
    settings.set_params(SamplingParams(temperature=0.1, mirostat=2, seed=5, stop=("x",)))
    qtbot.mouseClick(panel.reset_button, Qt.MouseButton.LeftButton)
    assert settings.params == SamplingParams()
    assert panel.stop_edit.text() == "" and panel.seed_row.random.isChecked()
    assert panel.preset_combo.currentText() == "Balanced"


def test_presets_from_the_combo(panel: SamplingPanel, settings, presets: PresetStore) -> None:
    assert [panel.preset_combo.itemData(i) for i in range(panel.preset_combo.count())] == [
        "Precise", "Balanced", "Creative"]
    assert panel.preset_combo.currentText() == "Balanced"
    choose(panel, "Precise")
    assert settings.params == presets.get("Precise")
    assert panel.rows["temperature"].spin.value() == presets.get("Precise").temperature
    assert not panel.rename_preset_button.isEnabled() and not panel.delete_preset_button.isEnabled()
    panel.rows["top_k"].spin.setValue(33)
    assert panel.preset_combo.currentIndex() == -1  # edited: custom
    choose(panel, "Creative")
    assert settings.params == presets.get("Creative")


def test_save_as_rename_delete(panel: SamplingPanel, settings, presets: PresetStore, monkeypatch) -> None:
    settings.update(temperature=0.42, stop=("END",))
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("My preset", True))
    panel.save_preset_button.click()
    assert presets.get("My preset") == settings.params
    assert panel.preset_combo.currentText() == "My preset"
    assert panel.rename_preset_button.isEnabled() and panel.delete_preset_button.isEnabled()
    with_signal = []
    panel.presets_changed.connect(lambda: with_signal.append(True))

    settings.update(temperature=0.9)
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.No)
    panel.save_preset_button.click()  # the same name: asks before replacing
    assert presets.get("My preset").temperature == 0.42
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Yes)
    panel.save_preset_button.click()
    assert presets.get("My preset").temperature == 0.9

    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("Renamed", True))
    panel.rename_preset_button.click()
    assert "Renamed" in presets.names() and "My preset" not in presets.names()
    assert panel.preset_combo.currentText() == "Renamed"
    panel.delete_preset_button.click()
    assert presets.names() == ["Precise", "Balanced", "Creative"]
    assert panel.preset_combo.findData("Renamed") == -1
    assert settings.params.temperature == 0.9  # deleting a preset leaves the settings alone
    assert with_signal


def test_save_as_a_reserved_name_shows_why(panel: SamplingPanel, presets: PresetStore, monkeypatch) -> None:
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("balanced", True))
    panel.save_preset_button.click()
    assert panel.preset_hint.isVisible() and "built-in preset" in panel.preset_hint.text()
    assert presets.names() == ["Precise", "Balanced", "Creative"]
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("Anything", False))  # cancelled
    panel.save_preset_button.click()
    assert presets.names() == ["Precise", "Balanced", "Creative"]


def test_export_and_import_through_file_dialogs(qtbot, panel: SamplingPanel, presets: PresetStore,
                                                tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    panel.export_presets_button.click()
    assert "no presets of your own" in panel.preset_hint.text() and not target.with_suffix(".json").exists()
    presets.save("Shared", SamplingParams(top_k=9))
    panel.export_presets_button.click()
    assert panel.preset_hint.text() == "Exported 1 preset to out.json."
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["presets"][0]["name"] == "Shared"

    other_store = PresetStore(tmp_path / "other.json")
    other = SamplingPanel(SamplingSettings(), presets=other_store)
    qtbot.addWidget(other)
    exported = str(tmp_path / "out.json")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (exported, ""))
    other.import_presets_button.click()
    assert other_store.get("Shared") == SamplingParams(top_k=9)
    assert other.preset_combo.findData("Shared") != -1 and other.preset_hint.text() == "Imported 1 preset."

    (tmp_path / "bad.json").write_text("{nope", encoding="utf-8")
    bad = str(tmp_path / "bad.json")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (bad, ""))
    other.import_presets_button.click()
    assert "not a presets file" in other.preset_hint.text()
    assert other_store.names() == ["Precise", "Balanced", "Creative", "Shared"]


def test_the_wheel_scrolls_the_panel_instead_of_changing_an_unfocused_value(panel: SamplingPanel,
                                                                             settings) -> None:
    panel.resize(300, 300)
    slider = panel.rows["temperature"].slider
    event = QWheelEvent(QPointF(5, 5), QPointF(slider.mapToGlobal(QPoint(5, 5))), QPoint(0, 0),
                        QPoint(0, -120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(slider, event)
    assert settings.params.temperature == SamplingParams().temperature
    assert panel.scroll_area.verticalScrollBar().value() > 0
