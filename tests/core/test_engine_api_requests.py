"""What the API server asks of the engine, on the real model: raw prompts, JSON-constrained output,
embeddings, and API requests that cost no conversation its KV cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from app.core.chat.sampling import GREEDY
from app.core.inference.local.engine import Engine
from app.core.inference.local.kv_cache import KVCacheStore
from app.core.inference.local.output_format import JsonEnd
from app.core.inference.types import API_CACHE_KEY, EngineError, GenerationStats, LoadOptions, OutputFormat
from app.core.models.gguf_info import read_model

PERSON_SCHEMA = json.dumps({"type": "object", "properties": {"name": {"type": "string"},
                                                             "age": {"type": "integer"}},
                            "required": ["name", "age"]})
ASK_FOR_PERSON = [{"role": "user",
                   "content": "Reply with a JSON object giving the name and age of a person."}]
RAW_PROMPT = "The three primary colours are"
SMALL = LoadOptions(n_ctx=2048)


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Engine:
    engine = Engine()
    engine.load(model_path)
    yield engine
    engine.unload()


def run(engine: Engine, messages=(), sampling=GREEDY, **kwargs) -> tuple[str, GenerationStats]:
    *deltas, stats = list(engine.stream(list(messages), sampling, **kwargs))
    assert isinstance(stats, GenerationStats) and all(isinstance(d, str) for d in deltas)
    return "".join(deltas), stats


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# -- raw prompts ----------------------------------------------------------------------------------

def test_a_raw_prompt_is_read_as_it_is_without_the_chat_template(engine: Engine) -> None:
    text, stats = run(engine, prompt=RAW_PROMPT, sampling=GREEDY.replace(max_tokens=12))
    assert stats.prompt_tokens == len(engine.tokenize_text(RAW_PROMPT))
    assert stats.prompt_tokens < len(engine.tokenize_chat([{"role": "user", "content": RAW_PROMPT}]))
    assert text.strip() and stats.completion_tokens == 12 and stats.stop_reason == "length"


def test_a_prompt_as_token_ids_answers_as_its_text_does(engine: Engine) -> None:
    ids = engine.tokenize_text(RAW_PROMPT)
    as_text, _ = run(engine, prompt=RAW_PROMPT, sampling=GREEDY.replace(max_tokens=10))
    as_ids, stats = run(engine, prompt=ids, sampling=GREEDY.replace(max_tokens=10))
    assert as_ids == as_text and stats.prompt_tokens == len(ids)


def test_special_tokens_written_in_a_raw_prompt_are_read_as_special(engine: Engine) -> None:
    marker = engine.tokenize_text("<|im_start|>")
    assert len(marker) == 1  # one special token, not "<", "|", "im", ...
    assert engine.tokenize_text("<|im_start|>user")[0] == marker[0]


def test_the_users_stop_strings_apply_to_a_raw_prompt(engine: Engine) -> None:
    free, _ = run(engine, prompt=RAW_PROMPT, sampling=GREEDY.replace(max_tokens=16))
    word = free.split()[2]
    stopped, stats = run(engine, prompt=RAW_PROMPT, sampling=GREEDY.replace(max_tokens=16, stop=(word,)))
    assert stopped == free[:free.index(word)] and stats.stop_reason == "eos"


@pytest.mark.parametrize("prompt", ["", [], [49152], [-1], [1, 2, "3"]])
def test_an_empty_prompt_or_unknown_token_ids_are_bad_requests(engine: Engine, prompt) -> None:
    with pytest.raises(EngineError) as caught:
        run(engine, prompt=prompt)
    assert caught.value.kind == EngineError.BAD_REQUEST


def test_a_raw_prompt_longer_than_the_context_says_both_lengths(engine: Engine) -> None:
    with pytest.raises(EngineError) as caught:
        run(engine, prompt=[42] * 5000)
    assert caught.value.kind == EngineError.CONTEXT_TOO_SMALL
    assert "5,000" in caught.value.message and "4,096" in caught.value.message


# -- JSON-constrained output ----------------------------------------------------------------------

def test_a_json_schema_shapes_the_answer_and_ends_it_when_complete(engine: Engine) -> None:
    text, stats = run(engine, ASK_FOR_PERSON, GREEDY.replace(max_tokens=200),
                      output_format=OutputFormat("json_schema", PERSON_SCHEMA))
    person = json.loads(text)
    assert set(person) == {"name", "age"}
    assert isinstance(person["name"], str) and isinstance(person["age"], int)
    assert stats.stop_reason == "eos" and stats.completion_tokens < 200
    assert text == text.strip()


def test_a_raw_prompt_can_be_constrained_too(engine: Engine) -> None:
    few_shot = 'Animal: cat\nJSON: {"animal": "cat", "legs": 4}\nAnimal: bird\nJSON:'
    text, stats = run(engine, prompt=few_shot, sampling=GREEDY.replace(max_tokens=100),
                      output_format=OutputFormat("json_object"))
    assert set(json.loads(text)) == {"animal", "legs"} and stats.stop_reason == "eos"


def test_json_object_gives_some_json_object(engine: Engine) -> None:
    text, stats = run(engine, ASK_FOR_PERSON, GREEDY.replace(max_tokens=200),
                      output_format=OutputFormat("json_object"))
    assert isinstance(json.loads(text), dict) and stats.stop_reason == "eos" and text == text.strip()


@pytest.mark.parametrize("schema, said", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"$ref": "https://example.com/person.json"}), "cannot be turned into a grammar"),
    (json.dumps({"type": "frobnicate"}), "cannot be turned into a grammar"),
])
def test_a_schema_the_grammar_cannot_express_is_a_bad_request(engine: Engine, schema: str, said: str) -> None:
    with pytest.raises(EngineError) as caught:
        run(engine, ASK_FOR_PERSON, output_format=OutputFormat("json_schema", schema))
    assert caught.value.kind == EngineError.BAD_REQUEST and said in caught.value.message


def test_an_unknown_output_format_is_a_bad_request(engine: Engine) -> None:
    with pytest.raises(EngineError) as caught:
        run(engine, ASK_FOR_PERSON, output_format=OutputFormat("yaml"))
    assert caught.value.kind == EngineError.BAD_REQUEST and "json_schema" in caught.value.message


def test_json_end_finds_the_closing_bracket_outside_strings() -> None:
    end = JsonEnd()
    assert end.feed('{"a": "}{\\"]", ') is None
    assert end.feed('"b": [1, {"c": 2}]') is None
    assert end.feed("}\n  ") == 1
    assert JsonEnd().feed('"just a string"') is None
    assert JsonEnd().feed("  [1, 2] ") == 8


# -- embeddings -----------------------------------------------------------------------------------

def test_embeddings_place_similar_sentences_closer(engine: Engine, model_path: Path) -> None:
    cat, kitten, money = engine.embed(["The cat sat on the mat.", "A cat was sitting on the mat.",
                                       "Quarterly revenue grew by ten percent."]).vectors
    assert cosine(cat, kitten) > cosine(cat, money) and cosine(cat, kitten) > cosine(kitten, money)
    assert len(cat) == read_model(model_path).arch_value("embedding_length")
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-6) for v in (cat, kitten, money))


def test_an_embedding_of_token_ids_equals_that_of_their_text(engine: Engine) -> None:
    text = "Llamas live in the Andes."
    ids = engine.tokenize_text(text)
    by_text, by_ids = engine.embed([text]), engine.embed([ids])
    assert by_text.tokens == by_ids.tokens == len(ids)
    assert max(abs(a - b) for a, b in zip(by_text.vectors[0], by_ids.vectors[0], strict=True)) < 1e-6


def test_embeddings_count_every_inputs_tokens(engine: Engine) -> None:
    texts = ["one", "two words", "and three words"]
    result = engine.embed(texts)
    assert len(result.vectors) == 3 and result.tokens == sum(len(engine.tokenize_text(t)) for t in texts)


def test_an_embedding_input_longer_than_its_context_says_both_numbers(engine: Engine) -> None:
    with pytest.raises(EngineError) as caught:
        engine.embed(["short", [42] * 3000])
    assert caught.value.kind == EngineError.BAD_REQUEST
    message = caught.value.message
    assert "3,000" in message and "2,048" in message and "Input 2" in message


def test_one_embedding_request_may_not_hold_the_engine_for_long(engine: Engine) -> None:
    """Nothing else runs while embeddings are made: a request holds at most MAX_EMBEDDING_TOKENS."""
    from app.core.inference.local.embeddings import MAX_EMBEDDING_TOKENS

    with pytest.raises(EngineError) as caught:
        engine.embed([[42] * 2000] * (MAX_EMBEDDING_TOKENS // 2000 + 1))
    assert caught.value.kind == EngineError.BAD_REQUEST
    assert f"{MAX_EMBEDDING_TOKENS:,}" in caught.value.message


@pytest.mark.parametrize("inputs", [[], [""], [[]], [[49152]]])
def test_empty_or_unknown_embedding_inputs_are_bad_requests(engine: Engine, inputs) -> None:
    with pytest.raises(EngineError) as caught:
        engine.embed(inputs)
    assert caught.value.kind == EngineError.BAD_REQUEST


def test_embeddings_end_with_the_model_and_come_back_with_it(model_path: Path) -> None:
    engine = Engine()
    engine.load(model_path, SMALL)
    first = engine.embed(["a llama"]).vectors[0]
    engine.unload()
    with pytest.raises(EngineError) as caught:
        engine.embed(["a llama"])
    assert caught.value.kind == EngineError.NOT_LOADED
    engine.load(model_path, SMALL)
    try:
        assert engine.embed(["a llama"]).vectors[0] == pytest.approx(first, abs=1e-6)
    finally:
        engine.unload()


# -- API requests and the conversations' KV caches ------------------------------------------------

def test_an_api_request_costs_a_conversation_nothing_and_is_never_snapshotted(model_path: Path,
                                                                              tmp_path: Path) -> None:
    folder = tmp_path / "kv"
    engine = Engine(KVCacheStore(folder))
    engine.load(model_path, SMALL)
    try:
        chat = [{"role": "user", "content": "Name three fruits."}]
        answer, first = run(engine, chat, GREEDY.replace(max_tokens=24), cache_key="c1")
        run(engine, prompt="Once upon a time, far away,", sampling=GREEDY.replace(max_tokens=8),
            cache_key=API_CACHE_KEY)
        _, again = run(engine, prompt="Once upon a time, far away, there",
                       sampling=GREEDY.replace(max_tokens=4), cache_key=API_CACHE_KEY)
        assert again.cached_tokens > 0  # API requests reuse each other's prefix
        follow_up = [*chat, {"role": "assistant", "content": answer},
                     {"role": "user", "content": "And two more."}]
        _, back = run(engine, follow_up, GREEDY.replace(max_tokens=8), cache_key="c1")
        assert back.cached_tokens >= first.prompt_tokens
        engine.save_kv()
    finally:
        engine.unload()  # writes the snapshots taken in memory
    store = KVCacheStore(folder)
    assert store._path("c1").exists()
    assert not store._path(API_CACHE_KEY).exists()
    assert len(list(folder.glob("*.kv"))) == 1

