"""Transcripts: golden exports, HTML that runs and loads nothing, JSON that round-trips, hostile imports."""

from __future__ import annotations

import copy
import errno
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import app
from app.core.chat.sampling import SamplingParams
from app.core.conversations import transcript_json, transcripts
from app.core.conversations.conversation import Conversation, GenerationRecord, Message
from app.core.conversations.transcripts import (
    CSP,
    FORMATS,
    TranscriptError,
    export_to_path,
    from_json,
    safe_filename,
    to_html,
    to_json,
    to_markdown,
    to_text,
)
from tests.fixtures.golden import (
    APP_VERSION,
    EXPORTED_AT,
    GOLDEN_DIR,
    T0,
    sample_conversation,
    second_conversation,
)

# TRANSCRIPT_FUZZ_EXAMPLES=20000 for a longer hunt; 200 keeps the file at a few seconds.
FAST = settings(max_examples=int(os.environ.get("TRANSCRIPT_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def fixed_app_version(monkeypatch) -> None:
    monkeypatch.setattr(app, "__version__", APP_VERSION)


def render(fmt: str, conv: Conversation) -> str:
    if fmt == "json":
        return to_json([conv], exported_at=EXPORTED_AT)
    return {"md": to_markdown, "html": to_html, "txt": to_text}[fmt](conv)


def good_document() -> dict:
    return json.loads(to_json([sample_conversation(), second_conversation()], exported_at=EXPORTED_AT))


# ---------------------------------------------------------------- golden files

def check_golden(name: str, output: str) -> None:
    """Compare with tests/fixtures/golden/<name>; UPDATE_GOLDEN=1 rewrites it instead."""
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(output.encode("utf-8"))
        return
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    expected = path.read_bytes().decode("utf-8")
    assert output == expected, (f"{name} differs from the golden file. If the change is intended, review it "
                                f"and run UPDATE_GOLDEN=1 pytest {__file__} (the HTML golden also depends "
                                "on the Pygments version).")


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_matches_golden_file(fmt: str) -> None:
    check_golden(f"sample.{fmt}", render(fmt, sample_conversation()))


def test_golden_check_fails_on_any_difference(monkeypatch) -> None:
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match="differs from the golden file"):
        check_golden("sample.md", render("md", sample_conversation()) + " ")
    with pytest.raises(AssertionError, match="is missing"):
        check_golden("no-such-golden.md", "")


@pytest.mark.parametrize("fmt", ["md", "txt"])
def test_readable_formats_hold_the_current_thread_verbatim(fmt: str) -> None:
    conv = sample_conversation()
    output = render(fmt, conv)
    for message in conv.thread():
        assert message.text in output
    assert "reverses the list in place" not in output  # the old version is not in the thread
    assert conv.system_prompt in output
    assert "2023-11-14 22:13 UTC" in output
    assert "88 tokens · 23.8 tok/s · finished" in output
    assert "(incomplete)" in output


def test_markdown_closes_a_code_fence_left_open_by_an_incomplete_answer() -> None:
    output = to_markdown(sample_conversation())
    assert output.endswith("a llama\n```\n")
    assert to_markdown(Conversation(messages=[Message("user", "```py\nx")])).endswith("x\n```\n")
    assert to_markdown(Conversation(messages=[Message("user", "```py\nx\n```")])).endswith("x\n```\n")


# ---------------------------------------------------------------- HTML safety

ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "dl", "dt", "dd",
                "section", "main", "article", "div", "p", "pre", "code", "span", "footer"}


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(output: str) -> None:
    """Only our own tags, no attribute that loads or runs anything, nothing external."""
    parser = TagCollector()
    parser.feed(output)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            assert name in {"lang", "charset", "http-equiv", "content", "name", "class"}, (tag, name)
            assert not re.search(r"https?:|javascript:|url\(", value or "", re.IGNORECASE), (tag, value)
    assert not re.search(r"<\s*/?\s*(script|img|iframe|object|embed|link|svg|form|a)\b", output, re.I)
    assert "url(" not in output and "@import" not in output


def test_html_is_inert_and_escapes_every_hostile_string() -> None:
    output = to_html(sample_conversation())
    assert_inert(output)
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in output
    assert CSP == "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    assert ("&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=http://example.invalid/x.png&gt; &amp;amp; "
            "&quot;double&quot; &#x27;single&#x27; &lt;/article&gt;&lt;/main&gt;&lt;style&gt;") in output
    assert "<title>Lists &amp; &lt;tags&gt; in &quot;Python&quot; 🐍</title>" in output
    assert "Never output &lt;script&gt; tags &amp; such." in output
    assert output.count("<style>") == 1 and output.count("</style>") == 1
    assert output.count("<article") == output.count("</article>") == len(sample_conversation().thread())


