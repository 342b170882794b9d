"""The GGUF header reader: facts about a model from its header, split models, bad files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from app.core.models.gguf_info import (
    GGUFError,
    GGUFHeader,
    TensorInfo,
    read_header,
    read_model,
    split_name,
    split_parts,
)
from tests.fixtures.gguf_files import truncated_copy, write_gguf, write_split_llama, write_tiny_llama


def test_the_embedded_model_header_facts(model_path: Path) -> None:
    header = read_model(model_path)
    assert header.architecture == "llama"
    assert header.block_count == 30
    assert header.context_length == 8192
    assert header.quantization == "Q4_1"
    assert header.parameter_count == 134_515_008  # "135M"
    assert header.has_chat_template
    assert header.license == "apache-2.0"
    assert header.name == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert header.parts == (model_path,)
    facts = header.facts()
    assert facts["head_count"] == 9 and facts["head_count_kv"] == 3 and facts["embedding_length"] == 576
    assert facts["file_size"] == model_path.stat().st_size
    assert facts["size_label"] == "135M"


def test_kv_cache_of_the_embedded_model(model_path: Path) -> None:
    # 30 layers x 3 KV heads x head dim 64 (576 / 9), K and V (memory.estimate sizes them).
    assert read_header(model_path).kv_values_per_token() == [3 * 64 * 2] * 30


def _header(metadata: dict, tensors: list[TensorInfo]) -> GGUFHeader:
    return GGUFHeader(Path("x.gguf"), 3, metadata, tensors, 0, 0)


@pytest.mark.parametrize(("file_type", "name"),
                         [(0, "F32"), (1, "F16"), (2, "Q4_0"), (3, "Q4_1"), (7, "Q8_0"), (15, "Q4_K_M"),
                          (18, "Q6_K"), (30, "IQ4_XS"), (32, "BF16"), (1024 + 15, "Q4_K_M")])
def test_quantization_is_llama_cpp_file_type_name(file_type: int, name: str) -> None:
    assert _header({"general.file_type": file_type}, []).quantization == name


def test_quantization_without_file_type_is_the_type_holding_most_bytes() -> None:
    tensors = [TensorInfo("a", (4096, 4096), 12, 0),  # Q4_K: 9.4 MB
               TensorInfo("b", (4096,), 0, 0), TensorInfo("c", (4096,), 0, 0),  # F32, more tensors
               TensorInfo("d", (4096, 1024), 8, 0)]  # Q8_0: 4.5 MB
    assert _header({}, tensors).quantization == "Q4_K"
    assert _header({"general.file_type": 4}, tensors).quantization == "Q4_K"  # a removed type
    assert _header({}, []).quantization == "unknown"


def test_per_layer_kv_head_counts() -> None:
    metadata = {"general.architecture": "x", "x.block_count": 3, "x.embedding_length": 64,
                "x.attention.head_count": 4, "x.attention.head_count_kv": [2, 0, 4]}
    header = _header(metadata, [])
    assert header.kv_values_per_token() == [2 * 32, 0, 4 * 32]


def test_a_tiny_written_model_reads_back(tmp_path: Path) -> None:
    header = read_model(write_tiny_llama(tmp_path / "tiny.gguf"))
    assert (header.architecture, header.block_count, header.context_length) == ("llama", 2, 2048)
    assert header.quantization == "F32" and header.license == "mit" and header.has_chat_template


def test_split_names() -> None:
    assert split_name("Llama-3-70B.Q4_K_M-00002-of-00003.gguf") == ("Llama-3-70B.Q4_K_M", 2, 3)
    assert split_name("model-00000-of-00003.gguf") is None
    assert split_name("model-00004-of-00003.gguf") is None
    assert split_name("model.gguf") is None
    assert split_parts("d/m-00001-of-00001.gguf") == (Path("d/m-00001-of-00001.gguf"),)
    assert [p.name for p in split_parts("d/m-00003-of-00003.gguf")] == [
        "m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf"]


def test_a_split_model_reads_as_one(tmp_path: Path) -> None:
    parts = write_split_llama(tmp_path, "big", n_parts=3)
    whole = read_model(parts[2])  # any part names the model
    assert whole.path == parts[0] and whole.parts == tuple(parts)
    assert whole.file_size == sum(p.stat().st_size for p in parts)
    assert len(whole.tensors) == whole.metadata["split.tensors.count"]
    assert whole.block_count == 3 and whole.architecture == "llama"
    single = read_model(write_tiny_llama(tmp_path / "one.gguf", n_layers=3))
    assert whole.parameter_count == single.parameter_count
    assert whole.weights_bytes == single.weights_bytes


def test_a_split_model_with_a_missing_part(tmp_path: Path) -> None:
    parts = write_split_llama(tmp_path, "big", n_parts=3)
    parts[1].unlink()
    with pytest.raises(GGUFError) as caught:
        read_model(parts[0])
    assert caught.value.kind == "missing"
    assert "part 2 (big-00002-of-00003.gguf) is missing" in caught.value.message


def test_split_parts_that_do_not_match_their_names(tmp_path: Path) -> None:
    parts = write_split_llama(tmp_path, "big", n_parts=2)
    swapped = tmp_path / "swap.gguf"
    parts[1].rename(swapped)
    parts[0].rename(parts[1])
    swapped.rename(parts[0])
    with pytest.raises(GGUFError) as caught:
        read_model(parts[0])
    assert caught.value.kind == "corrupt" and "holds part" in caught.value.message


def _bytes(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


BAD = [
    (lambda t, m: _bytes(t, "notes.gguf", b"shopping list\n"), "not_gguf", "does not start with the GGUF"),
    (lambda t, m: _bytes(t, "empty.gguf", b""), "not_gguf", "empty"),
    (lambda t, m: _bytes(t, "v9.gguf", b"GGUF" + struct.pack("<I", 9) + b"\0" * 64), "corrupt", "version 9"),
    (lambda t, m: _bytes(t, "sig.gguf", b"GGUF\3"), "truncated", "right after its signature"),
    (lambda t, m: _bytes(t, "count.gguf", b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0)), "corrupt",
     "1,099,511,627,776 tensors"),
    (lambda t, m: truncated_copy(m, t / "half.gguf"), "truncated", "incomplete"),
    (lambda t, m: truncated_copy(m, t / "head.gguf", 0.001), "truncated", "ends inside its header"),
    (lambda t, m: t / "nowhere.gguf", "missing", "does not exist"),
    (lambda t, m: write_gguf(t / "dims.gguf", {}, [("t", (1, 1, 1, 1, 1))]), "corrupt", "5 dims"),
]


@pytest.mark.parametrize(("make", "kind", "words"), BAD, ids=[b[1] + "-" + b[2][:12] for b in BAD])
def test_bad_files_get_a_specific_reason(make, kind: str, words: str, tmp_path: Path) -> None:
    model = write_tiny_llama(tmp_path / "good.gguf")
    with pytest.raises(GGUFError) as caught:
        read_model(make(tmp_path, model))
    assert caught.value.kind == kind
    assert words in caught.value.message
