"""Read a GGUF file's header without loading its weights.

llama.cpp answers every broken file with "Failed to load model from file". Reading the header
ourselves lets the user hear what is actually wrong: not a GGUF file, a corrupt header, or a
file cut short (the tensors it declares end past the end of the file).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from app.core.errors import UserFacingError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# Limits far above any real model; beyond them the header is garbage, not a model.
_MAX_COUNT = 10_000_000
_MAX_STRING = 256 * 1024 * 1024
_MAX_DIMS = 4
# Arrays longer than this (token lists, merges) are summarised, not kept.
_KEEP_ARRAY_MAX = 64

# GGUF metadata value types: struct format of the scalar ones.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types: (elements per block, bytes per block). Types missing here are newer
# than this table; their size is then unknown and the truncation check skips them.
GGML_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
    15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18),
    21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66),
    39: (32, 17),
}
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}


class GGUFError(UserFacingError):
    """The file is not a usable GGUF. `kind` is one of: missing, not_gguf, corrupt, truncated."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array (e.g. the token list), kept as its type and length only."""

    item_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int | None:
        sizes = GGML_TYPE_SIZES.get(self.ggml_type)
        if sizes is None:
            return None
        block, size = sizes
        return self.n_elements // block * size


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int
    required_size: int = field(default=0)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    @property
    def context_length(self) -> int | None:
        return self.arch_value("context_length")

    @property
    def block_count(self) -> int:
        return int(self.arch_value("block_count", 0) or 0)

    @property
    def has_chat_template(self) -> bool:
        return "tokenizer.chat_template" in self.metadata

    @property
    def weights_bytes(self) -> int:
        return sum(t.n_bytes or 0 for t in self.tensors)

    def kv_cache_bytes(self, n_ctx: int, bytes_per_value: int = 2) -> int:
        """The K and V caches for n_ctx tokens at f16, llama.cpp's default cache type."""
        n_embd = int(self.arch_value("embedding_length", 0) or 0)
        n_head = int(self.arch_value("attention.head_count", 0) or 0)
        n_head_kv = self.arch_value("attention.head_count_kv", n_head) or n_head
        if isinstance(n_head_kv, list):  # per-layer values in some architectures
            n_head_kv = max(n_head_kv) if n_head_kv else n_head
        if not (n_embd and n_head):
            return 0
        head_dim = n_embd // n_head
        k_dim = int(self.arch_value("attention.key_length", head_dim) or head_dim)
        v_dim = int(self.arch_value("attention.value_length", head_dim) or head_dim)
        per_token = self.block_count * int(n_head_kv) * (k_dim + v_dim) * bytes_per_value
        return n_ctx * per_token


class _Reader:
    def __init__(self, f: BinaryIO, name: str, file_size: int, count_format: str):
        self.f = f
        self.name = name
        self.file_size = file_size
        self.count_format = count_format

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError(
                "truncated",
                f"{self.name} ends inside its header (at byte {self.f.tell():,} of "
                f"{self.file_size:,}): it was cut short, probably by an interrupted download.",
            )
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def count(self, what: str) -> int:
        n = self.unpack(self.count_format)
        if n > _MAX_COUNT:
            raise GGUFError("corrupt", f"The header is corrupt: it declares {n:,} {what}.")
        return n

    def string(self) -> str:
        n = self.unpack(self.count_format)
        if n > _MAX_STRING or n > self.file_size:
            raise GGUFError("corrupt", f"The header is corrupt: a string of {n:,} bytes.")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.unpack("I")
            length = self.count("array items")
            if length > _KEEP_ARRAY_MAX:
                self._skip_array(item_type, length)
                return ArraySummary(item_type, length)
            return [self.value(item_type) for _ in range(length)]
        raise GGUFError("corrupt", f"The header is corrupt: unknown metadata type {vtype}.")

    def _skip_array(self, item_type: int, length: int) -> None:
        if item_type in _SCALARS:
            size = struct.calcsize(_SCALARS[item_type]) * length
            if self.f.tell() + size > self.file_size:
                self.read(self.file_size - self.f.tell() + 1)  # raises "truncated"
            self.f.seek(size, os.SEEK_CUR)
        else:
            for _ in range(length):
                self.value(item_type)


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse the header and check that the file is long enough for the tensors it declares."""
    path = Path(path)
    if not path.exists():
        raise GGUFError("missing", f"The model file does not exist: {path}")
    if not path.is_file():
        raise GGUFError("not_gguf", f"This is not a file: {path}")
    file_size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
        if magic != GGUF_MAGIC:
            what = "is empty" if not magic else "does not start with the GGUF signature"
            raise GGUFError(
                "not_gguf", f"{path.name} is not a GGUF model file: it {what}."
            )
        version_bytes = f.read(4)
        if len(version_bytes) != 4:
            raise GGUFError("truncated", f"{path.name} ends right after its signature.")
        version = struct.unpack("<I", version_bytes)[0]
        if version not in (1, 2, 3):
            raise GGUFError(
                "corrupt", f"{path.name} has GGUF version {version}, which is not one we know (1-3)."
            )
        reader = _Reader(f, path.name, file_size, "I" if version == 1 else "Q")
        n_tensors = reader.count("tensors")
        n_kv = reader.count("metadata entries")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = reader.string()
            metadata[key] = reader.value(reader.unpack("I"))
        tensors = []
        for _ in range(n_tensors):
            name = reader.string()
            n_dims = reader.unpack("I")
            if n_dims > _MAX_DIMS:
                raise GGUFError("corrupt", f"The header is corrupt: tensor {name} has {n_dims} dims.")
            shape = tuple(reader.unpack("Q") for _ in range(n_dims))
            tensors.append(TensorInfo(name, shape, reader.unpack("I"), reader.unpack("Q")))
        alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT)
        end_of_infos = f.tell()
    data_offset = (end_of_infos + alignment - 1) // alignment * alignment
    header = GGUFHeader(path, version, metadata, tensors, data_offset, file_size)
    header.required_size = data_offset + max(
        (t.offset + (t.n_bytes or 0) for t in tensors), default=0
    )
    if header.required_size > file_size:
        missing = header.required_size - file_size
        raise GGUFError(
            "truncated",
            f"{path.name} is incomplete: its tensors need {header.required_size:,} bytes but the "
            f"file has {file_size:,} ({missing:,} missing). It was probably cut short by an "
            "interrupted download or copy; download it again.",
        )
    return header
