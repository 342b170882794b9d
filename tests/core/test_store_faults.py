"""The store under real faults: a second writer holding the lock, a full disk, a read-only file,
damaged pages, a damaged search index, a failed rollback, and imports in chunks. Every failure
is a StoreError with a kind, and leaves the database as it was."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.core.conversations.conversation import Conversation, Message
from app.core.conversations.recovery import recover
from app.core.conversations.store import (
    DATABASE_NAME,
    RETRY_PAUSES_S,
    AnswerRecorder,
    ConversationStore,
    StoreError,
)

REPO = Path(__file__).resolve().parents[2]


# -- helpers, also used by tests/e2e/test_doctor.py ------------------------------------------------

def chat(i: int, messages: int = 6) -> Conversation:
    """A conversation whose title and texts hold markers found nowhere else in the file (the
    search index stores words, not these strings)."""
    conversation = Conversation(title=f"Chat number {i:04d}-title", created=1700000000.0 + i,
                                updated=1700000000.0 + i, titled_by_user=True)
    for j in range(messages):
        conversation.append("user" if j % 2 == 0 else "assistant",
                            f"Message about topic-{i:04d}-{j:02d}. " + "Llamas graze in the Andes. " * 8)
    return conversation


def fill(path: Path, count: int = 120) -> list[Conversation]:
    """A closed database of `count` conversations: many pages, all in the main file (no WAL)."""
    store = ConversationStore(path)
    conversations = [chat(i) for i in range(count)]
    store.insert_conversations(conversations)
    store.close()
    return conversations


def corrupt_pages_with(path: Path, *needles: bytes, seed: int = 7) -> set[int]:
    """Overwrite with random bytes every page that holds one of `needles` (never page 1)."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    pages = {data.find(n) // page_size for n in needles if data.find(n) >= 0}
    assert pages and 0 not in pages, pages
    noise = random.Random(seed)
    with path.open("r+b") as f:
        for page in pages:
            f.seek(page * page_size)
            f.write(noise.randbytes(page_size))
    return pages


def count_rows(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / DATABASE_NAME


@pytest.fixture
def store(path: Path) -> Iterator[ConversationStore]:
    s = ConversationStore(path, busy_timeout_ms=0)  # fails at once when locked: no test waits
    yield s
    s.close()


def count_retries(store: ConversationStore, between=lambda attempt: None) -> list[int]:
    """Replace the retry pause: no sleeping; `between(n)` runs before the n-th retry."""
    tries: list[int] = []

    def pause(pauses: Iterator[float]) -> bool:
        if next(pauses, None) is None:
            return False
        tries.append(len(tries) + 1)
        between(len(tries))
        return True

    store._pause_before_retry = pause
    return tries


@contextmanager
def writer_holding_the_lock(path: Path) -> Iterator[sqlite3.Connection]:
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


# -- locked ---------------------------------------------------------------------------------------

def test_a_locked_write_is_retried_then_reported_and_changes_nothing(store: ConversationStore, path: Path):
    conversation = chat(1, messages=2)
    store.insert_conversations([conversation])
    tries = count_retries(store)
    with writer_holding_the_lock(path):
        with pytest.raises(StoreError) as single:
            store.rename(conversation.id, "Renamed")
        with pytest.raises(StoreError) as grouped, store.transaction():  # as the chat session does
            store.add_message(conversation, conversation.append("user", "Say hi."))
    assert single.value.kind == grouped.value.kind == "locked"
    assert "Another program is writing" in single.value.message
    assert "rename the conversation" in single.value.message
    assert len(tries) == 2 * len(RETRY_PAUSES_S)
    loaded = store.load(conversation.id)
    assert loaded.title == conversation.title and len(loaded.messages) == 2


def test_a_locked_write_goes_through_once_the_other_writer_commits(store: ConversationStore, path: Path):
    conversation = chat(2, messages=2)
    store.insert_conversations([conversation])
    with writer_holding_the_lock(path) as other:
        count_retries(store, between=lambda attempt: other.execute("COMMIT"))
        store.rename(conversation.id, "Renamed")
    assert store.load(conversation.id).title == "Renamed"
    with writer_holding_the_lock(path) as other:
        count_retries(store, between=lambda attempt: other.execute("COMMIT"))
        with store.transaction():
            store.add_message(conversation, conversation.append("user", "Say hi."))
    assert store.load(conversation.id).messages[-1].text == "Say hi."


# -- full -----------------------------------------------------------------------------------------

def test_a_full_database_says_so_keeps_everything_and_works_again_with_room(store: ConversationStore):
    """PRAGMA max_page_count makes SQLite's own SQLITE_FULL path run (the tmpfs test below does
    the same with a real disk where mounting is allowed)."""
    conversation = chat(3, messages=2)
    store.insert_conversations([conversation])
    answer = Message("assistant", "", parent_id=conversation.messages[-1].id)
    recorder = AnswerRecorder(store, conversation, answer)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")
    question = conversation.append("user", "x" * 20000)
    with pytest.raises(StoreError) as caught:
        store.add_message(conversation, question)
    assert caught.value.kind == "full" and "Free some space" in caught.value.message
    recorder.message.text = "y" * 20000
    with pytest.raises(StoreError) as finishing:
        recorder.finish(None, incomplete=False)
    assert finishing.value.kind == "full"
    assert [m.text for m in store.load(conversation.id).messages][-1] == ""  # the answer as it was
    store.db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    store.add_message(conversation, question)
    recorder.finish(None, incomplete=False)
    assert [m.text[:1] for m in store.load(conversation.id).messages][-2:] == ["y", "x"]


def _can_mount() -> bool:
    return sys.platform == "linux" and os.geteuid() == 0 and shutil.which("mount") is not None


@contextmanager
def mounted(*args: str) -> Iterator[Path]:
    point = Path(tempfile.mkdtemp(prefix="llamadesk-mount-"))
    if subprocess.run(["mount", *args, str(point)], capture_output=True).returncode != 0:
        point.rmdir()
        pytest.skip("mounting is not allowed here")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=True)
        point.rmdir()


