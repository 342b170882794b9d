"""The line under a message: its versions and Continue (links, so Tab reaches them), and for an answer
how it was made (model, tokens, speed, first token, the share of drafted tokens accepted) or why it
ended. A remote engine's answer names "model-id · connection"; its tooltip says the host and what the
server reported. A drafted answer's tooltip says what drafted and how well."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from PySide6.QtGui import QTextCharFormat, QTextCursor

from app.core.common.text import plural as core_plural
from app.core.conversations.conversation import GenerationRecord, Message
from app.ui.chat.engine_label import remote_label


def insert_footer(cursor: QTextCursor, message: Message, version: tuple[int, int] | None,
                  text: QTextCharFormat, link: Callable[[str], QTextCharFormat]) -> None:
    """Write the footer at the cursor: "‹ 2/3 ›", Continue for a cut answer, then the facts.
    version is (the message's number, how many) when it has other versions; link(href) formats a link."""
    parts = 0
    if version:
        cursor.insertText("‹", link(f"action:previous:{message.id}"))
        cursor.insertText(f" {version[0]}/{version[1]} ", text)
        cursor.insertText("›", link(f"action:next:{message.id}"))
        parts += 1
    if message.role == "assistant" and message.incomplete:
        cursor.insertText("   " * parts, text)
        cursor.insertText("Continue", link(f"action:continue:{message.id}"))
        parts += 1
    facts = message_footer(message)
    if facts:
        cursor.insertText("   " * bool(parts), text)
        tip = footer_tooltip(message)
        facts_format = QTextCharFormat(text)
        if tip:
            facts_format.setToolTip(tip)
        cursor.insertText(facts, facts_format)


def message_footer(message: Message) -> str:
    """How the answer was made, one fact per part. A value and its unit are joined by no-break
    spaces (and the "/" of tok/s by word joiners), so a narrow view wraps between facts only."""
    parts = []
    record = message.generation
    if record is not None:
        if record.connection:
            parts.append(remote_label(record.model_file or record.server_model, record.connection))
        elif record.model_file:
            parts.append(Path(record.model_file).stem)
        if record.completion_tokens:
            parts.append(_together(plural(record.completion_tokens, "token")))
            parts.append(_together(f"{record.tokens_per_s:.1f} tok/s"))
            parts.append(_together(f"first token {record.ttft_s:.2f} s"))
        if record.acceptance is not None:
            parts.append(_together(f"{record.acceptance:.0%} of drafts accepted"))
        if record.dropped_messages:
            parts.append(f"{plural(record.dropped_messages, 'earlier message')} not sent (context full)")
    if message.incomplete:
        parts.append("stopped" if record and record.stop_reason == "user" else "incomplete")
    return " · ".join(parts)


def footer_tooltip(message: Message) -> str:
    """The details behind the footer: where a remote engine's answer came from (the connection and
    host, the model id and system_fingerprint the server reported, the server's own speed), and how
    speculative decoding went. "" when there are none."""
    record = message.generation
    if record is None:
        return ""
    lines = _remote_lines(record) if record.connection else []
    if drafting := drafting_sentence(record):
        lines.append(drafting)
    return "\n".join(lines)


def _remote_lines(record: GenerationRecord) -> list[str]:
    lines = [f"Answered on {record.connection}" + (f" ({record.server_host})" if record.server_host else "")]
    chosen, reported = record.model_file, record.server_model
    if chosen and reported and chosen != reported:  # an alias, or a server that answers with another model
        lines.append(f"Model chosen: {chosen}")
    lines.append(f"Model the server reported: {reported}" if reported else f"Model: {chosen}")
    if record.system_fingerprint:
        lines.append(f"System fingerprint: {record.system_fingerprint}")
    if record.server_tokens_per_s:
        lines.append(f"The server's own speed: {record.server_tokens_per_s:.1f} tok/s")
    return lines


def drafting_sentence(record: GenerationRecord) -> str:
    """ "Drafting (prompt lookup): 84% of 312 guessed tokens accepted", and when Automatic stopped it,
    why; "" when nothing was drafted."""
    if record.acceptance is None:
        return ""
    source = f" ({record.drafting})" if record.drafting else ""
    sentence = (f"Drafting{source}: {record.acceptance:.0%} of {record.drafted_tokens:,} guessed tokens "
                "accepted")
    if record.drafting_turned_off:
        sentence += "; Automatic paused it where too few were right"
    return sentence


def message_time(created: float, now: float | None = None) -> tuple[str, str]:
    """When a message was written, short for the hover bar ("14:05", "Mon 14:05", "3 Mar 14:05",
    "3 Mar 2024") and in full for its tooltip ("Monday 3 March 2025, 14:05")."""
    when, today = datetime.fromtimestamp(created), datetime.fromtimestamp(time.time() if now is None else now)
    days = (today.date() - when.date()).days
    if days == 0:
        short = f"{when:%H:%M}"
    elif 0 < days < 7:
        short = f"{when:%a %H:%M}"
    elif when.year == today.year:
        short = f"{when.day} {when:%b %H:%M}"
    else:
        short = f"{when.day} {when:%b %Y}"
    return short, f"{when:%A} {when.day} {when:%B %Y, %H:%M}"


def plural(count: int, noun: str) -> str:
    """ "1 token", "2 tokens": a count and its noun, joined by a no-break space."""
    return core_plural(count, noun).replace(" ", "\u00a0", 1)


def _together(text: str) -> str:
    return text.replace(" ", "\u00a0").replace("/", "\u2060/\u2060")
