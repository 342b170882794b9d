"""Sampling parameters (ranges, round trips, tolerant reading), presets, and the engine using them all."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from app.core.chat import presets as presets_module
from app.core.chat.context_window import DEFAULT_ANSWER_RESERVE, answer_reserve
from app.core.chat.presets import BUILTIN, PresetError, PresetStore
from app.core.chat.sampling import GREEDY, RANGES, UNTIL_FULL, SamplingParams, answer_limit

NUMERIC = [f.name for f in fields(SamplingParams) if f.name != "stop"]
EVERYTHING = SamplingParams(temperature=0.7, top_p=0.9, top_k=50, min_p=0.1, repeat_penalty=1.1,
                            max_tokens=300, seed=42, typical_p=0.95, repeat_last_n=-1, presence_penalty=0.5,
                            frequency_penalty=0.25, mirostat=2, mirostat_tau=4.0, mirostat_eta=0.2,
                            stop=("User:", "\n\n"))


# ---------------------------------------------------------------- SamplingParams

def test_defaults_are_llama_cpps() -> None:
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.typical_p) == (0.8, 40, 0.95, 0.05, 1.0)
    assert (p.repeat_penalty, p.repeat_last_n, p.presence_penalty, p.frequency_penalty) == (1.0, 64, 0.0, 0.0)
    assert (p.mirostat, p.mirostat_tau, p.mirostat_eta) == (0, 5.0, 0.1)
    assert p.seed is None and p.stop == ()


def test_every_numeric_field_has_a_range_with_a_tooltip() -> None:
    assert set(NUMERIC) == set(RANGES)
    for name, rng in RANGES.items():
        assert rng.low < rng.high and rng.help.endswith("."), name
        assert SamplingParams().replace(**{name: rng.low}) and SamplingParams().replace(**{name: rng.high})


@pytest.mark.parametrize("name", sorted(RANGES))
def test_each_field_refuses_values_out_of_range_naming_the_field_and_range(name: str) -> None:
    rng = RANGES[name]
    low, high = (int(rng.low), int(rng.high)) if isinstance(getattr(EVERYTHING, name), int) else (
        rng.low, rng.high)
    for bad in (low - 1, high + 1):
        with pytest.raises(ValueError) as caught:
            SamplingParams().replace(**{name: bad})
        message = str(caught.value)
        assert message == f"{name} must be between {low} and {high}, not {bad}.", message


@pytest.mark.parametrize("bad", ["0.5", True, None, float("nan"), [1]])
def test_numbers_of_the_wrong_type_are_refused_with_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="temperature must be (a number )?between 0.0 and 2.0, not"):
        SamplingParams(temperature=bad)


def test_integer_fields_take_whole_numbers_only() -> None:
    assert SamplingParams(top_k=20.0).top_k == 20 and isinstance(SamplingParams(top_k=20.0).top_k, int)
    with pytest.raises(ValueError, match="top_k must be a whole number between 0 and 200, not 2.5"):
        SamplingParams(top_k=2.5)
    assert SamplingParams(temperature=1).temperature == 1.0
    assert isinstance(SamplingParams(temperature=1).temperature, float)


def test_seed_is_none_or_a_31_bit_integer() -> None:
    assert SamplingParams(seed=None).seed is None and SamplingParams(seed=0).seed == 0
    with pytest.raises(ValueError, match="seed must be between 0 and 2147483647, not 2147483648"):
        SamplingParams(seed=2**31)
    with pytest.raises(ValueError, match="seed"):
        SamplingParams(seed=-1)


def test_stop_strings_are_checked() -> None:
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")  # a list (from JSON) becomes a tuple
    assert SamplingParams(stop=("x" * 64,) * 8).stop
    with pytest.raises(ValueError, match="stop holds at most 8 strings, not 9"):
        SamplingParams(stop=("x",) * 9)
    with pytest.raises(ValueError, match="Each stop string must be 1 to 64 characters long, not 0"):
        SamplingParams(stop=("a", ""))
    with pytest.raises(ValueError, match="not 65"):
        SamplingParams(stop=("x" * 65,))
    with pytest.raises(ValueError, match="stop must be a list of strings"):
        SamplingParams(stop="User:")
    with pytest.raises(ValueError, match="stop strings must be text"):
        SamplingParams(stop=(1,))


def test_round_trip_through_a_dict_and_json() -> None:
    data = EVERYTHING.to_dict()
    assert data["stop"] == ["User:", "\n\n"] and set(data) == {f.name for f in fields(SamplingParams)}
    assert SamplingParams.from_dict(json.loads(json.dumps(data))) == EVERYTHING
    assert SamplingParams.from_dict(GREEDY.to_dict()) == GREEDY
    assert EVERYTHING.replace(top_k=3) == SamplingParams.from_dict({**data, "top_k": 3})


def test_from_dict_ignores_unknown_keys_and_fills_missing_ones() -> None:
    old = {"temperature": 0.3, "top_p": 0.95, "top_k": 10, "min_p": 0.05, "repeat_penalty": 1.0,
           "max_tokens": 1024, "seed": 7}  # a conversation saved before the new parameters
    assert SamplingParams.from_dict(old) == SamplingParams(temperature=0.3, top_k=10, seed=7)
    assert SamplingParams.from_dict({}) == SamplingParams()
    assert SamplingParams.from_dict({"xtc_probability": 0.5, "top_k": 5}) == SamplingParams(top_k=5)


def test_replace_validates() -> None:
    with pytest.raises(ValueError, match="mirostat must be between 0 and 2, not 3"):
        SamplingParams().replace(mirostat=3)


# ---------------------------------------------------------------- presets

@pytest.fixture
def store(tmp_path: Path) -> PresetStore:
    return PresetStore(tmp_path / "config" / "sampling-presets.json")


def test_built_ins_are_present_and_balanced_is_the_default(store: PresetStore) -> None:
    assert store.names() == ["Precise", "Balanced", "Creative"]
    assert store.get("Balanced") == SamplingParams()
    assert store.get("Precise").temperature < SamplingParams().temperature < store.get("Creative").temperature
    assert all(p.builtin for p in store.presets())
    assert not store.path.exists()


def test_the_default_file_is_in_the_config_folder(llamadesk_home: Path) -> None:
    assert PresetStore().path == llamadesk_home / "config" / "sampling-presets.json"


def test_save_overwrite_rename_delete(store: PresetStore) -> None:
    assert store.save("  Code  ", EVERYTHING) == "Code"
    assert store.names() == ["Precise", "Balanced", "Creative", "Code"]
    assert store.get("Code") == EVERYTHING
    store.save("Code", GREEDY)  # overwrite
    assert store.get("Code") == GREEDY
    store.save("alpha", SamplingParams(top_k=3))
    assert store.names()[3:] == ["alpha", "Code"]  # the user's sorted, whatever the case
    assert store.rename("Code", "Greedy") == "Greedy"
    assert store.get("Greedy") == GREEDY and "Code" not in store.names()
    with pytest.raises(PresetError, match="exists already"):
        store.rename("alpha", "Greedy")
    store.delete("alpha")
    assert store.names() == ["Precise", "Balanced", "Creative", "Greedy"]
    assert PresetStore(store.path).get("Greedy") == GREEDY  # it is on disk
    with pytest.raises(PresetError, match="There is no preset named “alpha”"):
        store.delete("alpha")
    assert [p.name for p in store.path.parent.iterdir()] == ["sampling-presets.json"]  # no temp files left


@pytest.mark.parametrize("name", ["Balanced", "precise", " CREATIVE "])
def test_built_in_names_are_reserved(store: PresetStore, name: str) -> None:
    with pytest.raises(PresetError, match="built-in preset"):
        store.save(name, GREEDY)
    store.save("mine", GREEDY)
    with pytest.raises(PresetError, match="built-in preset"):
        store.rename("mine", name)
    with pytest.raises(PresetError, match="cannot be deleted"):
        store.delete("Balanced")
    with pytest.raises(PresetError, match="cannot be renamed"):
        store.rename("Precise", "Exact")
    assert store.get("Balanced") == SamplingParams()


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "two\nlines"])
def test_bad_names_are_refused(store: PresetStore, name: str) -> None:
    with pytest.raises(PresetError, match="preset name"):
        store.save(name, GREEDY)


def test_export_then_import_elsewhere(store: PresetStore, tmp_path: Path) -> None:
    store.save("Code", EVERYTHING)
    store.save("Chat", GREEDY)
    exported = tmp_path / "mine.json"
    assert store.export(exported) == 2
    other = PresetStore(tmp_path / "other" / "presets.json")
    other.save("Keep", SamplingParams(top_k=2))
    assert sorted(other.import_(exported).added) == ["Chat", "Code"]
    assert other.get("Code") == EVERYTHING and other.get("Chat") == GREEDY
    assert other.get("Keep") == SamplingParams(top_k=2)
    assert store.export(tmp_path / "one.json", ["Chat"]) == 1


def test_import_tolerates_unknown_and_missing_parameters(store: PresetStore, tmp_path: Path) -> None:
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": [
        {"name": "Future", "sampling": {"top_k": 7, "dry_multiplier": 0.8}}]}), encoding="utf-8")
    assert store.import_(path).added == ["Future"]
    assert store.get("Future") == SamplingParams(top_k=7)


GOOD_ITEM = {"name": "Fine", "sampling": {"top_k": 7}}


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe", "not UTF-8"),
    (b"{not json", "invalid JSON at line 1"),
    (b"[]", "not a Llamadesk presets file"),
    (json.dumps({"format": "something else", "version": 1, "presets": []}), "not a Llamadesk presets file"),
    (json.dumps({"format": "llamadesk-sampling-presets", "version": 2, "presets": []}), "version 2"),
    (json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": {}}), "must be a list"),
    (json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": []}), "holds no presets"),
    (json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": [
        GOOD_ITEM, {"name": "Hot", "sampling": {"temperature": 5}}]}), "preset “Hot”: temperature must be"),
    (json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": [
        GOOD_ITEM, {"name": "Balanced", "sampling": {}}]}), "preset 2: “Balanced” is the name of a built-in"),
    (json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": [GOOD_ITEM, GOOD_ITEM]}),
     "appears twice"),
    (json.dumps({"format": "llamadesk-sampling-presets", "version": 1, "presets": [GOOD_ITEM, "x"]}),
     "preset 2 must be an object"),
    (b'{"format": "llamadesk-sampling-presets", "version": 1, "presets": [{"name": "N", '
     b'"sampling": {"top_p": NaN}}]}', "NaN"),
])
def test_a_malformed_import_raises_and_changes_nothing(store: PresetStore, tmp_path: Path,
                                                       content: bytes | str, message: str) -> None:
    store.save("Mine", GREEDY)
    before = store.path.read_bytes()
    path = tmp_path / "bad.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    with pytest.raises(PresetError) as caught:
        store.import_(path)
    assert message in caught.value.message
    assert store.path.read_bytes() == before


def test_importing_a_missing_file_says_so(store: PresetStore, tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="Cannot read nowhere.json"):
        store.import_(tmp_path / "nowhere.json")


def test_a_damaged_presets_file_shows_built_ins_and_is_kept_aside_on_save(store: PresetStore) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{damaged", encoding="utf-8")
    assert store.names() == list(BUILTIN)
    store.save("New", GREEDY)
    assert store.names()[-1] == "New"
    assert store.path.with_name("sampling-presets.json.bad").read_text(encoding="utf-8") == "{damaged"


def test_a_failed_write_leaves_the_old_file(store: PresetStore, monkeypatch) -> None:
    store.save("Mine", GREEDY)
    before = store.path.read_bytes()

    def fail(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(presets_module.os, "replace", fail)
    with pytest.raises(PresetError, match="No space left on device"):
        store.save("Other", EVERYTHING)
    assert store.path.read_bytes() == before
    assert [p.name for p in store.path.parent.iterdir()] == ["sampling-presets.json"]


# ---------------------------------------------------------------- the engine, on the real model

def test_the_engine_uses_user_stop_strings_penalties_and_mirostat(model_path: Path) -> None:
    from app.core.inference.local.engine import Engine, GenerationStats

    engine = Engine()
    engine.load(model_path)
    try:
        count = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
        sampling = GREEDY.replace(max_tokens=80)
        *deltas, _ = engine.stream(count, sampling)
        full = "".join(deltas)
        assert "7" in full, full  # what the stop string below cuts
        cut = full.index("7")
        *deltas, stats = engine.stream(count, sampling.replace(stop=("7",)))
        assert "".join(deltas) == full[:cut]
        assert stats.stop_reason == "eos"

        hello = [{"role": "user", "content": "Say hello."}]
        for params in (SamplingParams(presence_penalty=1.5, frequency_penalty=1.0, repeat_penalty=1.3,
                                      repeat_last_n=-1, seed=1, max_tokens=12),
                       SamplingParams(mirostat=1, seed=2, max_tokens=12),
                       SamplingParams(mirostat=2, mirostat_tau=3.0, mirostat_eta=0.2, typical_p=0.9, seed=3,
                                      max_tokens=12)):
            *deltas, stats = engine.stream(hello, params)
            assert isinstance(stats, GenerationStats) and stats.completion_tokens > 0
            assert "".join(deltas).strip(), params
    finally:
        engine.unload()


def test_importing_a_taken_name_adds_it_under_a_new_name_and_keeps_the_users(store: PresetStore,
                                                                            tmp_path: Path) -> None:
    """Issue 12 item 10: an import used to replace a same-named preset of the user's silently."""
    store.save("Chat", GREEDY)
    store.save("Code", EVERYTHING)
    store.save("Code (2)", SamplingParams(top_k=5))  # taken too: the next free number is used
    exported = tmp_path / "shared.json"
    sender = PresetStore(tmp_path / "sender" / "presets.json")
    sender.save("Chat", SamplingParams(top_k=1))
    sender.save("Code", SamplingParams(top_k=2))
    sender.save("Same", GREEDY)
    sender.export(exported)
    store.save("Same", GREEDY)
    result = store.import_(exported)
    assert result.renamed == {"Chat": "Chat (2)", "Code": "Code (3)"} and result.present == ["Same"]
    assert store.get("Chat") == GREEDY and store.get("Code") == EVERYTHING  # the user's own, untouched
    assert store.get("Chat (2)") == SamplingParams(top_k=1)
    assert store.get("Code (3)") == SamplingParams(top_k=2)
    assert result.summary("shared.json") == ("Imported 2 presets. Added “Chat” as “Chat (2)” and “Code” as "
                                             "“Code (3)”, as you have presets of those names already. "
                                             "Skipped 1 preset you have already.")


def test_max_tokens_zero_means_until_the_context_is_full() -> None:
    """Issue 12 item 9: no limit of its own; the engine reads 0 as all the room left, never as 0."""
    assert SamplingParams(max_tokens=UNTIL_FULL).max_tokens == 0
    assert answer_limit(UNTIL_FULL, 300) == 300
    assert answer_limit(100, 300) == 100 and answer_limit(500, 300) == 300
    assert answer_reserve(4096, UNTIL_FULL) == DEFAULT_ANSWER_RESERVE  # room kept for an open-ended answer
