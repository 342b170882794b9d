"""GPU layers asked for but not possible: the model loads on the CPU and the reason is said.

This machine has no GPU, so the GPU's answer is played at the one edge we cannot reach:
llama.cpp's constructor fails as it does when a CUDA allocation fails. Everything else is real.
"""

from __future__ import annotations

from pathlib import Path

import llama_cpp

from app.core.chat.sampling import GREEDY
from app.core.inference.local import devices as backends
from app.core.inference.local.engine import Engine, LoadOptions

HELLO = [{"role": "user", "content": "Say hello."}]


def test_a_cpu_only_build_says_that_gpu_layers_were_not_used(model_path: Path) -> None:
    if backends.gpu_offload_supported():
        return  # a GPU build: the fallback test below covers it
    engine = Engine()
    try:
        info = engine.load(model_path, LoadOptions(n_ctx=1024, n_gpu_layers=-1))
        assert info.gpu_layers == 0
        assert "no GPU backend" in info.gpu_note and "CPU" in info.gpu_note
    finally:
        engine.unload()


def test_a_failed_gpu_load_falls_back_to_the_cpu_and_says_why(model_path: Path, monkeypatch) -> None:
    real_llama = llama_cpp.Llama
    attempts: list[int] = []

    def llama(*args, **kwargs):
        attempts.append(kwargs["n_gpu_layers"])
        if kwargs["n_gpu_layers"] != 0:  # what a CUDA out-of-memory looks like from Python
            raise ValueError("Failed to load model from file")
        return real_llama(*args, **kwargs)

    monkeypatch.setattr(backends, "gpu_offload_supported", lambda: True)
    monkeypatch.setattr(llama_cpp, "Llama", llama)
    engine = Engine()
    try:
        info = engine.load(model_path, LoadOptions(n_ctx=1024, n_gpu_layers=20))
        assert attempts == [20, 0]
        assert info.gpu_layers == 0
        assert info.gpu_note.startswith("Loaded on the CPU: offloading to the GPU failed")
        *deltas, stats = engine.stream(HELLO, GREEDY.replace(max_tokens=8))
        assert "".join(deltas) and stats.completion_tokens > 0  # and it answers
    finally:
        engine.unload()


def test_quantised_kv_cache_with_flash_attention_loads_and_answers(model_path: Path) -> None:
    engine = Engine()
    try:
        engine.load(model_path, LoadOptions(n_ctx=1024, flash_attn=True, kv_cache_type="q8_0"))
        *deltas, stats = engine.stream(HELLO, GREEDY.replace(max_tokens=8))
        assert "".join(deltas) and stats.completion_tokens > 0
    finally:
        engine.unload()
