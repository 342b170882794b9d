"""API requests through the engine's own process: raw prompts, constrained output and embeddings
cross the pipe, and their refusals arrive with their kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.chat.sampling import GREEDY
from app.core.inference.local.engine_process import EngineProcess
from app.core.inference.types import (
    API_CACHE_KEY,
    Embeddings,
    EngineError,
    GenerationStats,
    LoadOptions,
    OutputFormat,
)


@pytest.fixture(scope="module")
def process(model_path: Path, tmp_path_factory):
    engine = EngineProcess(tmp_path_factory.mktemp("engine") / "engine.log")
    engine.load(str(model_path), LoadOptions(n_ctx=1024))
    yield engine
    engine.close()


def test_a_raw_prompt_is_read_whole_and_constrained_to_json(process: EngineProcess) -> None:
    prompt = 'Animal: cat\nJSON: {"animal": "cat", "legs": 4}\nAnimal: bird\nJSON:'
    events = list(process.generate(1, [], GREEDY.replace(max_tokens=100), API_CACHE_KEY, "", "stop",
                                   prompt=prompt, output_format=OutputFormat("json_object")))
    kinds = [e[0] for e in events]
    assert kinds[0] == "prompt_ready" and kinds[-1] == "finished" and "token" in kinds
    stats = events[-1][1]
    assert isinstance(stats, GenerationStats) and events[0][1:] == (stats.prompt_tokens, 0)
    assert isinstance(json.loads("".join(e[1] for e in events if e[0] == "token")), dict)


def test_a_prompt_of_token_ids_longer_than_the_context_is_refused_before_it_is_read(
        process: EngineProcess) -> None:
    with pytest.raises(EngineError) as caught:
        list(process.generate(2, [], GREEDY, API_CACHE_KEY, "", "stop", prompt=[42] * 1500))
    assert caught.value.kind == EngineError.CONTEXT_TOO_SMALL and "1,500" in caught.value.message


def test_embeddings_cross_the_pipe_and_bad_inputs_arrive_as_bad_requests(process: EngineProcess) -> None:
    result = process.embed(["a llama in the Andes", "an alpaca in Peru"])
    assert isinstance(result, Embeddings) and len(result.vectors) == 2
    assert len(result.vectors[0]) == len(result.vectors[1]) > 0 and result.tokens > 2
    with pytest.raises(EngineError) as caught:
        process.embed([[10**9]])
    assert caught.value.kind == EngineError.BAD_REQUEST
    assert process.embed(["and it still answers"]).tokens > 0


@pytest.mark.parametrize("schema", [
    {"type": "string", "maxLength": 20000},  # llama.cpp's grammar parser overflowed its stack on this
    {"type": "string", "pattern": "^a{0,20000}$"},
    {"type": "object", "properties": {f"p{i}": {"type": "string", "maxLength": 1000} for i in range(40)}},
])
def test_a_schema_whose_grammar_would_crash_llama_cpp_is_refused_and_the_engine_lives_on(
        process: EngineProcess, schema: dict) -> None:
    started = process.restarts
    with pytest.raises(EngineError) as caught:
        list(process.generate(3, [{"role": "user", "content": "x"}], GREEDY.replace(max_tokens=4),
                              API_CACHE_KEY, "", "stop",
                              output_format=OutputFormat("json_schema", json.dumps(schema))))
    assert caught.value.kind == EngineError.BAD_REQUEST, caught.value.message
    bounded = {"type": "string", "maxLength": 1000}  # what the grammar can repeat is still served
    events = list(process.generate(4, [{"role": "user", "content": "x"}], GREEDY.replace(max_tokens=4),
                                   API_CACHE_KEY, "", "stop", output_format=OutputFormat("json_schema",
                                                                                         json.dumps(bounded))))
    assert events[-1][0] == "finished" and process.restarts == started
