"""The library's flows: scan, one import for every caller, delete, header, hash, the llama.cpp
build; and hub search, where a newer search cancels the older."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from app import paths
from app.session import hub_search
from app.session.model_library import LibrarySession
from app.session.tasks import Latest, start
from tests.fixtures.gguf_files import write_tiny_llama


def run(qtbot, flow):
    """Run a flow on the loop and return its result (or raise its exception)."""
    task = start(flow)
    qtbot.waitUntil(task.done, timeout=30_000)
    return task.result()


@pytest.fixture
def library() -> LibrarySession:
    return LibrarySession()


def test_scan_lists_the_built_in_and_the_folder(qtbot, library, model_path) -> None:
    write_tiny_llama(paths.models_dir() / "tiny.gguf")
    entries = run(qtbot, library.scan())
    assert entries[0].path == model_path and [e.name for e in entries[1:]] == ["tiny"]


def test_import_takes_each_file_and_says_why_one_was_refused(qtbot, library, tmp_path) -> None:
    good = write_tiny_llama(tmp_path / "good.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    with qtbot.waitSignal(library.changed):
        result = run(qtbot, library.import_files([bad, good]))
    assert result.imported == [paths.models_dir() / "good.gguf"] and good.exists()
    assert len(result.problems) == 1 and "bad.gguf" in result.problems[0]


def test_import_of_nothing_usable_changes_nothing(qtbot, library, tmp_path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    changed: list[bool] = []
    library.changed.connect(lambda: changed.append(True))
    result = run(qtbot, library.import_files([bad]))
    assert result.imported == [] and result.problems and changed == []


def test_delete_removes_the_files_and_says_the_library_changed(qtbot, library) -> None:
    model = write_tiny_llama(paths.models_dir() / "tiny.gguf")
    with qtbot.waitSignal(library.changed):
        assert run(qtbot, library.delete(model)) == [model]
    assert not model.exists()


def test_header_is_none_for_a_file_that_is_no_model(qtbot, library, model_path, tmp_path) -> None:
    assert run(qtbot, library.header(model_path)).architecture == "llama"
    junk = tmp_path / "junk.gguf"
    junk.write_text("junk")
    assert run(qtbot, library.header(junk)) is None
    assert run(qtbot, library.header(tmp_path / "missing.gguf")) is None


def test_the_hash_is_computed_once_per_version_of_the_file(qtbot, library, tmp_path) -> None:
    file = tmp_path / "model.gguf"
    file.write_bytes(b"first")
    assert run(qtbot, library.sha256(file)) == hashlib.sha256(b"first").hexdigest()
    assert len(library._hashes) == 1
    assert run(qtbot, library.sha256(file)) == hashlib.sha256(b"first").hexdigest()
    assert len(library._hashes) == 1
    file.write_bytes(b"second, longer")
    assert run(qtbot, library.sha256(file)) == hashlib.sha256(b"second, longer").hexdigest()


def test_the_build_is_asked_of_the_engine_process(qtbot) -> None:
    """The window's process never loads llama.cpp: the engine's process describes its build."""
    from app.session.local_backend import LocalBackend

    backend = LocalBackend()
    try:
        library = LibrarySession(describe_build=backend.build)
        build = run(qtbot, library.build())
        assert backend.client.worker.process.pid not in (None, os.getpid())
        assert build.backend and build.llama_cpp_version[0].isdigit()
        assert build.description.startswith(f"llama.cpp backends: {build.backend} (")
        assert run(qtbot, library.build()) is build  # asked once
    finally:
        backend.close()


def test_without_an_engine_the_build_is_unknown(qtbot, library) -> None:
    build = run(qtbot, library.build())
    assert build.backend == "unknown" and not build.gpu_offload


def test_hub_search_and_listing(qtbot, fake_hub, tmp_path) -> None:
    fake_hub.add_repo("a/Llama-GGUF", {"Llama-Q8_0.gguf": write_tiny_llama(tmp_path / "t.gguf").read_bytes()},
                      downloads=5)
    found = run(qtbot, hub_search.search_models("llama"))
    assert [m.repo_id for m in found] == ["a/Llama-GGUF"]
    files = run(qtbot, hub_search.list_gguf_files("a/Llama-GGUF"))
    assert [(f.filename, f.quantization) for f in files] == [("Llama-Q8_0.gguf", "Q8_0")]


def test_a_newer_hub_search_cancels_the_older(qtbot, fake_hub) -> None:
    fake_hub.add_repo("a/Llama-GGUF", {}, downloads=5)
    fake_hub.add_repo("b/Mistral-GGUF", {}, downloads=5)
    shown: list[list[str]] = []
    latest = Latest("hub search")

    async def show(query: str) -> None:
        shown.append([m.repo_id for m in await hub_search.search_models(query)])

    older = latest.start(show("llama"))
    newer = latest.start(show("mistral"))
    qtbot.waitUntil(newer.done, timeout=10_000)
    with pytest.raises(asyncio.CancelledError):
        older.result()
    assert shown == [["b/Mistral-GGUF"]]


def test_a_path_that_is_not_a_model_is_refused_by_delete(qtbot, library, tmp_path) -> None:
    outside = tmp_path / "mine.gguf"
    outside.write_text("mine")
    task = start(library.delete(Path(outside)))
    qtbot.waitUntil(task.done, timeout=10_000)
    assert task.exception().kind == "outside_library" and outside.exists()
