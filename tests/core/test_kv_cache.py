"""Each conversation keeps its KV cache: a switch or a restart does not re-read the history."""

from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path

import pytest

from app.core.chat.sampling import GREEDY, SamplingParams
from app.core.inference.local.engine import Engine, LoadOptions
from app.core.inference.local.kv_cache import STRAY_AGE_S, KVCacheStore, Snapshot

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


# ------------------------------------------------------------------ damaged, stray and deleted files

STATE = bytes(range(256)) * 781  # 199,936 bytes


def _saved(folder: Path, key: str = "A") -> tuple[KVCacheStore, Path]:
    store = KVCacheStore(folder)
    store.save(key, Snapshot("model|4096", list(range(300)), STATE))
    (path,) = folder.glob("*.kv")
    return store, path


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0b1000_0001
    path.write_bytes(bytes(data))


def test_a_snapshot_reads_back_and_is_private(kv_folder: Path) -> None:
    store, path = _saved(kv_folder)
    snapshot = store.load("A", "model|4096")
    assert snapshot is not None and snapshot.tokens == list(range(300)) and snapshot.state == STATE
    assert path.stat().st_mode & 0o777 == 0o600 and kv_folder.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("where", ["state", "tokens", "header", "checksum"])
def test_a_flipped_bit_is_caught_and_the_file_deleted(kv_folder: Path, where: str, caplog) -> None:
    store, path = _saved(kv_folder)
    size = path.stat().st_size
    tokens_end = size - 32 - len(STATE)
    offset = {"state": size - 1000, "tokens": tokens_end - 100, "header": 20, "checksum": size - 1}[where]
    _flip(path, offset)
    assert store.load("A", "model|4096") is None
    assert not path.exists()
    assert len([r for r in caplog.records if "damaged KV snapshot" in r.getMessage()]) == 1


def test_a_cut_short_or_extended_file_is_deleted(kv_folder: Path) -> None:
    store, path = _saved(kv_folder)
    path.write_bytes(path.read_bytes()[:-1])
    assert store.load("A", "model|4096") is None and not path.exists()
    store, path = _saved(kv_folder)
    path.write_bytes(path.read_bytes() + b"\0")
    assert store.load("A", "model|4096") is None and not path.exists()


def test_garbage_lengths_allocate_nothing_big(kv_folder: Path) -> None:
    """Lengths read from the file are checked against its size before any read (a 4.4 GB spike)."""
    import tracemalloc

    store, path = _saved(kv_folder)
    head = struct.pack("<6sI", b"LDKV2\n", 0xFFFF_FFF0)
    header = json.dumps({"key": "A", "fingerprint": "model|4096", "n_tokens": 2**40, "state_bytes": 2**42})
    bodies = [head + os.urandom(1000),  # a header length of 4 GiB
              struct.pack("<6sI", b"LDKV2\n", len(header)) + header.encode() + os.urandom(1000),
              os.urandom(1000)]  # not ours at all
    for body in bodies:
        path.write_bytes(body)
        tracemalloc.start()
        try:
            assert store.load("A", "model|4096") is None
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1_000_000, peak
        assert not path.exists()


def test_an_old_format_file_is_deleted(kv_folder: Path) -> None:
    store, path = _saved(kv_folder)
    path.write_bytes(b"LDKV1\n" + path.read_bytes()[6:])
    assert store.load("A", "model|4096") is None and not path.exists()


def test_another_settings_snapshot_is_not_used_but_kept(kv_folder: Path) -> None:
    """Not damaged: it belongs to other load settings (or another model); the next save for this
    conversation replaces it, and switching back to those settings still finds it."""
    store, path = _saved(kv_folder)
    assert store.load("A", "model|2048") is None
    assert path.exists() and store.load("A", "model|4096") is not None


def test_a_file_under_another_keys_name_is_not_used(kv_folder: Path) -> None:
    store, path = _saved(kv_folder, "A")
    b_path = store._path("B")
    path.rename(b_path)
    assert store.load("B", "model|4096") is None and not b_path.exists()


def test_stray_temporary_files_are_cleaned_and_nothing_else(kv_folder: Path) -> None:
    kv_folder.mkdir()
    ours = [kv_folder / ("0123456789abcdef" * 2 + ".kv.tmp"), kv_folder / ("fedcba9876543210" * 2 + ".tmp")]
    others = [kv_folder / "notes.tmp", kv_folder / "x.kv.tmp.keep", kv_folder / ("0" * 32 + ".kv")]
    being_written = kv_folder / ("abcdef0123456789" * 2 + ".kv.tmp")  # a save in progress elsewhere
    long_ago = time.time() - 2 * STRAY_AGE_S
    for path in ours + others + [being_written]:
        path.write_bytes(b"left by a kill")
        if path is not being_written:
            os.utime(path, (long_ago, long_ago))
    KVCacheStore(kv_folder)
    assert [p.exists() for p in ours + others] == [False, False, True, True, True]
    assert being_written.exists()  # a second store (doctor, a test) never breaks a running save


def test_prune_deletes_the_snapshots_of_conversations_that_are_gone(kv_folder: Path) -> None:
    store = KVCacheStore(kv_folder)
    for key in "ABC":
        store.save(key, Snapshot("fp", [1, 2, 3], b"state"))
    assert store.prune(["B", "Z"]) == 2
    assert [p.name for p in kv_folder.glob("*.kv")] == [store._path("B").name]
    store.discard("B")
    assert list(kv_folder.iterdir()) == []


def test_check_reports_and_deletes_damaged_snapshots(kv_folder: Path) -> None:
    store, path = _saved(kv_folder, "A")
    store.save("B", Snapshot("fp", [1, 2, 3], b"state"))
    _flip(path, path.stat().st_size - 5000)
    report = store.check()
    assert report.sound == 1 and len(report.removed) == 1 and "checksum" in report.removed[0]
    assert not path.exists() and store.load("B", "fp") is not None


def test_a_damaged_snapshot_gives_the_answer_of_none(model_path: Path, kv_folder: Path,
                                                      tmp_path: Path) -> None:
    """Flipped bits in a saved state: the answer is the one without a snapshot (before: garbage, and
    the bad state saved again at close)."""
    greedy = SamplingParams(temperature=0, seed=1, max_tokens=40)
    engine = Engine(KVCacheStore(kv_folder))
    engine.load(model_path)
    history = long_history(engine, "A")
    engine.unload()  # saves A's snapshot
    (path,) = kv_folder.glob("*.kv")
    data = bytearray(path.read_bytes())
    for k in range(200):  # scattered through the state (a dense run makes llama.cpp refuse it)
        data[len(data) // 10 + k * (len(data) * 8 // 10) // 200] ^= 0x7C
    path.write_bytes(bytes(data))
    history.append({"role": "user", "content": "Thanks! Who is the hero?"})
    answers = []
    for folder in (tmp_path / "none", kv_folder):
        fresh = Engine(KVCacheStore(folder))
        fresh.load(model_path)
        try:
            *pieces, stats = fresh.stream(history, greedy, cache_key="A")
            assert stats.cached_tokens == 0
            answers.append("".join(pieces))
        finally:
            fresh.unload()
    assert answers[1] == answers[0] and answers[0].strip()
    assert KVCacheStore(kv_folder).check().sound == 1  # the snapshot saved at close is sound
