"""A reasoning model's thought is stored apart from its answer (issue 12, "Reasoning models"): saved as
it streams, kept by copies and recovery, left out of search and of what the model reads again."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.core.conversations.conversation import Conversation, GenerationRecord, Message
from app.core.conversations.recovery import recover
from app.core.conversations.store import AnswerRecorder, ConversationStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "databases"
THOUGHT = "The user asks about llamas. Camelids live in the Andes."


def reasoned_conversation() -> Conversation:
    c = Conversation(title="Llamas")
    c.append("user", "Where do llamas live?")
    answer = c.append("assistant", "In South America.")
    answer.thought = THOUGHT
    answer.generation = GenerationRecord(completion_tokens=30, stop_reason="eos", thought_s=4.5)
    return c


def reopened(store: ConversationStore, conversation_id: str) -> Conversation:
    """The conversation as another connection reads it from disk."""
    fresh = ConversationStore(store.path)
    try:
        return fresh.load(conversation_id)
    finally:
        fresh.close()


def test_the_thought_is_stored_apart_and_left_out_of_the_models_history(store) -> None:
    original = reasoned_conversation()
    store.insert_conversations([original])
    loaded = reopened(store, original.id)
    assert loaded == original
    answer = loaded.thread()[-1]
    assert (answer.text, answer.thought, answer.generation.thought_s) == ("In South America.", THOUGHT, 4.5)
    assert loaded.chat_messages() == [{"role": "user", "content": "Where do llamas live?"},
                                      {"role": "assistant", "content": "In South America."}]
    copy = store.load(store.duplicate(original.id))
    assert copy.thread()[-1].thought == THOUGHT


def test_search_finds_the_answer_not_the_thought(store) -> None:
    store.insert_conversations([reasoned_conversation()])
    assert store.search("camelids") == []
    assert [hit.snippet for hit in store.search("south")] == ["In \x02South\x03 America."]


def test_a_database_from_before_thoughts_opens_with_none(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    shutil.copy(FIXTURES / "schema-5.sqlite3", path)
    store = ConversationStore(path)
    try:
        [summary] = store.list_conversations()
        loaded = store.load(summary.id)
        assert all(m.thought == "" for m in loaded.messages)
        old_record = loaded.find("m2").generation  # its JSON was written without thought_s
        assert (old_record.completion_tokens, old_record.thought_s) == (5, 0.0)
        answer = loaded.find("m3")
        answer.thought = "Now with a thought."
        store.complete_message(answer)
        assert store.load(summary.id).find("m3").thought == "Now with a thought."
    finally:
        store.close()


def test_a_thought_is_saved_while_it_streams_and_completed_with_the_answer(store) -> None:
    now = [0.0]
    c = Conversation()
    question = c.append("user", "Two and two?")
    store.add_message(c, question)
    answer = Message("assistant", "", parent_id=question.id)
    c.messages.append(answer)
    recorder = AnswerRecorder(store, c, answer, interval_s=1.0, clock=lambda: now[0])

    def on_disk() -> tuple[str, str, bool]:
        m = reopened(store, c.id).find(answer.id)
        return m.thought, m.text, m.incomplete

    recorder.feed("", "I add")
    now[0] = 1.0
    recorder.feed("", " two and two.")  # mid-thought: a kill now keeps what was thought
    assert on_disk() == ("I add two and two.", "", True)
    now[0] = 2.0
    recorder.feed("Four.")
    assert on_disk() == ("I add two and two.", "Four.", True)
    recorder.finish(GenerationRecord(stop_reason="eos", thought_s=1.5), incomplete=False)
    assert on_disk() == ("I add two and two.", "Four.", False)
    assert reopened(store, c.id).find(answer.id).generation.thought_s == 1.5


def test_a_continued_answer_counts_the_time_of_both_thoughts(store) -> None:
    c = reasoned_conversation()
    store.insert_conversations([c])
    answer = c.thread()[-1]
    recorder = AnswerRecorder(store, c, answer, resumed=True)
    recorder.feed(" Mostly Peru and Bolivia.")
    recorder.finish(GenerationRecord(completion_tokens=6, stop_reason="eos", thought_s=2.0), incomplete=False)
    stored = reopened(store, c.id).find(answer.id)
    assert stored.thought == THOUGHT and stored.generation.thought_s == 6.5


def test_recovery_keeps_the_thoughts(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    store = ConversationStore(path)
    original = reasoned_conversation()
    store.insert_conversations([original])
    store.close()
    recover(path)
    store = ConversationStore(path)
    try:
        answer = store.load(original.id).thread()[-1]
        assert answer.thought == THOUGHT
        assert answer.generation.thought_s == 4.5
    finally:
        store.close()


def test_recovery_of_a_database_from_before_thoughts(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    shutil.copy(FIXTURES / "schema-5.sqlite3", path)
    assert recover(path).messages == 4
    store = ConversationStore(path)
    try:
        [summary] = store.list_conversations()
        assert [m.thought for m in store.load(summary.id).messages] == ["", "", "", ""]
    finally:
        store.close()
