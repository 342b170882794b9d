"""One policy for every settings file: a damaged one is set aside as .bad, the app starts with
defaults, the user is told once, and no save ever overwrites it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import paths
from app.core.chat.presets import BUILTIN as BUILTIN_PRESETS
from app.core.chat.presets import PresetStore
from app.core.chat.sampling import GREEDY
from app.core.chat.system_prompts import BUILTIN as BUILTIN_PROMPTS
from app.core.chat.system_prompts import SystemPromptError, SystemPromptStore
from app.core.common import settings_file, window_settings
from app.core.models.library import ModelLibrary


@pytest.fixture
def config() -> Path:
    return paths.config_dir()


def builtin_prompts(store: SystemPromptStore) -> bool:
    return [p.name for p in store.all()] == list(BUILTIN_PROMPTS)


def test_a_list_of_prompts_starts_with_the_built_ins(config: Path) -> None:
    (config / "system-prompts.json").write_text('{"prompts": ["a"]}')
    assert builtin_prompts(SystemPromptStore())  # was: AttributeError, and the app did not start
    assert (config / "system-prompts.json.bad").read_text() == '{"prompts": ["a"]}'


def test_absurd_nesting_starts_with_the_built_ins(config: Path) -> None:
    (config / "system-prompts.json").write_text("[" * 100_000)
    assert builtin_prompts(SystemPromptStore())  # was: RecursionError
    [notice] = settings_file.take_notices()
    assert "nested too deeply" in notice


def test_deep_but_parsable_nesting_is_refused_too(config: Path) -> None:
    (config / "system-prompts.json").write_text('{"prompts": {"a": ' + "[" * 60 + "]" * 60 + "}}")
    assert builtin_prompts(SystemPromptStore())
    assert "nested too deeply" in settings_file.take_notices()[0]


def test_a_trailing_comma_is_kept_not_overwritten_and_said_once(config: Path) -> None:
    damaged = '{"prompts": {"Mine": "Be brief.",}}'
    (config / "system-prompts.json").write_text(damaged)
    store = SystemPromptStore()
    assert builtin_prompts(store) and builtin_prompts(store)
    store.save("Other", "Be kind.")
    assert (config / "system-prompts.json.bad").read_text() == damaged  # was: lost at this save
    assert json.loads((config / "system-prompts.json").read_text()) == {"prompts": {"Other": "Be kind."}}
    [notice] = settings_file.take_notices()
    assert notice == (f"Your saved system prompts in {config / 'system-prompts.json'} could not be read "
                      f"(invalid JSON at line 1, column 34: Expecting property name enclosed in double "
                      f"quotes); the file was kept as system-prompts.json.bad and Llamadesk started "
                      f"with the built-in ones.")
    assert settings_file.take_notices() == []


def test_a_damaged_prompts_file_is_set_aside_before_a_save_or_delete(config: Path) -> None:
    damaged = '{"prompts": {"Mine": "Be brief.", "Other": 3}}'
    (config / "system-prompts.json").write_text(damaged)
    store = SystemPromptStore()
    store.save("Kept", "Be kind.")
    store.delete("Mine")  # not in what could be read: nothing else changes
    assert (config / "system-prompts.json.bad").read_text() == damaged
    assert [p.name for p in store.all() if not p.builtin] == ["Kept"]
    [notice] = settings_file.take_notices()
    assert "the prompt “Other” is not text" in notice and "kept as system-prompts.json.bad" in notice


def test_an_earlier_bad_file_is_never_overwritten(config: Path) -> None:
    (config / "system-prompts.json.bad").write_text("first")
    (config / "system-prompts.json.1.bad").write_text("second")
    (config / "system-prompts.json").write_text("third")
    assert builtin_prompts(SystemPromptStore())
    assert [(config / f"system-prompts.json{n}bad").read_text() for n in (".", ".1.", ".2.")] == \
           ["first", "second", "third"]
    assert "kept as system-prompts.json.2.bad" in settings_file.take_notices()[0]


@pytest.mark.parametrize("content", [
    b'"just text"', b'{"prompts": {"a": 1}}', b'{"prompts": {"": "nameless"}}', b'{"prompts": "x"}',
    b'{"prompts": {"a": NaN}}', b"\xff\xfe{}", b"",
])
def test_wrong_shapes_and_types_count_as_damaged(config: Path, content: bytes) -> None:
    (config / "system-prompts.json").write_bytes(content)
    assert builtin_prompts(SystemPromptStore())
    assert (config / "system-prompts.json.bad").read_bytes() == content
    assert len(settings_file.take_notices()) == 1


def test_a_fifo_in_place_of_the_file_does_not_hang(config: Path) -> None:
    os.mkfifo(config / "system-prompts.json")
    assert builtin_prompts(SystemPromptStore())
    assert "not a regular file" in settings_file.take_notices()[0]


def test_a_good_file_is_read_and_nothing_is_said(config: Path) -> None:
    SystemPromptStore().save("Mine", "Be brief.")
    assert [p.name for p in SystemPromptStore().all()][-1] == "Mine"
    assert settings_file.take_notices() == [] and not list(config.glob("*.bad"))


def test_a_damaged_file_that_cannot_be_set_aside_is_not_overwritten(config: Path, monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(settings_file, "set_aside", refuse)
    (config / "system-prompts.json").write_text("{")
    store = SystemPromptStore()
    assert builtin_prompts(store) and builtin_prompts(store)
    with pytest.raises(SystemPromptError, match="damaged and could not be set aside"):
        store.save("Mine", "Be brief.")
    assert (config / "system-prompts.json").read_text() == "{"
    [notice] = settings_file.take_notices()
    assert "could not be set aside either (Permission denied)" in notice


def test_an_unreadable_file_is_said_once_and_not_overwritten(config: Path, monkeypatch) -> None:
    path = config / "system-prompts.json"
    path.write_text('{"prompts": {"Mine": "Be brief."}}')

    def unreadable(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(settings_file, "read_bytes", unreadable)
    store = SystemPromptStore()
    assert builtin_prompts(store) and builtin_prompts(store)
    with pytest.raises(SystemPromptError, match="cannot be read"):
        store.save("Other", "Be kind.")
    assert path.read_text() == '{"prompts": {"Mine": "Be brief."}}' and not list(config.glob("*.bad"))
    assert len(settings_file.take_notices()) == 1


def test_presets_follow_the_same_policy(config: Path) -> None:
    path = config / "sampling-presets.json"
    path.write_text('{"format": "llamadesk-sampling-presets", "version": 1, "presets": {}}')
    store = PresetStore()
    assert store.names() == list(BUILTIN_PRESETS) and store.names() == list(BUILTIN_PRESETS)
    store.save("Mine", GREEDY)
    assert path.with_name("sampling-presets.json.bad").exists() and store.names()[-1] == "Mine"
    [notice] = settings_file.take_notices()
    assert notice == (f"Your sampling presets in {path} could not be read (“presets” must be a list); the "
                      f"file was kept as sampling-presets.json.bad and Llamadesk started with the "
                      f"built-in ones.")


@pytest.mark.parametrize("content", [
    "[]", '{"folders": "/models"}', '{"folders": [3]}', '{"models": {"/m.gguf": 3}}',
    '{"default_model": 5}', "[" * 100_000,
])
def test_library_settings_follow_the_same_policy(config: Path, content: str) -> None:
    library = ModelLibrary()
    assert library.folders == []
    (config / "library.json").write_text(content)
    assert ModelLibrary().folders == []
    assert (config / "library.json.bad").read_text() == content
    assert "Your model library settings" in settings_file.take_notices()[0]


def test_a_file_damaged_after_it_was_read_is_set_aside_by_the_next_save(config: Path) -> None:
    library = ModelLibrary()
    (config / "library.json").write_text('{"folders": ["/mine"], "default_model": null,}')
    library.set_default_model(None)
    assert (config / "library.json.bad").read_text() == '{"folders": ["/mine"], "default_model": null,}'
    assert json.loads((config / "library.json").read_text())["default_model"] is None
    assert len(settings_file.take_notices()) == 1


WINDOW_OK = ("[window]\nsplitter=@ByteArray(\\0\\0\\0\\xff\\0\\0\\0\\x1\\0\\0\\0\\x3\\0\\0\\0\\xf0\\0\\0\\x2"
             "\\xa8\\0\\0\\x1\\x18\\x1\\xff\\xff\\xff\\xff\\x1\\0\\0\\0\\x1\\0)\n\n[view]\ntext_size=12\n")


def test_check_all_reports_every_file_and_moves_nothing(config: Path) -> None:
    assert settings_file.check_all(config) == [
        ("system-prompts.json", "ok"), ("sampling-presets.json", "ok"), ("chat-defaults.json", "ok"),
        ("library.json", "ok"), ("window.ini", "ok"), ("hf_token", "ok")]
    (config / "system-prompts.json").write_text('{"prompts": ["a"]}')
    PresetStore().save("Mine", GREEDY)
    (config / "library.json").write_text("[" * 100_000)
    (config / "chat-defaults.json").write_text("[]")
    (config / "window.ini").write_text(WINDOW_OK)
    (config / "hf_token").write_text("hf_abc def\n")
    before = sorted((p.name, p.read_bytes()) for p in config.iterdir())
    assert settings_file.check_all(config) == [
        ("system-prompts.json", "damaged: “prompts” is not a set of names and texts"),
        ("sampling-presets.json", "ok"),
        ("chat-defaults.json", "damaged: it does not hold an object"),
        ("library.json", "damaged: it is nested too deeply"),
        ("window.ini", "ok"),
        ("hf_token", "damaged: it does not hold one access token on one line")]
    assert sorted((p.name, p.read_bytes()) for p in config.iterdir()) == before
    assert settings_file.take_notices() == []


@pytest.mark.parametrize(("line", "problem"), [
    ("[window]\nsplitter=@ByteArray(garbage)", "pane sizes: it is not a saved splitter state"),
    ("[window]\nsplitter=-1, -5", "pane sizes: it is not a saved splitter state"),
    ("[window]\nsplitter=@ByteArray(\\0\\0\\0\\xff\\0\\0\\0\\x1\\0\\0\\0\\x2\\0\\0\\0\\0\\0\\0\\0\\0)",
     "pane sizes: pane sizes [0, 0] would hide the window's contents"),
    ("[window]\ngeometry=@ByteArray(junk)", "window position: it is not a saved window geometry"),
    ("[window]\nshow_side=maybe", "side panel shown: 'maybe' is not true or false"),
    ("[view]\ntheme=purple", "theme: 'purple' is not a theme"),
    ("[view]\ntext_size=999", "text size: '999' is not a text size"),
    ("[chat]\noverflow_policy=never", "long-chat policy: 'never' is not a policy"),
    ("[chat]\noverflow_policy=stop, x", "long-chat policy: ['stop', 'x'] is not a policy"),
    ("[chat]\nlast_conversation=a\\tb", "last chat: 'a\\tb' is not a conversation id"),
])
def test_check_all_names_bad_window_values(config: Path, line: str, problem: str) -> None:
    (config / "window.ini").write_text(line + "\n")
    assert dict(settings_file.check_all(config))["window.ini"] == f"bad values ({problem})"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('[]=,"\\@x0( )\nabcdefgiknoprstwyzBAYE:;-'), max_size=80))
def test_any_window_file_text_gives_an_answer_not_an_exception(text: str) -> None:
    path = paths.config_dir() / "window.ini"
    path.write_text("[window]\nsplitter=" + text, encoding="utf-8")
    assert isinstance(window_settings.check_window_file(path), str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60) | st.text(alphabet=st.sampled_from('{}[]":,1a \\nNaN'), max_size=60)
       .map(str.encode))
def test_any_prompts_file_gives_the_built_ins_or_its_prompts(content: bytes) -> None:
    path = paths.config_dir() / "system-prompts.json"
    for old in path.parent.glob("*.bad"):
        old.unlink()
    path.write_bytes(content)
    prompts = SystemPromptStore().all()
    assert [p.name for p in prompts[:len(BUILTIN_PROMPTS)]] == list(BUILTIN_PROMPTS)
    assert path.exists() or path.with_name("system-prompts.json.bad").read_bytes() == content
    settings_file.take_notices()
