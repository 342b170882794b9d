"""When the conversation database fails: one error with a kind, and recovery from a damaged file.

Every SQLite failure of the store becomes a StoreError whose `kind` tells what the user can do
about it; `recover` copies what a damaged database still holds into a new one and keeps the
damaged file beside it. Nothing here imports Qt: the CLI, `doctor` and the window share it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.core.chat.sampling import SamplingParams
from app.core.common.errors import UserFacingError
from app.core.common.text import plural
from app.core.conversations.conversation import ROLES, GenerationRecord

log = logging.getLogger(__name__)
RECOVER_COMMAND = "python -m app doctor --recover"


class StoreError(UserFacingError):
    """A failure of the conversation database; `kind` tells what the user can do about it."""

    # A request the store refuses on its own: an unknown id, an empty title, a newer schema.
    INVALID = "invalid"
    # What went wrong with the database itself (FAULT_KINDS):
    FULL = "full"
    LOCKED = "locked"
    READ_ONLY = "read_only"
    DAMAGED = "damaged"
    IO = "io"
    DEFAULT_KIND = INVALID


FAULT_KINDS = (StoreError.FULL, StoreError.LOCKED, StoreError.READ_ONLY, StoreError.DAMAGED, StoreError.IO)


# SQLite's primary result codes (the low byte of the extended code).
_KIND_OF_CODE = {
    13: "full",       # SQLITE_FULL
    5: "locked",      # SQLITE_BUSY
    6: "locked",      # SQLITE_LOCKED
    8: "read_only",   # SQLITE_READONLY
    3: "read_only",   # SQLITE_PERM
    23: "read_only",  # SQLITE_AUTH
    11: "damaged",    # SQLITE_CORRUPT (also a damaged full-text index: SQLITE_CORRUPT_VTAB)
    26: "damaged",    # SQLITE_NOTADB
    10: "io",         # SQLITE_IOERR
    14: "io",         # SQLITE_CANTOPEN
    7: "io",          # SQLITE_NOMEM
}
_KIND_OF_TEXT = (("disk is full", "full"), ("locked", "locked"), ("readonly", "read_only"),
                 ("read-only", "read_only"), ("malformed", "damaged"), ("not a database", "damaged"),
                 ("corrupt", "damaged"))


def kind_of(error: sqlite3.Error) -> str:
    """The fault kind of an SQLite error: by its result code, else (older Pythons) by its text."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _KIND_OF_CODE:
        return _KIND_OF_CODE[code & 0xFF]
    text = str(error).lower()
    return next((kind for needle, kind in _KIND_OF_TEXT if needle in text), "io")


def fault_kind(error: sqlite3.Error | OSError, path: Path) -> str:
    """kind_of, told apart further by what the file system says about `path`."""
    if isinstance(error, OSError):
        kind = {errno.ENOSPC: "full", errno.EACCES: "read_only", errno.EPERM: "read_only",
                errno.EROFS: "read_only"}.get(error.errno, "io")
    else:
        kind = kind_of(error)
    if kind == "io" and not _writable(path):
        kind = "read_only"  # e.g. a database in WAL mode on a read-only disk cannot even be opened
    return kind


def advice(kind: str, path: Path) -> str:
    """What the user can do about a fault of `kind`."""
    return {
        "full": f"The disk holding {path.parent} is full. Free some space, then try again.",
        "locked": ("Another program is writing to the conversation database (an import in a terminal, "
                   "or a second Llamadesk) and did not finish in time. Wait for it or close it, then "
                   "try again."),
        "read_only": (f"The conversation database {path} cannot be written. Check that you may write "
                      "to the file and its folder (its permissions, a read-only disk), then try again."),
        "damaged": (f"The conversation database {path} is damaged. Close Llamadesk and run "
                    f"`{RECOVER_COMMAND}` (or restart Llamadesk and choose Recover): everything that "
                    "can still be read is copied into a new database, and the damaged file is kept."),
        "io": (f"Reading or writing {path} failed. Check the disk (is it still connected?) and try "
               "again."),
    }[kind]