@pytest.mark.skipif(not _can_mount(), reason="needs root on Linux to mount a small tmpfs")
def test_a_really_full_disk_says_so_and_keeps_what_was_saved():
    with mounted("-t", "tmpfs", "-o", "size=256k", "tmpfs") as disk:
        store = ConversationStore(disk / DATABASE_NAME, busy_timeout_ms=0)
        conversation = Conversation(title="Full")
        saved = 0
        with pytest.raises(StoreError) as caught:
            for _ in range(100):
                store.add_message(conversation, conversation.append("user", "z" * 20000))
                saved += 1
        assert caught.value.kind == "full"
        assert saved >= 1 and len(store.load(conversation.id).messages) == saved
        store.close()


# -- read-only ------------------------------------------------------------------------------------

def test_a_read_only_file_says_so_and_changes_nothing(tmp_path: Path):
    """chmod 0444, as a user who is not root (chmod does not stop root): when the tests run as
    root, the check runs in a child process as `nobody`."""
    folder = Path(tempfile.mkdtemp(prefix="llamadesk-ro-"))
    try:
        folder.chmod(0o777)  # the folder stays writable, as it usually is: only the file is read-only
        database = folder / DATABASE_NAME
        conversation = chat(4, messages=2)
        fill_store = ConversationStore(database)
        fill_store.insert_conversations([conversation])
        fill_store.close()
        database.chmod(0o444)
        script = ("import json, sys\nfrom app.core.conversations.store import ConversationStore, StoreError\n"
                  "store = ConversationStore(sys.argv[1])\n[summary] = store.list_conversations()\n"
                  "try:\n    store.rename(summary.id, 'Renamed')\nexcept StoreError as e:\n"
                  "    print(json.dumps([e.kind, e.message, store.load(summary.id).title]))\n")
        as_nobody = None
        if os.geteuid() == 0:
            def as_nobody() -> None:
                os.setgid(65534)
                os.setuid(65534)
        result = subprocess.run([sys.executable, "-c", script, str(database)], cwd=REPO, capture_output=True,
                                text=True, preexec_fn=as_nobody, timeout=60)
        kind, message, title = json.loads(result.stdout)
        assert kind == "read_only" and "cannot be written" in message
        assert title == conversation.title
    finally:
        shutil.rmtree(folder)


def test_a_read_only_connection_reads_and_refuses_writes_with_read_only(path: Path):
    conversation = chat(5, messages=2)
    writer = ConversationStore(path)
    writer.insert_conversations([conversation])
    writer.close()
    store = ConversationStore(path, read_only=True)
    try:
        assert store.load(conversation.id).title == conversation.title
        with pytest.raises(StoreError) as caught:
            store.add_message(conversation, conversation.append("user", "More?"))
        assert caught.value.kind == "read_only"
    finally:
        store.close()


@pytest.mark.skipif(not _can_mount(), reason="needs root on Linux for a read-only bind mount")
def test_a_database_on_a_read_only_disk_is_refused_as_read_only(path: Path):
    fill(path, count=2)
    with mounted("--bind", str(path.parent)) as view:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        with pytest.raises(StoreError) as caught:
            ConversationStore(view / DATABASE_NAME)
        assert caught.value.kind == "read_only"


