"""Issue 15: what the user sees of speculative decoding. The Model tab's "Speculative decoding" and
"Draft model" settings are part of the load settings (and of what is saved for a model); the memory
estimate counts drafting's share and says why drafting will not be as asked; after loading, the
panel says what drafts; an answer's footer says how many drafted tokens were accepted."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from PySide6.QtGui import QTextCharFormat, QTextCursor, QTextDocument

from app.core.conversations.conversation import GenerationRecord, Message
from app.core.inference.types import LoadOptions, ModelInfo
from app.core.models.drafting_plan import logits_bytes
from app.core.models.gguf_info import read_model
from app.core.models.library import ModelLibrary, ModelSettings
from app.core.models.library_files import human_size
from app.ui.chat.message_footer import footer_tooltip, insert_footer, message_footer
from app.ui.models.load_settings_panel import NO_DRAFT_MODEL, LoadSettingsPanel
from tests.fixtures.hostile_gguf import string, strings, u32, write


@pytest.fixture
def panel(qtbot) -> LoadSettingsPanel:
    widget = LoadSettingsPanel()
    qtbot.addWidget(widget)
    widget.show()
    return widget


def other_vocabulary(path: Path) -> Path:
    """A small llama whose 128-token vocabulary is not SmolLM2's 49,152."""
    tokens = [f"t{i}" for i in range(128)]
    write(path, [string("general.architecture", "llama"), u32("llama.block_count", 1),
                 string("tokenizer.ggml.model", "gpt2"), strings("tokenizer.ggml.tokens", tokens)])
    return path


def draft_read(qtbot, panel: LoadSettingsPanel) -> None:
    """The draft model's header is read in a worker thread: wait for that task to end."""
    task = panel._draft_reading.task
    if task is not None:
        qtbot.waitUntil(task.done, timeout=10_000)


def test_the_drafting_settings_go_into_the_options_and_the_saved_settings(qtbot, panel, tmp_path,
                                                                          monkeypatch) -> None:
    assert panel.drafting.currentData() == "auto" and panel.drafting.currentText() == "Automatic"
    assert [panel.drafting.itemText(i) for i in range(3)] == ["Automatic", "Always on", "Off"]
    assert "guessed tokens in one pass" in panel.drafting.toolTip()
    assert "still the model's own choice" in panel.drafting.toolTip()
    assert panel.draft_field.text() == "" and panel.draft_field.placeholderText() == NO_DRAFT_MODEL
    assert panel.draft_field.isReadOnly() and not panel.clear_draft.isEnabled()

    draft = other_vocabulary(tmp_path / "tiny-draft.gguf")
    monkeypatch.setattr("app.ui.models.load_settings_panel.QFileDialog.getOpenFileName",
                        lambda *args: (str(draft), "GGUF models (*.gguf)"))  # the system's file dialog
    panel.choose_draft.click()
    panel.drafting.setCurrentIndex(panel.drafting.findData("on"))
    draft_read(qtbot, panel)
    assert panel.draft_field.text() == "tiny-draft.gguf" and panel.draft_field.toolTip() == str(draft)
    chosen = panel.options()
    assert (chosen.drafting, chosen.draft_model) == ("on", str(draft))
    with qtbot.waitSignal(panel.apply_requested) as applied:
        panel.apply_button.click()
    assert applied.args == [chosen]

    library = ModelLibrary(tmp_path / "library.json", tmp_path / "models")  # what Apply saves, read again
    library.set_settings(tmp_path / "big.gguf", ModelSettings(**asdict(chosen)))
    reopened = LoadSettingsPanel(ModelLibrary(tmp_path / "library.json", tmp_path / "models")
                                 .settings_for(tmp_path / "big.gguf").load_options())
    qtbot.addWidget(reopened)
    draft_read(qtbot, reopened)
    assert reopened.options() == chosen and reopened.drafting.currentText() == "Always on"
    assert not reopened.apply_button.isEnabled()  # the settings in force: nothing to apply

    reopened.clear_draft.click()
    assert reopened.options().draft_model == "" and reopened.draft_field.text() == ""
    assert reopened.apply_button.isEnabled()
    reopened.drafting.setCurrentIndex(reopened.drafting.findData("off"))
    assert not reopened.choose_draft.isEnabled()  # no draft model to choose when nothing drafts
    assert reopened.options().drafting == "off"


