"""OpenAI request bodies → GenerationCall / EmbeddingCall: every field honoured or refused by name."""

from __future__ import annotations

import base64
import dataclasses
import json
import struct

import pytest

from app.core.chat.sampling import UNTIL_FULL, SamplingParams
from app.core.inference.types import Embeddings, GenerationStats, OutputFormat
from app.core.server.protocol import ApiError, parse_chat, parse_completion, parse_embeddings
from app.core.server.responses import Completion, ServedModel, embeddings_response, models_response

DEFAULTS = SamplingParams(temperature=0.7, top_k=33, seed=5, stop=("###",))
HELLO = [{"role": "user", "content": "Hello"}]


def chat(**fields) -> dict:
    return {"model": "m", "messages": HELLO, **fields}


def refused(parse, body, *args) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(body, *args)
    assert caught.value.status == 400
    return caught.value


def test_every_sampling_field_maps_to_sampling_params() -> None:
    call = parse_chat(chat(max_tokens=77, temperature=1.5, top_p=0.5, seed=42, stop=["a", "bb"],
                           presence_penalty=0.25, frequency_penalty=0.5, top_k=7, min_p=0.1, typical_p=0.9,
                           repeat_penalty=1.2, repeat_last_n=128, mirostat=2, mirostat_tau=4.0,
                           mirostat_eta=0.2), DEFAULTS)
    assert call.sampling == SamplingParams(max_tokens=77, temperature=1.5, top_p=0.5, seed=42,
                                           stop=("a", "bb"), presence_penalty=0.25, frequency_penalty=0.5,
                                           top_k=7, min_p=0.1,
                                           typical_p=0.9, repeat_penalty=1.2, repeat_last_n=128, mirostat=2,
                                           mirostat_tau=4.0, mirostat_eta=0.2)
    assert (call.kind, call.model, call.messages, call.prompt) == ("chat", "m", HELLO, None)
    assert (call.stream, call.include_usage, call.output_format) == (False, False, None)


def test_absent_fields_keep_the_windows_defaults_but_the_answer_runs_until_full() -> None:
    call = parse_chat(chat(), DEFAULTS)
    assert call.sampling == DEFAULTS.replace(max_tokens=UNTIL_FULL)
    nulls = parse_chat(chat(temperature=None, max_tokens=None, seed=None, stop=None), DEFAULTS)
    assert nulls.sampling == DEFAULTS.replace(max_tokens=UNTIL_FULL, stop=())


def test_max_completion_tokens_and_random_seed() -> None:
    call = parse_chat(chat(max_completion_tokens=12, seed=-1), DEFAULTS)
    assert (call.sampling.max_tokens, call.sampling.seed) == (12, None)


@pytest.mark.parametrize(("field", "value"), [
    ("temperature", 2.5), ("temperature", -0.1), ("temperature", "hot"), ("temperature", True),
    ("top_p", 1.5), ("max_tokens", 0), ("max_tokens", 10**6), ("max_tokens", 1.5), ("seed", 2**40),
    ("seed", -2), ("presence_penalty", -1.0), ("frequency_penalty", 3), ("top_k", 1000), ("min_p", 2),
    ("typical_p", -1), ("repeat_penalty", 0.5), ("repeat_last_n", -5), ("mirostat", 3),
    ("mirostat_tau", 11), ("mirostat_eta", 1.5), ("max_completion_tokens", -3),
])
def test_an_out_of_range_field_is_refused_by_name_never_clamped(field: str, value: object) -> None:
    error = refused(parse_chat, chat(**{field: value}), DEFAULTS)
    assert error.param == field
    assert field in error.message
    assert error.to_json()["error"]["param"] == field


def test_stop_as_a_text_or_a_list() -> None:
    assert parse_chat(chat(stop="END"), DEFAULTS).sampling.stop == ("END",)
    assert parse_chat(chat(stop=["x", "y"]), DEFAULTS).sampling.stop == ("x", "y")
    assert parse_chat(chat(stop=[]), DEFAULTS).sampling.stop == ()
    for bad in (5, ["ok", 3], ["s"] * 9, ["x" * 65], [""]):
        assert refused(parse_chat, chat(stop=bad), DEFAULTS).param == "stop"


def test_content_parts_and_roles() -> None:
    messages = [{"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "},
                                             {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "Again", "name": "ann"}]
    call = parse_chat({"messages": messages}, DEFAULTS)
    assert call.messages == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Hi there"}, {"role": "assistant", "content": ""},
                             {"role": "user", "content": "Again"}]
    assert call.model == ""


