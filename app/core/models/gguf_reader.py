"""The low-level GGUF header parser and the limits it enforces.

It lives apart from gguf_info (the public API: read_model, GGUFHeader, facts) so that both stay
short: this module only turns bytes into metadata, refusing every count or length a damaged or
hostile file could use to exhaust memory, hang the app or make llama.cpp abort the process.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from app.core.common.errors import UserFacingError

# Limits far above any real model; beyond them the header is garbage, not a model.
_MAX_COUNT = 10_000_000  # array items, tensors and entries: also their sum, so reading stays quick
_MAX_STRING = 256 * 1024 * 1024
_MAX_DIMS = 4
_MAX_DEPTH = 8  # arrays of arrays; llama.cpp reads none
_TOKENS = "tokenizer.ggml.tokens"
# Arrays longer than this (token lists, merges) are summarised, not kept.
_KEEP_ARRAY_MAX = 64

# GGUF metadata value types: struct format of the scalar ones.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class GGUFError(UserFacingError):
    """The file is not a usable GGUF; `kind` says how."""

    MISSING = "missing"
    NOT_GGUF = "not_gguf"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    DEFAULT_KIND = CORRUPT


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array (e.g. the token list), kept as its type and length only."""

    item_type: int
    length: int
    digest: str = ""  # the token list's: a SHA-256 of its texts, to tell two vocabularies apart


