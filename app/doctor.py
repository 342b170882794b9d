"""`python -m app doctor`: check what Llamadesk keeps on disk, one line per check.

Output is stable, for people and scripts: `ok|problem<TAB>what<TAB>detail`. Exit status 0 when
nothing is wrong (a damaged database that `--recover` replaced counts as repaired), 1 otherwise.
The database is only read, except by `--recover`; damaged KV snapshots are deleted, as the app
itself would delete them (their conversations' prompts are simply read again).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
MAX_REPORTED = 5  # lines of an integrity check's findings shown


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    detail: str
    repaired: bool = False  # a problem that was put right (it does not make the exit status 1)

    def line(self) -> str:
        detail = re.sub(r"[\x00-\x1f\x7f]+", " ", self.detail)  # one line, three columns
        return "\t".join(["ok" if self.ok else "problem", self.what, detail])


def run(recover: bool = False) -> int:
    from app import paths
    from app.core.conversations.store import default_store_path

    problems = 0
    for check in [*database_checks(default_store_path(), recover), *kv_checks(paths.cache_dir() / "kv"),
                  *settings_checks(paths.config_dir())]:
        print(check.line(), flush=True)
        problems += not (check.ok or check.repaired)
    return 1 if problems else 0


# -- the conversation database --------------------------------------------------------------------

def database_checks(path: Path, recover: bool = False) -> Iterator[Check]:
    if not path.exists():
        yield Check(True, "database", f"{path}: none yet (the first start makes one)")
        return
    damage = database_damage(path)
    if damage is None:
        yield Check(True, "database", f"{path}: intact")
        yield schema_check(path)
        if recover:
            yield Check(True, "database recovery", "not needed: the database is intact")
        return
    if not recover:
        yield Check(False, "database", f"{path} is damaged: {damage}. Close Llamadesk, then run "
                    "`python -m app doctor --recover`")
        return
    from app.core.conversations.recovery import StoreError
    from app.core.conversations.recovery import recover as recover_database

    try:
        report = recover_database(path)
    except (StoreError, sqlite3.Error, OSError) as error:
        log.warning("recovering %s failed", path, exc_info=True)
        yield Check(False, "database", f"{path} is damaged: {damage}")
        yield Check(False, "database recovery", f"failed: {getattr(error, 'message', error)}")
        return
    yield Check(False, "database", f"{path} was damaged: {damage}", repaired=not report.nothing_read)
    yield Check(not report.nothing_read, "database recovery", report.summary())
    yield schema_check(path)


def database_damage(path: Path) -> str | None:
    """What PRAGMA integrity_check (pages, indexes) and the full-text indexes' own check find;
    None when both find nothing. The first is read-only; the second needs a connection that
    may write, and writes nothing (its transaction is rolled back)."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            findings = [row[0] for row in db.execute(f"PRAGMA integrity_check({MAX_REPORTED})")]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        return str(error)
    if findings != ["ok"]:
        return "; ".join(findings)
    from app.core.conversations.recovery import kind_of

    fts_tables = [t for t in ("messages_fts", "titles_fts") if t in tables]
    if not fts_tables:
        return None
    try:
        db = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            db.execute("BEGIN")
            for table in fts_tables:  # SQLite's integrity_check does not look inside FTS5 indexes
                try:
                    db.execute(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")
                except sqlite3.DatabaseError as error:
                    if kind_of(error) == "damaged":
                        return f"its search index {table} is damaged ({error})"
                    raise
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.Error as error:  # read-only or locked: the pages are sound, the index unchecked
        log.info("the search index of %s was not checked: %s", path, error)
    return None


def schema_check(path: Path) -> Check:
    from app.core.conversations.store import SCHEMA_VERSION

    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as error:
        return Check(False, "database schema", f"unreadable: {error}")
    if version > SCHEMA_VERSION:
        return Check(False, "database schema", f"version {version}, written by a newer Llamadesk (this "
                     f"one knows up to {SCHEMA_VERSION}): update Llamadesk to open it")
    if version < SCHEMA_VERSION:
        return Check(True, "database schema", f"version {version}; the next start brings it to "
                     f"{SCHEMA_VERSION}")
    return Check(True, "database schema", f"version {version}")


# -- KV snapshots and settings files (their modules know how to check them) ----------------------

def kv_checks(folder: Path) -> Iterator[Check]:
    """Every snapshot read whole; a damaged one is deleted (KVCacheStore.check)."""
    try:
        from app.core.inference.local.kv_cache import KVCacheStore
    except ImportError as error:  # no llama.cpp here: the snapshots cannot be used anyway
        yield Check(False, "kv snapshots", f"not checked: {error}")
        return
    if not hasattr(KVCacheStore, "check"):
        return
    result = KVCacheStore(folder).check()
    for removed in result.removed:
        yield Check(False, "kv snapshot", f"{removed} (deleted: its conversation's prompt is read again)")
    yield Check(True, "kv snapshots", f"{result.sound} sound in {folder}")


def settings_checks(config_dir: Path) -> Iterator[Check]:
    try:
        from app.core.common.settings_file import check_all
    except ImportError:
        return
    from app.core.common.settings_file import read_checked, status
    from app.core.remote import connections, keys

    remote = [(k.name, status(lambda k=k: read_checked(k, Path(config_dir) / k.name)))
              for k in (connections.KIND, keys.KIND)]  # the key file's check never quotes a key
    for name, verdict in [*check_all(config_dir), *remote]:
        yield Check(verdict == "ok", f"settings {name}", "ok" if verdict == "ok" else verdict)