# -- a rollback that fails ------------------------------------------------------------------------

class RollbackFailsOnce:
    """A connection whose next ROLLBACK fails, as on an I/O error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.failed = False

    def execute(self, sql: str, *args):
        if sql == "ROLLBACK" and not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def test_a_failed_rollback_neither_hides_the_error_nor_lets_the_change_in(store: ConversationStore):
    conversation = chat(6, messages=2)
    store.insert_conversations([conversation])
    store.db = RollbackFailsOnce(store.db)
    lost = conversation.append("user", "Never saved.")
    with pytest.raises(RuntimeError, match="the caller's own failure"), store.transaction():
        store.add_message(conversation, lost)
        raise RuntimeError("the caller's own failure")
    assert store.db.failed and store.db.in_transaction  # the rollback did fail
    store.rename(conversation.id, "Renamed")  # rolls the stale transaction back first
    loaded = store.load(conversation.id)
    assert loaded.title == "Renamed" and lost.id not in {m.id for m in loaded.messages}
    assert not store.db.in_transaction


# -- damaged --------------------------------------------------------------------------------------

def test_damaged_pages_raise_damaged_for_what_they_hold_only(path: Path):
    conversations = fill(path)
    corrupt_pages_with(path, b"topic-0060-00", b"topic-0060-05")
    store = ConversationStore(path)
    try:
        with pytest.raises(StoreError) as caught:
            store.load(conversations[60].id)
        assert caught.value.kind == "damaged" and "doctor --recover" in caught.value.message
        assert store.load(conversations[0].id) == conversations[0]
    finally:
        store.close()


def test_damage_found_while_opening_is_damaged(path: Path):
    fill(path, count=3)
    corrupt_pages_with(path, b"fts_prefix_index")  # the page of schema_migrations
    with pytest.raises(StoreError) as caught:
        ConversationStore(path)
    assert caught.value.kind == "damaged" and "Cannot open the conversation database" in caught.value.message


def test_a_damaged_search_index_is_damaged_and_recovery_keeps_every_message(path: Path):
    conversations = fill(path, count=30)
    db = sqlite3.connect(path)
    db.execute("UPDATE messages_fts_data SET block = randomblob(length(block))")  # every block
    db.commit()
    db.close()
    store = ConversationStore(path)
    try:
        with pytest.raises(StoreError) as searching:
            store.search("llamas")
        with pytest.raises(StoreError) as saving:  # the index drops the old text: it reads the index
            store.checkpoint(conversations[0].messages[0].id, "Changed.")
        assert searching.value.kind == saving.value.kind == "damaged"
    finally:
        store.close()
    report = recover(path)
    assert (report.conversations, report.messages) == (30, 180)
    assert (report.conversations_lost, report.messages_lost) == (0, 0)
    store = ConversationStore(path)
    try:
        assert len(store.search("topic", limit=500)) == 180
    finally:
        store.close()


def test_recovery_copies_every_readable_message_and_keeps_the_damaged_file(path: Path):
    conversations = fill(path)
    corrupt_pages_with(path, b"topic-0060-00", b"Chat number 0090-title")
    damaged_bytes = hashlib.sha256(path.read_bytes()).hexdigest()
    report = recover(path)
    assert hashlib.sha256(report.damaged_path.read_bytes()).hexdigest() == damaged_bytes
    assert report.damaged_path.parent == path.parent and ".damaged-" in report.damaged_path.name
    assert report.messages + report.messages_lost == 720 and 0 < report.messages_lost < 60
    assert "Recovered" in report.summary() and str(report.damaged_path) in report.summary()
    store = ConversationStore(path)
    try:
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        originals = {m.id: m for c in conversations for m in c.messages}
        recovered = [store.load(s.id) for s in store.list_conversations()]
        texts = [m for c in recovered for m in c.messages]
        assert len(texts) == report.messages
        assert all(m.text == originals[m.id].text for m in texts)  # nothing garbled
        assert store.load(conversations[0].id) == conversations[0]
        assert store.load(conversations[-1].id) == conversations[-1]
    finally:
        store.close()


def readable_by_rowid(path: Path, table: str) -> set[str]:
    """The ids of every row of `table` that a point query still reads, one rowid at a time."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    ids = set()
    try:
        for rowid in range(1, 2000):
            try:
                row = db.execute(f"SELECT id FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                ids.add(row[0])
    finally:
        db.close()
    return ids


def test_recovery_keeps_the_readable_rows_on_both_sides_of_a_damaged_page(path: Path):
    fill(path)
    corrupt_pages_with(path, b"topic-0060-03")
    readable = readable_by_rowid(path, "messages")
    assert 650 < len(readable) < 720
    report = recover(path)
    db = sqlite3.connect(path)
    try:
        recovered = {row[0] for row in db.execute("SELECT id FROM messages")}
    finally:
        db.close()
    assert readable - recovered == set()
    assert (report.messages, report.messages_lost) == (len(readable), 720 - len(readable))
    assert not report.nothing_read


def test_recovery_that_reads_no_message_says_so_and_doctor_fails(path: Path):
    from app.doctor import database_checks

    fill(path)
    db = sqlite3.connect(path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'messages'").fetchone()[0]
    db.close()
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    with path.open("r+b") as f:  # the root page of messages: no row can be found any more
        f.seek((root - 1) * page_size)
        f.write(random.Random(7).randbytes(page_size))
    checks = list(database_checks(path, recover=True))
    failed = [c for c in checks if not (c.ok or c.repaired)]
    assert failed and failed[-1].what == "database recovery", checks
    [kept] = path.parent.glob("conversations.damaged-*.sqlite3")
    assert "No message could be read" in failed[-1].detail and str(kept) in failed[-1].detail
    assert "Recovered" not in failed[-1].detail


# -- imports in chunks ----------------------------------------------------------------------------

def test_another_writer_gets_in_between_the_chunks_of_an_import(store: ConversationStore, path: Path):
    mine = chat(999, messages=2)
    store.insert_conversations([mine])
    other = ConversationStore(path, busy_timeout_ms=0)
    count_retries(other, between=lambda attempt: pytest.fail("the import held the lock"))
    seen: list[int] = []
    incoming = [chat(i, messages=450) for i in range(3)]  # more than one batch of messages each

    def between_chunks() -> None:  # the window saves while the import runs
        other.rename(mine.id, f"Renamed {len(seen)}")
        seen.append(len(other.list_conversations()))
        other.purge_deleted()  # must not take the import's hidden rows

    try:
        ids = store.insert_conversations(incoming, chunk_s=0, pause_s=0, after_chunk=between_chunks)
        assert len(seen) >= 9 and set(seen) == {1}  # many chunks; none showed a partial import
        assert len(other.list_conversations()) == 4
        assert [store.load(i) for i in ids] == incoming
        assert store.load(mine.id).title == f"Renamed {len(seen) - 1}"
    finally:
        other.close()


def test_an_import_that_fails_midway_leaves_the_database_as_it_was(store: ConversationStore, path: Path):
    store.insert_conversations([chat(0)])
    before = (store.list_conversations(), count_rows(path, "conversations"), count_rows(path, "messages"))
    chunks: list[int] = []

    def fail_at_the_fourth() -> None:
        chunks.append(1)
        if len(chunks) == 4:
            raise OSError("the import was cancelled")

    with pytest.raises(OSError, match="cancelled"):
        store.insert_conversations([chat(i) for i in range(1, 10)], chunk_s=0, pause_s=0,
                                   after_chunk=fail_at_the_fourth)
    after = (store.list_conversations(), count_rows(path, "conversations"), count_rows(path, "messages"))
    assert after == before and count_rows(path, "imports") == 0


KILLED_IMPORT = """
import os, signal, sys
from app.core.conversations.store import ConversationStore
from tests.core.test_store_faults import chat
chunks = []
def kill_at_the_fifth():
    chunks.append(1)
    if len(chunks) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
ConversationStore(sys.argv[1]).insert_conversations([chat(i) for i in range(20)], chunk_s=0,
                                                    after_chunk=kill_at_the_fifth)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_import_leaves_nothing_visible_and_its_rows_go_at_the_next_open(path: Path):
    fill(path, count=1)
    result = subprocess.run([sys.executable, "-c", KILLED_IMPORT, str(path)], cwd=REPO, timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert count_rows(path, "conversations") > 1  # hidden rows were left behind
    store = ConversationStore(path)
    try:
        assert [s.title for s in store.list_conversations()] == ["Chat number 0000-title"]
        assert count_rows(path, "conversations") == 1 and count_rows(path, "imports") == 0
        assert store.search("topic")[0].conversation_id == store.list_conversations()[0].id
    finally:
        store.close()


def test_what_the_store_refuses_by_itself_keeps_its_message_with_kind_invalid(store: ConversationStore):
    conversation = chat(7, messages=2)
    store.insert_conversations([conversation])
    with pytest.raises(StoreError) as caught:
        store.rename(conversation.id, "   ")
    assert caught.value.kind == "invalid" and caught.value.message == "A conversation needs a title."
    assert StoreError("An older caller's error.").kind == "invalid"
