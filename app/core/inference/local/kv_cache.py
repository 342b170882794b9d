"""Each conversation's KV cache on disk, so that going back to a long chat costs no re-read.

Prompt processing runs at a few hundred tokens/s on a CPU: re-reading a 3,000-token history takes
seconds. A snapshot of llama.cpp's context state (the KV cache of the tokens so far) restores it
in a fraction of that. Snapshots are a cache: a missing, stale or damaged one is simply ignored.

A damaged state is not harmless, though: restored, flipped bits make the model answer garbage, and
the bad state would be saved again. So a file (format 2) carries its key, its fingerprint, its
lengths and a SHA-256 checksum of everything before it (SHA-256, not BLAKE2b: with the SHA
extensions of current CPUs it hashes a 30 MB state in ~18 ms, BLAKE2b in ~33 ms):

    b"LDKV2\n" | header length (u32 LE) | header JSON {key, fingerprint, n_tokens, state_bytes}
    | tokens (n_tokens x i32 LE) | state (state_bytes) | SHA-256 of all the bytes before it

`load` bounds every length by the file's size before it reads anything, then checks the sum; a
damaged, cut-short or older-format file is deleted (one log line) and the prompt is read again.
Files are written 0600 in a 0700 folder: a snapshot decodes to the whole conversation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.core.inference.local import llama_adapter

log = logging.getLogger(__name__)
_MAGIC = b"LDKV2\n"
_OLD_MAGICS = (b"LDKV1\n",)
_PREFIX = struct.Struct("<6sI")  # magic, header length
_MAX_HEADER = 64 * 1024  # a key and a fingerprint (a path and a few numbers): far less
_DIGEST_BYTES = 32
_STRAY = re.compile(r"[0-9a-f]{32}(\.kv)?\.tmp")  # temporary files of ours that a kill left behind
STRAY_AGE_S = 600  # a temporary file younger than this may still be being written
_CHUNK = 1 << 20


class _Damaged(Exception):
    """A snapshot file that cannot be trusted; the message says why (for the log)."""


@dataclass(frozen=True)
class _Header:
    key: str
    fingerprint: str
    n_tokens: int
    state_bytes: int
    head: bytes  # the file's bytes up to the end of the header: the checksum covers them


@dataclass
class KVCheck:
    """What KVCacheStore.check found: snapshots that are sound, and the damaged ones it deleted."""

    sound: int = 0
    removed: list[str] = field(default_factory=list)  # "file name: reason"


@dataclass(frozen=True)
class Snapshot:
    fingerprint: str  # the model file and context settings the state belongs to
    tokens: list[int]
    state: bytes


def take_snapshot(llm: llama_adapter.Llama, fingerprint: str) -> Snapshot:
    return Snapshot(fingerprint, llama_adapter.evaluated_tokens(llm), llama_adapter.read_state(llm))


def restore_snapshot(llm: llama_adapter.Llama, snapshot: Snapshot) -> bool:
    """Put a snapshot's KV cache back; Llama.generate then reuses its tokens as a prefix."""
    n = len(snapshot.tokens)
    if n > llm.n_ctx() or (n and not 0 <= min(snapshot.tokens) <= max(snapshot.tokens) < llm.n_vocab()):
        return False  # tokens this model does not have would reach llama.cpp's asserts
    return llama_adapter.write_state(llm, snapshot.tokens, snapshot.state)


