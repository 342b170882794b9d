"""The conversation store: one SQLite database, numbered migrations, full-text search.

Every change is committed when it happens (WAL mode), so a crash or a kill loses nothing that
was written: the user's message is saved before the model starts, the answer is saved while
it streams (see AnswerRecorder) and completed at the end.

One store object per thread: sqlite3 connections are not shared across threads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from app.core import search as _search
from app.core.conversation import Conversation, GenerationRecord, Message, new_id
from app.core.errors import UserFacingError
from app.core.sampling import SamplingParams
from app.core.search import MATCH_END as MATCH_END  # re-exported: search results are the store's API
from app.core.search import MATCH_START as MATCH_START
from app.core.search import SearchHit as SearchHit
from app.core.search import _fts_query as _fts_query

DATABASE_NAME = "conversations.sqlite3"


class StoreError(UserFacingError):
    pass


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created: float
    updated: float
    pinned: bool
    message_count: int


# -- migrations: append only; each runs once, in order, recorded in schema_migrations ----------

def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run statements one by one: executescript would COMMIT the migration's transaction."""
    statement = ""
    for line in sql.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE TABLE conversations (
            num INTEGER PRIMARY KEY,              -- stable rowid for the FTS index
            id TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            system_prompt TEXT NOT NULL DEFAULT '',
            sampling TEXT NOT NULL DEFAULT '{}',
            model TEXT NOT NULL DEFAULT '',
            pinned INTEGER NOT NULL DEFAULT 0,
            titled_by_user INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE messages (
            num INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id TEXT,
            role TEXT NOT NULL,
            text TEXT NOT NULL,
            created REAL NOT NULL,
            current INTEGER NOT NULL DEFAULT 1,
            incomplete INTEGER NOT NULL DEFAULT 0,
            generation TEXT                       -- JSON of GenerationRecord, assistant only
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, num);
        CREATE TABLE model_hashes (
            path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime REAL NOT NULL, sha256 TEXT NOT NULL
        );
    """)


def _m002_full_text_search(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, content='messages', content_rowid='num', tokenize='unicode61 remove_diacritics 2');
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, text) VALUES (new.num, new.text);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.num, old.text);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.num, old.text);
            INSERT INTO messages_fts(rowid, text) VALUES (new.num, new.text);
        END;
        CREATE VIRTUAL TABLE titles_fts USING fts5(
            title, content='conversations', content_rowid='num',
            tokenize='unicode61 remove_diacritics 2');
        CREATE TRIGGER conversations_ai AFTER INSERT ON conversations BEGIN
            INSERT INTO titles_fts(rowid, title) VALUES (new.num, new.title);
        END;
        CREATE TRIGGER conversations_ad AFTER DELETE ON conversations BEGIN
            INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.num, old.title);
        END;
        CREATE TRIGGER conversations_au AFTER UPDATE OF title ON conversations BEGIN
            INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.num, old.title);
            INSERT INTO titles_fts(rowid, title) VALUES (new.num, new.title);
        END;
        INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
        INSERT INTO titles_fts(titles_fts) VALUES ('rebuild');
    """)


def _m003_soft_delete(db: sqlite3.Connection) -> None:
    """Deleting is undoable for a few seconds: rows are marked first and purged later."""
    db.execute("ALTER TABLE conversations ADD COLUMN deleted REAL")


def _m004_fts_prefix_index(db: sqlite3.Connection) -> None:
    """Prefix indexes for 2 and 3 characters: a short word typed so far ("th", "the") no longer
    merges the lists of every word it begins. FTS5 takes options only when a table is created:
    both tables are made anew (same content tables, tokenizer and triggers) and rebuilt."""
    _script(db, """
        DROP TRIGGER IF EXISTS messages_ai;
        DROP TRIGGER IF EXISTS messages_ad;
        DROP TRIGGER IF EXISTS messages_au;
        DROP TRIGGER IF EXISTS conversations_ai;
        DROP TRIGGER IF EXISTS conversations_ad;
        DROP TRIGGER IF EXISTS conversations_au;
        DROP TABLE IF EXISTS messages_fts;
        DROP TABLE IF EXISTS titles_fts;
        CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, content='messages', content_rowid='num', tokenize='unicode61 remove_diacritics 2',
            prefix='2 3');
        CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, text) VALUES (new.num, new.text);
        END;
        CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.num, old.text);
        END;
        CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.num, old.text);
            INSERT INTO messages_fts(rowid, text) VALUES (new.num, new.text);
        END;
        CREATE VIRTUAL TABLE titles_fts USING fts5(
            title, content='conversations', content_rowid='num',
            tokenize='unicode61 remove_diacritics 2', prefix='2 3');
        CREATE TRIGGER conversations_ai AFTER INSERT ON conversations BEGIN
            INSERT INTO titles_fts(rowid, title) VALUES (new.num, new.title);
        END;
        CREATE TRIGGER conversations_ad AFTER DELETE ON conversations BEGIN
            INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.num, old.title);
        END;
        CREATE TRIGGER conversations_au AFTER UPDATE OF title ON conversations BEGIN
            INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.num, old.title);
            INSERT INTO titles_fts(rowid, title) VALUES (new.num, new.title);
        END;
        INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
        INSERT INTO titles_fts(titles_fts) VALUES ('rebuild');
    """)


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("initial", _m001_initial),
    ("full_text_search", _m002_full_text_search),
    ("soft_delete", _m003_soft_delete),
    ("fts_prefix_index", _m004_fts_prefix_index),
]
SCHEMA_VERSION = len(MIGRATIONS)


class ConversationStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)  # we manage transactions
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA busy_timeout = 5000")
            self._migrate()
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")  # durable against a killed process
        except sqlite3.DatabaseError as error:
            raise StoreError(f"Cannot open the conversation database {self.path}: {error}.") from error

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing. Nested uses join the outer transaction."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- schema ----------------------------------------------------------------------------------

    @property
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

    def list_conversations(self) -> list[ConversationSummary]:
        """Pinned first, then most recently updated."""
        rows = self.db.execute("""
            SELECT c.id, c.title, c.created, c.updated, c.pinned,
                   (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n
            FROM conversations c WHERE c.deleted IS NULL
            ORDER BY c.pinned DESC, c.updated DESC""").fetchall()
        return [ConversationSummary(r["id"], r["title"], r["created"], r["updated"], bool(r["pinned"]),
                                    r["n"]) for r in rows]

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

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("A conversation needs a title.")
        self.db.execute("UPDATE conversations SET title = ?, titled_by_user = 1 WHERE id = ?",
                        (title, conversation_id))

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        self.db.execute("UPDATE conversations SET pinned = ? WHERE id = ?", (int(pinned), conversation_id))

    def delete(self, conversation_id: str) -> None:
        """Hide now; `undelete` brings it back until `purge_deleted` removes it for good."""
        self.db.execute("UPDATE conversations SET deleted = ? WHERE id = ?", (time.time(), conversation_id))

    def undelete(self, conversation_id: str) -> None:
        self.db.execute("UPDATE conversations SET deleted = NULL WHERE id = ?", (conversation_id,))

    def forget(self, conversation_id: str) -> None:
        """Remove a conversation and its messages at once (no undo): one that never really began."""
        with self.transaction():
            self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def purge_deleted(self) -> int:
        with self.transaction():
            return self.db.execute("DELETE FROM conversations WHERE deleted IS NOT NULL").rowcount

    def duplicate(self, conversation_id: str) -> str:
        original = self.load(conversation_id)
        copy = _with_new_ids(original)
        copy.title = f"{original.title} (copy)"
        copy.created = copy.updated = time.time()
        self.insert_conversations([copy])
        return copy.id

    def insert_conversations(self, conversations: Iterable[Conversation]) -> list[str]:
        """Add whole conversations in ONE transaction: all are written, or none.

        A conversation whose id is already here is added as a copy with new ids.
        """
        ids = []
        with self.transaction():
            for conversation in conversations:
                exists = self.db.execute("SELECT 1 FROM conversations WHERE id = ?",
                                         (conversation.id,)).fetchone()
                clash = exists or any(self._message_exists(m.id) for m in conversation.messages)
                if clash:
                    conversation = _with_new_ids(conversation)
                self.save_conversation(conversation)
                self.db.executemany(_INSERT_MESSAGE, [_message_row(conversation.id, m)
                                                      for m in conversation.messages])
                ids.append(conversation.id)
        return ids

    def _message_exists(self, message_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone() is not None

    # -- messages --------------------------------------------------------------------------------

    def add_message(self, conversation: Conversation, message: Message) -> None:
        """Commit a message (and the conversation's fields) before anything else happens."""
        with self.transaction():
            self.save_conversation(conversation)
            self.db.execute(_INSERT_MESSAGE, _message_row(conversation.id, message))

    def checkpoint(self, message_id: str, text: str) -> None:
        self.db.execute("UPDATE messages SET text = ? WHERE id = ?", (text, message_id))

    def complete_message(self, message: Message) -> None:
        generation = json.dumps(asdict(message.generation)) if message.generation else None
        self.db.execute("UPDATE messages SET text = ?, incomplete = ?, generation = ? WHERE id = ?",
                        (message.text, int(message.incomplete), generation, message.id))

    def delete_messages(self, message_ids: Iterable[str]) -> None:
        ids = list(message_ids)
        with self.transaction():
            self.db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])

    def set_current_version(self, message: Message) -> None:
        with self.transaction():
            self.db.execute("""UPDATE messages SET current = (id = ?)
                WHERE conversation_id = (SELECT conversation_id FROM messages WHERE id = ?)
                  AND parent_id IS ?""", (message.id, message.id, message.parent_id))

    # -- search -------------------------------------------------------------------------------------

    def search(self, query: str, limit: int = 50) -> list[SearchHit]:
        """Messages and titles matching every word of `query`, best first (bm25).

        See app.core.search.search: snippets are made for the hits only, and a very common term
        is ranked among its newest RANK_AMONG_NEWEST (5,000) matches only.
        """
        return _search.search(self.db, query, limit)

    # -- model hashes ---------------------------------------------------------------------------

    def cached_sha256(self, path: Path) -> str | None:
        stat = path.stat()
        row = self.db.execute("SELECT size, mtime, sha256 FROM model_hashes WHERE path = ?",
                              (str(path),)).fetchone()
        if row and row["size"] == stat.st_size and row["mtime"] == stat.st_mtime:
            return row["sha256"]
        return None

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
