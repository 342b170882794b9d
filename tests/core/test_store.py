"""The SQLite store: migrations, round trips, durability helpers, full-text search."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from app.core.chat.sampling import SamplingParams
from app.core.conversations.conversation import Conversation, GenerationRecord, Message
from app.core.conversations.search import RANK_AMONG_NEWEST
from app.core.conversations.store import (
    MATCH_END,
    MATCH_START,
    SCHEMA_VERSION,
    AnswerRecorder,
    ConversationStore,
    StoreError,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "databases"


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
        [hit] = store.search("andes")
        assert (hit.conversation_id, hit.message_id) == (summary.id, "m3")
        assert hit.snippet == f"Llamas live in the {MATCH_START}Andes{MATCH_END}."
    finally:
        store.close()


def test_schema_4_rebuilds_the_index_with_prefixes_and_the_triggers_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    shutil.copy(FIXTURES / "schema-3.sqlite3", path)
    store = ConversationStore(path)
    try:
        for table in ("messages_fts", "titles_fts"):
            sql = store.db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            assert "prefix='2 3'" in sql and "remove_diacritics 2" in sql
        assert store.search("al")[0].message_id == "m4"  # "alpacas", through the 2-character index
        conversation = store.load("c1")
        store.add_message(conversation, conversation.append("user", "What about vicuñas?"))
        store.rename("c1", "Camelids of Perú")
        store.checkpoint("m4", "And guanacos?")
        assert store.search("vicuna")[0].snippet == f"What about {MATCH_START}vicuñas{MATCH_END}?"
        assert [h.message_id for h in store.search("guanaco")] == ["m4"]
        assert store.search("alpacas") == []
        assert store.search("peru")[0].snippet == f"Camelids of {MATCH_START}Perú{MATCH_END}"
        for table in ("messages_fts", "titles_fts"):  # the index agrees with its content table
            store.db.execute(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")
        store.delete("c1")
        store.purge_deleted()
        assert store.search("llamas") == [] and store.search("camelids") == []
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


def test_a_very_common_word_gives_at_most_limit_hits_among_the_newest_matches(
        store: ConversationStore) -> None:
    older, newer = [], []
    for n in range(RANK_AMONG_NEWEST // 100 + 3):  # more matches than are ranked
        c = Conversation(title=f"Chat {n}", titled_by_user=True)
        for i in range(100):
            # The older messages would rank best (the word four times in four), were they ranked.
            c.append("user", "llama llama llama llama" if n < 3 else
                     f"Message {n} {i} is about one llama and then goes on for a while with other words.")
        (older if n < 3 else newer).append(c)
    store.insert_conversations(older + newer)
    hits = store.search("llama", limit=20)
    assert len(hits) == 20
    old_ids = {m.id for c in older for m in c.messages}
    assert not any(h.message_id in old_ids for h in hits)
    newest = {r[0] for r in store.db.execute(
        "SELECT id FROM messages ORDER BY num DESC LIMIT ?", (RANK_AMONG_NEWEST,))}
    assert all(h.message_id in newest for h in hits)
    assert [h.rank for h in hits] == sorted(h.rank for h in hits)
    for hit in hits:
        assert f" is about one {MATCH_START}llama{MATCH_END} and then goes on for a while…" in hit.snippet
        assert hit.snippet.startswith("…") and len(hit.snippet.split()) == 12
    assert len(store.search("llama", limit=500)) == 500
    assert store.search("llama", limit=0) == []


def test_snippets_are_cut_around_the_first_match_with_every_match_marked(store: ConversationStore) -> None:
    words = [f"w{i}" for i in range(40)]
    long = Conversation(title="Long", titled_by_user=True)
    long.append("user", " ".join(words[:20]) + " Quokkas are quick; a quokka smiles. " + " ".join(words[20:]))
    short = Conversation(title="Short", titled_by_user=True)
    short.append("user", "(Quokka!) Small and round.")
    store.insert_conversations([long, short])
    by_conversation = {h.conversation_id: h.snippet for h in store.search("quokka")}
    a, b = MATCH_START, MATCH_END
    assert by_conversation[long.id] == (
        f"…w16 w17 w18 w19 {a}Quokkas{b} are quick; a {a}quokka{b} smiles. w20 w21…")
    assert by_conversation[short.id] == f"({a}Quokka{b}!) Small and round."
    # Two words: the first match of either opens the snippet, both are marked.
    [hit] = store.search("smile QUICK", limit=5)
    assert hit.snippet == f"…w18 w19 Quokkas are {a}quick{b}; a quokka {a}smiles{b}. w20 w21 w22 w23…"


def test_snippets_fold_diacritics_both_ways(store: ConversationStore) -> None:
    accented = Conversation(title="Coffee", titled_by_user=True)
    accented.append("user", "We met at the Café Central in Vienna.")
    plain = Conversation(title="Naïve questions", titled_by_user=True)
    plain.append("user", "Which cafe is open late?")
    store.insert_conversations([accented, plain])
    [hit] = store.search("cafe central")
    a, b = MATCH_START, MATCH_END
    assert hit.snippet == f"We met at the {a}Café{b} {a}Central{b} in Vienna."
    assert {h.snippet for h in store.search("CAFÉ")} == {
        f"We met at the {MATCH_START}Café{MATCH_END} Central in Vienna.",
        f"Which {MATCH_START}cafe{MATCH_END} is open late?"}
    [title_hit] = store.search("naive")
    assert title_hit.message_id is None
    assert title_hit.snippet == f"{MATCH_START}Naïve{MATCH_END} questions"


def test_a_query_matching_only_titles(store: ConversationStore) -> None:
    budget = Conversation(title="Quarterly budget review", titled_by_user=True)
    budget.append("user", "Let us go through the numbers.")
    other = Conversation(title="Holidays", titled_by_user=True)
    other.append("user", "Where should we go?")
    deleted = Conversation(title="Old budget", titled_by_user=True)
    deleted.append("user", "Numbers again.")
    store.insert_conversations([budget, other, deleted])
    store.delete(deleted.id)
    [hit] = store.search("budg")
    assert (hit.conversation_id, hit.message_id, hit.title) == (budget.id, None, "Quarterly budget review")
    assert hit.snippet == f"Quarterly {MATCH_START}budget{MATCH_END} review"
    # A conversation whose messages match too is given once, by its message.
    [hit] = store.search("numbers")
    assert hit.message_id == budget.messages[0].id


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
