"""Export and import of conversations: the one use case of each, shared by the command line and
the window (the window runs them in a worker thread, on a store connection of its own).

Export reads from the store and writes transcript files; import reads and checks a whole JSON
file first, then adds every conversation or none (the store writes in short chunks, so other
writers keep their turn during a large import).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from app.core.conversations.store import ConversationStore, StoreError
from app.core.conversations.transcript_json import read_json_file

T = TypeVar("T")


@dataclass(frozen=True)
class Imported:
    """A conversation an import added: its id (a new one if the file's was taken) and title."""

    id: str
    title: str


def export_conversations(store: ConversationStore, fmt: str, out: Path,
                         ids: list[str] | None = None, thoughts: bool = False) -> list[Path]:
    """Write the conversations `ids` (None: every one) as fmt to `out`; returns the files written.

    Every conversation (ids None) in md, html or txt goes into the folder `out`, one file each, even
    when there is only one: a script that exports "all" always finds a folder. See
    transcripts.export_to_path for the rest.
    """
    from app.core.conversations import transcripts  # Pygments: loaded by the exports that need it

    chosen = ids if ids is not None else [s.id for s in store.list_conversations(with_counts=False)]
    return transcripts.export_to_path(_Loading(store, chosen), fmt, out, folder=ids is None,
                                      thoughts=thoughts)


class _Loading(Sequence):
    """Conversations read one at a time as the export reaches them: an export of 200,000 messages
    holds one conversation in memory, not all (whose garbage collection would stall the window's
    thread too)."""

    def __init__(self, store: ConversationStore, ids: list[str]) -> None:
        self.store, self.ids = store, ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.store.load(i) for i in self.ids[index]]
        return self.store.load(self.ids[index])


def import_file(store: ConversationStore, path: Path) -> list[Imported]:
    """Add the conversations of a Llamadesk JSON file: all of them, or none (TranscriptError: the
    file is refused before anything is written; StoreError: the database refused them)."""
    conversations = read_json_file(path)  # checks everything before anything is written
    try:
        ids = store.insert_conversations(conversations)
    except sqlite3.Error as error:  # a constraint the store does not turn into a StoreError
        raise StoreError(f"Could not import the conversations: {error}. Nothing was changed.") from error
    # The store keeps the file's titles; only ids can change (a copy, when an id was taken).
    return [Imported(conversation_id, conversation.title)
            for conversation_id, conversation in zip(ids, conversations, strict=True)]


@contextmanager
def own_connection(store_path: Path, *, read_only: bool = False) -> Iterator[ConversationStore]:
    """A store connection for one worker thread (sqlite3 connections stay in their thread)."""
    store = ConversationStore(store_path, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def on_own_connection(store_path: Path, read_only: bool, use: Callable[..., T], *args: object) -> T:
    """use(store, *args) on a connection opened and closed in the calling thread."""
    with own_connection(store_path, read_only=read_only) as store:
        return use(store, *args)
