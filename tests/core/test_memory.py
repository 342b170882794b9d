"""Memory estimates against figures worked out by hand (and llama.cpp's own for the embedded model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.models import memory
from app.core.models.gguf_info import GGUFHeader, TensorInfo, read_header

MiB = 1024**2
Q4_K, F32 = 12, 0


def llama_8b(tied: bool = False) -> GGUFHeader:
    """Llama-3-8B's shapes (32 layers, 32 heads, 8 KV heads of 128), Q4_K weights, in memory only."""
    n_embd, n_ff, n_vocab, kv = 4096, 14336, 128256, 1024
    tensors = [TensorInfo("token_embd.weight", (n_embd, n_vocab), Q4_K, 0)]
    for i in range(32):
        tensors += [TensorInfo(f"blk.{i}.attn_norm.weight", (n_embd,), F32, 0),
                    TensorInfo(f"blk.{i}.attn_q.weight", (n_embd, n_embd), Q4_K, 0),
                    TensorInfo(f"blk.{i}.attn_k.weight", (n_embd, kv), Q4_K, 0),
                    TensorInfo(f"blk.{i}.attn_v.weight", (n_embd, kv), Q4_K, 0),
                    TensorInfo(f"blk.{i}.attn_output.weight", (n_embd, n_embd), Q4_K, 0),
                    TensorInfo(f"blk.{i}.ffn_gate.weight", (n_embd, n_ff), Q4_K, 0),
                    TensorInfo(f"blk.{i}.ffn_up.weight", (n_embd, n_ff), Q4_K, 0),
                    TensorInfo(f"blk.{i}.ffn_down.weight", (n_ff, n_embd), Q4_K, 0)]
    tensors.append(TensorInfo("output_norm.weight", (n_embd,), F32, 0))
    if not tied:
        tensors.append(TensorInfo("output.weight", (n_embd, n_vocab), Q4_K, 0))
    metadata = {"general.architecture": "llama", "llama.block_count": 32, "llama.context_length": 8192,
                "llama.embedding_length": n_embd, "llama.attention.head_count": 32,
                "llama.attention.head_count_kv": 8}
    return GGUFHeader(Path("llama-8b.gguf"), 3, metadata, tensors, 0, 0)


def _bytes(header: GGUFHeader, prefix: str) -> int:
    return sum(t.n_bytes or 0 for t in header.tensors if t.name.startswith(prefix))


def test_llama_8b_kv_cache_at_4096_tokens_is_512_mib() -> None:
    header = llama_8b()
    # 2 (K and V) x 32 layers x 4096 tokens x 8 KV heads x 128 x 2 bytes
    assert memory.estimate(header, 4096, 0).kv_bytes == 2 * 32 * 4096 * 8 * 128 * 2 == 512 * MiB
    assert memory.estimate(header, 4096, 0, "q8_0").kv_bytes == 272 * MiB  # 34 bytes per 32 values
    assert memory.estimate(header, 4096, 0, "q4_0").kv_bytes == 144 * MiB  # 18 bytes per 32 values
    assert memory.estimate(header, 4096, 0, "f32").kv_bytes == 1024 * MiB


def test_embedded_model_kv_cache_matches_llama_cpp(model_path: Path) -> None:
    header = read_header(model_path)
    assert memory.estimate(header, 8192, 0).kv_ram == 188_743_680
    # llama.cpp 0.3.36 reports "CPU KV buffer size = 90.00 MiB" at 4096 tokens.
    assert memory.estimate(header, 4096, 0).kv_ram == 90 * MiB


def test_cpu_only_puts_everything_in_ram_as_the_engine_counts_it(model_path: Path) -> None:
    header = read_header(model_path)
    estimate = memory.estimate(header, 4096, 0)
    assert estimate.vram_bytes == 0 and estimate.gpu_layers == 0
    assert estimate.weights_ram == header.weights_bytes
    # The engine's check: weights + KV + 256 MiB of runtime overhead, at the default 4096 context.
    kv_f16 = 4096 * sum(header.kv_values_per_token()) * 2
    assert estimate.ram_bytes == header.weights_bytes + kv_f16 + 256 * MiB


