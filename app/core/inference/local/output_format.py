"""An OutputFormat turned into a llama.cpp grammar, and where a constrained JSON answer ends.

Runs in the engine's process: the window's process never imports llama.cpp.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from app.core.inference.local import llama_adapter
from app.core.inference.types import EngineError, OutputFormat

log = logging.getLogger(__name__)
KINDS = ("text", "json_object", "json_schema")
# A schema's counts become repetitions in the grammar, one nested rule each: past a few thousand,
# llama.cpp's grammar parser overflows its stack and the engine's process dies (SIGSEGV). A request
# must never be able to do that, so counts and the grammar's size are bounded here.
MAX_REPETITION = 1000
MAX_GRAMMAR_BYTES = 64 * 1024
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
_PATTERN_COUNT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def grammar_for(llm: llama_adapter.Llama,
                output_format: OutputFormat | None) -> llama_adapter.LlamaGrammar | None:
    """The grammar that enforces the format (None: free text). EngineError(BAD_REQUEST) for a
    format that cannot be enforced."""
    if output_format is None or output_format.kind == "text":
        return None
    if output_format.kind == "json_object":
        gbnf = llama_adapter.JSON_OBJECT_GBNF
    elif output_format.kind == "json_schema":
        gbnf = _schema_gbnf(output_format.schema)
    else:
        raise EngineError(f"Unknown output format {output_format.kind!r}: use one of {', '.join(KINDS)}.",
                          kind=EngineError.BAD_REQUEST)
    grammar = llama_adapter.grammar(llm, gbnf)
    if grammar is None:
        raise EngineError("llama.cpp could not use the grammar made from this JSON schema. Simplify the "
                          "schema (plain types, properties, required, enum, arrays).",
                          kind=EngineError.BAD_REQUEST)
    return grammar


def _schema_gbnf(schema: str) -> str:
    try:
        parsed = json.loads(schema)
    except (json.JSONDecodeError, TypeError) as error:
        raise EngineError(f"The JSON schema is not valid JSON ({error}).",
                          kind=EngineError.BAD_REQUEST) from error
    if not isinstance(parsed, dict):
        raise EngineError("The JSON schema must be a JSON object, such as {\"type\": \"object\", ...}.",
                          kind=EngineError.BAD_REQUEST)
    _check_counts(parsed)
    try:
        gbnf = llama_adapter.json_schema_gbnf(schema)
    except Exception as error:  # noqa: BLE001 - the converter raises many kinds; all mean "cannot express"
        log.info("JSON schema not converted: %r", error)
        why = str(error) or type(error).__name__
        raise EngineError(f"This JSON schema cannot be turned into a grammar for the model ({why}). "
                          "Simplify it: external $refs and some keywords are not supported.",
                          kind=EngineError.BAD_REQUEST) from error
    if len(gbnf.encode("utf-8")) > MAX_GRAMMAR_BYTES:
        raise EngineError(f"This JSON schema makes a grammar larger than the model can follow "
                          f"({len(gbnf):,} characters; at most {MAX_GRAMMAR_BYTES:,}). Simplify it: fewer "
                          "properties, smaller counts.", kind=EngineError.BAD_REQUEST)
    return gbnf


def _check_counts(node: Any, depth: int = 0) -> None:
    """EngineError(BAD_REQUEST) for a count (maxLength, maxItems, a pattern's {n,m}, …) over
    MAX_REPETITION anywhere in the schema, or a schema nested absurdly deep."""
    if depth > 64:
        raise EngineError("The JSON schema is nested too deeply.", kind=EngineError.BAD_REQUEST)
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _COUNTS and isinstance(value, int | float) and value > MAX_REPETITION:
                raise EngineError(f"“{key}”: {value:g} in the JSON schema is more than the grammar can "
                                  f"repeat (at most {MAX_REPETITION:,}).", kind=EngineError.BAD_REQUEST)
            if key == "pattern" and isinstance(value, str):
                for low, high in _PATTERN_COUNT.findall(value):
                    if max(int(low), int(high or 0)) > MAX_REPETITION:
                        raise EngineError(f"The pattern {value[:80]!r} repeats more than the grammar can (at "
                                          f"most {MAX_REPETITION:,} times).", kind=EngineError.BAD_REQUEST)
            _check_counts(value, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_counts(value, depth + 1)


class JsonEnd:
    """Finds where a top-level JSON object or array closes, so a constrained answer ends there even
    when the grammar would still allow trailing whitespace. A top-level scalar is left to the grammar
    (its end is not visible in the text: "12" may go on)."""

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = self._escaped = False
        self._started = self._scalar = False

    def feed(self, text: str) -> int | None:
        """The index in `text` just past the value's closing bracket, or None while it is open."""
        for i, char in enumerate(text):
            if self._scalar:
                return None
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
                self._scalar = not self._started
            elif char in "{[":
                self._depth += 1
                self._started = True
            elif char in "}]":
                self._depth -= 1
                if self._started and self._depth == 0:
                    return i + 1
            elif not self._started and not char.isspace():
                self._scalar = True
        return None