def test_the_estimate_counts_drafting_and_says_why_a_draft_model_cannot_draft(qtbot, panel, model_path,
                                                                                tmp_path) -> None:
    panel.set_header(read_model(model_path))
    lookup = human_size(logits_bytes(49_152))
    assert f"({lookup} of it for drafting): " in panel.estimate.text()
    assert panel.drafting_note.isHidden()

    panel.set_draft_model(str(other_vocabulary(tmp_path / "tiny-draft.gguf")))
    draft_read(qtbot, panel)
    assert panel.drafting_note.text() == (
        "tiny-draft.gguf cannot draft for this model: their vocabularies differ in size (49,152 and 128 "
        "tokens). Prompt lookup drafts instead.")
    assert panel.drafting_note.isVisibleTo(panel)
    assert f"({lookup} of it for drafting)" in panel.estimate.text()
    assert panel.problem.isHidden() and panel.apply_button.isEnabled()  # a notice: Apply still works

    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    panel.set_draft_model(str(junk))
    draft_read(qtbot, panel)
    assert panel.drafting_note.text().startswith("The draft model junk.gguf cannot be used (")
    assert "prompt lookup drafts instead" in panel.drafting_note.text()

    panel.set_draft_model(str(model_path))  # a draft model sharing the vocabulary: its weights count too
    draft_read(qtbot, panel)
    assert panel.drafting_note.isHidden()
    share = panel.estimate.text().split("tokens (")[1].split(" of it for drafting")[0]
    assert share != lookup and share.endswith("MB")

    panel.drafting.setCurrentIndex(panel.drafting.findData("off"))
    assert "for drafting" not in panel.estimate.text() and panel.drafting_note.isHidden()


def test_the_loaded_model_says_what_drafts(panel) -> None:
    info = ModelInfo("/models/big.gguf", "Big", "llama", 4096, 30, 0, "CPU", "model", "0.3",
                     drafting="prompt lookup",
                     drafting_note="tiny.gguf cannot draft for this model: their vocabularies differ.")
    panel.show_model(info)
    assert "Speculative decoding: prompt lookup" in panel.model_label.text()
    assert "tiny.gguf cannot draft for this model" in panel.model_label.text()
    panel.show_model(ModelInfo("/models/big.gguf", "Big", "llama", 4096, 30, 0, "CPU", "model", "0.3",
                               drafting="draft model small.gguf"))
    assert "Speculative decoding: draft model small.gguf" in panel.model_label.text()
    assert "cannot draft" not in panel.model_label.text()
    panel.show_model(ModelInfo("/models/big.gguf", "Big", "llama", 4096, 30, 0, "CPU", "model", "0.3"))
    assert "Speculative decoding: off" in panel.model_label.text()
    panel.set_options(LoadOptions(drafting="off"))
    assert panel.options() == LoadOptions(drafting="off")


def answer(**drafting) -> Message:
    record = GenerationRecord(model_file="SmolLM2.gguf", completion_tokens=400, tokens_per_s=80.5, ttft_s=0.2,
                              stop_reason="eos", **drafting)
    return Message("assistant", "count = 1", generation=record)


def test_the_footer_shows_the_share_of_drafts_accepted_and_its_tooltip_the_details() -> None:
    drafted = answer(drafting="prompt lookup", drafted_tokens=312, accepted_tokens=262)
    assert message_footer(drafted).endswith(" · 84%\u00a0of\u00a0drafts\u00a0accepted")
    assert footer_tooltip(drafted) == "Drafting (prompt lookup): 84% of 312 guessed tokens accepted"

    stopped = answer(drafting="prompt lookup", drafted_tokens=40, accepted_tokens=4, drafting_turned_off=True)
    assert message_footer(stopped).endswith(" · 10%\u00a0of\u00a0drafts\u00a0accepted")
    assert footer_tooltip(stopped) == ("Drafting (prompt lookup): 10% of 40 guessed tokens accepted; "
                                       "Automatic paused it where too few were right")

    plain = answer()
    assert "draft" not in message_footer(plain) and footer_tooltip(plain) == ""

    document = QTextDocument()  # as the chat view writes it: the facts carry the tooltip
    insert_footer(QTextCursor(document), drafted, None, QTextCharFormat(), lambda href: QTextCharFormat())
    cursor = QTextCursor(document)
    cursor.movePosition(QTextCursor.MoveOperation.End)
    assert cursor.charFormat().toolTip() == footer_tooltip(drafted)
