"""Transcripts: a conversation as Markdown, HTML, plain text or JSON, and validated JSON import.

Model output is untrusted, so the HTML escapes every piece of conversation text and loads nothing;
imported files are untrusted too, so from_json checks everything before it returns anything.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

import app
from app.core.conversation import ROLES, Conversation, GenerationRecord, Message
from app.core.sampling import SamplingParams

FORMATS = ("md", "html", "json", "txt")
FORMAT_MARKER = "llamadesk-conversations"
SCHEMA_VERSION = 1
MAX_TEXT = 512 * 1024 * 1024  # from_json reads at most this many bytes (or characters, given a str)
MAX_MESSAGES = 1_000_000  # per file, all conversations together
MAX_CONVERSATIONS = 1_000_000
MAX_ID_LENGTH = 200
MAX_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC: later dates cannot be displayed
ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
STOP_REASONS = {"eos": "finished", "length": "hit the length limit", "context_full": "context full",
                "user": "stopped by you"}


class TranscriptError(Exception):
    """An export that cannot be written or a file that cannot be imported; `.message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------- shared pieces of the readable formats

def _date(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "unknown date"


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "Untitled"


def _sampling_line(sampling: SamplingParams) -> str:
    return ", ".join(f"{name} {'random' if value is None else value}"
                     for name, value in sampling.to_dict().items())


def _header(conv: Conversation) -> list[tuple[str, str]]:
    rows = [("Created", _date(conv.created)), ("Updated", _date(conv.updated))]
    if conv.model:
        rows.append(("Model", conv.model))
    return [*rows, ("Sampling", _sampling_line(conv.sampling))]


def _facts(message: Message, model: str) -> str:
    """One line on how an answer was made: tokens, speed, why it stopped."""
    parts = []
    gen = message.generation
    if gen is not None:
        if gen.model_file and gen.model_file != model:
            parts.append(gen.model_file)
        if gen.completion_tokens:
            parts.append(f"{gen.completion_tokens} token{'s' if gen.completion_tokens != 1 else ''}")
        if gen.tokens_per_s:
            parts.append(f"{gen.tokens_per_s:.1f} tok/s")
        if gen.stop_reason:
            parts.append(STOP_REASONS.get(gen.stop_reason, gen.stop_reason))
    if message.incomplete:
        parts.append("(incomplete)")
    return " · ".join(parts)


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")


def _segments(text: str) -> tuple[list[tuple[str | None, str]], str | None]:
    """Split text into prose (lang None) and fenced code blocks (lang "" when not given).

    Also returns the fence left open at the end (an answer cut off mid-block), or None.
    Fences follow CommonMark: ``` or ~~~, closed by a line of at least as many of the same character.
    """
    segments: list[tuple[str | None, str]] = []
    lines: list[str] = []
    fence: str | None = None
    lang = ""
    for line in text.split("\n"):
        if fence is None:
            match = _FENCE.fullmatch(line)
            if match and not (match[1][0] == "`" and "`" in match[2]):
                if lines:
                    segments.append((None, "\n".join(lines)))
                fence, lang, lines = match[1], (match[2].split() or [""])[0], []
            else:
                lines.append(line)
        elif re.fullmatch(rf" {{0,3}}{fence[0]}{{{len(fence)},}}\s*", line):
            segments.append((lang, "\n".join(lines)))
            fence, lines = None, []
        else:
            lines.append(line)
    if fence is not None or lines:
        segments.append((lang if fence is not None else None, "\n".join(lines)))
    return segments, fence


# ---------------------------------------------------------------- Markdown and plain text

def to_markdown(conv: Conversation) -> str:
    """The current thread as Markdown; message text is kept as written (a fence left open is closed)."""
    out = [f"# {_one_line(conv.title)}", ""]
    out += [f"- {label}: {value}" for label, value in _header(conv)]
    if conv.system_prompt:
        out += ["", "## System prompt", "", conv.system_prompt]
    for message in conv.thread():
        out += ["", f"## {ROLE_NAMES.get(message.role, message.role)}", ""]
        if facts := _facts(message, conv.model):
            out += [f"*{facts}*", ""]
        out.append(message.text)
        if (fence := _segments(message.text)[1]) is not None:
            out.append(fence)
    return "\n".join(out).rstrip("\n") + "\n"


def to_text(conv: Conversation) -> str:
    """The current thread as plain text, for a terminal or a text editor."""
    title = _one_line(conv.title)
    out = [title, "=" * min(len(title), 72)]
    out += [f"{label + ':':<9} {value}" for label, value in _header(conv)]
    if conv.system_prompt:
        out += ["", "--- System prompt ---", conv.system_prompt]
    for message in conv.thread():
        facts = _facts(message, conv.model)
        out += ["", f"--- {ROLE_NAMES.get(message.role, message.role)}{f' ({facts})' if facts else ''} ---",
                message.text]
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------- HTML

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """\
:root { color-scheme: light dark; --bg: #fff; --fg: #1d1d1f; --muted: #6e6e73; --card: #f5f5f7;
  --user: #e8f0fe; --border: #d2d2d7; }
@media screen and (prefers-color-scheme: dark) { :root { --bg: #1c1c1e; --fg: #f2f2f7; --muted: #a1a1a6;
  --card: #2c2c2e; --user: #1f3350; --border: #3a3a3c; } }
body { margin: 0 auto; max-width: 52rem; padding: 2rem 1rem; background: var(--bg); color: var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: 0 0 1.5rem;
  color: var(--muted); font-size: .9rem; } dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
section, article { background: var(--card); border: 1px solid var(--border); border-radius: 10px;
  padding: .75rem 1rem; margin: 0 0 1rem; } article.user { background: var(--user); }
h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted);
  margin: 0 0 .3rem; break-after: avoid; }
p.facts { font-size: .85rem; font-style: italic; color: var(--muted); margin: 0; }
.text p, dd { white-space: pre-wrap; overflow-wrap: anywhere; margin: .5rem 0; }
.block { margin: .6rem 0; border: 1px solid var(--border); border-radius: 6px; overflow: hidden; }
.block .lang { font-size: .75rem; color: var(--muted); padding: .15rem .6rem;
  border-bottom: 1px solid var(--border); }
.code pre { margin: 0; padding: .6rem .8rem; overflow-x: auto;
  font: 13.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
footer { color: var(--muted); font-size: .8rem; margin-top: 2rem; }
@media print { :root { --bg: #fff; --fg: #000; --muted: #444; --card: #fff; --user: #fff; --border: #bbb; }
  body { max-width: none; padding: 0; font-size: 11pt; }
  .code pre { white-space: pre-wrap; overflow: visible; } }
"""


@cache
def _formatter() -> HtmlFormatter:
    return HtmlFormatter(cssclass="code", wrapcode=True)


@cache
def _pygments_css() -> str:
    """Light highlighting, and dark on dark screens (printing always uses the light one)."""
    def rules(style: str) -> str:
        formatter = HtmlFormatter(style=style, cssclass="code")
        lines = formatter.get_background_style_defs(".code") + formatter.get_token_style_defs(".code")
        return "\n".join(re.sub(r"\s*/\*.*?\*/", "", line) for line in lines)
    return (rules("default") + "\n@media screen and (prefers-color-scheme: dark) {\n"
            + rules("github-dark") + "\n}\n")


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _code_html(lang: str, code: str) -> str:
    label = f'<div class="lang">{_esc(lang)}</div>' if lang else ""
    try:
        body = highlight(code, get_lexer_by_name(lang, stripnl=False), _formatter())
    except Exception:  # unknown language, or a lexer that fails: the code still shows, plain
        body = f'<div class="code"><pre><code>{_esc(code)}</code></pre></div>\n'
    return f'<div class="block">{label}{body}</div>\n'


def _text_html(text: str) -> str:
    """Escaped prose in paragraphs (line breaks kept by CSS), highlighted code blocks."""
    out = []
    for lang, chunk in _segments(text)[0]:
        if lang is not None:
            out.append(_code_html(lang, chunk))
        else:
            out += [f"<p>{_esc(p)}</p>\n" for p in re.split(r"\n[ \t]*\n", chunk.strip("\n")) if p.strip()]
    return "".join(out)


def to_html(conv: Conversation) -> str:
    """One self-contained HTML5 file: inline CSS, no scripts, nothing loaded (enforced by a CSP)."""
    title = _esc(_one_line(conv.title))
    out = ["<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
           '<meta name="referrer" content="no-referrer">\n',
           '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
           '<meta name="color-scheme" content="light dark">\n',
           f"<title>{title}</title>\n<style>\n{_CSS}{_pygments_css()}</style>\n</head>\n<body>\n",
           f'<header>\n<h1>{title}</h1>\n<dl class="meta">\n']
    out += [f"<dt>{_esc(label)}</dt><dd>{_esc(value)}</dd>\n" for label, value in _header(conv)]
    out.append("</dl>\n</header>\n")
    if conv.system_prompt:
        out.append(f'<section class="system">\n<h2>System prompt</h2>\n<div class="text">\n'
                   f"{_text_html(conv.system_prompt)}</div>\n</section>\n")
    out.append("<main>\n")
    for message in conv.thread():
        role = message.role if message.role in ROLES else "other"
        out.append(f'<article class="{role}">\n<h2>{_esc(ROLE_NAMES.get(message.role, message.role))}</h2>\n')
        if facts := _facts(message, conv.model):
            out.append(f'<p class="facts">{_esc(facts)}</p>\n')
        out.append(f'<div class="text">\n{_text_html(message.text)}</div>\n</article>\n')
    out.append("</main>\n<footer>Exported from Llamadesk. Times are in UTC.</footer>\n</body>\n</html>\n")
    return "".join(out)


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
        if isinstance(item, dict | list):
            raise _wrong(f"{where}.{key}", "a string, number, true, false or null", item)
        if isinstance(item, str):
            _str(item, f"{where}.{key}")
    return value


def _fields(value: object, where: str, schema: dict[str, Check]) -> dict[str, object]:
    obj: dict = _object(value, where)
    if missing := [name for name in schema if name not in obj]:
        raise TranscriptError(f"{where}.{missing[0]} is missing".lstrip("."))
    return {name: check(obj[name], f"{where}.{name}".lstrip(".")) for name, check in schema.items()}


def _sampling(value: object, where: str) -> SamplingParams:
    try:
        return SamplingParams(**_fields(value, where, SAMPLING))
    except ValueError as error:
        raise TranscriptError(f"{where}: {error}") from None


def _generation(value: object, where: str) -> GenerationRecord:
    return GenerationRecord(**_fields(value, where, GENERATION))


def _messages(value: object, where: str) -> list[Message]:
    return [Message(**_fields(item, f"{where}[{i}]", MESSAGE)) for i, item in enumerate(_list(value, where))]


SAMPLING: dict[str, Check] = {"temperature": _real, "top_p": _real, "top_k": _integer, "min_p": _real,
                              "repeat_penalty": _real, "max_tokens": _integer, "seed": _optional(_seed)}
GENERATION: dict[str, Check] = {
    "model_file": _str, "model_size": _count, "model_sha256": _str, "sampling": _flat_object,
    "seed": _optional(_seed), "prompt_tokens": _count, "completion_tokens": _count, "ttft_s": _amount,
    "tokens_per_s": _amount, "stop_reason": _str, "llama_cpp_version": _str}
MESSAGE: dict[str, Check] = {
    "id": _id, "role": _role, "text": _str, "parent_id": _optional(_id), "created": _time,
    "current": _bool, "incomplete": _bool, "generation": _optional(_generation)}
CONVERSATION: dict[str, Check] = {
    "id": _id, "title": _str, "created": _time, "updated": _time, "system_prompt": _str,
    "sampling": _sampling, "model": _str, "pinned": _bool, "titled_by_user": _bool, "messages": _messages}


def _finite(value: object) -> object:
    # NaN or infinity can only come from a bug; JSON cannot hold them, so they are written as 0.
    return 0.0 if isinstance(value, float) and not math.isfinite(value) else value


def _encode(obj: object, schema: dict[str, Check]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, check in schema.items():
        value = getattr(obj, name)
        if isinstance(value, SamplingParams):
            value = _encode(value, SAMPLING)
        elif isinstance(value, GenerationRecord):
            value = _encode(value, GENERATION)
        elif isinstance(value, list):
            value = [_encode(message, MESSAGE) for message in value]
        elif isinstance(value, dict):
            value = {key: _finite(item) for key, item in value.items()}
        elif check is _time:
            value = float(value)
        out[name] = _finite(value)
    return out


def to_json(convs: list[Conversation], *, exported_at: float | None = None) -> str:
    """Everything in the data model (every version of every message), in schema version 1."""
    document = {"format": FORMAT_MARKER, "schema_version": SCHEMA_VERSION,
                "exported_at": float(time.time() if exported_at is None else exported_at),
                "app_version": app.__version__,
                "conversations": [_encode(conv, CONVERSATION) for conv in convs]}
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


def read_json_file(path: Path) -> list[Conversation]:
    """from_json on a file, refusing one over MAX_TEXT before reading it."""
    try:
        size = path.stat().st_size
        if size > MAX_TEXT:
            raise TranscriptError(f"{path.name} is {size:,} bytes; Llamadesk imports files up to "
                                  f"{MAX_TEXT:,} bytes.")
        data = path.read_bytes()
    except OSError as error:
        raise TranscriptError(f"Cannot read {path}: {error.strerror}.") from error
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
        conv = Conversation(**_fields(item, where, CONVERSATION))
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


# ---------------------------------------------------------------- files

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_RESERVED = re.compile(r"(con|prn|aux|nul|com\d|lpt\d)(\..*)?", re.IGNORECASE)  # Windows device names


def safe_filename(title: str, max_bytes: int = 120) -> str:
    """A file name (without extension) from a title, valid on Windows, macOS and Linux, never a path."""
    name = unicodedata.normalize("NFC", title).encode("utf-8", "replace").decode("utf-8")
    name = _UNSAFE.sub("-", " ".join(name.split())).strip(" .-")
    name = name.encode("utf-8")[:max_bytes].decode("utf-8", "ignore").rstrip(" .-")
    if _RESERVED.fullmatch(name):
        name = f"_{name}"
    return name or "conversation"


def _write_atomic(path: Path, content: str) -> None:
    """Write to a temporary file beside `path`, then rename it over: never a half-written file."""
    data = content.encode("utf-8", "replace")  # unpaired surrogates, never valid text, become "?"
    tmp = path.with_name(f".{path.name[:40]}.{secrets.token_hex(6)}.tmp")
    try:
        # os.open applies the umask to 0o666, as a normal file gets (tempfile's files are 0o600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise TranscriptError(f"Could not write {path}: {error.strerror or error}.") from error
        raise


def export_to_path(convs: list[Conversation], fmt: str, out: Path,
                   *, exported_at: float | None = None) -> list[Path]:
    """Write convs as fmt; returns the files written.

    json: one file with every conversation, at `out` (inside it, if `out` is a folder). Other formats:
    one conversation goes to `out`, or to "<title>.<ext>" inside `out` if it is a folder; several go
    into the folder `out` (created if needed), one "<title>-<id>.<ext>" file each. Existing files
    of the same name are replaced.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    if fmt == "json":
        if out.is_dir():
            out = out / f"{safe_filename(convs[0].title) if len(convs) == 1 else FORMAT_MARKER}.json"
        _write_atomic(out, to_json(convs, exported_at=exported_at))
        return [out]
    if not convs:
        raise TranscriptError("There is no conversation to export.")
    render = {"md": to_markdown, "html": to_html, "txt": to_text}[fmt]
    if len(convs) == 1:
        path = out / f"{safe_filename(convs[0].title)}.{fmt}" if out.is_dir() else out
        _write_atomic(path, render(convs[0]))
        return [path]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TranscriptError(f"Could not create the folder {out}: {error.strerror or error}.") from error
    written: list[Path] = []
    taken: set[str] = set()
    for conv in convs:
        stem = f"{safe_filename(conv.title, 100)}-{re.sub(r'[^0-9A-Za-z]', '', conv.id)[:8] or 'x'}"
        name, n = f"{stem}.{fmt}", 1
        while name.casefold() in taken:  # casefold: macOS and Windows ignore case in names
            n += 1
            name = f"{stem}-{n}.{fmt}"
        taken.add(name.casefold())
        _write_atomic(out / name, render(conv))
        written.append(out / name)
    return written