def _count(value: Any, default: int = 0) -> int:
    """A header value meant as a count; anything else (text, a negative number) is `default`."""
    return value if _is_int(value) and value >= 0 else default


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any, limit: int = 40) -> str:
    """A header value as a short one-line text for a message (headers may hold anything)."""
    text = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Reader:
    """Reads a header, refusing each count or length before acting on it: one the rest of the
    file cannot hold, or one (alone or summed with the others) beyond any real model."""

    def __init__(self, f: BinaryIO, name: str, file_size: int, count_format: str):
        self.f = f
        self.name = name
        self.file_size = file_size
        self.count_format = count_format
        self.count_size = struct.calcsize(count_format)
        self.pos = f.tell()
        self.looped = 0  # items read one by one so far (not skipped by a seek)
        # bytes the smallest item of each type takes: an array is its item type and its length
        self.min_bytes = {t: struct.calcsize(fmt) for t, fmt in _SCALARS.items()}
        self.min_bytes.update({_STRING: self.count_size, _ARRAY: 4 + self.count_size})

    def read(self, n: int) -> bytes:
        needed = self.pos + n
        data = self.f.read(n)
        self.pos += len(data)
        if len(data) != n:  # said as missing bytes: "at byte N of N" read as if the file were whole
            raise GGUFError(
                f"{self.name} ends inside its header: the file stops after {self.pos:,} bytes, where "
                f"the header alone needs at least {needed:,}. It is truncated (cut short, probably by an "
                "interrupted download); download it again.",
                kind=GGUFError.TRUNCATED,
            )
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def count(self, what: str, min_bytes: int, limit: int = _MAX_COUNT, looped: bool = True) -> int:
        return self.check(self.unpack(self.count_format), what, min_bytes, limit, looped)

    def check(self, n: int, what: str, min_bytes: int, limit: int = _MAX_COUNT, looped: bool = True) -> int:
        """A count or length, checked against `limit` and against the bytes left in the file."""
        if looped:
            self.looped += n
        if n > limit or self.looped > _MAX_COUNT:
            more = f" (over {_MAX_COUNT:,} items in all)" if n <= limit else ""
            raise GGUFError(f"The header of {self.name} is corrupt: it declares {n:,} {what}"
                            f"{more}. Download the file again.", kind=GGUFError.CORRUPT)
        left = self.file_size - self.pos
        if n * min_bytes > left:
            raise GGUFError(f"{self.name} ends inside its header: at byte {self.pos:,} it "
                            f"declares {n:,} {what}, more than the {left:,} bytes after it "
                            "can hold. It was cut short or damaged; download it again.",
                            kind=GGUFError.TRUNCATED)
        return n

    def raw_string(self) -> bytes:
        return self.read(self.count("bytes of text", 1, _MAX_STRING, looped=False))

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")

    def array_head(self, depth: int) -> tuple[int, int]:
        """An array's item type and length."""
        if depth >= _MAX_DEPTH:
            raise GGUFError(f"The header of {self.name} is corrupt: it nests arrays more "
                            f"than {_MAX_DEPTH} deep. Download the file again.", kind=GGUFError.CORRUPT)
        item_type = self.unpack("I")
        if item_type not in self.min_bytes:
            raise GGUFError(f"The header of {self.name} is corrupt: unknown metadata type "
                            f"{item_type}. Download the file again.", kind=GGUFError.CORRUPT)
        return item_type, self.count("array items", self.min_bytes[item_type],
                                     looped=item_type in (_STRING, _ARRAY))

    def value(self, vtype: int, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            return self.array(*self.array_head(depth), depth=depth)
        raise GGUFError(f"The header of {self.name} is corrupt: unknown metadata type {vtype}. "
                        "Download the file again.", kind=GGUFError.CORRUPT)

    def array(self, item_type: int, length: int, depth: int) -> Any:
        """The items of an array whose head was read; a long one only summarised."""
        if length <= _KEEP_ARRAY_MAX:
            return [self.value(item_type, depth + 1) for _ in range(length)]
        if item_type in _SCALARS:  # count() checked that the file holds them
            size = self.min_bytes[item_type] * length
            self.f.seek(size, os.SEEK_CUR)
            self.pos += size
        elif item_type == _STRING:
            self.texts(length, keep=False)
        else:
            for _ in range(length):
                self.value(item_type, depth + 1)
        return ArraySummary(item_type, length)

    def vocabulary(self, item_type: int, length: int, depth: int) -> Any:
        """The token list, read as llama.cpp reads it (a text ends at its first NUL; an empty one
        becomes "[EMPTY_<id>]"): two tokens with one text make llama.cpp abort the process."""
        if item_type != _STRING:
            raise GGUFError(f"{self.name} is damaged: its token list ({_TOKENS}) holds "
                            f"metadata of type {item_type}, not text. Download the file again.",
                            kind=GGUFError.CORRUPT)
        first_id: dict[bytes, int] = {}
        texts = self.texts(length, keep=True)
        for token_id, text in enumerate(texts):
            if b"\0" in text:
                text = text[: text.index(b"\0")]
            if not text:
                text = b"[EMPTY_%d]" % token_id
            first = first_id.setdefault(text, token_id)
            if first != token_id:
                raise GGUFError(f"{self.name} is damaged: token {token_id:,} of its vocabulary "
                                f"duplicates token {first:,} ({_shown(text)}), which would make "
                                "llama.cpp stop the whole app. Download the file again, or get "
                                "another copy of the model.", kind=GGUFError.CORRUPT)
        if length > _KEEP_ARRAY_MAX:
            return ArraySummary(_STRING, length, hashlib.sha256(b"\0".join(texts)).hexdigest())
        return [text.decode("utf-8", errors="replace") for text in texts]

    def texts(self, length: int, keep: bool) -> list[bytes]:
        """A string array's texts (kept, or only passed over), parsed from large reads: token lists
        and merges hold up to a million texts, and two read() calls per text double the time."""
        head, size = struct.Struct("<" + self.count_format), self.count_size
        texts: list[bytes] = []
        buf, at = b"", 0  # buf[at] is the byte at self.pos
        for _ in range(length):
            if at + size > len(buf):
                buf, at = self._refill(buf, at, size)
            (n,) = head.unpack_from(buf, at)
            end = at + size + n
            if end > len(buf):
                if n > _MAX_STRING or self.pos + size + n > self.file_size:
                    self.pos += size
                    self.check(n, "bytes of text", 1, _MAX_STRING, looped=False)  # raises
                buf, at = self._refill(buf, at, size + n)
                end = size + n
            if keep:
                texts.append(buf[at + size:end])
            self.pos += end - at
            at = end
        self.f.seek(self.pos)  # give back what was read ahead
        return texts

    def _refill(self, buf: bytes, at: int, need: int) -> tuple[bytes, int]:
        buf = buf[at:] + self.f.read(max(need - (len(buf) - at), 1 << 20))
        if len(buf) < need:
            self.f.seek(self.pos)
            self.read(need)  # raises "truncated"
        return buf, 0


def _check_vocabulary(name: str, kinds: dict[str, tuple[int, int]]) -> None:
    """llama.cpp reads a score and a type for every token without checking the lists' lengths,
    and aborts on a token list that is not text: a damaged one would read past memory or abort."""
    if _TOKENS not in kinds:
        return
    item_type, n_tokens = kinds[_TOKENS]
    if item_type != _STRING:
        raise GGUFError(f"{name} is damaged: its token list ({_TOKENS}) is not text. "
                        "Download the file again.", kind=GGUFError.CORRUPT)
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        item_type, length = kinds.get(key, (6, n_tokens))
        if item_type not in _SCALARS or struct.calcsize(_SCALARS[item_type]) * length < 4 * n_tokens:
            raise GGUFError(f"{name} is damaged: its {key} list holds {length:,} entries of "
                            f"type {item_type} for {n_tokens:,} tokens. Download the file again.",
                            kind=GGUFError.CORRUPT)