def test_html_highlights_code_blocks_with_pygments_and_falls_back_to_plain() -> None:
    output = to_html(sample_conversation())
    assert '<span class="k">def</span>' in output and '<span class="nf">reverse</span>' in output
    assert ".code .k {" in output and "@media screen and (prefers-color-scheme: dark)" in output
    assert "@media print" in output
    assert '<span class="p">&lt;</span><span class="nt">script</span>' in output  # highlighted, escaped
    assert ('<div class="lang">nosuchlang</div><div class="code"><pre><code>&lt;b&gt;bold?&lt;/b&gt; '
            "&amp; &quot;quotes&quot;</code></pre></div>") in output
    assert "<p>Both leave the original list alone.\nLine two of this paragraph.</p>" in output
    assert "Old silent pasture" in output  # the code block an incomplete answer left open


fragments = st.sampled_from(["<script>", "</script>", "<img src=http://x/y.png>", "```", "```python\n",
                             "~~~html\n", "\n", "\n\n", "&amp;", '"', "'", "</pre>", "-->", "<!--", "]]>"])


@FAST
@given(st.lists(st.text() | fragments, max_size=12).map("".join),
       st.sampled_from(["python", "html", "js", "nosuchlang", "", "a<b>"]))
def test_html_is_inert_for_any_text(text: str, lang: str) -> None:
    answer = Message("assistant", f"```{lang}\n{text}\n```\n{text}", id="a", parent_id="u",
                     generation=GenerationRecord(stop_reason=text, model_file=text))
    conv = Conversation(title=text, system_prompt=text, model=text,
                        messages=[Message("user", text, id="u"), answer])
    assert_inert(to_html(conv))


# ---------------------------------------------------------------- JSON round trip

def test_json_round_trip_keeps_everything() -> None:
    convs = [sample_conversation(), second_conversation()]
    back = from_json(to_json(convs))
    assert back == convs
    assert [m.current for m in back[0].messages][:3] == [True, False, True]
    assert back[0].messages[1].generation == convs[0].messages[1].generation
    assert back[0].sampling == SamplingParams(temperature=0.7, top_k=50, max_tokens=512, seed=42)
    assert from_json(to_json(convs).encode("utf-8")) == convs


def test_json_round_trip_of_a_conversation_made_by_the_app() -> None:
    conv = Conversation(sampling=SamplingParams(seed=None))
    conv.append("user", "Hello")
    answer = conv.append("assistant", "Hi")
    answer.generation = GenerationRecord(seed=None)
    conv.created = 1_700_000_000  # an int timestamp comes back as an equal float
    assert from_json(to_json([conv])) == [conv]
    assert from_json(to_json([])) == []


def test_json_layout() -> None:
    text = to_json([sample_conversation()], exported_at=EXPORTED_AT)
    doc = json.loads(text)
    assert list(doc) == ["app_version", "conversations", "exported_at", "format", "schema_version"]
    assert doc["format"] == "llamadesk-conversations" and doc["schema_version"] == 1
    assert doc["exported_at"] == EXPORTED_AT and doc["app_version"] == APP_VERSION
    assert "🐍" in text and "日本語" in text  # ensure_ascii=False
    assert len(doc["conversations"][0]["messages"]) == 7
    assert isinstance(doc["conversations"][0]["created"], float)


