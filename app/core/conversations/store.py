"""The conversation store: conversations and their message trees in one SQLite database.

Every change is committed when it happens (WAL mode), so a crash or a kill loses nothing that
was written: the user's message is saved before the model starts, the answer is saved while
it streams (AnswerRecorder) and completed at the end.

One store object per thread: sqlite3 connections are not shared across threads. Opening,
transactions, retries and the StoreError of every failure are database.py's; imports that do
not shut other writers out are bulk_insert.py's; full-text search is search.py's.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from app.core.chat.sampling import SamplingParams
from app.core.conversations import bulk_insert
from app.core.conversations import search as _search
from app.core.conversations.answer_recorder import AnswerRecorder as AnswerRecorder  # re-exported
from app.core.conversations.bulk_insert import IMPORT_CHUNK_S, IMPORT_PAUSE_S
from app.core.conversations.conversation import Conversation, ConversationSummary, Message, new_id
from app.core.conversations.database import BUSY_TIMEOUT_MS, Database, guarded
from app.core.conversations.database import RETRY_PAUSES_S as RETRY_PAUSES_S  # re-exported
from app.core.conversations.migrations import MIGRATIONS as MIGRATIONS  # re-exported: the schema's history
from app.core.conversations.migrations import SCHEMA_VERSION as SCHEMA_VERSION
from app.core.conversations.recovery import FAULT_KINDS as FAULT_KINDS  # re-exported with StoreError
from app.core.conversations.recovery import StoreError, kind_of
from app.core.conversations.rows import (
    INSERT_MESSAGE,
    conversation_row,
    generation_json,
    message_from_row,
    message_row,
    with_new_ids,
)
from app.core.conversations.search import (
    MATCH_END as MATCH_END,  # re-exported: search results are the store's API
)
from app.core.conversations.search import MATCH_START as MATCH_START
from app.core.conversations.search import SearchHit

log = logging.getLogger(__name__)
DATABASE_NAME = "conversations.sqlite3"


class ConversationStore(Database):
    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, read_only: bool = False):
        """busy_timeout_ms: how long one statement waits for another program's write lock (a
        command-line user can wait longer than a window). read_only: open without writing
        (a database on read-only media; every write then fails with kind "read_only")."""
        super().__init__(path, busy_timeout_ms=busy_timeout_ms, read_only=read_only)
        if not read_only:
            self._remove_abandoned_imports_quietly()

    # -- conversations -------------------------------------------------------------------------

    @guarded("list the conversations")
    def list_conversations(self, with_counts: bool = True) -> list[ConversationSummary]:
        """Pinned first, then most recently updated. Counting the messages is most of the cost
        (a fifth of a second per 10,000 conversations' index): the window's list goes without."""
        count = "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)" if with_counts else "NULL"
        rows = self.db.execute(f"""
            SELECT c.id, c.title, c.created, c.updated, c.pinned, {count} AS n
            FROM conversations c WHERE c.deleted IS NULL
            ORDER BY c.pinned DESC, c.updated DESC""").fetchall()
        return [ConversationSummary(r["id"], r["title"], r["created"], r["updated"], bool(r["pinned"]),
                                    r["n"]) for r in rows]

    @guarded("count the messages")
    def message_count(self, conversation_id: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM messages WHERE conversation_id = ?",
                               (conversation_id,)).fetchone()[0]

    @guarded("read the conversation")
    def load(self, conversation_id: str) -> Conversation:
        row = self.db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise StoreError(f"There is no conversation with id {conversation_id}.")
        messages = [message_from_row(r) for r in self.db.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY num", (conversation_id,))]
        return Conversation(
            id=row["id"], title=row["title"], created=row["created"], updated=row["updated"],
            system_prompt=row["system_prompt"],
            sampling=SamplingParams.from_dict(json.loads(row["sampling"] or "{}")),
            model=row["model"], pinned=bool(row["pinned"]), titled_by_user=bool(row["titled_by_user"]),
            connection=row["connection"], messages=messages,
        )

    @guarded("save the conversation")
    def save_conversation(self, conversation: Conversation) -> None:
        """Insert or update a conversation's own fields (not its messages)."""
        self.db.execute("""
            INSERT INTO conversations (id, title, created, updated, system_prompt, sampling, model,
                                       pinned, titled_by_user, connection)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET title = excluded.title, updated = excluded.updated,
                system_prompt = excluded.system_prompt, sampling = excluded.sampling,
                model = excluded.model, pinned = excluded.pinned,
                titled_by_user = excluded.titled_by_user, connection = excluded.connection""",
                        conversation_row(conversation))

    @guarded("rename the conversation")
    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("A conversation needs a title.")
        self.db.execute("UPDATE conversations SET title = ?, titled_by_user = 1 WHERE id = ?",
                        (title, conversation_id))

    @guarded("pin or unpin the conversation")
    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        self.db.execute("UPDATE conversations SET pinned = ? WHERE id = ?", (int(pinned), conversation_id))

    @guarded("delete the conversation")
    def delete(self, conversation_id: str) -> None:
        """Hide now; `undelete` brings it back until `purge_deleted` removes it for good."""
        self.db.execute("UPDATE conversations SET deleted = ? WHERE id = ? AND importing IS NULL",
                        (time.time(), conversation_id))

    @guarded("bring the conversation back")
    def undelete(self, conversation_id: str) -> None:
        self.db.execute("UPDATE conversations SET deleted = NULL WHERE id = ? AND importing IS NULL",
                        (conversation_id,))

    @guarded("remove the conversation")
    def forget(self, conversation_id: str) -> None:
        """Remove a conversation and its messages at once (no undo): one that never really began."""
        with self.transaction():
            self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    @guarded("list the conversations")
    def conversation_ids(self) -> set[str]:
        """Every conversation still in the database, deleted ones that can be undone included."""
        return {row[0] for row in self.db.execute("SELECT id FROM conversations")}

    @guarded("remove the deleted conversations")
    def purge_deleted(self, keep: Iterable[str] = ()) -> int:
        """Deleted conversations (and hidden deleted messages) go for good, but those in `keep`
        (their number is returned), and so do the hidden rows of imports whose process died."""
        kept = list(keep)
        bulk_insert.remove_abandoned(self)
        with self.transaction():
            return self.db.execute(
                "DELETE FROM conversations WHERE deleted IS NOT NULL AND importing IS NULL"
                f" AND id NOT IN ({','.join('?' * len(kept))})", kept).rowcount

    @guarded("duplicate the conversation")
    def duplicate(self, conversation_id: str) -> str:
        original = self.load(conversation_id)
        copy = with_new_ids(original)
        copy.title = f"{original.title} (copy)"
        copy.created = copy.updated = time.time()
        self.insert_conversations([copy])
        return copy.id

    @guarded("import the conversations", retry=False)
    def insert_conversations(self, conversations: Iterable[Conversation], *,
                             chunk_s: float = IMPORT_CHUNK_S, pause_s: float = IMPORT_PAUSE_S,
                             after_chunk: Callable[[], None] | None = None) -> list[str]:
        """Add whole conversations: all are shown, or none.

        Rows are written hidden, in transactions of about `chunk_s` seconds with pauses of `pause_s`
        (other writers get the database then), and shown in one short transaction. A failure removes
        them; the rows of an import whose process was killed are removed at the next open or
        purge. `after_chunk` runs after each commit. A conversation whose id is already here is
        added as a copy with new ids.
        """
        if self._depth:  # inside the caller's transaction: it alone decides what is committed
            return [bulk_insert.insert(self, conversation).id for conversation in conversations]
        return bulk_insert.insert_hidden_then_show(self, conversations, chunk_s, pause_s, after_chunk)

    def _remove_abandoned_imports_quietly(self) -> None:
        """At open: a database that cannot be written now is still opened for reading."""
        try:
            bulk_insert.remove_abandoned(self)
        except sqlite3.Error as error:
            if kind_of(error) == StoreError.DAMAGED:
                self._close_quietly()
                raise self._open_error(error) from error
            log.warning("could not remove the rows of unfinished imports now: %s", error)
        except StoreError as error:
            if error.kind == StoreError.DAMAGED:
                self._close_quietly()
                raise
            log.warning("could not remove the rows of unfinished imports now: %s", error.message)

    # -- messages --------------------------------------------------------------------------------

    @guarded("save the message")
    def add_message(self, conversation: Conversation, message: Message) -> None:
        """Commit a message (and the conversation's fields) before anything else happens."""
        with self.transaction():
            self.save_conversation(conversation)
            self.db.execute(INSERT_MESSAGE, message_row(conversation.id, message))

    @guarded("save the answer so far")
    def checkpoint(self, message_id: str, text: str, thought: str = "") -> None:
        self.db.execute("UPDATE messages SET text = ?, thought = ? WHERE id = ?", (text, thought, message_id))

    @guarded("save the answer")
    def complete_message(self, message: Message) -> None:
        self.db.execute("UPDATE messages SET text = ?, thought = ?, incomplete = ?, generation = ?"
                        " WHERE id = ?", (message.text, message.thought, int(message.incomplete),
                                          generation_json(message), message.id))

    @guarded("delete the messages", retry=False)
    def delete_messages(self, message_ids: Iterable[str]) -> None:
        ids = list(message_ids)
        with self.transaction():
            self.db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    @guarded("delete the messages", retry=False)
    def hide_messages(self, conversation_id: str, message_ids: Iterable[str],
                      successor: Message | None) -> str:
        """Delete messages so that `restore_messages` can bring them back: they move to a hidden
        conversation marked deleted, which `purge_deleted` removes (after a kill, at the next purge,
        like a deleted conversation). `successor` becomes the current version of their turn.
        Returns the hidden conversation's id."""
        holder, now = new_id(), time.time()
        with self.transaction():
            self.db.execute("INSERT INTO conversations (id, title, created, updated, deleted)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (holder, f"Messages deleted from {conversation_id}", now, now, now))
            self.db.executemany("UPDATE messages SET conversation_id = ?"
                                " WHERE id = ? AND conversation_id = ?",
                                [(holder, i, conversation_id) for i in message_ids])
            if successor is not None:
                self.set_current_version(successor)
        return holder

    @guarded("bring the messages back")
    def restore_messages(self, holder_id: str, conversation_id: str, message_id: str) -> None:
        """Undo `hide_messages`: the messages return to their conversation, `message_id` (the first
        of them) as the current version of its turn."""
        with self.transaction():
            self.db.execute("UPDATE messages SET conversation_id = ? WHERE conversation_id = ?",
                            (conversation_id, holder_id))
            self.db.execute("DELETE FROM conversations WHERE id = ?", (holder_id,))
            self.db.execute("""UPDATE messages SET current = (id = :m) WHERE conversation_id = :c
                AND parent_id IS (SELECT parent_id FROM messages WHERE id = :m)""",
                            {"m": message_id, "c": conversation_id})

    @guarded("choose the version")
    def set_current_version(self, message: Message) -> None:
        with self.transaction():
            self.db.execute("""UPDATE messages SET current = (id = ?)
                WHERE conversation_id = (SELECT conversation_id FROM messages WHERE id = ?)
                  AND parent_id IS ?""", (message.id, message.id, message.parent_id))

    # -- search -------------------------------------------------------------------------------------

    @guarded("search the conversations")
    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages and titles matching every word of `query`, best first (bm25).

        See app.core.conversations.search.search: snippets are made for the hits only, and a very common term
        is ranked among its newest RANK_AMONG_NEWEST (5,000) matches only.
        """
        return _search.search(self.db, query, limit)

    # -- model hashes ---------------------------------------------------------------------------

    @guarded("read the model's checksum")
    def cached_sha256(self, path: Path) -> str | None:
        stat = path.stat()
        row = self.db.execute("SELECT size, mtime, sha256 FROM model_hashes WHERE path = ?",
                              (str(path),)).fetchone()
        if row and row["size"] == stat.st_size and row["mtime"] == stat.st_mtime:
            return row["sha256"]
        return None

    @guarded("save the model's checksum")
    def remember_sha256(self, path: Path, sha256: str) -> None:
        stat = path.stat()
        self.db.execute("INSERT OR REPLACE INTO model_hashes VALUES (?, ?, ?, ?)",
                        (str(path), stat.st_size, stat.st_mtime, sha256))


def default_store_path() -> Path:
    from app import paths

    return paths.data_dir() / DATABASE_NAME