class KVCacheStore:
    """Snapshots in a folder, one file per key, the least recently used removed over budget.

    File names are a hash of the key, and prune() hashes the keys to keep the same way, so no index
    is needed (an index is one more file to damage and keep in step). The key is in the header too,
    so a file is never used for a key that is not its own, and `check` can name what it removed.
    """

    def __init__(self, folder: Path, budget_bytes: int = 4 * 1024**3):
        self.folder = folder
        self.budget_bytes = budget_bytes
        self._remove_strays()

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".kv")

    def save(self, key: str, snapshot: Snapshot) -> None:
        header = json.dumps({"key": key, "fingerprint": snapshot.fingerprint,
                             "n_tokens": len(snapshot.tokens), "state_bytes": len(snapshot.state)}).encode()
        head = _PREFIX.pack(_MAGIC, len(header)) + header
        tokens = np.asarray(snapshot.tokens, dtype="<i4").tobytes()
        digest = hashlib.sha256(head)
        digest.update(tokens)
        digest.update(snapshot.state)
        path = self._path(key)
        temp = path.with_name(path.name + ".tmp")
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            temp.unlink(missing_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(head)
                f.write(tokens)
                f.write(snapshot.state)
                f.write(digest.digest())
            os.replace(temp, path)  # no fsync: a torn file after a power cut fails its checksum
        except OSError as error:  # a full disk costs speed later, never the conversation
            log.warning("could not save the KV cache for %s: %s", key, error)
            temp.unlink(missing_ok=True)
            return
        self._trim()

    def load(self, key: str, fingerprint: str) -> Snapshot | None:
        """The snapshot saved for key, or None: none, another model's or settings' (kept: it is
        not damaged, and the next save for this key replaces it), or damaged (deleted)."""
        path = self._path(key)
        try:
            with path.open("rb") as f:
                header = _read_header(f, os.fstat(f.fileno()).st_size)
                if header.key != key:
                    raise _Damaged(f"it belongs to another conversation ({header.key!r})")
                if header.fingerprint != fingerprint:
                    return None
                digest = hashlib.sha256(header.head)
                tokens = f.read(4 * header.n_tokens)
                state = f.read(header.state_bytes)
                digest.update(tokens)
                digest.update(state)
                if f.read(_DIGEST_BYTES) != digest.digest():
                    raise _Damaged("its checksum does not match")
            os.utime(path)  # recently used
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("could not read the KV cache for %s: %s", key, error)
            return None
        except _Damaged as damage:
            self._remove_damaged(path, str(damage))
            return None
        return Snapshot(fingerprint, np.frombuffer(tokens, dtype="<i4").tolist(), state)

    def discard(self, key: str) -> None:
        """Delete key's snapshot (its conversation was deleted: the file decodes to its text)."""
        self._path(key).unlink(missing_ok=True)

    def prune(self, keep: Iterable[str]) -> int:
        """Delete every snapshot whose key is not in keep (conversations deleted meanwhile, or
        purged while the app was closed); returns how many were deleted."""
        wanted = {self._path(key).name for key in keep}
        removed = 0
        for path in self._files():
            if path.name not in wanted:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.info("deleted %d KV snapshots of conversations that no longer exist", removed)
        return removed

    def check(self) -> KVCheck:
        """Read every snapshot whole and delete those that are damaged (for `doctor`)."""
        result = KVCheck()
        for path in self._files():
            try:
                with path.open("rb") as f:
                    header = _read_header(f, os.fstat(f.fileno()).st_size)
                    if path != self._path(header.key):
                        raise _Damaged(f"its name does not match its key ({header.key!r})")
                    _verify(f)
            except OSError:
                continue  # gone meanwhile, or unreadable: nothing to say about its content
            except _Damaged as damage:
                self._remove_damaged(path, str(damage))
                result.removed.append(f"{path.name}: {damage}")
                continue
            result.sound += 1
        return result

    def _files(self) -> list[Path]:
        try:
            return [p for p in self.folder.iterdir() if p.suffix == ".kv" and p.is_file()]
        except OSError:  # no folder yet
            return []

    def _remove_damaged(self, path: Path, reason: str) -> None:
        log.warning("deleted the damaged KV snapshot %s: %s; its conversation's prompt is read again",
                    path.name, reason)
        path.unlink(missing_ok=True)

    def _remove_strays(self) -> None:
        """Temporary files of ours that a kill left behind (only ours: the folder may be shared).
        A recent one may be a save in progress in another process (the engine, while `doctor` or
        a second store looks at the folder): only those older than STRAY_AGE_S go."""
        cutoff = time.time() - STRAY_AGE_S
        try:
            strays = [p for p in self.folder.iterdir() if _STRAY.fullmatch(p.name) and _older(p, cutoff)]
        except OSError:
            return
        for path in strays:
            try:
                path.unlink()
            except OSError as error:
                log.warning("could not delete the leftover %s: %s", path, error)
        if strays:
            log.info("deleted %d temporary KV files left by an interrupted save", len(strays))

    def _trim(self) -> None:
        files = []
        for path in self._files():
            try:
                stat = path.stat()
            except OSError:
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        total = 0
        for _, size, path in sorted(files, reverse=True):
            total += size
            if total > self.budget_bytes:
                path.unlink(missing_ok=True)


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False


def _read_header(f, size: int) -> _Header:
    """The header of an open snapshot file of `size` bytes; every length is checked against the size
    before anything is read, so garbage cannot ask for gigabytes."""
    prefix = f.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise _Damaged("it is cut short")
    magic, length = _PREFIX.unpack(prefix)
    if magic in _OLD_MAGICS:
        raise _Damaged("it has an older format, without a checksum")
    if magic != _MAGIC:
        raise _Damaged("it is not a Llamadesk KV snapshot")
    if length > min(_MAX_HEADER, size - _PREFIX.size - _DIGEST_BYTES):
        raise _Damaged(f"its header length ({length:,} bytes) does not fit the file")
    raw = f.read(length)
    try:
        fields = json.loads(raw)
        header = _Header(fields["key"], fields["fingerprint"], fields["n_tokens"], fields["state_bytes"],
                         prefix + raw)
    except (ValueError, KeyError, TypeError) as error:
        raise _Damaged(f"its header cannot be read ({error})") from None
    if not (isinstance(header.key, str) and isinstance(header.fingerprint, str)
            and type(header.n_tokens) is int and type(header.state_bytes) is int
            and header.n_tokens >= 0 and header.state_bytes > 0):
        raise _Damaged("its header has fields of the wrong kind")
    expected = _PREFIX.size + length + 4 * header.n_tokens + header.state_bytes + _DIGEST_BYTES
    if expected != size:
        raise _Damaged(f"it is {size:,} bytes, its header says {expected:,}")
    return header


def _verify(f) -> None:
    """Hash the whole file in chunks (no copy of a state in memory) and compare with its checksum."""
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    digest = hashlib.sha256()
    left = size - _DIGEST_BYTES
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            raise _Damaged("it is cut short")
        digest.update(chunk)
        left -= len(chunk)
    if f.read(_DIGEST_BYTES) != digest.digest():
        raise _Damaged("its checksum does not match")
