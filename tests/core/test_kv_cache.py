"""Each conversation keeps its KV cache: a switch or a restart does not re-read the history."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.engine import Engine, LoadOptions
from app.core.kv_cache import KVCacheStore
from app.core.sampling import GREEDY

SAMPLING = GREEDY.replace(max_tokens=40)


def answer(engine: Engine, history: list[dict], key: str | None):
    *pieces, stats = engine.stream(history, SAMPLING, cache_key=key)
    engine.save_kv()
    history.append({"role": "assistant", "content": "".join(pieces)})
    return stats


@pytest.fixture
def kv_folder(tmp_path: Path) -> Path:
    return tmp_path / "kv"


def long_history(engine: Engine, key: str) -> list[dict]:
    history = [{"role": "user", "content": "Write a long story about a llama who travels the world."}]
    *pieces, _ = engine.stream(history, GREEDY.replace(max_tokens=150), cache_key=key)
    history.append({"role": "assistant", "content": "".join(pieces)})
    return history


def test_the_next_turn_reads_only_the_new_tokens(model_path: Path, kv_folder: Path) -> None:
    engine = Engine(KVCacheStore(kv_folder))
    engine.load(model_path)
    try:
        history = long_history(engine, "A")
        history.append({"role": "user", "content": "Thanks! Who is the hero?"})
        stats = answer(engine, history, "A")
        assert stats.prompt_tokens > 150
        assert stats.prompt_tokens - stats.cached_tokens < 30  # only the new turn is processed
    finally:
        engine.unload()


def test_switching_away_and_back_restores_the_cache(model_path: Path, kv_folder: Path) -> None:
    engine = Engine(KVCacheStore(kv_folder))
    engine.load(model_path)
    try:
        a = long_history(engine, "A")
        b = [{"role": "user", "content": "What is the capital of France?"}]
        answer(engine, b, "B")
        a.append({"role": "user", "content": "Thanks! Who is the hero?"})
        stats = answer(engine, a, "A")
        assert stats.prompt_tokens - stats.cached_tokens < 30
        b.append({"role": "user", "content": "And of Italy?"})
        stats = answer(engine, b, "B")  # B came back too
        assert stats.prompt_tokens - stats.cached_tokens < 30
    finally:
        engine.unload()


def test_a_restart_restores_the_cache_from_disk(model_path: Path, kv_folder: Path) -> None:
    engine = Engine(KVCacheStore(kv_folder))
    engine.load(model_path)
    a = long_history(engine, "A")
    engine.unload()  # closing the app saves the conversation's cache
    assert len(list(kv_folder.glob("*.kv"))) == 1
    restarted = Engine(KVCacheStore(kv_folder))
    restarted.load(model_path)
    try:
        a.append({"role": "user", "content": "Thanks! Who is the hero?"})
        stats = answer(restarted, a, "A")
        assert stats.cached_tokens > 150 and stats.prompt_tokens - stats.cached_tokens < 30
    finally:
        restarted.unload()


def test_a_stale_or_damaged_cache_is_ignored(model_path: Path, kv_folder: Path) -> None:
    engine = Engine(KVCacheStore(kv_folder))
    engine.load(model_path)
    a = long_history(engine, "A")
    engine.unload()
    expected = None
    # Other load settings: the saved state does not belong to this context; it is not used.
    other = Engine(KVCacheStore(kv_folder))
    other.load(model_path, LoadOptions(n_ctx=2048))
    try:
        a.append({"role": "user", "content": "Thanks! Who is the hero?"})
        *pieces, stats = other.stream(a, SAMPLING, cache_key="A")
        assert stats.cached_tokens < 40  # at most the shared chat-template start
        expected = "".join(pieces)
    finally:
        other.unload()
    for path in kv_folder.glob("*.kv"):
        path.write_bytes(path.read_bytes()[:1000])  # cut short
    damaged = Engine(KVCacheStore(kv_folder))
    damaged.load(model_path, LoadOptions(n_ctx=2048))
    try:
        *pieces, stats = damaged.stream(a, SAMPLING, cache_key="A")
        assert stats.cached_tokens == 0
        assert "".join(pieces) == expected  # same answer, just without the shortcut
    finally:
        damaged.unload()
