"""Issue 12, item 12 (core): downloads kept as models/<owner>/<repo>/<file>, so files of the same
name from two repositories coexist and the library says where each came from; a download left
unfinished is found again from its part file after a restart, and a cancel removes it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from app.core.common.errors import UserFacingError
from app.core.models import hub, library_files
from app.core.models.download_files import (
    PartialDownload,
    downloaded_copies,
    find_partials,
    remove_partial,
    repo_folder,
)
from tests.core.test_hub import gguf_bytes

FILE = "Tiny-Llama-Q4_K_M.gguf"


def test_a_repository_gets_its_own_folder_and_a_path_in_its_name_is_refused(tmp_path: Path) -> None:
    assert repo_folder(tmp_path, "someone/Tiny-GGUF") == tmp_path / "someone" / "Tiny-GGUF"
    for bad in ("../etc", "someone/..", "someone", "a/b/c", "/abs", "someone/.hidden"):
        with pytest.raises(UserFacingError, match="not a valid repository name"):
            repo_folder(tmp_path, bad)


def test_two_files_of_the_same_name_from_two_repositories_coexist_with_their_source(
        tmp_path: Path, fake_hub) -> None:
    models = tmp_path / "models"
    first, second = gguf_bytes(tmp_path, "a.gguf"), gguf_bytes(tmp_path, "b.gguf")
    fake_hub.add_repo("alice/Tiny-GGUF", {FILE: first})
    fake_hub.add_repo("bob/Tiny-GGUF", {FILE: second})
    a = hub.download("alice/Tiny-GGUF", FILE, repo_folder(models, "alice/Tiny-GGUF"))
    b = hub.download("bob/Tiny-GGUF", FILE, repo_folder(models, "bob/Tiny-GGUF"))
    assert (a.read_bytes(), b.read_bytes()) == (first, second)  # before: the second was refused
    (models / "flat.gguf").write_bytes(first)  # downloaded before the owner/repo layout: still listed
    sources = {(e.path, e.source) for e in library_files.scan([models], include_builtin=False)}
    assert sources == {(a, "alice/Tiny-GGUF"), (b, "bob/Tiny-GGUF"), (models / "flat.gguf", "")}
    assert downloaded_copies(models, "alice/Tiny-GGUF", [FILE, "other.gguf"]) == {FILE: a}
    assert downloaded_copies(models, "carol/X", ["flat.gguf"]) == {"flat.gguf": models / "flat.gguf"}


def _paused_download(tmp_path: Path, fake_hub, repo_id: str = "someone/Tiny-GGUF") -> tuple[Path, bytes]:
    """A real download stopped after its first bytes, as a pause or a quit leaves it."""
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(repo_id, {FILE: data})
    fake_hub.slow = 200_000
    cancel = threading.Event()
    folder = repo_folder(tmp_path / "models", repo_id)
    with pytest.raises(hub.HubError) as stopped:
        hub.download(repo_id, FILE, folder, cancel=cancel, progress=lambda p: p.done and cancel.set())
    assert stopped.value.kind == hub.HubError.CANCELLED
    fake_hub.slow = None
    return folder, data


def test_a_paused_download_is_found_again_after_a_restart(tmp_path: Path, fake_hub) -> None:
    folder, data = _paused_download(tmp_path, fake_hub)
    done = (folder / f"{FILE}.part").stat().st_size
    found = find_partials(tmp_path / "models")  # what a new process finds on disk
    assert found == [PartialDownload("someone/Tiny-GGUF", FILE, folder, done, len(data))]
    assert 0 < done < len(data)
    resumed = hub.download(found[0].repo_id, found[0].filename, found[0].folder)
    assert resumed.read_bytes() == data and find_partials(tmp_path / "models") == []


def test_a_part_file_from_before_the_sidecar_named_its_file_is_found_by_its_address(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / f"{FILE}.part").write_bytes(b"x" * 10)
    (models / f"{FILE}.part.json").write_text(json.dumps({
        "url": f"https://huggingface.co/someone/Tiny-GGUF/resolve/main/{FILE}", "etag": "e",
        "sha256": None, "size": 100}))
    (models / "junk.gguf.part.json").write_text("{not json")  # damaged: skipped, not fatal
    assert find_partials(models) == [PartialDownload("someone/Tiny-GGUF", FILE, models, 10, 100)]


def test_removing_a_paused_download_deletes_its_part_and_says_what_was_freed(tmp_path: Path,
                                                                              fake_hub) -> None:
    folder, _ = _paused_download(tmp_path, fake_hub)
    size = (folder / f"{FILE}.part").stat().st_size
    assert remove_partial(folder, FILE) == size
    assert list(folder.iterdir()) == [] and find_partials(tmp_path / "models") == []
