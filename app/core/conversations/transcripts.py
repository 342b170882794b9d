"""Transcripts: a conversation as Markdown, HTML, plain text or JSON, written safely to files.

Model output is untrusted, so the HTML escapes every piece of conversation text and loads nothing.
A reasoning model's thoughts are left out unless asked for (`thoughts=True`).
The JSON format and its validated import live in transcript_json.py; they are re-exported here.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import secrets
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

from app import paths
from app.core.chat.reasoning import thought_label
from app.core.chat.sampling import SamplingParams
from app.core.conversations.conversation import ROLES, Conversation, Message
from app.core.conversations.transcript_json import (  # noqa: F401 - the JSON half of this module's API
    FORMAT_MARKER,
    FORMATS,
    MAX_TEXT,
    SCHEMA_VERSION,
    TranscriptError,
    from_json,
    read_json_file,
    to_json,
)

ROLE_NAMES = {"user": "You", "assistant": "Assistant", "system": "System"}
STOP_REASONS = {"eos": "finished", "length": "hit the length limit", "context_full": "context full",
                "user": "stopped by you"}


# ---------------------------------------------------------------- shared pieces of the readable formats

def _date(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "unknown date"


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "Untitled"


def _sampling_line(sampling: SamplingParams) -> str:
    parts = []
    for name, value in sampling.to_dict().items():
        if name == "stop":
            if value:
                parts.append("stop " + " ".join(repr(s) for s in value))
        else:
            parts.append(f"{name} {'random' if value is None else value}")
    return ", ".join(parts)


def _header(conv: Conversation) -> list[tuple[str, str]]:
    rows = [("Created", _date(conv.created)), ("Updated", _date(conv.updated))]
    if conv.model:
        rows.append(("Model", f"{conv.model} · {conv.connection}" if conv.connection else conv.model))
    return [*rows, ("Sampling", _sampling_line(conv.sampling))]


def _facts(message: Message, model: str) -> str:
    """One line on how an answer was made: where (a remote engine's connection, host and fingerprint),
    tokens, speed, speculative decoding's share of right guesses, why it stopped."""
    parts = []
    gen = message.generation
    if gen is not None:
        if gen.model_file and gen.model_file != model:
            parts.append(gen.model_file)
        if gen.connection:
            server = " ".join(filter(None, (gen.server_host, gen.system_fingerprint)))
            parts.append(f"via {gen.connection}" + (f" ({server})" if server else ""))
        if gen.completion_tokens:
            parts.append(f"{gen.completion_tokens} token{'s' if gen.completion_tokens != 1 else ''}")
        if gen.tokens_per_s:
            parts.append(f"{gen.tokens_per_s:.1f} tok/s")
        if gen.acceptance is not None:
            off = ", paused where too few were right" if gen.drafting_turned_off else ""
            parts.append(f"{gen.drafting or 'drafting'}: {gen.acceptance:.0%} of {gen.drafted_tokens:,} "
                         f"drafted tokens accepted{off}")
        if gen.stop_reason:
            parts.append(STOP_REASONS.get(gen.stop_reason, gen.stop_reason))
    if message.incomplete:
        parts.append("(incomplete)")
    return " · ".join(parts)


def _thought_title(message: Message) -> str:
    return thought_label(message.generation.thought_s if message.generation else 0.0)


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

def to_markdown(conv: Conversation, thoughts: bool = False) -> str:
    """The current thread as Markdown; message text is kept as written (a fence left open is closed).
    thoughts: a reasoning model's thought goes before its answer, as a quote."""
    out = [f"# {_one_line(conv.title)}", ""]
    out += [f"- {label}: {value}" for label, value in _header(conv)]
    if conv.system_prompt:
        out += ["", "## System prompt", "", conv.system_prompt]
    for message in conv.thread():
        out += ["", f"## {ROLE_NAMES.get(message.role, message.role)}", ""]
        if facts := _facts(message, conv.model):
            out += [f"*{facts}*", ""]
        if thoughts and message.thought:
            quoted = [f"> {line}".rstrip() for line in message.thought.split("\n")]
            out += [f"> *{_thought_title(message)}*", ">", *quoted, ""]
        out.append(message.text)
        if (fence := _segments(message.text)[1]) is not None:
            out.append(fence)
    return "\n".join(out).rstrip("\n") + "\n"


def to_text(conv: Conversation, thoughts: bool = False) -> str:
    """The current thread as plain text, for a terminal or a text editor (thoughts: a reasoning
    model's thought, indented, before its answer)."""
    title = _one_line(conv.title)
    out = [title, "=" * min(len(title), 72)]
    out += [f"{label + ':':<9} {value}" for label, value in _header(conv)]
    if conv.system_prompt:
        out += ["", "--- System prompt ---", conv.system_prompt]
    for message in conv.thread():
        facts = _facts(message, conv.model)
        out += ["", f"--- {ROLE_NAMES.get(message.role, message.role)}{f' ({facts})' if facts else ''} ---"]
        if thoughts and message.thought:
            out += [f"{_thought_title(message)}:",
                    *(f"    {line}".rstrip() for line in message.thought.split("\n")), ""]
        out.append(message.text)
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


def to_html(conv: Conversation, thoughts: bool = False) -> str:
    """One self-contained HTML5 file: inline CSS, no scripts, nothing loaded (enforced by a CSP).
    thoughts: a reasoning model's thought, folded (<details>), before its answer."""
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
        if thoughts and message.thought:
            out.append(f'<details class="thought" style="color: var(--muted); font-style: italic">'
                       f"<summary>{_esc(_thought_title(message))}</summary>\n"
                       f'<div class="text">\n{_text_html(message.thought)}</div>\n</details>\n')
        out.append(f'<div class="text">\n{_text_html(message.text)}</div>\n</article>\n')
    out.append("</main>\n<footer>Exported from Llamadesk. Times are in UTC.</footer>\n</body>\n</html>\n")
    return "".join(out)




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
            if hasattr(os, "fchmod"):  # python -m app's umask 077 is for our files; an export is the user's
                os.fchmod(fd, 0o666 & ~paths.user_umask())
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


def _make_user_folder(folder: Path) -> None:
    """Create folder (and missing parents) with the mode the user's umask gives: an export folder is
    theirs, while python -m app creates everything with umask 077 for its own private files."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    if os.name == "posix":
        for created in missing:
            os.chmod(created, 0o777 & ~paths.user_umask())


def export_to_path(convs: Sequence[Conversation], fmt: str, out: Path, *, folder: bool = False,
                   exported_at: float | None = None, thoughts: bool = False) -> list[Path]:
    """Write convs as fmt; returns the files written. thoughts: include reasoning models' thoughts.

    json: one file with every conversation, at `out` (inside it, if `out` is a folder). Other formats:
    one conversation goes to `out`, or to "<title>.<ext>" inside `out` if it is a folder; several, or
    any number with folder=True (an "export all"), go into the folder `out` (created if needed), one
    "<title>-<id>.<ext>" file each. Existing files of the same name are replaced.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    if fmt == "json":
        if out.is_dir():
            out = out / f"{safe_filename(convs[0].title) if len(convs) == 1 else FORMAT_MARKER}.json"
        _write_atomic(out, to_json(convs, exported_at=exported_at, thoughts=thoughts))
        return [out]
    if not convs:
        raise TranscriptError("There is no conversation to export.")
    to_format = {"md": to_markdown, "html": to_html, "txt": to_text}[fmt]

    def render(conv: Conversation) -> str:
        return to_format(conv, thoughts)
    if len(convs) == 1 and not folder:
        path = out / f"{safe_filename(convs[0].title)}.{fmt}" if out.is_dir() else out
        _write_atomic(path, render(convs[0]))
        return [path]
    try:
        _make_user_folder(out)
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
