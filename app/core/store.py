"""The conversation store: one SQLite database, numbered migrations, full-text search.

Every change is committed when it happens (WAL mode), so a crash or a kill loses nothing that
was written: the user's message is saved before the model starts, the answer is saved while
it streams (see AnswerRecorder) and completed at the end.

One store object per thread: sqlite3 connections are not shared across threads.

Every failure of SQLite reaches callers as StoreError with a `kind` (store_recovery.FAULT_KINDS):
a write that finds the database locked is retried a few times first, and a failed transaction is
rolled back. Imports commit in short chunks, hidden until one final transaction shows them all.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from app.core import search as _search
from app.core.conversation import Conversation, GenerationRecord, Message, new_id
from app.core.sampling import SamplingParams
from app.core.search import MATCH_END as MATCH_END  # re-exported: search results are the store's API
from app.core.search import MATCH_START as MATCH_START
from app.core.search import SearchHit as SearchHit
from app.core.search import _fts_query as _fts_query
from app.core.store_migrations import MIGRATIONS as MIGRATIONS  # re-exported: the schema's history
from app.core.store_migrations import SCHEMA_VERSION as SCHEMA_VERSION
from app.core.store_recovery import FAULT_KINDS as FAULT_KINDS  # re-exported with StoreError
from app.core.store_recovery import StoreError, advice, fault_kind, import_alive, kind_of, store_error

log = logging.getLogger(__name__)
DATABASE_NAME = "conversations.sqlite3"

# A window's write waits at most about BUSY_TIMEOUT_MS * (1 + len(RETRY_PAUSES_S)) + their sum
# (~2.5 s) behind another program before it is told "locked"; the retries add what SQLite's own
# busy handler does not cover (a busy snapshot, WAL recovery). An import holds the lock for about
# IMPORT_CHUNK_S at a time and then pauses IMPORT_PAUSE_S: SQLite's locks are not queued, and a
# waiting writer polls every 25-100 ms, so without the pause it could miss every gap (measured
# behind a 16,000-message import: waits of up to 0.65 s without it, under 0.1 s with it).
BUSY_TIMEOUT_MS = 750
RETRY_PAUSES_S = (0.05, 0.15)
IMPORT_CHUNK_S = 0.05
IMPORT_PAUSE_S = 0.025
IMPORT_BATCH_ROWS = 50
# Errors of the caller (a constraint broken, an API misused): bugs to fix, not faults of the database.
_CALLER_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def _guarded(doing: str, retry: bool = True) -> Callable:
    """SQLite's errors become StoreError (`doing` says what failed, for the outermost call); a
    statement that found the database locked runs again after a short pause, unless it is part of
    a caller's transaction (only the whole transaction could run again) or `retry` is False (an
    argument that is used up)."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def guarded(self: ConversationStore, *args, **kwargs):
            pauses = iter(RETRY_PAUSES_S if retry and not self._depth else ())
            outermost = self._doing is None
            if outermost:
                self._doing = doing
            try:
                while True:
                    try:
                        self._heal()
                        return method(self, *args, **kwargs)
                    except sqlite3.Error as error:
                        if isinstance(error, _CALLER_ERRORS):
                            raise
                        failure = store_error(error, self.path, self._doing)
                        if failure.kind != "locked" or not self._pause_before_retry(pauses):
                            raise failure from error
                    except MemoryError as error:  # SQLite's SQLITE_NOMEM: a damaged index can cause it
                        raise StoreError(f"Could not {self._doing}: SQLite ran out of memory reading the "
                                         f"database, which usually means it is damaged. "
                                         f"{advice('damaged', self.path)}", "damaged") from error
            finally:
                if outermost:
                    self._doing = None

        return guarded

    return decorate


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created: float
    updated: float
    pinned: bool
    message_count: int


