"""The Conversations session without a window: list changes, delete with undo, search, export, import."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from app.core.conversations import transcripts
from app.core.conversations.conversation import Conversation
from app.core.conversations.store import ConversationStore
from app.session import tasks
from app.session.conversations import Conversations


def chat(title: str, *texts: str) -> Conversation:
    conversation = Conversation(title=title, titled_by_user=True)
    for i, text in enumerate(texts or ("hello",)):
        conversation.append("user" if i % 2 == 0 else "assistant", text)
    return conversation


@pytest.fixture
def seeded(store: ConversationStore) -> tuple[Conversation, Conversation]:
    first, second = chat("Llamas", "Tell me about llamas", "They hum."), chat("Alpacas", "And alpacas?")
    store.insert_conversations([first, second])
    return first, second


@pytest.fixture
def conversations(store: ConversationStore, seeded) -> Conversations:
    return Conversations(store)


def titles(conversations: Conversations) -> list[str]:
    return [s.title for s in conversations.summaries]


def test_rename_saves_tells_and_lists_the_stored_title(qtbot, conversations, store, seeded) -> None:
    first, _ = seeded
    with qtbot.waitSignal(conversations.renamed) as renamed, qtbot.waitSignal(conversations.changed):
        conversations.rename(first.id, "  Llama   facts ")
    assert renamed.args == [first.id, "Llama facts"]
    assert store.load(first.id).title == "Llama facts" and conversations.title_of(first.id) == "Llama facts"


def test_pin_moves_the_conversation_first(qtbot, conversations, store, seeded) -> None:
    first, second = seeded
    assert titles(conversations) == ["Alpacas", "Llamas"]
    with qtbot.waitSignal(conversations.pinned) as pinned:
        conversations.set_pinned(first.id, True)
    assert pinned.args == [first.id, True]
    assert titles(conversations) == ["Llamas", "Alpacas"] and conversations.summaries[0].pinned


def test_duplicate_adds_a_copy_and_names_it(qtbot, conversations, store, seeded) -> None:
    first, _ = seeded
    with qtbot.waitSignal(conversations.duplicated) as duplicated:
        conversations.duplicate(first.id)
    copy = store.load(duplicated.args[0])
    assert copy.id != first.id and copy.title == "Llamas (copy)"
    assert [m.text for m in copy.thread()] == [m.text for m in first.thread()]
    assert conversations.is_saved(copy.id)


def test_delete_hides_offers_undo_and_undo_brings_it_back(qtbot, conversations, store, seeded) -> None:
    first, second = seeded
    with qtbot.waitSignal(conversations.deleted) as deleted, \
            qtbot.waitSignal(conversations.undo_offered) as offer:
        conversations.delete(first.id)
    assert deleted.args == [first.id, second.id] and offer.args == ["Deleted “Llamas”."]
    assert not conversations.is_saved(first.id) and conversations.can_undo
    assert first.id in store.conversation_ids(), "hidden, not yet removed"
    with qtbot.waitSignal(conversations.restored) as restored:
        conversations.undo_delete()
    assert restored.args == [first.id]
    assert conversations.is_saved(first.id) and not conversations.can_undo
    with qtbot.assertNotEmitted(conversations.restored):
        conversations.undo_delete()  # nothing left to undo
    with qtbot.assertNotEmitted(conversations.deleted), qtbot.assertNotEmitted(conversations.purged):
        conversations.delete("not-saved-yet")  # a new chat is not in the list: nothing to delete


def test_a_deleted_conversation_gives_its_place_to_the_next_in_the_list(qtbot, store) -> None:
    """Issue 12 item 20: the next one below takes its place, or the one above when it was last."""
    top, middle, bottom = chat("Top"), chat("Middle"), chat("Bottom")
    for offset, c in enumerate((bottom, middle, top)):
        c.updated += offset
    store.insert_conversations([top, middle, bottom])
    conversations = Conversations(store)
    assert titles(conversations) == ["Top", "Middle", "Bottom"]
    with qtbot.waitSignal(conversations.deleted) as deleted:
        conversations.delete(middle.id)
    assert deleted.args == [middle.id, bottom.id]
    with qtbot.waitSignal(conversations.deleted) as deleted:
        conversations.delete(bottom.id)
    assert deleted.args == [bottom.id, top.id]
    with qtbot.waitSignal(conversations.deleted) as deleted:
        conversations.delete(top.id)
    assert deleted.args == [top.id, ""]
    conversations.purge_deleted()


def test_the_undo_offer_expires_and_the_conversation_goes_for_good(qtbot, conversations, store,
                                                                    seeded) -> None:
    first, _ = seeded
    conversations.delete(first.id)
    conversations._undo_timer.setInterval(1)
    with qtbot.waitSignals([conversations.undo_expired, conversations.purged]):
        pass
    assert first.id not in store.conversation_ids() and not conversations.can_undo


def test_a_newer_delete_purges_the_older(qtbot, conversations, store, seeded) -> None:
    first, second = seeded
    conversations.delete(first.id)
    with qtbot.waitSignals([conversations.undo_expired, conversations.purged, conversations.deleted,
                            conversations.undo_offered], order="strict"):
        conversations.delete(second.id)
    assert first.id not in store.conversation_ids()
    conversations.undo_delete()
    assert titles(conversations) == ["Alpacas"]


def test_purge_removes_the_deleted_conversation_at_once(qtbot, conversations, store, seeded) -> None:
    first, _ = seeded
    conversations.delete(first.id)
    with qtbot.waitSignal(conversations.purged):
        conversations.purge_deleted()
    assert first.id not in store.conversation_ids()
    with qtbot.assertNotEmitted(conversations.restored):
        conversations.undo_delete()


def test_a_failed_write_changes_nothing_in_memory_and_says_why(qtbot, seeded, store) -> None:
    first, _ = seeded
    read_only = ConversationStore(store.path, read_only=True)
    try:
        conversations = Conversations(read_only)
        before = list(conversations.summaries)
        for intent, what in [(lambda: conversations.rename(first.id, "New"), "The new title"),
                             (lambda: conversations.set_pinned(first.id, True), "The pin"),
                             (lambda: conversations.duplicate(first.id), "The copy"),
                             (lambda: conversations.delete(first.id), "The deletion")]:
            with qtbot.waitSignal(conversations.error) as error, \
                    qtbot.assertNotEmitted(conversations.changed):
                intent()
            assert error.args[0].startswith(f"{what} could not be saved. ")
            assert "read-only" in error.args[0].lower() or "read only" in error.args[0].lower()
            assert conversations.summaries == before and not conversations.can_undo
    finally:
        read_only.close()


def test_a_newer_search_cancels_the_older(qtbot, conversations, seeded) -> None:
    found: list[tuple[str, list]] = []
    conversations.search_finished.connect(lambda query, hits: found.append((query, hits)))
    older = conversations.search("llamas")
    with qtbot.waitSignal(conversations.search_finished):
        newer = conversations.search("alpacas")
    assert tasks.wait_for_background_tasks(10)
    qtbot.waitUntil(older.done)
    assert older.cancelled() and newer.done()
    assert [query for query, _ in found] == ["alpacas"]
    assert [hit.conversation_id for hit in found[0][1]] == [seeded[1].id]


def test_search_runs_off_the_gui_thread(qtbot, conversations, monkeypatch) -> None:
    searchers: list[threading.Thread] = []
    search = ConversationStore.search
    monkeypatch.setattr(ConversationStore, "search", lambda self, *a, **k: (
        searchers.append(threading.current_thread()), search(self, *a, **k))[1])
    with qtbot.waitSignal(conversations.search_finished) as finished:
        conversations.search("hum")
    assert [hit.title for hit in finished.args[1]] == ["Llamas"]
    assert searchers and threading.main_thread() not in searchers


def test_export_one_and_all_in_a_worker_thread(qtbot, conversations, store, seeded, tmp_path: Path) -> None:
    first, _ = seeded
    out = tmp_path / "chat.html"
    with qtbot.waitSignal(conversations.exported, timeout=10_000) as exported:
        conversations.export("html", out, [first.id])
    assert exported.args == [f"Exported 1 file to {out}"]
    assert out.read_text() == transcripts.to_html(store.load(first.id))
    folder = tmp_path / "backup"
    with qtbot.waitSignal(conversations.exported, timeout=10_000) as exported:
        conversations.export("md", folder)
    assert exported.args == [f"Exported 2 files to {folder}"]
    assert len(list(folder.glob("*.md"))) == 2


def test_an_export_that_cannot_be_written_says_why(qtbot, conversations, seeded, tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    with qtbot.waitSignal(conversations.error, timeout=10_000) as error:
        conversations.export("md", blocker / "inside")
    assert error.args[0].startswith("Export failed: Could not create the folder")


def test_import_adds_every_conversation_off_the_gui_thread(qtbot, conversations, store, monkeypatch,
                                                           tmp_path: Path) -> None:
    writers: list[threading.Thread] = []
    insert = ConversationStore.insert_conversations
    monkeypatch.setattr(ConversationStore, "insert_conversations", lambda self, *a, **k: (
        writers.append(threading.current_thread()), insert(self, *a, **k))[1])
    exported = tmp_path / "two.json"
    exported.write_text(transcripts.to_json([chat("Imported one"), chat("Imported two")]))
    notes: list[str] = []
    conversations.status.connect(notes.append)
    with qtbot.waitSignal(conversations.imported, timeout=10_000) as imported:
        conversations.import_files([exported])
    assert [store.load(i).title for i in imported.args[0]] == ["Imported one", "Imported two"]
    assert {"Imported one", "Imported two"} <= set(titles(conversations))
    assert notes == ["Importing two.json…", "Imported 2 conversations from two.json"]
    assert writers and threading.main_thread() not in writers


def test_a_bad_file_is_refused_and_changes_nothing(qtbot, conversations, store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "llamadesk-conversations", "schema_version": 1, "conversations": [')
    before = store.list_conversations(with_counts=False)
    with qtbot.waitSignal(conversations.error, timeout=10_000) as error, \
            qtbot.assertNotEmitted(conversations.imported):
        task = conversations.import_files([bad])
        qtbot.waitUntil(task.done)
    assert error.args[0].startswith("Import failed: The file is not complete JSON")
    assert store.list_conversations(with_counts=False) == before == conversations.summaries


def test_an_import_the_database_refuses_says_why_and_changes_nothing(qtbot, conversations, store,
                                                                      tmp_path: Path) -> None:
    exported = tmp_path / "one.json"
    exported.write_text(transcripts.to_json([chat("Locked out")]))
    before = store.list_conversations(with_counts=False)
    other_program = sqlite3.connect(store.path, isolation_level=None)
    other_program.execute("BEGIN IMMEDIATE")  # holds the write lock past the import's patience
    try:
        with qtbot.waitSignal(conversations.error, timeout=20_000) as error:
            conversations.import_files([exported])
    finally:
        other_program.execute("ROLLBACK")
        other_program.close()
    assert error.args[0].startswith("Import failed: Could not import the conversations")
    assert "Nothing was changed" in error.args[0]
    assert store.list_conversations(with_counts=False) == before
    with qtbot.waitSignal(conversations.imported, timeout=20_000):  # the lock is gone: it imports
        conversations.import_files([exported])
    assert "Locked out" in titles(conversations)


def test_an_import_into_a_read_only_database_is_refused(qtbot, store, tmp_path: Path) -> None:
    exported = tmp_path / "one.json"
    exported.write_text(transcripts.to_json([chat("Not here")]))
    read_only = ConversationStore(store.path, read_only=True)
    try:
        conversations = Conversations(read_only)
        with qtbot.waitSignal(conversations.error, timeout=10_000) as error:
            conversations.import_files([exported])
    finally:
        read_only.close()
    assert error.args[0].startswith("Import failed: ")
    assert store.list_conversations() == []
