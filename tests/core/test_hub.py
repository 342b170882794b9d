"""app.core.models.hub against a local fake hub: search, listing, resumed, verified, cancelled downloads."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import threading
from pathlib import Path

import pytest

from app.core.models import hub, hub_search
from app.core.models.hub import DownloadProgress, HubError
from tests.fixtures.fake_hub import TOKEN, FakeHub
from tests.fixtures.gguf_files import write_gguf

REPO = "bartowski/Tiny-Llama-GGUF"
FILE = "Tiny-Llama-Q4_K_M.gguf"


def gguf_bytes(tmp_path: Path, name: str, floats: int = 256 * 1024, seed: int = 0) -> bytes:
    """A valid GGUF whose tensor data is random, so that bytes at a wrong offset cannot match."""
    path = write_gguf(tmp_path / f"src-{name}", {"general.architecture": "llama", "general.name": name},
                      [("weights", (floats,))], sparse=False)
    data = bytearray(path.read_bytes())
    data[-floats * 4:] = random.Random(seed).randbytes(floats * 4)
    return bytes(data)


@pytest.fixture
def model(tmp_path, fake_hub) -> bytes:
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(REPO, {FILE: data, "README.md": b"# Tiny\n"})
    return data


@pytest.fixture
def library(tmp_path) -> Path:
    return tmp_path / "models"


def cdn_gets(fake: FakeHub) -> list:
    return [r for r in fake.cdn_requests() if r.method == "GET"]


def assert_only_final(library: Path, name: str, data: bytes) -> None:
    assert sorted(p.name for p in library.iterdir()) == [name]
    assert (library / name).read_bytes() == data


# --- search and listing ------------------------------------------------------------------------


def test_search_returns_gguf_repos_sorted(fake_hub):
    fake_hub.add_repo("a/Llama-A-GGUF", {}, downloads=10, likes=300, last_modified="2024-01-01T00:00:00.000Z")
    fake_hub.add_repo("b/Llama-B-GGUF", {}, downloads=500, likes=5, last_modified="2024-06-01T00:00:00.000Z",
                      gated="manual")
    fake_hub.add_repo("c/Llama-C-GGUF", {}, downloads=70, likes=40, last_modified="2024-09-01T00:00:00.000Z")
    fake_hub.add_repo("d/Llama-D", {}, downloads=9999, tags=["safetensors"])
    fake_hub.add_repo("e/Mistral-GGUF", {}, downloads=9999)

    found = hub_search.search_models("llama")
    assert [m.repo_id for m in found] == ["b/Llama-B-GGUF", "c/Llama-C-GGUF", "a/Llama-A-GGUF"]
    assert found[0].downloads == 500 and found[0].gated and not found[1].gated
    assert found[0].last_modified.year == 2024
    assert [m.repo_id for m in hub_search.search_models("llama", sort="likes")][0] == "a/Llama-A-GGUF"
    assert [m.repo_id for m in hub_search.search_models("llama", sort="last_modified")][0] == "c/Llama-C-GGUF"
    assert len(hub_search.search_models("llama", limit=2)) == 2
    query = fake_hub.requests[0].query
    assert "filter=gguf" in query and "search=llama" in query and "sort=downloads" in query


def test_list_gguf_files_gives_size_sha256_and_quantization(tmp_path, fake_hub):
    names = ["Model-Q8_0.gguf", "Model-IQ3_XS.gguf",
             "Model-F16-00001-of-00002.gguf", "Model-F16-00002-of-00002.gguf"]
    files = {name: gguf_bytes(tmp_path, name, floats=1024, seed=i) for i, name in enumerate(names)}
    fake_hub.add_repo(REPO, {**files, "README.md": b"hello", "config.json": b"{}"})

    listed = hub_search.list_gguf_files(REPO)
    assert [f.filename for f in listed] == sorted(files)
    for f in listed:
        assert f.size == len(files[f.filename])
        assert f.sha256 == hashlib.sha256(files[f.filename]).hexdigest()
    assert {f.filename: f.quantization for f in listed}["Model-IQ3_XS.gguf"] == "IQ3_XS"
    assert [f.quantization for f in listed if "F16" in f.filename] == ["F16", "F16"]
    assert "blobs=true" in fake_hub.requests[-1].query


@pytest.mark.parametrize(("filename", "quant"), [
    ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
    ("qwen2.5-1.5b-instruct-q4_k_m.gguf", "Q4_K_M"),
    ("Mistral-7B-Instruct-v0.3.Q8_0.gguf", "Q8_0"),
    ("model-f16.gguf", "F16"),
    ("gemma-2-2b-it-BF16.gguf", "BF16"),
    ("Qwen2.5-7B-Instruct-Q5_K_S-00001-of-00002.gguf", "Q5_K_S"),
    ("Phi-3.5-mini-instruct-IQ4_NL.gguf", "IQ4_NL"),
    ("subdir/Model-Q6_K.gguf", "Q6_K"),
    ("SmolLM2-135M-Instruct.gguf", ""),
])
def test_quantization_is_read_from_the_filename(filename, quant):
    assert hub_search.quantization(filename) == quant


def test_recommended_models_are_gguf_files_with_sizes():
    assert len({(r.repo_id, r.filename) for r in hub_search.RECOMMENDED}) == len(hub_search.RECOMMENDED) >= 8
    for r in hub_search.RECOMMENDED:
        assert r.filename.endswith(".gguf") and hub_search.quantization(r.filename)
        assert 300e6 < r.size < 10e9 and r.summary


# --- downloads ---------------------------------------------------------------------------------


def test_download_verifies_and_moves_into_the_library(fake_hub, model, library):
    seen: list[DownloadProgress] = []
    path = hub.download(REPO, FILE, library, progress=seen.append)

    assert path == library / FILE
    assert_only_final(library, FILE, model)
    assert seen and seen[-1].done == seen[-1].total == len(model)
    assert [r.range for r in cdn_gets(fake_hub)] == [None]


def test_a_dropped_connection_is_resumed_with_a_range(fake_hub, model, library):
    fake_hub.drop_after = 300_000
    hub.download(REPO, FILE, library)

    assert [r.range for r in cdn_gets(fake_hub)] == [None, "bytes=300000-"]
    assert_only_final(library, FILE, model)


def test_a_cancelled_download_resumes_in_a_new_call(fake_hub, model, library):
    fake_hub.slow = 400_000
    cancel = threading.Event()

    def stop_early(p: DownloadProgress) -> None:
        if p.done >= 100_000:
            cancel.set()

    with pytest.raises(HubError) as info:
        hub.download(REPO, FILE, library, progress=stop_early, cancel=cancel)
    assert info.value.kind == "cancelled"
    kept = (library / f"{FILE}.part").stat().st_size
    assert kept >= 100_000 and not (library / FILE).exists()
    sidecar = json.loads((library / f"{FILE}.part.json").read_text())
    assert sidecar["sha256"] == hashlib.sha256(model).hexdigest()

    fake_hub.slow = None  # as after a restart of the app: only the .part and its sidecar remain
    hub.download(REPO, FILE, library)
    assert cdn_gets(fake_hub)[-1].range == f"bytes={kept}-"
    assert_only_final(library, FILE, model)


def test_a_part_of_another_file_is_not_resumed(fake_hub, model, library):
    library.mkdir()
    (library / f"{FILE}.part").write_bytes(b"x" * 1000)
    (library / f"{FILE}.part.json").write_text(json.dumps({"etag": "0" * 64, "sha256": "0" * 64, "size": 1}))
    hub.download(REPO, FILE, library)

    assert [r.range for r in cdn_gets(fake_hub)] == [None]
    assert_only_final(library, FILE, model)


def test_corrupt_bytes_are_rejected_and_deleted(fake_hub, model, library):
    fake_hub.corrupt = True
    with pytest.raises(HubError) as info:
        hub.download(REPO, FILE, library)
    assert info.value.kind == "hash_mismatch"
    assert list(library.iterdir()) == []


def test_a_gated_repo_needs_a_token(tmp_path, fake_hub, library):
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo("meta-llama/Gated-GGUF", {FILE: data}, gated="manual")

    assert hub_search.list_gguf_files("meta-llama/Gated-GGUF")[0].size == len(data)  # metadata stays public
    for token in (None, "hf_wrong"):
        with pytest.raises(HubError) as info:
            hub.download("meta-llama/Gated-GGUF", FILE, library, token=token)
        assert info.value.kind == "unauthorized"
        assert "token" in info.value.message and "settings/tokens" in info.value.message
        assert not (library / FILE).exists()

    hub.download("meta-llama/Gated-GGUF", FILE, library, token=TOKEN)
    assert_only_final(library, FILE, data)
    assert all(r.authorization is None for r in fake_hub.cdn_requests())  # the token stays on the hub


def test_unknown_repos_and_files_are_not_found(fake_hub, model, library):
    for call in (lambda: hub.download("nobody/Nothing-GGUF", FILE, library),
                 lambda: hub.download(REPO, "missing-Q4_0.gguf", library),
                 lambda: hub_search.list_gguf_files("nobody/Nothing-GGUF")):
        with pytest.raises(HubError) as info:
            call()
        assert info.value.kind == "not_found"
    assert list(library.iterdir()) == []


def test_cancel_stops_a_stalled_download_at_once(fake_hub, model, library):
    """The hub sends one 4 KiB piece and then nothing for over an hour: only the watchdog's socket
    shutdown can end the blocked read before the 60 s read timeout."""
    fake_hub.slow = 1  # bytes a second: after the first piece, a stalled connection
    cancel, started = threading.Event(), threading.Event()
    outcome: dict = {}

    def run() -> None:
        try:
            hub.download(REPO, FILE, library, cancel=cancel, progress=lambda p: p.done and started.set())
        except HubError as e:
            outcome["error"] = e

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(10)
    cancel.set()
    worker.join(10)  # a bound for a broken build, far below the read timeout it must not wait for
    assert not worker.is_alive()
    assert outcome["error"].kind == "cancelled"
    assert (library / f"{FILE}.part").stat().st_size == 4096


def test_not_enough_disk_space_is_said_before_any_byte(fake_hub, model, library):
    with pytest.raises(HubError) as info:
        hub.download(REPO, FILE, library, free_space=lambda path: 1_000)
    assert info.value.kind == "disk_full"
    assert cdn_gets(fake_hub) == [] and list(library.iterdir()) == []


def test_an_unreachable_hub_is_reported_offline_at_the_first_try(monkeypatch, library):
    """One connection attempt per call: no retries with backoff (about 20 s) before saying so."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    attempts: list[tuple] = []
    connect = socket.create_connection

    def counted(address, *args, **kwargs):
        attempts.append(address)
        return connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counted)
    for call in (lambda: hub_search.search_models("llama"), lambda: hub_search.list_gguf_files(REPO),
                 lambda: hub.download(REPO, FILE, library)):
        before = len(attempts)
        with pytest.raises(HubError) as info:
            call()
        assert info.value.kind == "offline" and "cannot be reached" in info.value.message
        assert len(attempts) - before == 1
    assert not library.exists() or list(library.iterdir()) == []


def test_offline_mode_contacts_nothing(fake_hub, model, library, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError) as info:
        hub.download(REPO, FILE, library)
    assert info.value.kind == "offline"
    assert fake_hub.requests == []


# --- the token ---------------------------------------------------------------------------------


def test_the_token_is_saved_readable_by_the_user_only():
    assert hub.load_token() is None
    hub.save_token(" hf_secret \n")
    assert hub.load_token() == "hf_secret"
    if os.name == "posix":
        from app.paths import config_dir
        assert (config_dir() / "hf_token").stat().st_mode & 0o777 == 0o600
    hub.save_token("")
    assert hub.load_token() is None


def test_a_download_never_replaces_a_file_already_in_the_library(fake_hub, model, library):
    library.mkdir()
    mine = library / FILE
    mine.write_bytes(b"the user's own file")
    with pytest.raises(HubError) as raised:
        hub.download(REPO, FILE, library)
    assert raised.value.kind == "exists" and "already in the library" in raised.value.message
    assert mine.read_bytes() == b"the user's own file"
    assert cdn_gets(fake_hub) == []  # refused before a byte was fetched