class ConversationStore:
    def __init__(self, path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, read_only: bool = False):
        """busy_timeout_ms: how long one statement waits for another program's write lock (a
        command-line user can wait longer than a window). read_only: open without writing
        (a database on read-only media; every write then fails with kind "read_only")."""
        self.path = Path(path)
        self.read_only = read_only
        self._depth = 0  # transactions entered and not yet left (nested ones join the outer)
        self._doing: str | None = None  # what the public method running now does, for messages
        self.db: sqlite3.Connection | None = None
        try:
            if read_only:
                self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                          isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, isolation_level=None)  # we manage transactions
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._migrate()
            if not read_only:
                self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")  # durable against a killed process
        except StoreError as error:
            self._close_quietly()
            if isinstance(error.__cause__, sqlite3.Error):  # a migration failed: say it as opening
                raise self._open_error(error.__cause__) from error.__cause__
            raise
        except (sqlite3.Error, OSError) as error:
            self._close_quietly()
            raise self._open_error(error) from error
        if not read_only:
            self._remove_abandoned_imports_quietly()

    def _open_error(self, error: sqlite3.Error | OSError) -> StoreError:
        kind = fault_kind(error, self.path)
        if kind == "io" and getattr(error, "sqlite_errorcode", None) == 1 and not self._sound():
            kind = "damaged"  # a plain SQL error from queries that work on every sound database
        return StoreError(f"Cannot open the conversation database {self.path} ({error}). "
                          f"{advice(kind, self.path)}", kind)

    def _sound(self) -> bool:
        """PRAGMA quick_check, run only once opening failed: it reads the whole file."""
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                return db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            finally:
                db.close()
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self.db.close()

    def _close_quietly(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except sqlite3.Error:
                log.debug("closing %s failed", self.path, exc_info=True)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing. Nested uses join the outer transaction. A failure rolls everything back
        and raises StoreError (or the caller's own exception); a rollback that fails too is
        logged, and never hides the first error."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as error:
            self._rollback()
            if isinstance(error, sqlite3.Error) and not isinstance(error, _CALLER_ERRORS):
                raise store_error(error, self.path, self._doing or "save the change") from error
            raise
        finally:
            self._depth = 0

    def _begin(self) -> None:
        pauses = iter(RETRY_PAUSES_S)
        while True:
            try:
                self._heal()
                self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as error:
                failure = store_error(error, self.path, self._doing or "write to the conversation database")
                if failure.kind != "locked" or not self._pause_before_retry(pauses):
                    raise failure from error

    def _pause_before_retry(self, pauses: Iterator[float]) -> bool:
        """False when the retries are used up. Tests replace it to act between two tries."""
        pause = next(pauses, None)
        if pause is None:
            return False
        log.info("the conversation database is locked; trying again in %.2f s", pause)
        time.sleep(pause)
        return True

    def _rollback(self) -> None:
        """SQLite has already rolled back after some errors (a full disk, an I/O error)."""
        if not self.db.in_transaction:
            return
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rolling back a failed change to %s failed too", self.path, exc_info=True)

    def _heal(self) -> None:
        """A transaction left open by a rollback that failed is rolled back before anything else,
        so that no later change joins it (and is never committed)."""
        if not self._depth and self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # -- schema ----------------------------------------------------------------------------------

    @property
    @_guarded("read the schema version")
    def schema_version(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    def _migrate(self) -> None:
        self.db.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)""")
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"The conversation database {self.path} was written by a newer version of "
                f"Llamadesk (schema {current}; this version knows up to {SCHEMA_VERSION}). "
                "It was left untouched: update Llamadesk to open it."
            )
        for version, (name, migrate) in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            with self.transaction():
                migrate(self.db)
                self.db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                                (version, name, time.time()))

    # -- conversations -------------------------------------------------------------------------

    @_guarded("list the conversations")
    def list_conversations(self) -> list[ConversationSummary]:
        """Pinned first, then most recently updated."""
        rows = self.db.execute("""
            SELECT c.id, c.title, c.created, c.updated, c.pinned,
                   (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n
            FROM conversations c WHERE c.deleted IS NULL
            ORDER BY c.pinned DESC, c.updated DESC""").fetchall()
        return [ConversationSummary(r["id"], r["title"], r["created"], r["updated"], bool(r["pinned"]),
                                    r["n"]) for r in rows]

    @_guarded("read the conversation")
    def load(self, conversation_id: str) -> Conversation:
        row = self.db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise StoreError(f"There is no conversation with id {conversation_id}.")
        messages = [_message_from_row(r) for r in self.db.execute(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY num", (conversation_id,))]
        return Conversation(
            id=row["id"], title=row["title"], created=row["created"], updated=row["updated"],
            system_prompt=row["system_prompt"],
            sampling=SamplingParams.from_dict(json.loads(row["sampling"] or "{}")),
            model=row["model"], pinned=bool(row["pinned"]), titled_by_user=bool(row["titled_by_user"]),
            messages=messages,
        )

    @_guarded("save the conversation")
    def save_conversation(self, conversation: Conversation) -> None:
        """Insert or update a conversation's own fields (not its messages)."""
        self.db.execute("""
            INSERT INTO conversations (id, title, created, updated, system_prompt, sampling, model,
                                       pinned, titled_by_user)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO UPDATE SET title = excluded.title, updated = excluded.updated,
                system_prompt = excluded.system_prompt, sampling = excluded.sampling,
                model = excluded.model, pinned = excluded.pinned,
                titled_by_user = excluded.titled_by_user""", _conversation_row(conversation))

    @_guarded("rename the conversation")
    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("A conversation needs a title.")
        self.db.execute("UPDATE conversations SET title = ?, titled_by_user = 1 WHERE id = ?",
                        (title, conversation_id))

    @_guarded("pin or unpin the conversation")
    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        self.db.execute("UPDATE conversations SET pinned = ? WHERE id = ?", (int(pinned), conversation_id))

    @_guarded("delete the conversation")
    def delete(self, conversation_id: str) -> None:
        """Hide now; `undelete` brings it back until `purge_deleted` removes it for good."""
        self.db.execute("UPDATE conversations SET deleted = ? WHERE id = ? AND importing IS NULL",
                        (time.time(), conversation_id))

    @_guarded("bring the conversation back")
    def undelete(self, conversation_id: str) -> None:
        self.db.execute("UPDATE conversations SET deleted = NULL WHERE id = ? AND importing IS NULL",
                        (conversation_id,))

    @_guarded("remove the conversation")
    def forget(self, conversation_id: str) -> None:
        """Remove a conversation and its messages at once (no undo): one that never really began."""
        with self.transaction():
            self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    @_guarded("list the conversations")
    def conversation_ids(self) -> set[str]:
        """Every conversation still in the database, deleted ones that can be undone included."""
        return {row[0] for row in self.db.execute("SELECT id FROM conversations")}

    @_guarded("remove the deleted conversations")
    def purge_deleted(self) -> int:
        """Deleted conversations go for good (their number is returned), and so do the hidden rows
        of imports whose process died."""
        self._remove_abandoned_imports()
        with self.transaction():
            return self.db.execute(
                "DELETE FROM conversations WHERE deleted IS NOT NULL AND importing IS NULL").rowcount

    @_guarded("duplicate the conversation")
    def duplicate(self, conversation_id: str) -> str:
        original = self.load(conversation_id)
        copy = _with_new_ids(original)
        copy.title = f"{original.title} (copy)"
        copy.created = copy.updated = time.time()
        self.insert_conversations([copy])
        return copy.id

    @_guarded("import the conversations", retry=False)
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
            return [self._insert(conversation, None, None).id for conversation in conversations]
        token, now = new_id(), time.time()
        with self.transaction():
            self.db.execute("INSERT INTO imports VALUES (?, ?, ?, ?)", (token, os.getpid(), now, now))
        _LIVE_IMPORTS.add(token)
        try:
            ids = self._insert_hidden(conversations, token, chunk_s, pause_s, after_chunk)
            with self.transaction():
                self.db.execute("UPDATE conversations SET deleted = NULL, importing = NULL "
                                "WHERE importing = ?", (token,))
                self.db.execute("DELETE FROM imports WHERE id = ?", (token,))
            return ids
        except BaseException:
            self._discard_import(token)
            raise
        finally:
            _LIVE_IMPORTS.discard(token)

    def _insert_hidden(self, conversations: Iterable[Conversation], token: str, chunk_s: float,
                       pause_s: float, after_chunk: Callable[[], None] | None) -> list[str]:
        ids: list[str] = []
        steps = self._insert_steps(conversations, token, ids)
        finished = False
        while not finished:
            with self.transaction():
                started, finished = time.monotonic(), True
                for _ in steps:
                    if time.monotonic() - started >= chunk_s:
                        finished = False
                        break
                self.db.execute("UPDATE imports SET heartbeat = ? WHERE id = ?", (time.time(), token))
            if after_chunk is not None:
                after_chunk()
            if not finished and pause_s:
                time.sleep(pause_s)
        return ids

    def _insert_steps(self, conversations: Iterable[Conversation], token: str,
                      ids: list[str]) -> Iterator[None]:
        """Writes a little more at each step: a conversation's row, or a batch of its messages."""
        hidden_at = time.time()
        for conversation in conversations:
            written = self._insert(conversation, hidden_at, token, messages=False)
            ids.append(written.id)
            yield
            messages = [_message_row(written.id, m) for m in written.messages]
            for start in range(0, len(messages), IMPORT_BATCH_ROWS):
                self.db.executemany(_INSERT_MESSAGE, messages[start:start + IMPORT_BATCH_ROWS])
                yield

    def _insert(self, conversation: Conversation, hidden_at: float | None, token: str | None,
                messages: bool = True) -> Conversation:
        """Write a conversation's row (and its messages): as a copy with new ids if its id or a
        message's is here already. Returns what was written."""
        clash = (self.db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation.id,)).fetchone()
                 or any(self._message_exists(m.id) for m in conversation.messages))
        if clash:
            conversation = _with_new_ids(conversation)
        self.db.execute(_INSERT_CONVERSATION, (*_conversation_row(conversation), hidden_at, token))
        if messages:
            self.db.executemany(_INSERT_MESSAGE, [_message_row(conversation.id, m)
                                                  for m in conversation.messages])
        return conversation

    def _discard_import(self, token: str) -> None:
        try:
            with self.transaction():
                self.db.execute("DELETE FROM conversations WHERE importing = ?", (token,))
                self.db.execute("DELETE FROM imports WHERE id = ?", (token,))
        except (StoreError, sqlite3.Error):
            log.warning("the rows of a failed import stay hidden until the next start", exc_info=True)

    def _remove_abandoned_imports(self) -> int:
        """Remove the hidden rows of imports whose process is gone (killed, or failed and could
        not clean up). Cheap when there are none: `imports` is empty but during an import."""
        running = self.db.execute("SELECT id, pid, heartbeat FROM imports").fetchall()
        dead = [r["id"] for r in running
                if not import_alive(r["id"], r["pid"], r["heartbeat"], _LIVE_IMPORTS)]
        orphaned = self.db.execute("SELECT 1 FROM conversations WHERE importing IS NOT NULL AND importing "
                                   "NOT IN (SELECT id FROM imports) LIMIT 1").fetchone()
        if not dead and not orphaned:
            return 0
        with self.transaction():
            self.db.executemany("DELETE FROM imports WHERE id = ?", [(i,) for i in dead])
            removed = self.db.execute("DELETE FROM conversations WHERE importing IS NOT NULL AND "
                                      "importing NOT IN (SELECT id FROM imports)").rowcount
        log.warning("removed %d conversations of %d imports that did not finish", removed, len(dead))
        return removed

    def _remove_abandoned_imports_quietly(self) -> None:
        """At open: a database that cannot be written now is still opened for reading."""
        try:
            self._remove_abandoned_imports()
        except sqlite3.Error as error:
            if kind_of(error) == "damaged":
                self._close_quietly()
                raise self._open_error(error) from error
            log.warning("could not remove the rows of unfinished imports now: %s", error)
        except StoreError as error:
            if error.kind == "damaged":
                self._close_quietly()
                raise
            log.warning("could not remove the rows of unfinished imports now: %s", error.message)

    def _message_exists(self, message_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is not None

    # -- messages --------------------------------------------------------------------------------

    @_guarded("save the message")
    def add_message(self, conversation: Conversation, message: Message) -> None:
        """Commit a message (and the conversation's fields) before anything else happens."""
        with self.transaction():
            self.save_conversation(conversation)
            self.db.execute(_INSERT_MESSAGE, _message_row(conversation.id, message))

    @_guarded("save the answer so far")
    def checkpoint(self, message_id: str, text: str) -> None:
        self.db.execute("UPDATE messages SET text = ? WHERE id = ?", (text, message_id))

    @_guarded("save the answer")
    def complete_message(self, message: Message) -> None:
        generation = json.dumps(asdict(message.generation)) if message.generation else None
        self.db.execute("UPDATE messages SET text = ?, incomplete = ?, generation = ? WHERE id = ?",
                        (message.text, int(message.incomplete), generation, message.id))

    @_guarded("delete the messages", retry=False)
    def delete_messages(self, message_ids: Iterable[str]) -> None:
        ids = list(message_ids)
        with self.transaction():
            self.db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    @_guarded("choose the version")
    def set_current_version(self, message: Message) -> None:
        with self.transaction():
            self.db.execute("""UPDATE messages SET current = (id = ?)
                WHERE conversation_id = (SELECT conversation_id FROM messages WHERE id = ?)
                  AND parent_id IS ?""", (message.id, message.id, message.parent_id))

    # -- search -------------------------------------------------------------------------------------

    @_guarded("search the conversations")
    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages and titles matching every word of `query`, best first (bm25).

        See app.core.search.search: snippets are made for the hits only, and a very common term
        is ranked among its newest RANK_AMONG_NEWEST (5,000) matches only.
        """
        return _search.search(self.db, query, limit)

    # -- model hashes ---------------------------------------------------------------------------

    @_guarded("read the model's checksum")
    def cached_sha256(self, path: Path) -> str | None:
        stat = path.stat()
        row = self.db.execute("SELECT size, mtime, sha256 FROM model_hashes WHERE path = ?",
                              (str(path),)).fetchone()
        if row and row["size"] == stat.st_size and row["mtime"] == stat.st_mtime:
            return row["sha256"]
        return None

    @_guarded("save the model's checksum")
    def remember_sha256(self, path: Path, sha256: str) -> None:
        stat = path.stat()
        self.db.execute("INSERT OR REPLACE INTO model_hashes VALUES (?, ?, ?, ?)",
                        (str(path), stat.st_size, stat.st_mtime, sha256))


class AnswerRecorder:
    """Saves a streaming answer: stored at once as incomplete, checkpointed while it grows.

    A process killed mid-answer leaves the answer as far as the last checkpoint, marked
    incomplete. `interval_s` bounds what a kill can lose.
    """

    def __init__(self, store: ConversationStore, conversation: Conversation, message: Message,
                 interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 resumed: bool = False):
        """resumed: the message is stored already (an answer being continued)."""
        self.store = store
        self.message = message
        self.interval_s = interval_s
        self.clock = clock
        message.incomplete = True
        if resumed:
            store.complete_message(message)  # marked incomplete again until it ends
        else:
            store.add_message(conversation, message)
        self._saved_at = clock()
        self._saved_text = message.text

    @property
    def saved_text(self) -> str:
        """The answer as the store holds it (what a failed save leaves)."""
        return self._saved_text

    def feed(self, text: str) -> None:
        self.message.text += text
        if self.clock() - self._saved_at >= self.interval_s:
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self.message.text != self._saved_text:
            self.store.checkpoint(self.message.id, self.message.text)
            self._saved_text = self.message.text
        self._saved_at = self.clock()

    def finish(self, generation: GenerationRecord | None, incomplete: bool) -> None:
        self.message.generation = generation
        self.message.incomplete = incomplete
        self.store.complete_message(self.message)


# -- rows ------------------------------------------------------------------------------------------

_INSERT_CONVERSATION = """INSERT INTO conversations (id, title, created, updated, system_prompt, sampling,
    model, pinned, titled_by_user, deleted, importing) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_LIVE_IMPORTS: set[str] = set()  # the imports this process is running now
_INSERT_MESSAGE = """INSERT INTO messages (id, conversation_id, parent_id, role, text, created, current,
                                           incomplete, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def _conversation_row(c: Conversation) -> tuple:
    return (c.id, c.title, c.created, c.updated, c.system_prompt, json.dumps(c.sampling.to_dict()),
            c.model, int(c.pinned), int(c.titled_by_user))


def _message_row(conversation_id: str, m: Message) -> tuple:
    generation = json.dumps(asdict(m.generation)) if m.generation else None
    return (m.id, conversation_id, m.parent_id, m.role, m.text, m.created, int(m.current),
            int(m.incomplete), generation)


def _message_from_row(r: sqlite3.Row) -> Message:
    generation = GenerationRecord(**json.loads(r["generation"])) if r["generation"] else None
    return Message(role=r["role"], text=r["text"], id=r["id"], parent_id=r["parent_id"],
                   created=r["created"], current=bool(r["current"]), incomplete=bool(r["incomplete"]),
                   generation=generation)


def _with_new_ids(conversation: Conversation) -> Conversation:
    mapping = {m.id: new_id() for m in conversation.messages}
    messages = [Message(**{**asdict(m), "id": mapping[m.id],
                           "parent_id": mapping.get(m.parent_id) if m.parent_id else None,
                           "generation": m.generation})
                for m in conversation.messages]
    fields = {k: getattr(conversation, k) for k in conversation.__dataclass_fields__}
    return Conversation(**{**fields, "id": new_id(), "messages": messages})


def default_store_path() -> Path:
    from app import paths

    return paths.data_dir() / DATABASE_NAME
