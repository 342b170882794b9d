"""Which conversation's KV cache the model's context holds, and where the others wait.

The context holds one conversation's tokens at a time. Switching to another keeps a snapshot of
the current one in memory (fast, within a budget) and brings the other's back from memory or
disk, so going back to a long chat does not re-read it. Snapshots reach the disk when the engine
is idle (`save`), never between a request and its first token.

API requests share one key, API_CACHE_KEY, that is never snapshotted: switching to it keeps the
conversation's cache first (as any switch does), and its own tokens are dropped when another key
comes, so an API prompt never reaches the disk and never pushes a conversation out of memory.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from app.core.inference.local import llama_adapter
from app.core.inference.local.kv_cache import KVCacheStore, Snapshot, restore_snapshot, take_snapshot
from app.core.inference.types import API_CACHE_KEY

log = logging.getLogger(__name__)
MEMORY_BUDGET = 1024**3  # recent conversations' KV caches kept in RAM besides the disk copy


class ConversationCaches:
    """Owned by the Engine, called from its one thread."""

    def __init__(self, store: KVCacheStore | None) -> None:
        self._store = store
        self._owner: str | None = None  # the conversation whose tokens the context holds
        self._changed = False  # the context changed since it was saved or restored
        self._memory: OrderedDict[str, Snapshot] = OrderedDict()  # recent snapshots, newest last
        self._unsaved: set[str] = set()  # snapshots in memory not yet on disk
        self.fingerprint = ""  # the loaded model and its settings: a snapshot of others never fits

    def changed(self) -> None:
        """The context now holds tokens its snapshot (if any) does not."""
        self._changed = True

    def switch(self, llm: llama_adapter.Llama, key: str | None) -> None:
        """Keep the current conversation's cache and bring back `key`'s, if known."""
        if key == self._owner or self._store is None:
            return
        self.keep_current(llm)
        self._owner = key
        if key is None or key == API_CACHE_KEY:
            return
        snapshot = self._memory.get(key) or self._store.load(key, self.fingerprint)
        fits = snapshot is not None and snapshot.fingerprint == self.fingerprint
        if fits and restore_snapshot(llm, snapshot):
            log.info("restored %d cached tokens for %s", len(snapshot.tokens), key)

    def keep_current(self, llm: llama_adapter.Llama | None) -> None:
        """A copy of the context's cache in memory (fast); `save` writes it to disk later."""
        if self._owner and self._owner != API_CACHE_KEY and self._changed and llm is not None \
                and llama_adapter.evaluated_count(llm):
            self._memory[self._owner] = take_snapshot(llm, self.fingerprint)
            self._memory.move_to_end(self._owner)
            self._unsaved.add(self._owner)
            while sum(len(s.state) for s in self._memory.values()) > MEMORY_BUDGET:
                oldest, snapshot = self._memory.popitem(last=False)
                if oldest in self._unsaved and self._store is not None:
                    self._store.save(oldest, snapshot)
                    self._unsaved.discard(oldest)
        self._changed = False

    def save(self) -> None:
        """Write the snapshots taken at conversation switches to disk."""
        if self._store is None:
            return
        for key in list(self._unsaved):
            snapshot = self._memory.get(key)
            if snapshot is not None:
                self._store.save(key, snapshot)
        self._unsaved.clear()

    def keep_only(self, keys: set[str]) -> None:
        """Forget every conversation's cache but these (in memory and on disk): a deleted chat's
        text must not outlive it in a snapshot, nor be saved again later."""
        for key in [k for k in self._memory if k not in keys]:
            del self._memory[key]
            self._unsaved.discard(key)
        if self._owner is not None and self._owner not in keys:
            self._owner, self._changed = None, False
        if self._store is not None:
            self._store.prune(keys)

    def forget_context(self) -> None:
        """The model was unloaded: no context, and no snapshot of it in memory."""
        self._owner = None
        self._memory.clear()
