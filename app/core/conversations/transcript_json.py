"""Transcripts as versioned JSON: export everything, import only what passes every check.

Imported files are untrusted: from_json checks everything before it returns anything.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path

import app
from app.core.chat.sampling import SamplingParams
from app.core.common.errors import UserFacingError
from app.core.conversations.conversation import ROLES, Conversation, GenerationRecord, Message

FORMATS = ("md", "html", "json", "txt")  # every transcript format (transcripts.py writes them)
FORMAT_MARKER = "llamadesk-conversations"
SCHEMA_VERSION = 1
MAX_TEXT = 512 * 1024 * 1024  # from_json reads at most this many bytes (or characters, given a str)
MAX_MESSAGES = 1_000_000  # per file, all conversations together
MAX_CONVERSATIONS = 1_000_000
MAX_ID_LENGTH = 200
MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: later dates cannot be displayed
# C0 and C1 control codes and the Unicode line and paragraph separators: in an id they would forge
# lines or columns of tab-separated output (`conversations list`) or drive the terminal.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class TranscriptError(UserFacingError):
    """An export that cannot be written or a file that cannot be imported; `.message` says why."""


# ---------------------------------------------------------------- JSON: checks shared by export and import
# Each schema maps a field to a check that takes the JSON value and its place in the file, and returns
# the Python value or raises TranscriptError. to_json writes exactly these fields; from_json requires
# them all. Keys it does not know are ignored, so a newer Llamadesk may add fields within a schema version.

Check = Callable[[object, str], object]


def _describe(value: object) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _wrong(where: str, expected: str, value: object) -> TranscriptError:
    return TranscriptError(f"{where} must be {expected}, not {_describe(value)}")


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _wrong(where, "a string", value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise TranscriptError(f"{where} is not valid Unicode (it holds an unpaired surrogate)") from None
    return value


def _id(value: object, where: str) -> str:
    if not 0 < len(_str(value, where)) <= MAX_ID_LENGTH:
        raise TranscriptError(f"{where} must be 1 to {MAX_ID_LENGTH} characters long")
    if found := CONTROL_CHARACTERS.search(value):
        raise TranscriptError(f"{where} must not hold control characters such as tabs or line breaks "
                              f"(it holds {found.group()!r})")
    return value


def _typed(kind: type, expected: str) -> Check:
    def check(value: object, where: str) -> object:
        if not isinstance(value, kind):
            raise _wrong(where, expected, value)
        return value
    return check


_bool = _typed(bool, "true or false")
_list = _typed(list, "a list")
_object = _typed(dict, "an object")


def _number(integer: bool, low: float = -1e300, high: float = 1e300, expected: str = "") -> Check:
    """A check for an integer, or any number (returned as a float), from low to high."""
    def check(value: object, where: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            raise _wrong(where, "an integer" if integer else "a number", value)
        if not (integer or -1e300 <= value <= 1e300):  # the parser already refuses NaN and Infinity
            raise _wrong(where, "a number of a sensible size", value)
        if not low <= value <= high:
            raise _wrong(where, expected, value)
        return value if integer else float(value)
    return check


_integer = _number(True, -math.inf, math.inf)
_real = _number(False)
_seed = _number(True, -(2**63), 2**64 - 1, "a 64-bit integer")
_count = _number(True, 0, math.inf, "0 or more")
_amount = _number(False, 0, math.inf, "0 or more")
_time = _number(False, 0, MAX_TIME, "a time between 1970 and 9999 (seconds since 1970)")


def _role(value: object, where: str) -> str:
    if value not in ROLES:
        raise _wrong(where, f"one of {', '.join(ROLES)}", value)
    return value


def _optional(check: Check) -> Check:
    return lambda value, where: None if value is None else check(value, where)


def _flat_object(value: object, where: str) -> dict:
    for key, item in _object(value, where).items():
        _str(key, f"{where} key")
        if key == "stop" and isinstance(item, list):  # SamplingParams.to_dict's stop strings
            _strings(item, f"{where}.{key}")
        elif isinstance(item, dict | list):
            raise _wrong(f"{where}.{key}", "a string, number, true, false or null", item)
        if isinstance(item, str):
            _str(item, f"{where}.{key}")
    return value


def _fields(value: object, where: str, schema: dict[str, Check]) -> dict[str, object]:
    obj: dict = _object(value, where)
    if missing := [name for name in schema if name not in obj]:
        raise TranscriptError(f"{where}.{missing[0]} is missing".lstrip("."))
    return {name: check(obj[name], f"{where}.{name}".lstrip(".")) for name, check in schema.items()}


def _strings(value: object, where: str) -> list[str]:
    return [_str(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where))]


def _sampling(value: object, where: str) -> SamplingParams:
    # Files written before a parameter existed lack it: it takes its default.
    given = {name: check for name, check in SAMPLING.items() if name in _object(value, where)
             or name in SAMPLING_REQUIRED}
    try:
        return SamplingParams(**_fields(value, where, given))
    except ValueError as error:
        raise TranscriptError(f"{where}: {error}") from None


def _generation(value: object, where: str) -> GenerationRecord:
    # Files written before a field existed lack it: it takes its default.
    present = _object(value, where)
    schema = {k: c for k, c in GENERATION.items() if k in present or k not in GENERATION_ADDED}
    record = GenerationRecord(**_fields(value, where, schema))
    if record.accepted_tokens > record.drafted_tokens:
        raise TranscriptError(f"{where}.accepted_tokens must not exceed its drafted_tokens "
                              f"({record.accepted_tokens:,} > {record.drafted_tokens:,})".lstrip("."))
    return record


def _messages(value: object, where: str) -> list[Message]:
    return [_message(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where))]


def _message(value: object, where: str) -> Message:
    present = _object(value, where)
    return Message(**_fields(value, where, {k: c for k, c in MESSAGE.items()
                                            if k in present or k not in MESSAGE_ADDED}))


SAMPLING: dict[str, Check] = {"temperature": _real, "top_p": _real, "top_k": _integer, "min_p": _real,
                              "repeat_penalty": _real, "max_tokens": _integer, "seed": _optional(_seed),
                              "typical_p": _real, "repeat_last_n": _integer, "presence_penalty": _real,
                              "frequency_penalty": _real, "mirostat": _integer, "mirostat_tau": _real,
                              "mirostat_eta": _real, "stop": _strings}
SAMPLING_REQUIRED = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")
GENERATION: dict[str, Check] = {
    "model_file": _str, "model_size": _count, "model_sha256": _str, "sampling": _flat_object,
    "seed": _optional(_seed), "prompt_tokens": _count, "completion_tokens": _count, "ttft_s": _amount,
    "tokens_per_s": _amount, "stop_reason": _str, "llama_cpp_version": _str, "dropped_messages": _count,
    "thought_s": _amount, "connection": _str, "server_host": _str, "server_model": _str,
    "system_fingerprint": _str, "server_tokens_per_s": _amount, "drafting": _str, "drafted_tokens": _count,
    "accepted_tokens": _count, "drafting_turned_off": _bool}
REMOTE_ADDED = ("connection", "server_host", "server_model", "system_fingerprint", "server_tokens_per_s")
DRAFTING_ADDED = ("drafting", "drafted_tokens", "accepted_tokens", "drafting_turned_off")
# Optional when reading: older files lack them.
GENERATION_ADDED = ("dropped_messages", "thought_s", *REMOTE_ADDED, *DRAFTING_ADDED)
MESSAGE: dict[str, Check] = {
    "id": _id, "role": _role, "text": _str, "parent_id": _optional(_id), "created": _time,
    "current": _bool, "incomplete": _bool, "generation": _optional(_generation), "thought": _str}
MESSAGE_ADDED = ("thought",)  # optional when reading: older files, and exports without thoughts, lack it
# Written only when they hold something: files without reasoning stay as they were.
WRITTEN_WHEN_SET = ("thought_s", "thought", *REMOTE_ADDED, *DRAFTING_ADDED)
CONVERSATION: dict[str, Check] = {
    "id": _id, "title": _str, "created": _time, "updated": _time, "system_prompt": _str,
    "sampling": _sampling, "model": _str, "pinned": _bool, "titled_by_user": _bool, "messages": _messages,
    "connection": _str}
CONVERSATION_ADDED = ("connection",)  # optional when reading: older files lack it


def _finite(value: object) -> object:
    # NaN or infinity can only come from a bug; JSON cannot hold them, so they are written as 0.
    return 0.0 if isinstance(value, float) and not math.isfinite(value) else value


def _encode(obj: object, schema: dict[str, Check], thoughts: bool = False) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, check in schema.items():
        value = getattr(obj, name)
        if (name in WRITTEN_WHEN_SET and not value) or (name == "thought" and not thoughts):
            continue
        if isinstance(value, SamplingParams):
            value = _encode(value, SAMPLING)
        elif isinstance(value, GenerationRecord):
            value = _encode(value, GENERATION)
        elif isinstance(value, list):
            value = [_encode(message, MESSAGE, thoughts) for message in value]
        elif isinstance(value, dict):
            value = {key: _finite(item) for key, item in value.items()}
        elif check is _time:
            value = float(value)
        out[name] = _finite(value)
    return out


def to_json(convs: list[Conversation], *, exported_at: float | None = None, thoughts: bool = False) -> str:
    """Everything in the data model (every version of every message), in schema version 1; reasoning
    models' thoughts only with `thoughts` (they are the model's notes, not the conversation)."""
    document = {"format": FORMAT_MARKER, "schema_version": SCHEMA_VERSION,
                "exported_at": float(time.time() if exported_at is None else exported_at),
                "app_version": app.__version__,
                "conversations": [_encode(conv, CONVERSATION, thoughts) for conv in convs]}
    return json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------- JSON import

def _reject_constant(name: str) -> object:
    raise TranscriptError(f"The file holds {name}, which is not a number Llamadesk accepts.")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise TranscriptError(f"The file holds a number too large to use: {text[:40]}")
    return value


def _parse(data: bytes | str) -> object:
    if isinstance(data, bytes | bytearray | memoryview):
        data = bytes(data)
        if len(data) > MAX_TEXT:
            raise TranscriptError(f"The file is too large to import (over {MAX_TEXT // 2**20} MiB).")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise TranscriptError(f"The file is not UTF-8 text (bad byte at offset {error.start}).") from None
    elif not isinstance(data, str):
        raise TypeError(f"from_json takes bytes or str, not {type(data).__name__}")
    elif len(data) > MAX_TEXT:
        raise TranscriptError(f"The file is too large to import (over {MAX_TEXT // 2**20} Mi characters).")
    data = data.removeprefix("\ufeff")
    if not data.strip():
        raise TranscriptError("The file is empty.")
    try:
        return json.loads(data, parse_constant=_reject_constant, parse_float=_parse_float)
    except RecursionError:
        raise TranscriptError("The file is nested too deeply to be a Llamadesk export.") from None
    except json.JSONDecodeError as error:
        if error.msg.startswith("Unterminated string") or error.pos >= len(data.rstrip()):
            raise TranscriptError("The file is not complete JSON: it ends too early (truncated?).") from None
        raise TranscriptError(f"The file is not valid JSON: {error.msg} at line {error.lineno}, "
                              f"column {error.colno}.") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise TranscriptError(f"The file is not valid JSON: {error}") from None


def _check_links(conv: Conversation, where: str) -> None:
    """Every parent is a message of the same conversation, and following parents always ends."""
    parents = {m.id: m.parent_id for m in conv.messages}
    for i, message in enumerate(conv.messages):
        if message.parent_id is not None and message.parent_id not in parents:
            raise TranscriptError(f"{where}.messages[{i}].parent_id {message.parent_id!r} is not a message "
                                  "of this conversation")
    finished: set[str] = set()
    for i, message in enumerate(conv.messages):
        path: list[str] = []
        seen: set[str] = set()
        node: str | None = message.id
        while node is not None and node not in finished:
            if node in seen:
                raise TranscriptError(f"{where}.messages[{i}]: its parent links form a cycle "
                                      f"(through message {node!r})")
            seen.add(node)
            path.append(node)
            node = parents[node]
        finished.update(path)


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a device"),
          (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def read_json_file(path: Path) -> list[Conversation]:
    """from_json on a file: only a regular file, and at most MAX_TEXT bytes of it.

    The checks look at the opened descriptor, not the path (a link or a swapped file cannot slip
    past them). A named pipe is opened without waiting for a writer and refused; a link to
    /dev/zero is refused as a device; a file that reports no size (/proc) or grows while read is
    read only up to the limit."""
    limit = MAX_TEXT
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as error:
        raise TranscriptError(f"Cannot read {path}: {error.strerror}.") from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a regular file")
            raise TranscriptError(f"Cannot read {path}: it is {kind}, not a regular file; import a "
                                  "JSON file exported by Llamadesk.")
        if info.st_size > limit:
            raise TranscriptError(f"{path.name} is {info.st_size:,} bytes; Llamadesk imports files up to "
                                  f"{limit:,} bytes.")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    except OSError as error:
        raise TranscriptError(f"Cannot read {path}: {error.strerror}.") from error
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TranscriptError(f"{path.name} is more than {limit:,} bytes; Llamadesk imports files up to "
                              f"{limit:,} bytes.")
    return from_json(data)


def from_json(data: bytes | str) -> list[Conversation]:
    """Conversations from a to_json file, checked entirely first; TranscriptError says what is wrong."""
    root = _parse(data)
    if not isinstance(root, dict):
        raise TranscriptError(f"The file must hold a JSON object, not {_describe(root)}.")
    if root.get("format") != FORMAT_MARKER:
        found = "has no format marker" if "format" not in root else f"says format {_describe(root['format'])}"
        raise TranscriptError(f"This is not a Llamadesk conversations file: it {found}, "
                              f"not {FORMAT_MARKER!r}.")
    version = _fields(root, "", {"schema_version": _integer})["schema_version"]
    if version > SCHEMA_VERSION:
        raise TranscriptError(f"This file is from a newer Llamadesk (schema version {version}); this version "
                              f"reads schema version {SCHEMA_VERSION}. Update Llamadesk to import it.")
    if version < 1:
        raise _wrong("schema_version", "1 or more", version)
    # exported_at and app_version are informative only: like unknown keys, they are not checked.
    items = _fields(root, "", {"conversations": _list})["conversations"]
    if len(items) > MAX_CONVERSATIONS:
        raise TranscriptError(f"The file holds too many conversations (the limit is {MAX_CONVERSATIONS:,}).")
    total = sum(len(c.get("messages")) for c in items
                if isinstance(c, dict) and isinstance(c.get("messages"), list))
    if total > MAX_MESSAGES:
        raise TranscriptError(f"The file holds too many messages ({total:,}; the limit is {MAX_MESSAGES:,}).")

    convs: list[Conversation] = []
    conv_ids: set[str] = set()
    message_ids: set[str] = set()
    for i, item in enumerate(items):
        where = f"conversations[{i}]"
        present = _object(item, where)
        conv = Conversation(**_fields(item, where, {k: c for k, c in CONVERSATION.items()
                                                    if k in present or k not in CONVERSATION_ADDED}))
        if conv.id in conv_ids:
            raise TranscriptError(f"{where}.id {conv.id!r} is used by an earlier conversation in the file")
        conv_ids.add(conv.id)
        for j, message in enumerate(conv.messages):
            if message.id in message_ids:
                raise TranscriptError(f"{where}.messages[{j}].id {message.id!r} is used by an earlier "
                                      "message in the file")
            message_ids.add(message.id)
        _check_links(conv, where)
        convs.append(conv)
    return convs
