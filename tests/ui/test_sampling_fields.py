"""Issue 12, items 9 and 10: number fields say their range and what they did with a value out of it;
Max tokens can be "until the context is full"; preset imports and deletes keep the user's presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractSpinBox, QFileDialog, QMessageBox

from app.core.chat.presets import PresetStore
from app.core.chat.sampling import UNTIL_FULL, SamplingParams
from app.ui.chat.sampling_panel import SamplingPanel
from app.ui.shell.theme import DARK, LIGHT


def type_number(qtbot, spin: QAbstractSpinBox, text: str) -> None:
    """What a user does: select the field's text, type, press Enter."""
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


def note_color(row) -> str:
    return row.note.palette().color(QPalette.ColorRole.WindowText).name()


def test_every_field_shows_its_range_beside_it(panel: SamplingPanel) -> None:
    for name, row in panel.rows.items():
        assert row.note.isVisible() and row.note.text() == row.range_text, name
        assert row.range_text in row.toolTip(), name
    assert panel.rows["top_k"].range_text == "0 to 200"
    assert panel.rows["temperature"].range_text == "0 to 2"
    assert panel.rows["max_tokens"].range_text == "1 to 32,768"
    assert "until the context is full" in panel.rows["max_tokens"].toolTip()


@pytest.mark.parametrize(("name", "typed", "used", "said"), [
    ("top_k", "-5", 0, "-5 is below 0: set to 0."),
    ("temperature", "2.5", 2.0, "2.5 is above 2: set to 2."),
    ("max_tokens", "99999", 32768, "99,999 is above 32,768: set to 32,768."),
])
def test_a_value_out_of_range_is_set_to_the_nearest_end_and_the_field_says_so(
        qtbot, panel: SamplingPanel, settings, name: str, typed: str, used: float, said: str) -> None:
    row = panel.rows[name]
    type_number(qtbot, row.spin, typed)
    assert getattr(settings.params, name) == used and row.spin.value() == used
    assert row.note.text() == said and note_color(row) == LIGHT.error
    type_number(qtbot, row.spin, "1")  # a value in range: the note shows the range again
    assert getattr(settings.params, name) == 1 and row.note.text() == row.range_text
    assert note_color(row) == LIGHT.muted


def test_max_tokens_until_the_context_is_full(qtbot, panel: SamplingPanel, settings) -> None:
    row = panel.rows["max_tokens"]
    type_number(qtbot, row.spin, "700")
    assert settings.params.max_tokens == 700
    type_number(qtbot, row.spin, "-1")  # llama.cpp's "no limit"
    assert settings.params.max_tokens == UNTIL_FULL and row.until_full.isChecked()
    assert not row.spin.isEnabled() and not row.slider.isEnabled()
    assert row.note.text() == "-1 means no limit: the answer may run until the context is full."
    row.until_full.click()  # a limit again: the last one
    assert settings.params.max_tokens == 700 and row.spin.isEnabled() and row.spin.value() == 700
    row.until_full.click()
    assert settings.params.max_tokens == UNTIL_FULL
    settings.set_params(SamplingParams(max_tokens=300))  # another chat's settings
    assert not row.until_full.isChecked() and row.spin.value() == 300 and row.note.text() == row.range_text
    settings.set_params(SamplingParams(max_tokens=UNTIL_FULL))
    assert row.until_full.isChecked() and not row.spin.isEnabled()


def test_a_negative_seed_means_random_and_says_so(qtbot, panel: SamplingPanel, settings) -> None:
    seed = panel.seed_row
    seed.random.click()
    type_number(qtbot, seed.spin, "-1")  # llama.cpp's "random"
    assert settings.params.seed is None and seed.random.isChecked()
    assert seed.note.text() == "-1 means random: a new seed for every answer."
    seed.random.click()
    type_number(qtbot, seed.spin, "42")
    assert settings.params.seed == 42 and seed.note.text() == "0 to 2,147,483,647"


def test_the_notes_follow_a_theme_switch(qtbot, panel: SamplingPanel, restore_theme) -> None:
    restore_theme("light")
    row = panel.rows["top_k"]
    type_number(qtbot, row.spin, "-5")
    assert note_color(row) == LIGHT.error
    restore_theme("dark")  # Qt delivers the palette change as events
    qtbot.waitUntil(lambda: note_color(row) == DARK.error, timeout=5_000)
    assert note_color(panel.rows["top_p"]) == DARK.muted


def test_deleting_a_preset_asks_first(panel: SamplingPanel, settings, presets: PresetStore,
                                      monkeypatch) -> None:
    presets.save("Mine", SamplingParams(top_k=7))
    panel._reload_presets()
    panel.apply_preset("Mine")
    asked: list[str] = []

    def answer(button):
        return lambda _parent, _title, text, *rest: asked.append(text) or button

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    panel.delete_preset_button.click()
    assert "Mine" in presets.names() and "“Mine”" in asked[0]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    panel.delete_preset_button.click()
    assert "Mine" not in presets.names() and panel.preset_combo.findData("Mine") == -1


def test_importing_a_name_in_use_adds_it_under_a_new_name_and_says_so(panel: SamplingPanel,
                                                                      presets: PresetStore,
                                                                      tmp_path: Path, monkeypatch) -> None:
    presets.save("Fast", SamplingParams(top_k=7))
    path = tmp_path / "shared.json"
    path.write_text(json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": [
        {"name": "Fast", "sampling": {"top_k": 99}}, {"name": "New", "sampling": {"top_k": 3}}]}),
        encoding="utf-8")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(path), ""))
    panel.import_presets_button.click()
    assert presets.get("Fast") == SamplingParams(top_k=7)  # the user's own is not replaced
    assert presets.get("Fast (2)") == SamplingParams(top_k=99)
    assert presets.get("New") == SamplingParams(top_k=3)
    assert panel.preset_combo.findData("Fast (2)") != -1
    assert panel.preset_hint.text() == ("Imported 2 presets. Added “Fast” as “Fast (2)”, as you have a "
                                        "preset of that name already.")
    panel.import_presets_button.click()  # the same file again: both are there already
    assert panel.preset_hint.text() == "Nothing to import: you have the 2 presets in shared.json already."
    assert len(presets.names()) == 6
