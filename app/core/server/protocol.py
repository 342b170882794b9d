"""OpenAI's request bodies, checked and turned into what the engine takes.

Every field a client may send is either honoured or refused with a 400 that names it: a value out
of range is never clamped, and a feature we do not have (tools, several choices, log-probabilities)
is said plainly instead of ignored. Sampling starts from the window's defaults; a field the request
sets replaces that one value. The response shapes are in responses.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from app.core.chat.sampling import MAX_SEED, RANGES, UNTIL_FULL, SamplingParams
from app.core.inference.types import ChatMessages, OutputFormat

MAX_MESSAGES = 10_000
MAX_EMBEDDING_INPUTS = 2048
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# The request's name → SamplingParams' field, for the plain numeric ones.
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "top_k", "min_p", "typical_p",
            "repeat_penalty", "repeat_last_n", "mirostat", "mirostat_tau", "mirostat_eta")
_INTEGERS = frozenset({"top_k", "repeat_last_n", "mirostat", "max_tokens", "seed"})


class ApiError(Exception):
    """A request refused, as OpenAI says it: an HTTP status and {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",  # noqa: A002
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(param: str | None, message: str, code: str | None = None) -> ApiError:
    """A 400 about one field of the request."""
    return ApiError(400, message, param=param, code=code)


@dataclass(frozen=True)
class GenerationCall:
    kind: str  # "chat" | "completion"
    model: str  # as asked ("" when absent)
    messages: ChatMessages  # chat ([] for completion)
    prompt: str | list[int] | None  # completion
    sampling: SamplingParams  # the window's defaults overridden by the request's fields
    output_format: OutputFormat | None
    stream: bool
    include_usage: bool  # stream_options.include_usage


@dataclass(frozen=True)
class EmbeddingCall:
    model: str
    inputs: list[str] | list[list[int]]
    encoding_format: str = "float"  # "float" | "base64" (little-endian float32)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad(None, "The request body must be a JSON object.")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        return ""
    if not isinstance(model, str):
        raise bad("model", "“model” must be a text: the id of a model from /v1/models.")
    return model.strip()


def _flag(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(name, f"“{name}” must be true or false, not {json.dumps(value)[:40]}.")
    return value


def _number(name: str, value: Any, low: float, high: float) -> int | float:
    integer = name in _INTEGERS
    if isinstance(value, float) and integer and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        kind = "a whole number" if integer else "a number"
        raise bad(name, f"“{name}” must be {kind} from {_show(low)} to {_show(high)}, "
                        f"not {json.dumps(value)[:40]}.")
    if not low <= value <= high:
        raise bad(name, f"“{name}” must be from {_show(low)} to {_show(high)} here, not {_show(value)}.")
    return value


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _sampling(body: dict[str, Any], defaults: SamplingParams) -> SamplingParams:
    """The defaults, with every field the request sets (null counts as not set)."""
    changes: dict[str, Any] = {"max_tokens": UNTIL_FULL}
    for name in _NUMBERS:
        if body.get(name) is not None:
            rng = RANGES[name]
            changes[name] = _number(name, body[name], rng.low, rng.high)
    for name in ("max_tokens", "max_completion_tokens"):
        if body.get(name) is not None:
            changes["max_tokens"] = _number(name, body[name], 1, RANGES["max_tokens"].high)
    if body.get("seed") is not None:
        seed = body["seed"]
        # -1 is llama.cpp's "a random seed", which llama-server's clients send.
        changes["seed"] = None if seed == -1 and not isinstance(seed, bool) else _number("seed", seed, 0,
                                                                                          MAX_SEED)
    if "stop" in body:
        changes["stop"] = _stop(body["stop"])
    try:
        return defaults.replace(**changes)
    except ValueError as error:  # a combination SamplingParams refuses (its own message says which)
        raise bad(None, str(error)) from None


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad("stop", "“stop” must be a text or a list of texts.")
    try:
        return SamplingParams(stop=tuple(stops)).stop
    except ValueError as error:
        raise bad("stop", str(error)) from None


def _output_format(body: dict[str, Any]) -> OutputFormat | None:
    """response_format: text (None), json_object, or json_schema (OpenAI's wrapping, or llama-server's
    {"type": "json_object", "schema": {...}})."""
    value = body.get("response_format")
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in ("text", "json_object", "json_schema"):
        raise bad("response_format", "“response_format” must be {\"type\": \"text\"}, {\"type\": "
                                     "\"json_object\"} or {\"type\": \"json_schema\", \"json_schema\": "
                                     "{\"name\": …, \"schema\": {…}}}.")
    kind = value["type"]
    if kind == "text":
        return None
    if kind == "json_object":
        schema = value.get("schema")
        if schema is None:
            return OutputFormat("json_object")
        return OutputFormat("json_schema", _schema_text(schema, "response_format.schema"))
    wrapper = value.get("json_schema")
    if not isinstance(wrapper, dict):
        raise bad("response_format.json_schema", "“response_format.json_schema” must be an object holding "
                                                 "the schema: {\"name\": …, \"schema\": {…}}.")
    if "schema" not in wrapper:
        return OutputFormat("json_object")  # OpenAI's schema is optional: then any JSON object
    return OutputFormat("json_schema", _schema_text(wrapper["schema"], "response_format.json_schema.schema"))


def _schema_text(schema: Any, param: str) -> str:
    if not isinstance(schema, dict):
        raise bad(param, f"“{param}” must be a JSON schema: an object.")
    return json.dumps(schema, ensure_ascii=False)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    """Features we cannot honour are refused, not silently dropped."""
    if body.get("n") is not None and (isinstance(body["n"], bool) or body["n"] != 1):
        raise bad("n", "Llamadesk writes one answer per request: “n” can only be 1.")
    if body.get("tools") or body.get("functions"):
        param = "tools" if body.get("tools") else "functions"
        raise bad(param, "Llamadesk does not offer tool calls: send the request without “tools”.")
    if body.get("logprobs") not in (None, False, 0):
        raise bad("logprobs", "Llamadesk does not report log-probabilities: leave “logprobs” out.")
    if body.get("echo"):
        raise bad("echo", "Llamadesk does not echo the prompt: leave “echo” out.")
    if body.get("best_of") not in (None, 1):
        raise bad("best_of", "Llamadesk writes one answer per request: “best_of” can only be 1.")
    if body.get("suffix"):
        raise bad("suffix", "Llamadesk does not fill in between a prompt and a suffix: leave “suffix” out.")


def _stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise bad("stream_options", "“stream_options” must be an object, like {\"include_usage\": true}.")
    return stream, _flag(options, "include_usage")


def _content(value: Any, index: int) -> str:
    """A message's text: a string, or a list of {"type": "text", "text": …} parts joined."""
    param = f"messages[{index}].content"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else None
                said = f"a part of type “{kind}”" if isinstance(kind, str) else "a part that is not text"
                raise bad(param, f"Message {index} holds {said}: the model reads text only, given as "
                                 f"{{\"type\": \"text\", \"text\": …}} parts.")
            if not isinstance(part.get("text"), str):
                raise bad(param, f"A text part of message {index} has no “text”.")
            texts.append(part["text"])
        return "".join(texts)
    raise bad(param, f"The content of message {index} must be a text or a list of text parts.")


def _messages(body: dict[str, Any]) -> ChatMessages:
    value = body.get("messages")
    if not isinstance(value, list) or not value:
        raise bad("messages", "“messages” must be a non-empty list of {\"role\": …, \"content\": …}.")
    if len(value) > MAX_MESSAGES:
        raise bad("messages", f"“messages” can hold at most {MAX_MESSAGES:,} messages.")
    messages: ChatMessages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise bad(f"messages[{index}]", f"Message {index} must be an object with a role and a content.")
        role = message.get("role")
        if role not in _ROLES:
            shown = json.dumps(role)[:40]
            raise bad(f"messages[{index}].role", f"Message {index} has the role {shown}: Llamadesk takes "
                                                 f"system, developer, user and assistant messages.")
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""
        messages.append({"role": _ROLES[role], "content": _content(content, index)})
    return messages


def _prompt(body: dict[str, Any]) -> str | list[int]:
    """A text, [a text], token ids, or [token ids]: one prompt per request."""
    value = body.get("prompt")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str | list):
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(_is_token(t) for t in value):
        return list(value)
    if isinstance(value, list) and len(value) > 1 and all(isinstance(v, str | list) for v in value):
        raise bad("prompt", "Llamadesk answers one prompt per request: send each prompt in a request "
                            "of its own.")
    raise bad("prompt", "“prompt” must be a text, or a non-empty list of token ids (whole numbers "
                        "from 0).")


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


def parse_chat(body: Any, defaults: SamplingParams) -> GenerationCall:
    """A /v1/chat/completions body as a call, or ApiError 400 naming what is wrong."""
    body = _object(body)
    _refuse_unsupported(body)
    model = _model(body)
    messages = _messages(body)
    stream, include_usage = _stream_flags(body)
    return GenerationCall("chat", model, messages, None, _sampling(body, defaults), _output_format(body),
                          stream, include_usage)


def parse_completion(body: Any, defaults: SamplingParams) -> GenerationCall:
    """A /v1/completions body as a call, or ApiError 400 naming what is wrong."""
    body = _object(body)
    _refuse_unsupported(body)
    model = _model(body)
    prompt = _prompt(body)
    stream, include_usage = _stream_flags(body)
    return GenerationCall("completion", model, [], prompt, _sampling(body, defaults), _output_format(body),
                          stream, include_usage)


def parse_embeddings(body: Any) -> EmbeddingCall:
    """A /v1/embeddings body: input as a text, texts, token ids, or lists of token ids."""
    body = _object(body)
    model = _model(body)
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise bad("encoding_format", "“encoding_format” must be \"float\" or \"base64\".")
    if body.get("dimensions") is not None:
        raise bad("dimensions", "Llamadesk returns the model's own vectors: leave “dimensions” out.")
    value = body.get("input")
    inputs: list[Any]
    if isinstance(value, str):
        inputs = [value]
    elif isinstance(value, list) and value and all(_is_token(t) for t in value):
        inputs = [list(value)]
    elif isinstance(value, list) and value and (all(isinstance(v, str) for v in value) or all(
            isinstance(v, list) and v and all(_is_token(t) for t in v) for v in value)):
        inputs = [v if isinstance(v, str) else list(v) for v in value]
    else:
        raise bad("input", "“input” must be a text, a list of texts, a list of token ids, or a list of "
                           "such lists (none of them empty).")
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise bad("input", f"“input” can hold at most {MAX_EMBEDDING_INPUTS} items per request.")
    if any(isinstance(v, str) and not v for v in inputs):
        raise bad("input", "An input to embed is empty: every text must hold something.")
    return EmbeddingCall(model, inputs, encoding or "float")
