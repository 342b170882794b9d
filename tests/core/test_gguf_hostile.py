"""Hostile GGUF headers: every one ends in a GGUFError that says what is wrong, promptly, without
a loop or an allocation as large as a count the file declares (tests/fixtures/hostile_gguf.py)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from app.core.models import memory
from app.core.models.gguf_info import MAX_LAYERS, GGUFError, GGUFHeader, read_header, read_model
from tests.fixtures import hostile_gguf as hostile
from tests.fixtures.gguf_files import write_gguf, write_split_llama, write_tiny_llama


def _refused(path: Path) -> GGUFError:
    with pytest.raises(GGUFError) as caught:
        read_model(path)
    return caught.value


@pytest.mark.timeout(60)  # before the checks, huge_block_count's estimate ran for ever
@pytest.mark.parametrize("name", list(hostile.HOSTILE))
def test_each_hostile_header_is_refused_with_its_reason(name: str, tmp_path: Path) -> None:
    make, kind, words = hostile.HOSTILE[name]
    error = _refused(make(tmp_path / f"{name}.gguf"))
    assert (error.kind, words in error.message) == (kind, True), error.message
    assert "\n" not in error.message and "download" in error.message.lower()


def test_the_192_byte_header_with_4e9_layers(tmp_path: Path) -> None:
    path = hostile.huge_block_count(tmp_path / "layers.gguf")
    assert path.stat().st_size == 192
    error = _refused(path)
    assert "4,000,000,000 layers (llama.block_count)" in error.message
    header = read_header(path)  # read alone, it still cannot send a per-layer loop far
    assert header.block_count == 0 and header.kv_values_per_token() == []
    assert memory.estimate(header, 4096, -1).kv_bytes == 0


@pytest.mark.timeout(60)
def test_per_layer_figures_never_loop_past_llama_cpp_s_layer_limit() -> None:
    metadata = {"general.architecture": "llama", "llama.block_count": 4_000_000_000,
                "llama.embedding_length": 576, "llama.attention.head_count": 9}
    header = GGUFHeader(Path("x.gguf"), 3, metadata, [], 0, 192)
    assert header.kv_values_per_token() == [] and memory.estimate(header, 4096, 0).kv_bytes == 0
    header.metadata["llama.block_count"] = MAX_LAYERS
    assert len(header.kv_values_per_token()) == MAX_LAYERS


@pytest.mark.parametrize(("block_count", "words"), [(0, "declares 0 layers"), (MAX_LAYERS + 1, "513 layers"),
                                                    ("abc", "declares 'abc' layers")])
def test_a_layer_count_llama_cpp_would_abort_on_is_refused(block_count, words: str, tmp_path: Path) -> None:
    meta = {"general.architecture": "llama", "llama.block_count": block_count}
    tensors = [(f"blk.{i}.attn_norm.weight", (4,)) for i in range(MAX_LAYERS + 1)]
    error = _refused(write_gguf(tmp_path / "m.gguf", meta, tensors, sparse=False))
    assert error.kind == "corrupt" and words in error.message and "loads 1 to 512 layers" in error.message


def test_layers_are_counted_against_the_tensors_of_all_parts(tmp_path: Path) -> None:
    parts = write_split_llama(tmp_path, "big", n_parts=14, n_layers=3)  # 2 tensors a part, 27 in all
    assert len(read_header(parts[0]).tensors) == 2 and read_model(parts[0]).block_count == 3
    assert read_model(write_tiny_llama(tmp_path / "t.gguf", n_layers=4)).block_count == 4


def test_the_bit_flipped_model_names_the_duplicated_token(model_path: Path, tmp_path: Path) -> None:
    error = _refused(hostile.bit_flipped_model(model_path, tmp_path / "flipped.gguf"))
    assert error.kind == "corrupt"
    assert "token 2,382 of its vocabulary duplicates token 930 ('Ġred')" in error.message
    assert "Download the file again" in error.message


@pytest.mark.parametrize(("tokens", "first", "second"), [
    (["a\0x", "b", "a\0y"], 0, 2),  # llama.cpp reads a token as a C string: both are "a"
    (["", "[EMPTY_0]"], 0, 1),  # it names an empty token "[EMPTY_<id>]"
    ([b"\xff", b"\xfe", b"\xff"], 0, 2),  # compared as bytes, not as decoded text
])
def test_duplicates_are_found_as_llama_cpp_reads_tokens(tokens, first: int, second: int,
                                                        tmp_path: Path) -> None:
    error = _refused(hostile.vocabulary(tmp_path / "v.gguf", tokens))
    assert f"token {second} of its vocabulary duplicates token {first} " in error.message


def test_distinct_tokens_read_as_before(tmp_path: Path) -> None:
    header = read_model(hostile.vocabulary(tmp_path / "v.gguf", ["a", "b", "", "c\0"], [0, 1, 2, 3]))
    assert header.metadata["tokenizer.ggml.tokens"] == ["a", "b", "", "c\0"]


def test_a_scores_list_shorter_than_the_vocabulary_is_refused(tmp_path: Path) -> None:
    # llama.cpp would read scores[2], past the end of the list.
    error = _refused(hostile.vocabulary(tmp_path / "v.gguf", ["a", "b", "c"], [0.0, 1.0]))
    assert error.kind == "corrupt" and "tokenizer.ggml.scores list holds 2 entries" in error.message


def test_a_power_of_two_alignment_is_kept(tmp_path: Path) -> None:
    path = hostile.bad_alignment(tmp_path / "a.gguf", 64)
    assert read_model(path).data_offset % 64 == 0


def test_shallow_nesting_still_reads(tmp_path: Path) -> None:
    header = read_model(hostile.deep_nesting(tmp_path / "n.gguf", depth=8))
    value = header.metadata["general.deep"]
    for _ in range(7):
        (value,) = value
    assert value == []


def test_the_items_of_all_counts_together_are_bounded(tmp_path: Path) -> None:
    # 6 million entries fit in the (sparse) file, as do 6 million tensors; not both.
    error = _refused(hostile.sparse_many_entries(tmp_path / "many.gguf"))
    assert error.kind == "corrupt" and "over 10,000,000 items in all" in error.message


def test_odd_metadata_values_give_figures_not_tracebacks(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "odd.gguf", **{"llama.embedding_length": "abc",
                                                       "llama.attention.head_count_kv": "x"})
    header = read_model(path)
    assert header.kv_values_per_token() == [0, 0]
    json.dumps(header.facts())
    assert memory.estimate(header, 2048, -1).kv_bytes == 0


def test_a_file_cut_inside_its_header_says_it_is_truncated_and_what_is_missing(tmp_path: Path) -> None:
    """Issue 12, item 20: "ends inside its header (at byte 72 of 72)" read as if the file were whole."""
    path = tmp_path / "cut.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + hostile.string("general.architecture", "llama")
                     + b"\x05\x00\x00")  # cut inside the next key's 8-byte length
    error = _refused(path)
    assert error.kind == "truncated" and "72 of 72" not in error.message
    assert error.message.startswith("cut.gguf ends inside its header: the file stops after 72 bytes, where "
                                    "the header alone needs at least 77. It is truncated")
    assert "download it again" in error.message
