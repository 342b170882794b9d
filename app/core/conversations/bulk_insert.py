"""Adding many conversations at once (an import, a copy) without shutting other writers out.

An import's rows are written hidden, in transactions of about IMPORT_CHUNK_S with pauses of
IMPORT_PAUSE_S between them, and shown in one final short transaction: all appear, or none. The
`imports` table records each running import with its process and a heartbeat, so the rows of one
whose process was killed are found and removed at the next open or purge.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator

from app.core.conversations.conversation import Conversation, new_id
from app.core.conversations.database import Database
from app.core.conversations.recovery import StoreError, import_alive
from app.core.conversations.rows import (
    INSERT_CONVERSATION,
    INSERT_MESSAGE,
    conversation_row,
    message_row,
    with_new_ids,
)

log = logging.getLogger(__name__)

# SQLite's locks are not queued, and a waiting writer polls every 25-100 ms, so without the pause
# it could miss every gap (measured behind a 16,000-message import: waits of up to 0.65 s without
# it, under 0.1 s with it).
IMPORT_CHUNK_S = 0.05
IMPORT_PAUSE_S = 0.025
IMPORT_BATCH_ROWS = 50
_LIVE_IMPORTS: set[str] = set()  # the imports this process is running now


def insert(database: Database, conversation: Conversation, hidden_at: float | None = None,
           token: str | None = None, messages: bool = True) -> Conversation:
    """Write a conversation's row (and its messages): as a copy with new ids if its id or a
    message's is here already. Returns what was written."""
    db = database.db
    clash = (db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation.id,)).fetchone()
             or any(db.execute("SELECT 1 FROM messages WHERE id = ?", (m.id,)).fetchone()
                    for m in conversation.messages))
    if clash:
        conversation = with_new_ids(conversation)
    db.execute(INSERT_CONVERSATION, (*conversation_row(conversation), hidden_at, token))
    if messages:
        db.executemany(INSERT_MESSAGE, [message_row(conversation.id, m) for m in conversation.messages])
    return conversation


def insert_hidden_then_show(database: Database, conversations: Iterable[Conversation], chunk_s: float,
                            pause_s: float, after_chunk: Callable[[], None] | None) -> list[str]:
    """The ids the conversations were added under; on any failure none of them is left."""
    token, now = new_id(), time.time()
    with database.transaction():
        database.db.execute("INSERT INTO imports VALUES (?, ?, ?, ?)", (token, os.getpid(), now, now))
    _LIVE_IMPORTS.add(token)
    try:
        ids = _insert_hidden(database, conversations, token, chunk_s, pause_s, after_chunk)
        with database.transaction():
            database.db.execute("UPDATE conversations SET deleted = NULL, importing = NULL "
                                "WHERE importing = ?", (token,))
            database.db.execute("DELETE FROM imports WHERE id = ?", (token,))
        return ids
    except BaseException:
        _discard(database, token)
        raise
    finally:
        _LIVE_IMPORTS.discard(token)


def remove_abandoned(database: Database) -> int:
    """Remove the hidden rows of imports whose process is gone (killed, or failed and could not
    clean up); how many conversations. Cheap when there are none: `imports` is empty but during
    an import."""
    db = database.db
    running = db.execute("SELECT id, pid, heartbeat FROM imports").fetchall()
    dead = [r["id"] for r in running if not import_alive(r["id"], r["pid"], r["heartbeat"], _LIVE_IMPORTS)]
    orphaned = db.execute("SELECT 1 FROM conversations WHERE importing IS NOT NULL AND importing "
                          "NOT IN (SELECT id FROM imports) LIMIT 1").fetchone()
    if not dead and not orphaned:
        return 0
    with database.transaction():
        db.executemany("DELETE FROM imports WHERE id = ?", [(i,) for i in dead])
        removed = db.execute("DELETE FROM conversations WHERE importing IS NOT NULL AND "
                             "importing NOT IN (SELECT id FROM imports)").rowcount
    log.warning("removed %d conversations of %d imports that did not finish", removed, len(dead))
    return removed


def _insert_hidden(database: Database, conversations: Iterable[Conversation], token: str, chunk_s: float,
                   pause_s: float, after_chunk: Callable[[], None] | None) -> list[str]:
    ids: list[str] = []
    steps = _insert_steps(database, conversations, token, ids)
    finished = False
    while not finished:
        with database.transaction():
            started, finished = time.monotonic(), True
            for _ in steps:
                if time.monotonic() - started >= chunk_s:
                    finished = False
                    break
            database.db.execute("UPDATE imports SET heartbeat = ? WHERE id = ?", (time.time(), token))
        if after_chunk is not None:
            after_chunk()
        if not finished and pause_s:
            time.sleep(pause_s)
    return ids


def _insert_steps(database: Database, conversations: Iterable[Conversation], token: str,
                  ids: list[str]) -> Iterator[None]:
    """Writes a little more at each step: a conversation's row, or a batch of its messages."""
    hidden_at = time.time()
    for conversation in conversations:
        written = insert(database, conversation, hidden_at, token, messages=False)
        ids.append(written.id)
        yield
        messages = [message_row(written.id, m) for m in written.messages]
        for start in range(0, len(messages), IMPORT_BATCH_ROWS):
            database.db.executemany(INSERT_MESSAGE, messages[start:start + IMPORT_BATCH_ROWS])
            yield


def _discard(database: Database, token: str) -> None:
    try:
        with database.transaction():
            database.db.execute("DELETE FROM conversations WHERE importing = ?", (token,))
            database.db.execute("DELETE FROM imports WHERE id = ?", (token,))
    except (StoreError, sqlite3.Error):
        log.warning("the rows of a failed import stay hidden until the next start", exc_info=True)
