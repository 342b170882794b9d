"""Read a GGUF file's header without loading its weights.

llama.cpp answers every broken file with "Failed to load model from file". Reading the header
ourselves lets the user hear what is actually wrong: not a GGUF file, a corrupt header, or a
file cut short (the tensors it declares end past the end of the file).

The header alone also tells what the library shows: parameter count, quantisation, trained
context, layers, licence. Models split by llama.cpp's gguf-split (`name-00001-of-00003.gguf`)
are read as one model with read_model().
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# GGUFError and ArraySummary are re-exported: callers import them from here.
from app.core.models.gguf_reader import (
    _ARRAY,
    _MAX_DIMS,
    _TOKENS,
    ArraySummary,
    GGUFError,
    _check_vocabulary,
    _count,
    _is_int,
    _Reader,
    _shown,
)

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS: it aborts the process on a block_count above it

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
# general.file_type: llama.cpp's LLAMA_FTYPE_MOSTLY_* names (llama.h), the names users know.
LLAMA_FTYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
    30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}
_FTYPE_GUESSED = 1024  # a flag llama.cpp sets on a file type it guessed

# llama.cpp's split naming: <prefix>-00001-of-00003.gguf (parts numbered from 1).
_SPLIT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


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
    file_size: int  # all parts together for a split model
    required_size: int = field(default=0)
    parts: tuple[Path, ...] = ()  # every file of the model, part 1 first; (path,) when not split

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
        """The context the model was trained for."""
        value = self.arch_value("context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def block_count(self) -> int:
        """Repeating layers (llama.cpp's n_layer), without the input and output layers; 0 when
        the header's value is not a count llama.cpp takes (read_model() refuses such a file)."""
        value = self.arch_value("block_count", 0)
        return value if _is_int(value) and 0 <= value <= MAX_LAYERS else 0

    @property
    def license(self) -> str | None:
        value = self.metadata.get("general.license")
        return str(value) if value else None

    @property
    def parameter_count(self) -> int:
        """Sum of every tensor's elements (a tied output layer is counted once)."""
        return sum(t.n_elements for t in self.tensors)

    @property
    def quantization(self) -> str:
        """llama.cpp's name for general.file_type, else the tensor type holding the most bytes."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and (file_type & ~_FTYPE_GUESSED) in LLAMA_FTYPE_NAMES:
            return LLAMA_FTYPE_NAMES[file_type & ~_FTYPE_GUESSED]
        by_bytes: Counter[int] = Counter()
        for t in self.tensors:
            by_bytes[t.ggml_type] += t.n_bytes or 0
        if not by_bytes:
            return "unknown"
        ggml_type = by_bytes.most_common(1)[0][0]
        return GGML_TYPE_NAMES.get(ggml_type, f"type {ggml_type}")

    @property
    def vocabulary(self) -> tuple[int, str]:
        """(how many tokens, a digest of their texts in id order): equal for two models whose token
        ids mean the same texts; (0, "") when the header lists no tokens."""
        value = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(value, list):
            return len(value), hashlib.sha256("\0".join(value).encode("utf-8", "replace")).hexdigest()
        length, digest = getattr(value, "length", 0), getattr(value, "digest", "")
        return (length, digest) if isinstance(length, int) else (0, "")

    @property
    def has_chat_template(self) -> bool:
        return "tokenizer.chat_template" in self.metadata

    @property
    def weights_bytes(self) -> int:
        return sum(t.n_bytes or 0 for t in self.tensors)

    def kv_values_per_token(self) -> list[int]:
        """K and V values one token adds to each layer's cache (GQA: head_count_kv heads).

        Layers without attention (recurrent layers of hybrid models) hold 0; so does every
        layer when the header lacks the attention keys.
        """
        n_embd = _count(self.arch_value("embedding_length"))
        head_count = self.arch_value("attention.head_count", 0)
        head_count_kv = self.arch_value("attention.head_count_kv", head_count)
        key_length = _count(self.arch_value("attention.key_length"))
        value_length = _count(self.arch_value("attention.value_length"))
        values = []
        for layer in range(self.block_count):
            n_head = _per_layer(head_count, layer)
            n_head_kv = _per_layer(head_count_kv, layer, default=n_head)
            head_dim = n_embd // n_head if n_head else 0
            k_dim, v_dim = key_length or head_dim, value_length or head_dim
            values.append(n_head_kv * (k_dim + v_dim) if n_head else 0)
        return values

    def facts(self) -> dict[str, Any]:
        """What the header says about the model, JSON-ready (for `models info` and the library)."""
        head_count_kv = self.arch_value("attention.head_count_kv")
        return {
            "name": self.name,
            "architecture": self.architecture,
            "quantization": self.quantization,
            "parameters": self.parameter_count,
            "size_label": _plain(self.metadata.get("general.size_label")),
            "license": self.license,
            "context_length": self.context_length,
            "layers": self.block_count,
            "embedding_length": _plain(self.arch_value("embedding_length")),
            "head_count": _plain(self.arch_value("attention.head_count")),
            "head_count_kv": _plain(head_count_kv),
            "has_chat_template": self.has_chat_template,
            "gguf_version": self.version,
            "tensors": len(self.tensors),
            "weights_bytes": self.weights_bytes,
            "file_size": self.file_size,
            "parts": [str(p) for p in self.parts or (self.path,)],
        }


def _per_layer(value: Any, layer: int, default: int = 0) -> int:
    """A hyperparameter that is one number, or a list with one per layer."""
    if isinstance(value, list):
        return _count(value[layer], default) if layer < len(value) else default
    return _count(value, default)  # missing, or a per-layer array too long to have been kept


def _plain(value: Any) -> Any:
    """JSON-ready: a summarised array shows as None."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return None if isinstance(value, ArraySummary) else value


def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse the header and check that the file is long enough for the tensors it declares."""
    path = Path(path)
    if not path.exists():
        raise GGUFError(f"The model file does not exist: {path}", kind=GGUFError.MISSING)
    if not path.is_file():
        raise GGUFError(f"This is not a file: {path}", kind=GGUFError.NOT_GGUF)
    file_size = path.stat().st_size
    with path.open("rb") as f:
        magic = f.read(4)
        if magic != GGUF_MAGIC:
            what = "is empty" if not magic else "does not start with the GGUF signature"
            raise GGUFError(
                f"{path.name} is not a GGUF model file: it {what}.", kind=GGUFError.NOT_GGUF)
        version_bytes = f.read(4)
        if len(version_bytes) != 4:
            raise GGUFError(f"{path.name} ends right after its signature.", kind=GGUFError.TRUNCATED)
        version = struct.unpack("<I", version_bytes)[0]
        if version not in (1, 2, 3):
            raise GGUFError(
                f"{path.name} has GGUF version {version}, which is not one we know (1-3).",
                kind=GGUFError.CORRUPT)
        reader = _Reader(f, path.name, file_size, "I" if version == 1 else "Q")
        n_tensors = reader.count("tensors", reader.count_size + 16)
        n_kv = reader.count("metadata entries", reader.count_size + 5)
        metadata: dict[str, Any] = {}
        kinds: dict[str, tuple[int, int]] = {}  # key: (its type, or its items' type; how many)
        for _ in range(n_kv):
            key = reader.string()
            vtype = reader.unpack("I")
            if vtype == _ARRAY:
                kinds[key] = reader.array_head(0)
                read = reader.vocabulary if key == _TOKENS else reader.array
                metadata[key] = read(*kinds[key], depth=0)
            else:
                kinds[key] = (vtype, 1)
                metadata[key] = reader.value(vtype)
        _check_vocabulary(path.name, kinds)
        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if kinds.get("general.alignment", (4,))[0] != 4 or not alignment or alignment & (alignment - 1):
            raise GGUFError(f"The header of {path.name} is corrupt: its alignment "
                            f"(general.alignment) is {_shown(alignment)}, not a power of two "
                            "stored as a 32-bit number. Download the file again.", kind=GGUFError.CORRUPT)
        tensors = []
        for _ in range(n_tensors):
            name = reader.string()
            n_dims = reader.unpack("I")
            if n_dims > _MAX_DIMS:
                raise GGUFError(f"The header is corrupt: tensor {name} has {n_dims} dims.",
                                kind=GGUFError.CORRUPT)
            shape = tuple(reader.unpack("Q") for _ in range(n_dims))
            tensor = TensorInfo(name, shape, reader.unpack("I"), reader.unpack("Q"))
            if tensor.n_elements > 8 * file_size:  # more values than bits in the file
                raise GGUFError(f"The header of {path.name} is corrupt: tensor {_shown(name)} "
                                f"has shape {shape}, {tensor.n_elements:,} values, more than "
                                f"{file_size:,} bytes can hold. Download the file again.",
                                kind=GGUFError.CORRUPT)
            tensors.append(tensor)
        end_of_infos = f.tell()
    data_offset = (end_of_infos + alignment - 1) // alignment * alignment
    header = GGUFHeader(path, version, metadata, tensors, data_offset, file_size, parts=(path,))
    header.required_size = data_offset + max(
        (t.offset + (t.n_bytes or 0) for t in tensors), default=0
    )
    if header.required_size > file_size:
        missing = header.required_size - file_size
        raise GGUFError(
            f"{path.name} is incomplete: its tensors need {header.required_size:,} bytes but the "
            f"file has {file_size:,} ({missing:,} missing). It was probably cut short by an "
            "interrupted download or copy; download it again.",
            kind=GGUFError.TRUNCATED,
        )
    return header


def split_name(path: str | os.PathLike[str]) -> tuple[str, int, int] | None:
    """(prefix, part number from 1, part count) for a gguf-split file name, else None."""
    match = _SPLIT_NAME.match(Path(path).name)
    if not match:
        return None
    number, count = int(match["no"]), int(match["count"])
    return (match["prefix"], number, count) if 1 <= number <= count else None


def split_parts(path: str | os.PathLike[str]) -> tuple[Path, ...]:
    """Every file of the model `path` belongs to, part 1 first, whether they exist or not."""
    path = Path(path)
    split = split_name(path)
    if split is None or split[2] == 1:
        return (path,)
    prefix, _, count = split
    return tuple(path.with_name(f"{prefix}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1))


def read_model(path: str | os.PathLike[str]) -> GGUFHeader:
    """The header of a whole model: read_header() for one file; for a split model (any of
    its parts may be given) part 1's metadata with every part's tensors and sizes summed.

    The returned header's `path` is part 1, the file llama.cpp must be given.
    """
    parts = split_parts(path)
    if len(parts) == 1:
        return _check_layers(read_header(parts[0]))
    prefix, _, count = split_name(parts[0]) or ("", 0, 0)
    missing = [p for p in parts if not p.exists()]
    if missing:
        numbers = ", ".join(str(parts.index(p) + 1) for p in missing)
        raise GGUFError(
            f"{prefix} is split into {count} files but part{'s' if len(missing) > 1 else ''} "
            f"{numbers} ({missing[0].name}{', ...' if len(missing) > 1 else ''}) "
            f"{'are' if len(missing) > 1 else 'is'} missing from {parts[0].parent}.",
            kind=GGUFError.MISSING,
        )
    headers = [read_header(p) for p in parts]
    first = headers[0]
    declared = first.metadata.get("split.count")
    if declared is not None and declared != count:
        raise GGUFError(f"{first.path.name} says the model has {declared} parts, "
                        f"but its name says {count}.", kind=GGUFError.CORRUPT)
    for number, header in enumerate(headers):
        found = header.metadata.get("split.no", number)
        if found != number:
            shown = found + 1 if _is_int(found) else _shown(found)
            raise GGUFError(f"{header.path.name} holds part {shown} of the model, "
                            f"not part {number + 1} as its name says.", kind=GGUFError.CORRUPT)
    tensors = [t for h in headers for t in h.tensors]
    expected = first.metadata.get("split.tensors.count")
    if expected is not None and expected != len(tensors):
        raise GGUFError(f"{prefix} should hold {_shown(expected)} tensors but its {count} "
                        f"parts hold {len(tensors):,}.", kind=GGUFError.CORRUPT)
    return _check_layers(GGUFHeader(first.path, first.version, first.metadata, tensors, first.data_offset,
                                    sum(h.file_size for h in headers), sum(h.required_size for h in headers),
                                    parts=parts))


def _check_layers(header: GGUFHeader) -> GGUFHeader:
    """llama.cpp aborts the process on a block_count outside 1 to MAX_LAYERS, and every layer has
    tensors of its own: a count beyond them (4e9 in a 192-byte file) is damage, not a model."""
    key = f"{header.architecture}.block_count"
    value, n_tensors = header.metadata.get(key), len(header.tensors)
    if value is None or (_is_int(value) and 0 < value <= min(MAX_LAYERS, n_tensors or MAX_LAYERS)):
        return header
    shown = f"{value:,}" if _is_int(value) else _shown(value)
    raise GGUFError(f"The header of {header.path.name} is corrupt: it declares "
                    f"{shown} layers ({key}) for {n_tensors:,} tensors; llama.cpp "
                    f"loads 1 to {MAX_LAYERS} layers, each with tensors of its own. "
                    "Download the file again.", kind=GGUFError.CORRUPT)
