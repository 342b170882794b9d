"""Issue 12, Defaults vs this chat: "Save as default" and "Reset" in the
sampling and system prompt panels."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.chat.defaults import ChatDefaults, DefaultsStore
from app.core.chat.presets import PresetStore
from app.core.chat.sampling import SamplingParams
from app.core.chat.system_prompts import SystemPromptStore
from app.session.chat_defaults import ChatDefaultsSession
from app.session.sampling import SamplingSettings
from app.ui.chat.sampling_panel import SamplingPanel
from app.ui.chat.system_prompt_panel import SystemPromptPanel


@pytest.fixture
def defaults(tmp_path: Path) -> ChatDefaultsSession:
    return ChatDefaultsSession(DefaultsStore(tmp_path / "chat-defaults.json"))


def test_the_sampling_panel_saves_this_chats_settings_as_the_default_and_resets_to_it(
        qtbot, tmp_path: Path, defaults: ChatDefaultsSession) -> None:
    settings = SamplingSettings()
    panel = SamplingPanel(settings, presets=PresetStore(tmp_path / "presets.json"), defaults=defaults)
    qtbot.addWidget(panel)
    panel.show()
    buttons = panel.defaults_buttons
    assert buttons.save_button.isVisible() and buttons.save_button.text() == "Save as default"
    assert "New chats will start with" in buttons.save_button.toolTip()
    panel.rows["temperature"].spin.setValue(0.35)
    with qtbot.waitSignal(defaults.saved, timeout=5000):
        qtbot.mouseClick(buttons.save_button, Qt.MouseButton.LeftButton)
    assert buttons.hint.text() == "New chats will start with these sampling settings."
    assert DefaultsStore(defaults.store.path).load().sampling.temperature == 0.35  # on disk
    panel.rows["temperature"].spin.setValue(1.5)
    panel.rows["top_k"].spin.setValue(7)
    qtbot.mouseClick(panel.reset_button, Qt.MouseButton.LeftButton)
    assert settings.params == SamplingParams(temperature=0.35)  # the user's default, not llama.cpp's
    panel.clear_hints()  # another chat is shown
    assert buttons.hint.isHidden()


def test_the_system_prompt_panel_saves_the_default_and_resets_to_it_undoably(
        qtbot, tmp_path: Path, defaults: ChatDefaultsSession) -> None:
    panel = SystemPromptPanel(SystemPromptStore(tmp_path / "prompts.json"), defaults=defaults)
    qtbot.addWidget(panel)
    panel.show()
    committed: list[str] = []
    panel.changed.connect(committed.append)
    qtbot.keyClicks(panel.editor, "Answer in French.")
    buttons = panel.defaults_buttons
    with qtbot.waitSignal(defaults.saved, timeout=5000):
        qtbot.mouseClick(buttons.save_button, Qt.MouseButton.LeftButton)
    assert buttons.hint.text() == "New chats will start with this system prompt."
    assert DefaultsStore(defaults.store.path).load() == ChatDefaults(system_prompt="Answer in French.")

    panel.editor.selectAll()
    qtbot.keyClicks(panel.editor, "You are a pirate.")
    panel.commit()
    qtbot.mouseClick(buttons.reset_button, Qt.MouseButton.LeftButton)
    assert panel.editor.toPlainText() == "Answer in French." and committed[-1] == "Answer in French."
    qtbot.keyClick(panel.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.editor.toPlainText() == "You are a pirate."  # the reset is one step to undo


def test_a_panel_on_its_own_offers_no_save_and_resets_to_the_built_in_values(qtbot, tmp_path: Path) -> None:
    panel = SystemPromptPanel(SystemPromptStore(tmp_path / "prompts.json"))
    qtbot.addWidget(panel)
    panel.show()
    qtbot.keyClicks(panel.editor, "Be brief.")
    assert not panel.defaults_buttons.save_button.isVisible()
    panel.defaults_buttons.reset_button.click()
    assert panel.editor.toPlainText() == ""
