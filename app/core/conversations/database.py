"""One SQLite connection that fails in words: opening, transactions, retries, migrations.

Every failure of SQLite reaches callers as StoreError with a `kind` (recovery.FAULT_KINDS): a
write that finds the database locked is retried a few times first, and a failed transaction is
rolled back. The conversation store (store.py) builds its reads and writes on this.

One object per thread: sqlite3 connections are not shared across threads.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.core.conversations.migrations import MIGRATIONS, SCHEMA_VERSION
from app.core.conversations.recovery import StoreError, advice, fault_kind, store_error

log = logging.getLogger(__name__)

# A window's write waits at most about BUSY_TIMEOUT_MS * (1 + len(RETRY_PAUSES_S)) + their sum
# (~2.5 s) behind another program before it is told "locked"; the retries add what SQLite's own
# busy handler does not cover (a busy snapshot, WAL recovery).
BUSY_TIMEOUT_MS = 750
RETRY_PAUSES_S = (0.05, 0.15)
# Errors of the caller (a constraint broken, an API misused): bugs to fix, not faults of the database.
CALLER_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def guarded(doing: str, retry: bool = True) -> Callable:
    """SQLite's errors become StoreError (`doing` says what failed, for the outermost call); a
    statement that found the database locked runs again after a short pause, unless it is part of
    a caller's transaction (only the whole transaction could run again) or `retry` is False (an
    argument that is used up)."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def guarded(self: Database, *args, **kwargs):
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
                        if isinstance(error, CALLER_ERRORS):
                            raise
                        failure = store_error(error, self.path, self._doing)
                        if failure.kind != "locked" or not self._pause_before_retry(pauses):
                            raise failure from error
                    except MemoryError as error:  # SQLite's SQLITE_NOMEM: a damaged index can cause it
                        raise StoreError(f"Could not {self._doing}: SQLite ran out of memory reading the "
                                         f"database, which usually means it is damaged. "
                                         f"{advice(StoreError.DAMAGED, self.path)}",
                                         kind=StoreError.DAMAGED) from error
            finally:
                if outermost:
                    self._doing = None

        return guarded

    return decorate


class Database:
    """The conversation database's connection, opened and migrated to the current schema."""

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

    def _open_error(self, error: sqlite3.Error | OSError) -> StoreError:
        kind = fault_kind(error, self.path)
        if kind == "io" and getattr(error, "sqlite_errorcode", None) == 1 and not self._sound():
            kind = "damaged"  # a plain SQL error from queries that work on every sound database
        return StoreError(f"Cannot open the conversation database {self.path} ({error}). "
                          f"{advice(kind, self.path)}", kind=kind)

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
            if isinstance(error, sqlite3.Error) and not isinstance(error, CALLER_ERRORS):
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
    @guarded("read the schema version")
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
