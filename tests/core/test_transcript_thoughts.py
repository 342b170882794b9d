"""Exports leave a reasoning model's thoughts out by default and include them by choice (issue 12,
"Reasoning models"); JSON carries them both ways when included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.core.conversations.conversation import Conversation, GenerationRecord
from app.core.conversations.transcripts import (
    TranscriptError,
    export_to_path,
    from_json,
    to_html,
    to_json,
    to_markdown,
    to_text,
)

THOUGHT = "The user greets me.\n\nI should <b>greet</b> back & be brief."
RENDERERS = {"md": to_markdown, "txt": to_text, "html": to_html}


def reasoned() -> Conversation:
    c = Conversation(title="Greeting", created=1_700_000_000.0, updated=1_700_000_000.0)
    c.append("user", "Hello!")
    answer = c.append("assistant", "Hi! How can I help?")
    answer.thought = THOUGHT
    answer.generation = GenerationRecord(completion_tokens=20, stop_reason="eos", thought_s=12.4)
    return c


@pytest.mark.parametrize("fmt", ["md", "txt", "html"])
def test_readable_exports_leave_the_thought_out_unless_asked(fmt: str) -> None:
    render = RENDERERS[fmt]
    without = render(reasoned())
    assert "Hi! How can I help?" in without
    assert "greets me" not in without and "Thought" not in without
    with_thoughts = render(reasoned(), thoughts=True)
    assert "Thought for 12 s" in with_thoughts and "The user greets me." in with_thoughts
    assert with_thoughts.index("greets me") < with_thoughts.index("How can I help?")


def test_each_format_marks_the_thought_as_the_models_reasoning() -> None:
    md = to_markdown(reasoned(), thoughts=True)
    assert ("> *Thought for 12 s*\n>\n> The user greets me.\n>\n> I should <b>greet</b> back & be brief.\n"
            in md)
    text = to_text(reasoned(), thoughts=True)
    assert "Thought for 12 s:\n    The user greets me.\n\n    I should" in text
    html = to_html(reasoned(), thoughts=True)
    assert '<details class="thought"' in html and "<summary>Thought for 12 s</summary>" in html
    assert "&lt;b&gt;greet&lt;/b&gt; back &amp; be brief." in html and "<b>greet" not in html


def test_json_carries_the_thought_only_when_included_and_reads_it_back() -> None:
    left_out = json.loads(to_json([reasoned()]))
    assert "thought" not in left_out["conversations"][0]["messages"][1]
    back = from_json(to_json([reasoned()]))[0].thread()[-1]
    assert (back.text, back.thought) == ("Hi! How can I help?", "")
    conversation = reasoned()
    assert from_json(to_json([conversation], thoughts=True)) == [conversation]


def test_json_files_without_thoughts_import_and_a_bad_thought_is_refused() -> None:
    doc = json.loads(to_json([reasoned()], thoughts=True))
    del doc["conversations"][0]["messages"][1]["generation"]["thought_s"]
    del doc["conversations"][0]["messages"][1]["thought"]
    [old] = from_json(json.dumps(doc))
    assert old.thread()[-1].thought == "" and old.thread()[-1].generation.thought_s == 0.0
    doc["conversations"][0]["messages"][1]["thought"] = 5
    with pytest.raises(TranscriptError, match=r"messages\[1\]\.thought must be a string"):
        from_json(json.dumps(doc))


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_export_to_files_follows_the_choice(tmp_path: Path, fmt: str) -> None:
    [one] = export_to_path([reasoned()], fmt, tmp_path / f"one.{fmt}")
    assert "greets me" not in one.read_text(encoding="utf-8")
    [with_thoughts] = export_to_path([reasoned()], fmt, tmp_path / f"two.{fmt}", thoughts=True)
    assert "greets me" in with_thoughts.read_text(encoding="utf-8")
    written = export_to_path([reasoned(), reasoned()], "txt", tmp_path / "all", folder=True, thoughts=True)
    assert all("greets me" in path.read_text(encoding="utf-8") for path in written)
