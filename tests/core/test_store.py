"""The SQLite store: migrations, round trips, durability helpers, full-text search."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from app.core.conversation import Conversation, GenerationRecord, Message
from app.core.sampling import SamplingParams
from app.core.store import (
    MATCH_END,
    MATCH_START,
    SCHEMA_VERSION,
    AnswerRecorder,
    ConversationStore,
    StoreError,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "databases"


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    s = ConversationStore(tmp_path / "conversations.sqlite3")
    yield s
    s.close()


def conversation_with_versions() -> Conversation:
    c = Conversation(title="Llamas", system_prompt="Be brief.",
                     sampling=SamplingParams(temperature=0.3, top_k=10, seed=7), model="x.gguf")
    question = c.append("user", "Tell me about llamas.")
    first = c.append("assistant", "Llamas are camelids.")
    first.generation = GenerationRecord(model_file="x.gguf", model_size=123, model_sha256="ab" * 32,
                                        sampling=c.sampling.to_dict(), seed=7, prompt_tokens=20,
                                        completion_tokens=5, ttft_s=0.1, tokens_per_s=99.5,
                                        stop_reason="eos", llama_cpp_version="0.3.36")
    first.current = False
    second = Message("assistant", "Llamas live in the Andes.", parent_id=question.id,
                     incomplete=True, generation=GenerationRecord(stop_reason="user"))
    c.messages.append(second)
    c.append("user", "And alpacas?")
    return c


def test_a_new_database_gets_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    ConversationStore(path).close()
    store = ConversationStore(path)  # reopening applies nothing twice
    rows = store.db.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION + 1))
def test_every_earlier_schema_opens_with_its_data(version: int, tmp_path: Path) -> None:
    fixture = FIXTURES / f"schema-{version}.sqlite3"
    assert fixture.exists(), "keep a fixture database for every schema (tests/fixtures/make_databases.py)"
    path = tmp_path / "old.sqlite3"
    shutil.copy(fixture, path)
    store = ConversationStore(path)
    try:
        assert store.schema_version == SCHEMA_VERSION
        [summary] = store.list_conversations()
        loaded = store.load(summary.id)
        assert [m.text for m in loaded.thread()] == ["Tell me about llamas.", "Llamas live in the Andes.",
                                                     "And alpacas?"]
        assert len(loaded.messages) == 4
        assert store.search("andes")[0].conversation_id == summary.id
    finally:
        store.close()


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    ConversationStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 0)", (SCHEMA_VERSION + 5,))
    db.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError) as caught:
        ConversationStore(path)
    assert "newer version of Llamadesk" in caught.value.message
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as caught:
        ConversationStore(path)
    assert "Cannot open the conversation database" in caught.value.message


def test_round_trip_keeps_versions_and_generation_records(store: ConversationStore) -> None:
    original = conversation_with_versions()
    [cid] = store.insert_conversations([original])
    assert cid == original.id
    assert store.load(cid) == original


def test_inserting_an_existing_conversation_adds_a_copy(store: ConversationStore) -> None:
    original = conversation_with_versions()
    store.insert_conversations([original])
    [copy_id] = store.insert_conversations([original])
    assert copy_id != original.id
    copy = store.load(copy_id)
    assert [m.text for m in copy.thread()] == [m.text for m in original.thread()]
    assert {m.id for m in copy.messages}.isdisjoint(m.id for m in original.messages)


def test_import_is_all_or_nothing(store: ConversationStore) -> None:
    good = conversation_with_versions()
    bad = conversation_with_versions()
    bad.messages[0].role = None  # violates NOT NULL: the whole batch must roll back
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_conversations([good, bad])
    assert store.list_conversations() == []


def test_rename_pin_duplicate_delete_undo_and_purge(store: ConversationStore) -> None:
    a, b = conversation_with_versions(), Conversation(title="Other")
    store.insert_conversations([a, b])
    store.rename(a.id, "  Camelid   facts ")
    assert store.load(a.id).title == "Camelid facts" and store.load(a.id).titled_by_user
    store.set_pinned(b.id, True)
    assert [s.title for s in store.list_conversations()] == ["Other", "Camelid facts"]
    copy = store.duplicate(a.id)
    assert store.load(copy).title == "Camelid facts (copy)"
    assert len(store.load(copy).messages) == 4
    store.delete(a.id)
    assert a.id not in [s.id for s in store.list_conversations()]
    assert store.search("andes") and all(h.conversation_id != a.id for h in store.search("andes"))
    store.undelete(a.id)
    assert a.id in [s.id for s in store.list_conversations()]
    store.delete(a.id)
    assert store.purge_deleted() == 1
    assert store.db.execute("SELECT COUNT(*) FROM messages WHERE conversation_id = ?",
                            (a.id,)).fetchone()[0] == 0


def test_search_ranks_and_highlights(store: ConversationStore) -> None:
    many = Conversation(title="Pack animals")
    many.append("user", "llama llama llama: the llama is a pack animal")
    one = Conversation(title="Zoo")
    one.append("user", "We saw a llama once, and many other animals at the zoo today.")
    titled = Conversation(title="Llama recipes for the Café", titled_by_user=True)
    titled.append("user", "nothing to see")
    store.insert_conversations([one, many, titled])
    hits = store.search("llama")
    assert [h.conversation_id for h in hits][:1] == [many.id]
    assert {h.conversation_id for h in hits} == {many.id, one.id, titled.id}
    assert f"{MATCH_START}llama{MATCH_END}" in hits[0].snippet
    assert any(h.message_id is None and h.conversation_id == titled.id for h in hits)
    assert store.search("cafe")[0].conversation_id == titled.id  # diacritics folded
    assert store.search("lla")  # prefixes match as you type
    # User text is never query syntax: operators are plain words, stray quotes are harmless.
    assert {h.conversation_id for h in store.search('animals AND "(')} == {one.id}
    assert store.search('NEAR( ) * " ^') == []
    assert store.search("   ") == []


def test_answer_recorder_checkpoints_and_completes(store: ConversationStore) -> None:
    now = [0.0]
    c = Conversation()
    question = c.append("user", "Hi")
    store.add_message(c, question)
    answer = Message("assistant", "", parent_id=question.id)
    c.messages.append(answer)
    recorder = AnswerRecorder(store, c, answer, interval_s=1.0, clock=lambda: now[0])

    def stored() -> tuple[str, bool]:
        m = next(m for m in store.load(c.id).messages if m.id == answer.id)
        return m.text, m.incomplete

    assert stored() == ("", True)  # saved at once, marked incomplete
    recorder.feed("Hel")
    assert stored() == ("", True)
    now[0] = 1.0
    recorder.feed("lo")
    assert stored() == ("Hello", True)
    recorder.finish(GenerationRecord(completion_tokens=2, stop_reason="eos"), incomplete=False)
    assert stored() == ("Hello", False)
    assert store.load(c.id).messages[-1].generation.completion_tokens == 2


def test_switching_the_current_version(store: ConversationStore) -> None:
    c = conversation_with_versions()
    store.insert_conversations([c])
    old = c.messages[1]
    store.set_current_version(old)
    loaded = store.load(c.id)
    assert [m.text for m in loaded.thread()][:2] == ["Tell me about llamas.", "Llamas are camelids."]