def store_error(error: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """`doing`: what failed, as the end of "Could not …" ("save the message")."""
    kind = fault_kind(error, path)
    unchanged = " Nothing was changed." if kind != "damaged" else ""
    return StoreError(f"Could not {doing} ({error}).{unchanged} {advice(kind, path)}", kind=kind)


def _writable(path: Path) -> bool:
    """access(2) says no for a read-only file system even to root (chmod does not stop root)."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


# -- imports that did not finish -------------------------------------------------------------------

STALE_IMPORT_S = 600.0  # an import writes a heartbeat at every chunk (a fraction of a second)


def import_alive(import_id: str, pid: int, heartbeat: float, live_here: set[str]) -> bool:
    """Is this import still running? Its rows must not be removed while it is. One of this
    process is alive while it is in `live_here`; another process's while that process runs and
    its heartbeat is recent (a reused process id cannot keep a dead import alive for long)."""
    if pid == os.getpid():
        return import_id in live_here
    if time.time() - heartbeat > STALE_IMPORT_S:
        return False
    return _process_alive(pid)


def _process_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
        finally:
            kernel32.CloseHandle(handle)  # 259: STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


# -- recovery -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecoveryReport:
    path: Path  # the new database, in the old one's place
    damaged_path: Path  # the damaged file, kept (with its -wal and -shm files, if it had them)
    conversations: int  # recovered, with those rebuilt for messages whose conversation was lost
    messages: int
    conversations_lost: int | None  # None: the damaged file could not say how many it held
    messages_lost: int | None

    @property
    def nothing_read(self) -> bool:
        """No message could be read, though the damaged file held some (or could not say how
        many): the recovery did not save the chats, and the user must be told so, not "Recovered"."""
        return self.messages == 0 and self.messages_lost != 0

    def summary(self) -> str:
        if self.nothing_read:
            held = f"it held {plural(self.messages_lost, 'message')}" if self.messages_lost else (
                "how many it held is unknown")
            kept = (f"; only {plural(self.conversations, 'conversation')}, without their messages, "
                    f"were copied into the new database {self.path}") if self.conversations else (
                f"; {self.path} is now a new, empty database")
            return (f"No message could be read from the damaged conversation database ({held})"
                    f"{kept}. The damaged file was kept as {self.damaged_path}: "
                    "do not delete it, a data recovery tool (such as the sqlite3 command's .recover) "
                    "may still get more out of it.")
        lost = [plural(n, what) for n, what in ((self.conversations_lost, "conversation"),
                                                (self.messages_lost, "message")) if n]
        unknown = None in (self.conversations_lost, self.messages_lost)
        lost_text = ("; could not be read: " + " and ".join(lost)) if lost else (
            "; how much could not be read is unknown" if unknown else "; nothing was lost")
        return (f"Recovered {self.conversations} conversations and {self.messages} messages into "
                f"{self.path}{lost_text}. The damaged file was kept as {self.damaged_path}.")


def damaged_name(path: Path, when: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    return path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")


def recover(path: str | Path) -> RecoveryReport:
    """Copy every readable conversation and message of the database at `path` into a new
    database with every migration, then put the new one in its place and keep the damaged one
    beside it. Run it while no other program has the database open."""
    from app.core.conversations.store import ConversationStore  # store imports this module

    path = Path(path)
    if not path.exists():
        raise StoreError(f"There is no conversation database at {path}.")
    fresh = path.with_name(f"{path.stem}.recovering{path.suffix}")
    for leftover in _with_sidecars(fresh):  # from an earlier recovery that did not finish
        leftover.unlink(missing_ok=True)
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    source.text_factory = lambda data: data.decode("utf-8", "replace")  # keep text with a bad byte
    try:
        target = ConversationStore(fresh)
        try:
            with target.transaction():
                counts = _copy(source, target.db)
        finally:
            target.close()
    finally:
        source.close()
    damaged = damaged_name(path)
    for old, new in zip(_with_sidecars(path), _with_sidecars(damaged), strict=True):
        if old.exists():
            os.replace(old, new)
    os.replace(fresh, path)
    for leftover in _with_sidecars(fresh)[1:]:
        leftover.unlink(missing_ok=True)
    os.chmod(path, stat.S_IMODE(damaged.stat().st_mode))  # as private as the file it replaces
    report = RecoveryReport(path, damaged, *counts)
    log.warning("%s", report.summary())
    return report


def _with_sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _copy(source: sqlite3.Connection, target: sqlite3.Connection) -> tuple[int, int, int | None, int | None]:
    """(conversations, messages, conversations lost, messages lost)."""
    conversation_ids: set[str] = set()
    for row in _readable_rows(source, "conversations"):
        values = _conversation_values(row)
        if values is None or values[0] in conversation_ids:
            continue
        target.execute(_INSERT_CONVERSATION, values)
        conversation_ids.add(values[0])
    recovered_conversations = len(conversation_ids)
    messages = 0
    last_in: dict[str, str] = {}  # conversation id -> its last message copied so far
    message_ids: set[str] = set()
    for row in _readable_rows(source, "messages"):
        values = _message_values(row)
        if values is None or values[0] in message_ids:
            continue
        message_id, conversation_id, parent_id = values[0], values[1], values[2]
        if conversation_id not in conversation_ids:  # its conversation was lost: make one
            target.execute(_INSERT_CONVERSATION, (conversation_id, "Recovered conversation",
                                                  values[5], values[5], "", "{}", "", 0, 0, None, ""))
            conversation_ids.add(conversation_id)
        if parent_id is not None and parent_id not in message_ids:  # its parent was lost
            parent_id = last_in.get(conversation_id)
        target.execute(_INSERT_MESSAGE, (message_id, conversation_id, parent_id, *values[3:]))
        message_ids.add(message_id)
        last_in[conversation_id] = message_id
        messages += 1
    return (len(conversation_ids), messages,
            _lost(source, "conversations", recovered_conversations), _lost(source, "messages", messages))


def _lost(source: sqlite3.Connection, table: str, recovered: int) -> int | None:
    where = " WHERE importing IS NULL" if table == "conversations" and _has_importing(source) else ""
    try:
        held = source.execute(f"SELECT COUNT(*) FROM {table}{where}").fetchone()[0]
    except sqlite3.DatabaseError:
        return None
    return max(0, held - recovered)


def _has_importing(source: sqlite3.Connection) -> bool:
    try:
        return any(r[1] == "importing" for r in source.execute("PRAGMA table_info(conversations)"))
    except sqlite3.DatabaseError:
        return False


def _readable_rows(db: sqlite3.Connection, table: str) -> Iterator[dict]:
    """Every row of `table` that can be read, in rowid order. A damaged page stops a scan; the
    rows just before it are then read one at a time (a fresh lookup of the next row often still
    works where the scan's cursor failed), and the scan goes on from the smallest rowid from which
    SQLite reads again."""
    start, inclusive = -(2**63), False
    while True:
        after = start
        try:
            from_start = ">=" if inclusive else ">"
            cursor = db.execute(f"SELECT rowid AS rowid_, * FROM {table} WHERE rowid {from_start} ? "
                                "ORDER BY rowid", (start,))
            names = [d[0] for d in cursor.description]
            for row in cursor:
                after = row[0]
                yield dict(zip(names, row, strict=True))
            return
        except sqlite3.DatabaseError as error:
            log.info("recovery: %s after rowid %d: %s", table, after, error)
        while True:  # step over the rows that can still be looked up one by one
            try:
                cursor = db.execute(f"SELECT rowid AS rowid_, * FROM {table} WHERE rowid > ? ORDER BY rowid "
                                    "LIMIT 1", (after,))
                row = cursor.fetchone()
            except sqlite3.DatabaseError:
                break
            if row is None:
                return
            after = row[0]
            yield dict(zip([d[0] for d in cursor.description], row, strict=True))
        resumed = _first_readable_after(db, table, after)
        if resumed is None:
            return
        start, inclusive = resumed, True


def _first_readable_after(db: sqlite3.Connection, table: str, after: int) -> int | None:
    """The smallest rowid > `after` from which a scan of `table` starts without an error:
    doubling steps past the damage, then halving back to lose as few rows as can be."""

    def readable(start: int) -> bool:
        try:
            db.execute(f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1",
                       (start,)).fetchall()
            return True
        except sqlite3.DatabaseError:
            return False

    step, bad = 1, after
    while not readable(after + step):
        bad = after + step
        step *= 2
        if after + step >= 2**63 - 1:
            return None
    good = after + step
    while good - bad > 1:
        middle = (bad + good) // 2
        bad, good = (bad, middle) if readable(middle) else (middle, good)
    return good


def _text(value: object) -> bool:
    return isinstance(value, str)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _conversation_values(row: dict) -> tuple | None:
    """The row as the new database stores it, or None for a row that is not a real conversation
    (damaged, or hidden by an import that never finished)."""
    if row.get("importing") is not None:
        return None
    if not (_text(row.get("id")) and _text(row.get("title")) and _number(row.get("created"))
            and _number(row.get("updated"))):
        return None
    sampling = row.get("sampling")
    try:
        SamplingParams.from_dict(json.loads(sampling))
    except (TypeError, ValueError, AttributeError):
        sampling = "{}"
    deleted = row.get("deleted")
    return (row["id"], row["title"], row["created"], row["updated"],
            row.get("system_prompt") if _text(row.get("system_prompt")) else "", sampling,
            row.get("model") if _text(row.get("model")) else "", int(bool(row.get("pinned"))),
            int(bool(row.get("titled_by_user"))), deleted if _number(deleted) else None,
            row.get("connection") if _text(row.get("connection")) else "")


def _message_values(row: dict) -> tuple | None:
    if not (_text(row.get("id")) and _text(row.get("conversation_id")) and _text(row.get("text"))
            and row.get("role") in ROLES and _number(row.get("created"))):
        return None
    parent_id = row.get("parent_id") if _text(row.get("parent_id")) else None
    generation = row.get("generation")
    try:
        GenerationRecord(**json.loads(generation))
    except (TypeError, ValueError):
        generation = None
    thought = row.get("thought")  # a database older than schema 6 has none
    return (row["id"], row["conversation_id"], parent_id, row["role"], row["text"], row["created"],
            int(bool(row.get("current", 1))), int(bool(row.get("incomplete"))), generation,
            thought if _text(thought) else "")


_INSERT_CONVERSATION = """INSERT INTO conversations (id, title, created, updated, system_prompt, sampling,
    model, pinned, titled_by_user, deleted, connection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_MESSAGE = """INSERT INTO messages (id, conversation_id, parent_id, role, text, created, current,
    incomplete, generation, thought) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