@pytest.mark.parametrize(("messages", "param"), [
    (None, "messages"), ([], "messages"), ("hi", "messages"), ([5], "messages[0]"),
    ([{"role": "tool", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
     "messages[0].content"),
    ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": None}], "messages[0].content"),
])
def test_malformed_messages_are_refused(messages: object, param: str) -> None:
    assert refused(parse_chat, {"messages": messages}, DEFAULTS).param == param


def test_unsupported_features_are_refused_not_ignored() -> None:
    for field, value in (("n", 2), ("tools", [{"type": "function"}]), ("logprobs", True), ("model", 5)):
        assert refused(parse_chat, chat(**{field: value}), DEFAULTS).param == field
    assert parse_chat(chat(n=1, tools=[], logprobs=False), DEFAULTS).kind == "chat"
    for field, value in (("echo", True), ("best_of", 3), ("suffix", "end")):
        assert refused(parse_completion, {"prompt": "x", field: value}, DEFAULTS).param == field
    assert refused(parse_chat, [1, 2], DEFAULTS).param is None


def test_stream_and_usage_flags() -> None:
    call = parse_chat(chat(stream=True, stream_options={"include_usage": True}), DEFAULTS)
    assert (call.stream, call.include_usage) == (True, True)
    assert refused(parse_chat, chat(stream="yes"), DEFAULTS).param == "stream"
    assert refused(parse_chat, chat(stream_options=[1]), DEFAULTS).param == "stream_options"


def test_response_format_forms() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    forms = {
        None: None,
        json.dumps({"type": "text"}): None,
        json.dumps({"type": "json_object"}): OutputFormat("json_object"),
        json.dumps({"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}):
            OutputFormat("json_schema", json.dumps(schema)),
        json.dumps({"type": "json_schema", "json_schema": {"name": "x"}}): OutputFormat("json_object"),
        json.dumps({"type": "json_object", "schema": schema}):
            OutputFormat("json_schema", json.dumps(schema)),
    }
    for form, expected in forms.items():
        body = chat() if form is None else chat(response_format=json.loads(form))
        output_format = parse_chat(body, DEFAULTS).output_format
        assert output_format == expected
        if expected is not None and expected.kind == "json_schema":
            assert json.loads(output_format.schema) == schema
    for bad in ({"type": "xml"}, "json", {"type": "json_schema"},
                {"type": "json_schema", "json_schema": {"schema": 3}}):
        assert refused(parse_chat, chat(response_format=bad), DEFAULTS).param.startswith("response_format")


def test_prompt_forms() -> None:
    for prompt, expected in (("Once", "Once"), (["Once"], "Once"), ([1, 2, 3], [1, 2, 3]), ([[4, 5]], [4, 5]),
                             ("", "")):
        call = parse_completion({"prompt": prompt, "max_tokens": 5, "stream": True}, DEFAULTS)
        assert (call.kind, call.prompt, call.messages) == ("completion", expected, [])
        assert call.sampling.max_tokens == 5
    for bad in (None, [], ["a", "b"], [[1], [2]], [1, "a"], [-1], [True], 5, {"a": 1}):
        assert refused(parse_completion, {"prompt": bad}, DEFAULTS).param == "prompt"


def test_embedding_input_forms() -> None:
    assert parse_embeddings({"input": "hi", "model": "m"}).inputs == ["hi"]
    assert parse_embeddings({"input": ["a", "b"]}).inputs == ["a", "b"]
    assert parse_embeddings({"input": [1, 2]}).inputs == [[1, 2]]
    call = parse_embeddings({"input": [[1], [2, 3]], "encoding_format": "base64"})
    assert (call.inputs, call.encoding_format, call.model) == ([[1], [2, 3]], "base64", "")
    for bad in (None, "", [], [""], ["a", 1], [[]], [[1], []], 7):
        assert refused(parse_embeddings, {"input": bad}).param == "input"
    assert refused(parse_embeddings, {"input": "x", "encoding_format": "int8"}).param == "encoding_format"
    assert refused(parse_embeddings, {"input": "x", "dimensions": 8}).param == "dimensions"


def test_chat_stream_chunks_and_whole_answer() -> None:
    stats = GenerationStats(prompt_tokens=9, completion_tokens=3, ttft_s=0.1, tokens_per_s=30.0, total_s=0.2,
                            stop_reason="context_full")
    answer = Completion("chat", "smol", include_usage=True)
    assert answer.id.startswith("chatcmpl-")
    first = answer.first_chunk()
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert answer.text_chunk("Hi")["choices"][0]["delta"] == {"content": "Hi"}
    assert answer.last_chunk(stats)["choices"][0]["finish_reason"] == "length"
    assert answer.usage_chunk(stats) | {"choices": []} == answer.usage_chunk(stats)
    assert answer.usage_chunk(stats)["usage"] == {"prompt_tokens": 9, "completion_tokens": 3,
                                                  "total_tokens": 12}
    whole = answer.whole("Hi", dataclasses.replace(stats, stop_reason="eos"))
    assert whole["object"] == "chat.completion"
    assert whole["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "Hi"},
                                   "logprobs": None, "finish_reason": "stop"}
    assert whole["system_fingerprint"].startswith("llamadesk-")
    text = Completion("completion", "smol")
    assert text.id.startswith("cmpl-") and text.first_chunk() is None
    assert text.text_chunk("x")["choices"][0]["text"] == "x"
    assert text.whole("x", None)["object"] == "text_completion"


def test_embeddings_and_models_shapes() -> None:
    result = embeddings_response("smol", Embeddings([[0.5, -0.25]], tokens=4), "base64")
    assert struct.unpack("<2f", base64.b64decode(result["data"][0]["embedding"])) == (0.5, -0.25)
    assert result["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert embeddings_response("smol", Embeddings([[1.0]], 1))["data"][0]["embedding"] == [1.0]
    loaded = ServedModel("b", 2, True)
    listing = models_response([ServedModel("a", 1, False)], loaded)
    assert [(m["id"], m["loaded"]) for m in listing["data"]] == [("b", True), ("a", False)]
