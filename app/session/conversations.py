"""The conversations feature for the window: the list, rename, pin, duplicate, delete with undo,
search, export and import. Widgets observe its signals and call its intents; it alone calls the store.

A store write that fails changes nothing in memory and says so on `error`. Search, export and
import are flows (app/session/tasks.py): they run in a worker thread on a store connection of
their own, so the window keeps turning while they read or write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.common.errors import UserFacingError
from app.core.conversations import transfer
from app.core.conversations.conversation import ConversationSummary
from app.core.conversations.store import ConversationStore, StoreError
from app.session import tasks

UNDO_SECONDS = 8  # how long a deleted conversation (or deleted messages) can be brought back
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeletedMessages:
    """Messages a chat hid (ConversationStore.hide_messages), for the undo offer."""

    conversation_id: str
    holder_id: str  # the hidden conversation that holds them until the purge
    message_id: str  # the first of them: shown again on undo
    count: int


class Conversations(QObject):
    changed = Signal()  # the list (titles, order, membership) changed: read `summaries`
    error = Signal(str)  # a message for the banner
    status = Signal(str)  # a short note for the status bar ("Importing chats.json…")
    renamed = Signal(str, str)  # id, the title as stored
    pinned = Signal(str, bool)  # id, pinned
    deleted = Signal(str, str)  # id: hidden, undo offered; the one to show in its place ("": none)
    restored = Signal(str)  # id: the deletion was undone
    messages_restored = Signal(str, str)  # conversation id, first message id: deleted messages are back
    purged = Signal()  # deleted conversations are gone for good (their KV snapshots may go too)
    undo_offered = Signal(str)  # what can be brought back, in words: "Deleted “Llamas”."
    undo_expired = Signal()  # the offer ended without an undo
    undo_available = Signal(bool)  # whether Undo delete has something to bring back
    search_finished = Signal(str, object)  # query, list[SearchHit]
    imported = Signal(object)  # list[str]: ids of the conversations added
    exported = Signal(str)  # what was written, in words
    duplicated = Signal(str)  # id of the copy

    def __init__(self, store: ConversationStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.summaries: list[ConversationSummary] = store.list_conversations(with_counts=False)
        self._deleted_id: str | None = None  # the conversation the undo offer would bring back
        self._deleted_messages: DeletedMessages | None = None  # or the messages it would
        self._undo_timer = QTimer(self, singleShot=True, interval=UNDO_SECONDS * 1000)
        self._undo_timer.timeout.connect(self.purge_deleted)
        self._search = tasks.Latest("search")

    # -- the list -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the list again (after a conversation was saved, answered or imported)."""
        try:
            self.summaries = self.store.list_conversations(with_counts=False)
        except StoreError as error:
            self.error.emit(f"The list of conversations could not be read. {error.message}")
            return
        self.changed.emit()

    def is_saved(self, conversation_id: str) -> bool:
        """Whether the conversation is in the store (and not deleted): a new chat is not, until
        its first message."""
        return any(s.id == conversation_id for s in self.summaries)

    def message_count(self, conversation_id: str) -> int | None:
        """For a tooltip: counted when asked (the list is read without counts, to stay fast)."""
        try:
            return self.store.message_count(conversation_id)
        except StoreError:
            return None

    def title_of(self, conversation_id: str) -> str:
        return next((s.title for s in self.summaries if s.id == conversation_id), "")

    # -- changes --------------------------------------------------------------------------------

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())
        if self._write("The new title", self.store.rename, conversation_id, title):
            self.renamed.emit(conversation_id, title)
            self.refresh()

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        if self._write("The pin", self.store.set_pinned, conversation_id, pinned):
            self.pinned.emit(conversation_id, pinned)
            self.refresh()

    def duplicate(self, conversation_id: str) -> asyncio.Task:
        """Copy a conversation, in a worker thread on a connection of its own (a long chat takes
        a while); `duplicated` names the copy."""
        return tasks.start(self._run_duplicate(conversation_id), "duplicate")

    async def _run_duplicate(self, conversation_id: str) -> None:
        try:
            copy = await tasks.in_thread(transfer.on_own_connection, self.store.path, self.store.read_only,
                                         ConversationStore.duplicate, conversation_id)
        except Exception as error:  # noqa: BLE001 - every failure of a flow is said, not only logged
            self.error.emit(f"The copy could not be saved. {_reason(error)}")
            return
        self.refresh()
        self.duplicated.emit(copy)

    def delete(self, conversation_id: str) -> None:
        """Hide the conversation and offer an undo for UNDO_SECONDS; a newer delete ends the older
        offer (that conversation goes for good). One not in the list (a new chat) is not deleted."""
        if not self.is_saved(conversation_id):
            return
        if self.can_undo:
            self.purge_deleted()
        title = self.title_of(conversation_id)
        ids = [s.id for s in self.summaries]
        if not self._write("The deletion", self.store.delete, conversation_id):
            return
        self._deleted_id = conversation_id
        at = ids.index(conversation_id)
        rest = ids[:at] + ids[at + 1:]  # the next one in the list takes its place, else the one before
        self.deleted.emit(conversation_id, rest[min(at, len(rest) - 1)] if rest else "")
        self.refresh()
        self._offer(f"Deleted “{' '.join(title.split()) or 'Untitled'}”.")

    def offer_messages_undo(self, deleted: DeletedMessages) -> None:
        """A chat hid messages: offer them back, as for a conversation (a newer offer ends the older)."""
        if self.can_undo:
            self.purge_deleted(keep=deleted.holder_id)
        self._deleted_messages = deleted
        self._offer(f"Deleted {deleted.count} message{'s' * (deleted.count != 1)}.")

    def end_messages_undo(self) -> None:
        """An answer began: bringing messages back under it would redraw the chat mid-answer."""
        if self._deleted_messages is not None:
            self.purge_deleted()

    def _offer(self, text: str) -> None:
        self.undo_offered.emit(text)
        self.undo_available.emit(True)
        self._undo_timer.start()

    @property
    def can_undo(self) -> bool:
        return self._deleted_id is not None or self._deleted_messages is not None

    def undo_delete(self) -> None:
        """Bring back the conversation (or the messages) deleted last, while the offer lasts."""
        conversation_id, messages = self._deleted_id, self._deleted_messages
        if conversation_id is None and messages is None:
            return
        self._undo_timer.stop()
        if messages is not None:
            undone = self._write("Undoing the deletion", self.store.restore_messages, messages.holder_id,
                                 messages.conversation_id, messages.message_id)
        else:
            undone = self._write("Undoing the deletion", self.store.undelete, conversation_id)
        if not undone:
            self._undo_timer.start()  # the offer stands: the user may try again
            return
        self._deleted_id = self._deleted_messages = None
        self.undo_available.emit(False)
        self.refresh()
        if messages is not None:
            self.messages_restored.emit(messages.conversation_id, messages.message_id)
        else:
            self.restored.emit(conversation_id)

    def purge_deleted(self, keep: str = "") -> None:
        """End the undo offer; deleted conversations and messages (and abandoned imports) go for
        good, but the hidden conversation `keep` (a newer offer's). Also at exit."""
        self._undo_timer.stop()
        if self.can_undo:
            self._deleted_id = self._deleted_messages = None
            self.undo_expired.emit()
            self.undo_available.emit(False)
        if self._write("Removing deleted conversations", self.store.purge_deleted, [keep] if keep else []):
            self.purged.emit()

    def _write(self, what: str, write: Callable[..., object], *args: object) -> bool:
        """Run a store write; if it fails, say so (the caller then leaves memory unchanged)."""
        try:
            write(*args)
        except StoreError as error:
            self.error.emit(f"{what} could not be saved. {error.message}")
            return False
        return True

    # -- flows: search, export, import ----------------------------------------------------------

    def search(self, query: str) -> asyncio.Task:
        """Search every conversation; a newer search cancels this one (its hits are never shown)."""
        return self._search.start(self._run_search(query))

    async def _run_search(self, query: str) -> None:
        try:
            hits = await tasks.in_thread(transfer.on_own_connection, self.store.path, True,
                                         ConversationStore.search, query)
        except Exception as error:  # noqa: BLE001 - every failure of a flow is said, not only logged
            self.error.emit(f"Search failed: {_reason(error)}")
            return
        self.search_finished.emit(query, hits)

    def export(self, fmt: str, out: Path, ids: list[str] | None = None,
               thoughts: bool = False) -> asyncio.Task:
        """Write the conversations `ids` (None: every one) as fmt to `out`; `exported` says where.
        thoughts: include reasoning models' thoughts."""
        return tasks.start(self._run_export(fmt, Path(out), ids, thoughts), "export")

    async def _run_export(self, fmt: str, out: Path, ids: list[str] | None, thoughts: bool) -> None:
        self.status.emit("Exporting…")
        try:
            written = await tasks.in_thread(transfer.on_own_connection, self.store.path, True,
                                            transfer.export_conversations, fmt, out, ids, thoughts)
        except Exception as error:  # noqa: BLE001 - every failure of a flow is said, not only logged
            self.error.emit(f"Export failed: {_reason(error)}")
            return
        where = written[0] if len(written) == 1 else out
        self.exported.emit(f"Exported {len(written)} file{'s' * (len(written) != 1)} to {where}")

    def import_files(self, paths: list[Path]) -> asyncio.Task:
        """Add the conversations of Llamadesk JSON files, one file after the other; each file is
        added whole or not at all. Stops at the first file that fails."""
        return tasks.start(self._run_import([Path(p) for p in paths]), "import")

    async def _run_import(self, paths: list[Path]) -> None:
        added: list[transfer.Imported] = []
        read = []  # the files whose conversations were added
        read_only = self.store.read_only  # a window that must not write: neither may its import
        try:
            for path in paths:
                self.status.emit(f"Importing {path.name}…")
                added += await tasks.in_thread(transfer.on_own_connection, self.store.path, read_only,
                                               transfer.import_file, path)
                read.append(path)
        except Exception as error:  # noqa: BLE001 - every failure of a flow is said, not only logged
            self.error.emit(f"Import failed: {_reason(error)}")
            if not added:
                return
        self.refresh()
        await asyncio.sleep(0)  # the window turns once between redrawing the list and opening a chat
        ids = [a.id for a in added]
        self.imported.emit(ids)
        source = read[0].name if len(read) == 1 else f"{len(read)} files"
        self.status.emit(f"Imported {len(ids)} conversation{'s' * (len(ids) != 1)} from {source}")


def _reason(error: Exception) -> str:
    if isinstance(error, UserFacingError):
        return error.message
    if isinstance(error, OSError):
        return f"{error.strerror or error}."
    return str(error)