def test_partial_offload_moves_the_last_layers_with_their_kv_cache() -> None:
    header = llama_8b()
    estimate = memory.estimate(header, 4096, 8)
    gpu_weights = sum(_bytes(header, f"blk.{i}.") for i in range(24, 32))
    assert estimate.weights_vram == gpu_weights
    assert estimate.weights_ram == header.weights_bytes - gpu_weights
    assert (estimate.kv_vram, estimate.kv_ram) == (128 * MiB, 384 * MiB)
    assert estimate.gpu_layers == 8
    assert estimate.compute_vram == 4096 * memory.COMPUTE_PER_TOKEN_BYTES
    assert estimate.compute_ram == memory.COMPUTE_FIXED_BYTES


def test_the_output_layer_goes_to_the_gpu_only_past_the_repeating_layers() -> None:
    header = llama_8b()
    embd, output = _bytes(header, "token_embd."), _bytes(header, "output")
    every_layer = memory.estimate(header, 4096, 32)
    assert every_layer.weights_ram == embd + output and every_layer.gpu_layers == 32
    for n in (33, 99, -1):
        everything = memory.estimate(header, 4096, n)
        assert everything.weights_ram == embd, n  # the input layer always stays on the CPU
        assert everything.weights_vram == header.weights_bytes - embd
        assert everything.kv_ram == 0 and everything.gpu_layers == 33


def test_tied_embeddings_are_copied_to_the_gpu_with_the_output_layer(model_path: Path) -> None:
    header = read_header(model_path)  # SmolLM2 has no output.weight
    embd = _bytes(header, "token_embd.")
    estimate = memory.estimate(header, 4096, -1)
    assert estimate.weights_ram == embd
    assert estimate.weights_vram == header.weights_bytes  # every layer, and token_embd again as output
    assert memory.estimate(header, 4096, 30).weights_vram == header.weights_bytes - embd - _bytes(
        header, "output_norm.")


def test_verdict() -> None:
    estimate = memory.estimate(llama_8b(), 4096, 0)
    need = estimate.ram_bytes
    assert memory.verdict(estimate, 2 * need, None) == "fits"
    assert memory.verdict(estimate, int(need / 0.84), None) == "fits"
    assert memory.verdict(estimate, int(need / 0.9), None) == "tight"
    assert memory.verdict(estimate, need, None) == "tight"
    assert memory.verdict(estimate, need - 1, None) == "won't fit"
    assert memory.verdict(estimate, None, None) == "fits"  # nothing known: nothing checked
    assert memory.verdict(estimate, 2 * need, 0) == "fits"  # nothing on the GPU


def test_verdict_takes_the_worse_of_ram_and_vram() -> None:
    estimate = memory.estimate(llama_8b(), 4096, -1)
    ram, vram = estimate.ram_bytes, estimate.vram_bytes
    assert memory.verdict(estimate, 10 * ram, 10 * vram) == "fits"
    assert memory.verdict(estimate, 10 * ram, int(vram / 0.95)) == "tight"
    assert memory.verdict(estimate, 10 * ram, vram // 2) == "won't fit"
    assert memory.verdict(estimate, 10 * ram, 0) == "won't fit"  # no GPU memory at all
    assert memory.verdict(estimate, ram // 2, 10 * vram) == "won't fit"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="KV cache type"):
        memory.estimate(llama_8b(), 4096, 0, "q3_k")
    with pytest.raises(ValueError, match="n_ctx"):
        memory.estimate(llama_8b(), -1, 0)


def test_as_dict_holds_the_totals() -> None:
    data = memory.estimate(llama_8b(), 2048, 4, "q8_0").as_dict()
    assert data["ram_bytes"] == data["weights_ram"] + data["kv_ram"] + data["compute_ram"]
    assert data["vram_bytes"] == data["weights_vram"] + data["kv_vram"] + data["compute_vram"]
    assert data["kv_type"] == "q8_0" and data["n_ctx"] == 2048


def test_a_file_not_downloaded_yet_is_judged_by_its_size():
    gib = 1024**3
    need = 4 * gib * 1.15 + memory.FILE_OVERHEAD_BYTES  # weights, ~15 % more, the runtime
    assert memory.file_verdict(4 * gib, None) == ""
    assert memory.file_verdict(4 * gib, int(need / memory.TIGHT_FRACTION) + 1) == memory.FITS
    assert memory.file_verdict(4 * gib, int(need) + 1) == memory.TIGHT
    assert memory.file_verdict(4 * gib, int(need) - 1) == memory.WONT_FIT
