"""Each conversation's KV cache on disk, so that going back to a long chat costs no re-read.

Prompt processing runs at a few hundred tokens/s on a CPU: re-reading a 3,000-token history takes
seconds. A snapshot of llama.cpp's context state (the KV cache of the tokens so far) restores it
in a fraction of that. Snapshots are a cache: a missing, stale or damaged one is simply ignored.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

log = logging.getLogger(__name__)
_MAGIC = b"LDKV1\n"


@dataclass(frozen=True)
class Snapshot:
    fingerprint: str  # the model file and context settings the state belongs to
    tokens: list[int]
    state: bytes


def take_snapshot(llm: llama_cpp.Llama, fingerprint: str) -> Snapshot:
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_get_size(ctx)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_get_data(ctx, buffer, size)
    return Snapshot(fingerprint, llm.input_ids[: llm.n_tokens].tolist(), bytes(buffer)[:written])


def restore_snapshot(llm: llama_cpp.Llama, snapshot: Snapshot) -> bool:
    """Put a snapshot's KV cache back; Llama.generate then reuses its tokens as a prefix."""
    n = len(snapshot.tokens)
    if n > llm.n_ctx():
        return False
    buffer = (ctypes.c_uint8 * len(snapshot.state)).from_buffer_copy(snapshot.state)
    if llama_cpp.llama_state_set_data(llm._ctx.ctx, buffer, len(snapshot.state)) != len(snapshot.state):
        llm.reset()
        return False
    llm.input_ids[:n] = np.asarray(snapshot.tokens, dtype=np.intc)
    llm.n_tokens = n
    llm._requires_eval = True  # the logits are not restored: generate re-evaluates one token
    return True


class KVCacheStore:
    """Snapshots in a folder, one file per key, the least recently used removed over budget."""

    def __init__(self, folder: Path, budget_bytes: int = 4 * 1024**3):
        self.folder = folder
        self.budget_bytes = budget_bytes

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".kv")

    def save(self, key: str, snapshot: Snapshot) -> None:
        header = json.dumps({"fingerprint": snapshot.fingerprint, "n_tokens": len(snapshot.tokens)})
        path = self._path(key)
        temp = path.with_suffix(".tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with temp.open("wb") as f:
                f.write(_MAGIC + struct.pack("<I", len(header)) + header.encode())
                f.write(np.asarray(snapshot.tokens, dtype="<i4").tobytes())
                f.write(snapshot.state)
            os.replace(temp, path)
        except OSError as error:  # a full disk costs speed later, never the conversation
            log.warning("could not save the KV cache for %s: %s", key, error)
            temp.unlink(missing_ok=True)
            return
        self._trim()

    def load(self, key: str, fingerprint: str) -> Snapshot | None:
        path = self._path(key)
        try:
            with path.open("rb") as f:
                if f.read(len(_MAGIC)) != _MAGIC:
                    return None
                (length,) = struct.unpack("<I", f.read(4))
                header = json.loads(f.read(length))
                if header.get("fingerprint") != fingerprint:
                    return None
                n = int(header["n_tokens"])
                tokens = np.frombuffer(f.read(4 * n), dtype="<i4").tolist()
                state = f.read()
        except (OSError, ValueError, KeyError, struct.error):
            return None
        if len(tokens) != n or not state:
            return None
        os.utime(path)  # recently used
        return Snapshot(fingerprint, tokens, state)

    def discard(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _trim(self) -> None:
        files = sorted(self.folder.glob("*.kv"), key=lambda p: p.stat().st_mtime, reverse=True)
        total = 0
        for path in files:
            total += path.stat().st_size
            if total > self.budget_bytes:
                path.unlink(missing_ok=True)
