"""The conversation store's schema: numbered migrations, frozen history.

Migrations are append-only: each runs once, in order, inside one transaction, and is recorded in
schema_migrations. A released migration is never edited (databases out there already ran it); a
change to the schema is a new migration appended to MIGRATIONS.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


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


def _m005_chunked_imports(db: sqlite3.Connection) -> None:
    """Imports commit in short chunks: their conversations stay hidden (`importing` holds the
    import's id, `deleted` is set) until one short transaction shows them all. `imports` tells a
    running import from one whose process died, whose rows are removed."""
    _script(db, """
        ALTER TABLE conversations ADD COLUMN importing TEXT;
        CREATE INDEX conversations_importing ON conversations(importing) WHERE importing IS NOT NULL;
        CREATE TABLE imports (
            id TEXT PRIMARY KEY, pid INTEGER NOT NULL, started REAL NOT NULL, heartbeat REAL NOT NULL
        );
    """)


def _m006_message_thoughts(db: sqlite3.Connection) -> None:
    """A reasoning model's thought is kept apart from its answer: `text` stays the answer only, so
    search, titles and the history sent to the model leave the thought out."""
    db.execute("ALTER TABLE messages ADD COLUMN thought TEXT NOT NULL DEFAULT ''")


def _m007_conversation_connection(db: sqlite3.Connection) -> None:
    """A conversation answered by a remote engine names its connection ('' = the local engine);
    `model` is then the model id on that server."""
    db.execute("ALTER TABLE conversations ADD COLUMN connection TEXT NOT NULL DEFAULT ''")


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("initial", _m001_initial),
    ("full_text_search", _m002_full_text_search),
    ("soft_delete", _m003_soft_delete),
    ("fts_prefix_index", _m004_fts_prefix_index),
    ("chunked_imports", _m005_chunked_imports),
    ("message_thoughts", _m006_message_thoughts),
    ("conversation_connection", _m007_conversation_connection),
]
SCHEMA_VERSION = len(MIGRATIONS)
