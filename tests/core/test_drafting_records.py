"""Issue 15: what is kept of speculative decoding outside the engine. The Model tab's two settings
(drafting mode, draft model) are checked and stored per model in library.json; an answer's record
keeps what drafted and how many guesses were accepted, through the database, a JSON export and
import, and the Markdown export; files and records from before drafting load with its defaults."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from app.core.chat.sampling import SamplingParams
from app.core.conversations.conversation import Conversation, GenerationRecord
from app.core.conversations.recovery import recover
from app.core.conversations.store import ConversationStore
from app.core.conversations.transcript_json import TranscriptError, from_json, to_json
from app.core.conversations.transcripts import to_markdown
from app.core.inference.types import GenerationStats, ModelInfo
from app.core.models.library import ModelLibrary, ModelSettings
from app.core.models.library_files import LibraryError
from app.session.answer_records import AnswerRecords

DRAFTED = dict(drafting="prompt lookup", drafted_tokens=312, accepted_tokens=262, drafting_turned_off=True)


def drafted_conversation() -> Conversation:
    c = Conversation(title="Edit this code", model="SmolLM2.gguf")
    c.append("user", "Rename x to count in: x = 1")
    answer = c.append("assistant", "count = 1")
    answer.generation = GenerationRecord(model_file="SmolLM2.gguf", completion_tokens=400, tokens_per_s=80.5,
                                         stop_reason="eos", sampling=SamplingParams().to_dict(), **DRAFTED)
    return c


# -- the Model tab's settings, as the library keeps them ---------------------------------------------

@pytest.mark.parametrize("values, words", [
    ({"drafting": "sometimes"}, "Speculative decoding must be one of auto, on, off"),
    ({"drafting": None}, "Speculative decoding must be one of auto, on, off"),
    ({"draft_model": 3}, "The draft model must be the name of a GGUF file, or empty"),
    ({"draft_model": "/models/notes.txt"}, "The draft model must be a GGUF file (.gguf), not notes.txt"),
])
def test_settings_refuse_an_unknown_drafting_mode_or_a_draft_model_that_is_no_gguf(values, words) -> None:
    with pytest.raises(LibraryError) as refused:
        ModelSettings(**values)
    assert refused.value.kind == LibraryError.INVALID_SETTINGS
    assert words in refused.value.message


def test_the_drafting_settings_are_stored_per_model_and_older_files_load_with_the_defaults(tmp_path) -> None:
    settings_file = tmp_path / "library.json"
    library = ModelLibrary(settings_file, tmp_path / "models")
    chosen = ModelSettings(drafting="on", draft_model=str(tmp_path / "draft.gguf"))
    library.set_settings(tmp_path / "big.gguf", chosen)
    library.set_settings(tmp_path / "other.gguf", ModelSettings(drafting="off"))
    again = ModelLibrary(settings_file, tmp_path / "models")
    assert again.settings_for(tmp_path / "big.gguf") == chosen
    assert again.settings_for(tmp_path / "big.gguf").load_options().draft_model == chosen.draft_model
    assert again.settings_for(tmp_path / "other.gguf").load_options().drafting == "off"

    document = json.loads(settings_file.read_text())
    for stored in document["models"].values():  # as a version before drafting wrote them
        del stored["drafting"], stored["draft_model"]
    settings_file.write_text(json.dumps(document))
    older = ModelLibrary(settings_file, tmp_path / "models").settings_for(tmp_path / "big.gguf")
    assert (older.drafting, older.draft_model) == ("auto", "")


# -- an answer's record ------------------------------------------------------------------------------

def test_a_local_answers_record_copies_the_drafting_of_its_stats(store, model_path: Path) -> None:
    info = ModelInfo(str(model_path), "SmolLM2", "llama", 4096, 30, 0, "CPU", "model", "0.3",
                     drafting="prompt lookup")
    stats = GenerationStats(20, 400, 0.1, 80.5, 5.0, "eos", **DRAFTED)
    record = AnswerRecords(store).record(info, SamplingParams(), stats, 0)
    assert (record.drafting, record.drafted_tokens, record.accepted_tokens, record.drafting_turned_off) == \
        ("prompt lookup", 312, 262, True)
    assert record.acceptance == 262 / 312
    undrafted = GenerationStats(20, 40, 0.1, 80.5, 0.5, "eos")
    plain = AnswerRecords(store).record(info, SamplingParams(), undrafted, 0)
    assert (plain.drafting, plain.drafted_tokens, plain.acceptance) == ("", 0, None)


def test_a_drafted_answers_record_survives_the_database_and_recovery(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    original = drafted_conversation()
    store = ConversationStore(path)
    store.insert_conversations([original])
    store.close()
    for reopen in (lambda: None, lambda: recover(path)):  # as saved, and as rebuilt from a damaged file
        reopen()
        store = ConversationStore(path)
        try:
            loaded = store.load(original.id)
        finally:
            store.close()
        assert loaded.thread()[-1].generation == original.thread()[-1].generation
        assert loaded.thread()[-1].generation.drafted_tokens == 312


def test_a_record_stored_before_drafting_loads_with_nothing_drafted(store) -> None:
    original = drafted_conversation()
    store.insert_conversations([original])
    answer = original.thread()[-1]
    older = {k: v for k, v in asdict(answer.generation).items() if k not in DRAFTED}
    store.db.execute("UPDATE messages SET generation = ? WHERE id = ?", (json.dumps(older), answer.id))
    store.db.commit()
    loaded = store.load(original.id).thread()[-1].generation
    assert (loaded.drafting, loaded.drafted_tokens, loaded.accepted_tokens, loaded.drafting_turned_off) == \
        ("", 0, 0, False)
    assert loaded.completion_tokens == 400


def test_json_export_and_import_keep_the_drafting_and_older_files_import() -> None:
    original = drafted_conversation()
    text = to_json([original])
    [back] = from_json(text)
    assert back.thread()[-1].generation == original.thread()[-1].generation

    document = json.loads(text)
    generation = document["conversations"][0]["messages"][1]["generation"]
    assert {k: generation[k] for k in DRAFTED} == DRAFTED
    for key in DRAFTED:  # a file from before drafting
        del generation[key]
    [older] = from_json(json.dumps(document))
    assert older.thread()[-1].generation.acceptance is None

    plain = drafted_conversation()
    plain.thread()[-1].generation = GenerationRecord(model_file="SmolLM2.gguf", completion_tokens=3)
    written = json.loads(to_json([plain]))["conversations"][0]["messages"][1]["generation"]
    assert not set(DRAFTED) & set(written)  # an answer nothing drafted is written as before


@pytest.mark.parametrize("changes, words", [
    ({"drafted_tokens": -1}, "generation.drafted_tokens must be 0 or more, not -1"),
    ({"accepted_tokens": "262"}, "generation.accepted_tokens must be an integer, not '262'"),
    ({"drafting_turned_off": 1}, "generation.drafting_turned_off must be true or false, not 1"),
    ({"drafting": 7}, "generation.drafting must be a string, not 7"),
    ({"accepted_tokens": 400}, "generation.accepted_tokens must not exceed its drafted_tokens (400 > 312)"),
])
def test_an_import_refuses_drafting_fields_that_make_no_sense(changes, words) -> None:
    document = json.loads(to_json([drafted_conversation()]))
    document["conversations"][0]["messages"][1]["generation"].update(changes)
    with pytest.raises(TranscriptError) as refused:
        from_json(json.dumps(document))
    assert words in str(refused.value)


def test_the_markdown_export_says_how_many_guesses_were_accepted() -> None:
    conversation = drafted_conversation()
    assert ("prompt lookup: 84% of 312 drafted tokens accepted, paused where too few were right"
            in to_markdown(conversation))
    conversation.thread()[-1].generation = GenerationRecord(model_file="SmolLM2.gguf", completion_tokens=3)
    assert "drafted" not in to_markdown(conversation)