def test_the_schema_covers_every_field_of_the_data_model() -> None:
    from dataclasses import fields
    tj = transcript_json
    for cls, schema in [(Conversation, tj.CONVERSATION), (Message, tj.MESSAGE),
                        (GenerationRecord, tj.GENERATION), (SamplingParams, tj.SAMPLING)]:
        assert {f.name for f in fields(cls)} == set(schema), cls.__name__


def test_unknown_keys_are_ignored() -> None:
    doc = good_document()
    doc["future_top"] = {"anything": [1, 2]}
    doc["conversations"][0]["future"] = True
    doc["conversations"][0]["messages"][2]["reactions"] = ["👍"]
    doc["conversations"][0]["messages"][2]["generation"]["gpu"] = "H100"
    assert from_json(json.dumps(doc)) == [sample_conversation(), second_conversation()]


# ---------------------------------------------------------------- refused imports

def mutated(change) -> str:
    doc = good_document()
    change(doc)
    return json.dumps(doc)


def msg(doc: dict, i: int) -> dict:
    return doc["conversations"][0]["messages"][i]


GOOD = to_json([sample_conversation(), second_conversation()], exported_at=EXPORTED_AT)
BAD_FILES = {
    "invalid utf-8": (b'{"format": "\xff\xfe"}', "not UTF-8 text (bad byte at offset 12)"),
    "empty": (b"", "The file is empty."),
    "not json": ("hello, world", "not valid JSON: Expecting value at line 1, column 1"),
    "trailing garbage": (GOOD + "}", "not valid JSON: Extra data"),
    "truncated": (GOOD[: len(GOOD) // 2], "ends too early (truncated?)"),
    "truncated bytes": (GOOD.encode()[:1000], "ends too early"),
    "top level list": ("[1, 2]", "must hold a JSON object, not a list"),
    "wrong format": (mutated(lambda d: d.update(format="something-else")),
                     "not a Llamadesk conversations file: it says format 'something-else'"),
    "no format": (mutated(lambda d: d.pop("format")), "it has no format marker"),
    "newer schema": (mutated(lambda d: d.update(schema_version=2)),
                     "from a newer Llamadesk (schema version 2); this version reads schema version 1"),
    "schema as string": (mutated(lambda d: d.update(schema_version="1")),
                         "schema_version must be an integer, not '1'"),
    "missing field": (mutated(lambda d: msg(d, 2).pop("text")),
                      "conversations[0].messages[2].text is missing"),
    "missing messages": (mutated(lambda d: d["conversations"][1].pop("messages")),
                         "conversations[1].messages is missing"),
    "missing conversations": (mutated(lambda d: d.pop("conversations")), "conversations is missing"),
    "wrong type": (mutated(lambda d: d["conversations"][0].update(title=42)),
                   "conversations[0].title must be a string, not 42"),
    "bool as int": (mutated(lambda d: msg(d, 2)["generation"].update(prompt_tokens=True)),
                    "conversations[0].messages[2].generation.prompt_tokens must be an integer, not true"),
    "null text": (mutated(lambda d: msg(d, 0).update(text=None)),
                  "conversations[0].messages[0].text must be a string, not null"),
    "unknown role": (mutated(lambda d: msg(d, 3).update(role="robot")),
                     "conversations[0].messages[3].role must be one of system, user, assistant, not 'robot'"),
    "NaN": (GOOD.replace('"updated": 1700000095.75', '"updated": NaN'), "holds NaN"),
    "Infinity": (GOOD.replace('"ttft_s": 0.5', '"ttft_s": -Infinity'), "holds -Infinity"),
    "huge float": (GOOD.replace('"ttft_s": 0.5', '"ttft_s": 1e999'), "number too large to use: 1e999"),
    "huge int": (GOOD.replace('"ttft_s": 0.5', '"ttft_s": ' + "9" * 400),
                 "ttft_s must be a number of a sensible size"),
    "enormous int": (GOOD.replace('"ttft_s": 0.5', '"ttft_s": ' + "9" * 5000), "not valid JSON"),
    "negative tokens": (mutated(lambda d: msg(d, 2)["generation"].update(completion_tokens=-1)),
                        "messages[2].generation.completion_tokens must be 0 or more, not -1"),
    "time out of range": (mutated(lambda d: msg(d, 0).update(created=1e15)),
                          "messages[0].created must be a time between 1970 and 9999"),
    "empty id": (mutated(lambda d: msg(d, 0).update(id="")), "messages[0].id must be 1 to 200 characters"),
    "duplicate message id": (mutated(lambda d: msg(d, 4).update(id="m02-old-answer")),
                             "messages[4].id 'm02-old-answer' is used by an earlier message"),
    "duplicate id across conversations": (
        mutated(lambda d: d["conversations"][1]["messages"][0].update(id="m01-question")),
        "conversations[1].messages[0].id 'm01-question' is used by an earlier message"),
    "duplicate conversation id": (
        mutated(lambda d: d["conversations"][1].update(id=d["conversations"][0]["id"])),
        "conversations[1].id 'c0ffee00c0ffee00c0ffee00c0ffee00' is used by an earlier conversation"),
    "dangling parent": (mutated(lambda d: msg(d, 3).update(parent_id="nope")),
                        "messages[3].parent_id 'nope' is not a message of this conversation"),
    "parent in another conversation": (
        mutated(lambda d: d["conversations"][1]["messages"][1].update(parent_id="m01-question")),
        "conversations[1].messages[1].parent_id 'm01-question' is not a message of this conversation"),
    "parent cycle": (mutated(lambda d: msg(d, 0).update(parent_id="m07-incomplete")),
                     "conversations[0].messages[0]: its parent links form a cycle"),
    "own parent": (mutated(lambda d: msg(d, 5).update(parent_id="m06-unicode")), "form a cycle"),
    "invalid sampling": (mutated(lambda d: d["conversations"][0]["sampling"].update(temperature=9)),
                         "conversations[0].sampling: temperature must be between 0.0 and 2.0, not 9"),
    "sampling of wrong type": (mutated(lambda d: d["conversations"][0]["sampling"].update(top_k="40")),
                               "conversations[0].sampling.top_k must be an integer, not '40'"),
    "nested generation sampling": (
        mutated(lambda d: msg(d, 2)["generation"]["sampling"].update(top_k=[1])),
        "generation.sampling.top_k must be a string, number, true, false or null, not a list"),
    "lone surrogate": (GOOD.replace('"text": "Hi"', '"text": "\\ud800"'), "holds an unpaired surrogate"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    # A tab or line break in an id would forge columns or lines of `conversations list`.
    "newline in an id": (mutated(lambda d: d["conversations"][0].update(id="abc\nforged\t1")),
                         "conversations[0].id must not hold control characters such as tabs or line "
                         "breaks (it holds '\\n')"),
    "tab in a message id": (mutated(lambda d: msg(d, 0).update(id="m\t1")),
                            "conversations[0].messages[0].id must not hold control characters"),
    "escape in a parent id": (mutated(lambda d: msg(d, 1).update(parent_id="\x1b[2J")),
                              "messages[1].parent_id must not hold control characters"),
    "line separator in an id": (mutated(lambda d: d["conversations"][1].update(id="a\u2028b")),
                                "conversations[1].id must not hold control characters"),
    "deep nesting inside": (GOOD.rstrip()[:-1] + ', "x": ' + "[" * 50_000 + "]" * 50_000 + "}",
                            "nested too deeply"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_is_refused_with_a_clear_message(name: str) -> None:
    data, expected = BAD_FILES[name]
    with pytest.raises(TranscriptError) as caught:
        from_json(data)
    assert expected in caught.value.message
    assert str(caught.value) == caught.value.message


def test_size_limits(monkeypatch) -> None:
    monkeypatch.setattr(transcript_json, "MAX_TEXT", 1000)
    with pytest.raises(TranscriptError, match="too large to import"):
        from_json(GOOD)
    with pytest.raises(TranscriptError, match="too large to import"):
        from_json(GOOD.encode())
    monkeypatch.setattr(transcript_json, "MAX_TEXT", 512 * 2**20)
    monkeypatch.setattr(transcript_json, "MAX_MESSAGES", 8)
    with pytest.raises(TranscriptError, match=r"too many messages \(9; the limit is 8\)"):
        from_json(GOOD)
    monkeypatch.setattr(transcript_json, "MAX_CONVERSATIONS", 1)
    with pytest.raises(TranscriptError, match="too many conversations"):
        from_json(GOOD)


def test_read_json_file_reads_an_export_and_refuses_more_than_the_limit(tmp_path: Path,
                                                                       monkeypatch) -> None:
    export = tmp_path / "export.json"
    export.write_text(GOOD, encoding="utf-8")
    assert transcripts.read_json_file(export) == [sample_conversation(), second_conversation()]
    monkeypatch.setattr(transcript_json, "MAX_TEXT", 1000)
    with pytest.raises(TranscriptError, match=f"export.json is {len(GOOD.encode()):,} bytes; Llamadesk "
                                              "imports files up to 1,000 bytes"):
        transcripts.read_json_file(export)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs a file that reports no size")
def test_read_json_file_stops_at_the_limit_whatever_the_reported_size(monkeypatch) -> None:
    """st_size says 0 for /proc files: the limit holds for what is read, not for what stat says."""
    assert Path("/proc/self/maps").stat().st_size == 0
    monkeypatch.setattr(transcript_json, "MAX_TEXT", 100)
    with pytest.raises(TranscriptError, match="maps is more than 100 bytes; Llamadesk imports files up to"):
        transcripts.read_json_file(Path("/proc/self/maps"))


def _without_blocking(read) -> object:
    """read() in a thread; should it block (a FIFO with no writer), a writer unblocks it and the test
    fails instead of hanging."""
    import threading

    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(read())
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=30)  # a safety net only: the refusal comes at once
    return "blocked" if worker.is_alive() else outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")
def test_read_json_file_refuses_a_fifo_and_a_link_to_dev_zero_without_blocking(tmp_path: Path) -> None:
    """The function File ▸ Import runs: a FIFO once blocked forever, /dev/zero read until the OOM killer."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    outcome = _without_blocking(lambda: transcripts.read_json_file(fifo))
    if outcome == "blocked":
        with open(fifo, "wb"):  # the reader sees end of file and returns
            pass
    assert isinstance(outcome, TranscriptError), f"importing a FIFO: {outcome!r}"
    assert outcome.message == (f"Cannot read {fifo}: it is a named pipe (FIFO), not a regular file; import "
                               "a JSON file exported by Llamadesk.")
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    with pytest.raises(TranscriptError, match="it is a device, not a regular file"):
        transcripts.read_json_file(zero)
    with pytest.raises(TranscriptError, match="it is a folder, not a regular file"):
        transcripts.read_json_file(tmp_path)


def test_utf8_bom_is_accepted() -> None:
    assert from_json(b"\xef\xbb\xbf" + GOOD.encode()) == [sample_conversation(), second_conversation()]
    assert from_json("\ufeff" + GOOD) == [sample_conversation(), second_conversation()]


# ---------------------------------------------------------------- fuzzing

def import_or_refuse(data: bytes | str) -> None:
    """from_json returns conversations that export again unchanged, or raises TranscriptError."""
    try:
        convs = from_json(data)
    except TranscriptError as error:
        assert error.message
        return
    assert all(isinstance(c, Conversation) for c in convs)
    assert from_json(to_json(convs)) == convs
    for conv in convs:  # whatever imports also exports
        to_markdown(conv), to_text(conv), assert_inert(to_html(conv))


FIELD_NAMES = sorted({*transcript_json.CONVERSATION, *transcript_json.MESSAGE, *transcript_json.GENERATION,
                      *transcript_json.SAMPLING, "format", "schema_version", "conversations"})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.sampled_from(["user", "assistant", "m01-question", transcripts.FORMAT_MARKER]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=6),
    max_leaves=25)


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_import_or_refuse(data: bytes) -> None:
    import_or_refuse(data)


@FAST
@given(json_values)
def test_any_json_value_imports_or_is_refused(value: object) -> None:
    import_or_refuse(json.dumps(value))
    import_or_refuse(json.dumps({"format": transcripts.FORMAT_MARKER, "schema_version": 1,
                                 "conversations": [value]}))


def paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every place in a JSON document: keys of objects and indexes of lists."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = []
    for key, child in items:
        found += [(*prefix, key), *paths(child, (*prefix, key))]
    return found


GOOD_DOC = json.loads(GOOD)
GOOD_PATHS = paths(GOOD_DOC)


@FAST
@given(st.lists(st.tuples(st.sampled_from(GOOD_PATHS), st.booleans(), json_values), min_size=1, max_size=3))
def test_mutated_export_imports_or_is_refused(mutations: list[tuple[tuple, bool, object]]) -> None:
    doc = copy.deepcopy(GOOD_DOC)
    for path, delete, value in mutations:
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if delete:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):  # an earlier mutation removed or replaced this place
            continue
    import_or_refuse(json.dumps(doc))


# ---------------------------------------------------------------- writing files

def test_export_one_conversation_to_a_file(tmp_path: Path) -> None:
    conv = sample_conversation()
    for fmt in ("md", "html", "txt"):
        out = tmp_path / f"chat.{fmt}"
        assert export_to_path([conv], fmt, out) == [out]
        assert out.read_bytes().decode("utf-8") == render(fmt, conv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.html", "chat.md", "chat.txt"]


def test_export_one_conversation_into_an_existing_folder(tmp_path: Path) -> None:
    written = export_to_path([sample_conversation()], "md", tmp_path)
    assert written == [tmp_path / "Lists & -tags- in -Python- 🐍.md"]
    assert written[0].read_text(encoding="utf-8") == to_markdown(sample_conversation())


def test_export_several_conversations_into_a_new_folder_with_safe_unique_names(tmp_path: Path) -> None:
    titles = ["../../etc/passwd", "a/b:c*?", "Same", "Same", "", "CON", "..", "x" * 300, "日本語のチャット"]
    convs = [Conversation(title=t, id=f"{i:02d}id", messages=[Message("user", t, id=f"m{i}")])
             for i, t in enumerate(titles)]
    convs.append(Conversation(title="Same", id="02id!"))  # the same id suffix as "Same" number one
    out = tmp_path / "deep" / "export"
    written = export_to_path(convs, "html", out)
    assert len(written) == len(set(written)) == len(convs)
    assert sorted(out.iterdir()) == sorted(written)
    names = [p.name for p in written]
    assert names[:7] == ["etc-passwd-00id.html", "a-b-c-01id.html", "Same-02id.html", "Same-03id.html",
                         "conversation-04id.html", "_CON-05id.html", "conversation-06id.html"]
    assert names[8] == "日本語のチャット-08id.html" and names[9] == "Same-02id-2.html"
    assert len(names[7].encode()) < 255
    for name in names:
        assert not re.search(r'[<>:"/\\|?*\x00-\x1f]', name) and not name.startswith(".")
    assert not (tmp_path / "etc").exists()
    assert written[0].read_text(encoding="utf-8") == to_html(convs[0])


def test_safe_filename() -> None:
    assert safe_filename("../../etc/passwd") == "etc-passwd"
    assert safe_filename("a/b:c*?") == "a-b-c"
    assert safe_filename("  tabs\tand\nnewlines  ") == "tabs and newlines"
    assert safe_filename("nul.txt") == "_nul.txt"
    assert safe_filename("\ud800") == "conversation"
    assert safe_filename("é" * 200) == "é" * 60


def test_export_json_writes_one_file_with_everything(tmp_path: Path) -> None:
    convs = [sample_conversation(), second_conversation()]
    out = tmp_path / "all.json"
    assert export_to_path(convs, "json", out, exported_at=EXPORTED_AT) == [out]
    assert out.read_bytes().decode("utf-8") == to_json(convs, exported_at=EXPORTED_AT)
    assert from_json(out.read_bytes()) == convs
    assert export_to_path(convs, "json", tmp_path) == [tmp_path / "llamadesk-conversations.json"]
    assert export_to_path(convs[:1], "json", tmp_path) == [tmp_path / "Lists & -tags- in -Python- 🐍.json"]


def test_unwritable_destination_raises_and_leaves_nothing_behind(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for fmt, convs in [("md", [second_conversation()]), ("json", [second_conversation()]),
                       ("txt", [sample_conversation(), second_conversation()])]:
        with pytest.raises(TranscriptError, match="Could not (write|create)") as caught:
            export_to_path(convs, fmt, blocker / "sub" / f"out.{fmt}")
        assert str(blocker) in caught.value.message
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


def test_a_full_disk_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "chat.md"
    out.write_text("the previous export")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    expected = f"Could not write {re.escape(str(out))}: No space left on device"
    with pytest.raises(TranscriptError, match=expected):
        export_to_path([sample_conversation()], "md", out)
    assert [p.name for p in tmp_path.iterdir()] == ["chat.md"]
    assert out.read_text() == "the previous export"


def test_permission_denied_raises_and_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    def denied(path, *args) -> int:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(TranscriptError, match="Could not write .*: Permission denied"):
        export_to_path([second_conversation()], "txt", tmp_path / "x.txt")
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_an_unknown_format_and_nothing_to_export(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt must be one of md, html, json, txt"):
        export_to_path([second_conversation()], "pdf", tmp_path / "x.pdf")
    with pytest.raises(TranscriptError, match="no conversation to export"):
        export_to_path([], "md", tmp_path / "x.md")


def test_exported_times_are_utc() -> None:
    conv = Conversation(created=T0, updated=T0)
    assert "Created: 2023-11-14 22:13 UTC" in to_markdown(conv)


def test_a_file_written_before_dropped_messages_existed_still_imports() -> None:
    doc = good_document()
    records = [m["generation"] for c in doc["conversations"] for m in c["messages"] if m["generation"]]
    assert records
    for record in records:
        del record["dropped_messages"]
    conversations = from_json(json.dumps(doc))
    assert all(m.generation.dropped_messages == 0 for c in conversations for m in c.messages if m.generation)


# ---------------------------------------------------------------- the export and import use cases (transfer)

def test_export_use_case_writes_one_or_every_stored_conversation(tmp_path: Path) -> None:
    from app.core.conversations import transfer

    with transfer.own_connection(tmp_path / "db.sqlite3") as store:
        store.insert_conversations([sample_conversation()])
        one = tmp_path / "one.md"
        assert transfer.export_conversations(store, "md", one, [sample_conversation().id]) == [one]
        assert one.read_text(encoding="utf-8") == to_markdown(store.load(sample_conversation().id))
        written = transfer.export_conversations(store, "md", tmp_path / "all")
        assert [p.parent for p in written] == [tmp_path / "all"], "all: a folder, even for one"


def test_import_use_case_adds_all_or_nothing_and_names_what_it_added(tmp_path: Path) -> None:
    from app.core.conversations import transfer

    good = tmp_path / "good.json"
    good.write_text(to_json([sample_conversation(), second_conversation()]), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(to_json([second_conversation()])[:-20], encoding="utf-8")
    with transfer.own_connection(tmp_path / "db.sqlite3") as store:
        added = transfer.import_file(store, good)
        originals = (sample_conversation(), second_conversation())
        assert added == [transfer.Imported(c.id, c.title) for c in originals]
        again = transfer.import_file(store, good)  # ids taken: copies with new ids, same titles
        assert [a.title for a in again] == [a.title for a in added]
        assert not {a.id for a in again} & {a.id for a in added}
        with pytest.raises(TranscriptError, match="not complete JSON"):
            transfer.import_file(store, bad)
        assert len(store.list_conversations()) == 4
