"""Markdown -> Qt rich-text HTML and plain text: structure, code blocks, and refusal of hostile input."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.chat.markdown_render import RenderedMarkdown, plain_text, render_markdown

PYTHON = 'def f(x):\n    return "a<b" == 1  # comment\n'


class _Tags(HTMLParser):
    """Every start tag with its attributes, entities decoded as Qt decodes them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(fragment: str) -> _Tags:
    parser = _Tags()
    parser.feed(fragment)
    parser.close()
    return parser


def tag_names(fragment: str) -> list[str]:
    return [tag for tag, _ in parse(fragment).tags]


def hrefs(fragment: str) -> list[str]:
    return [attrs["href"] or "" for tag, attrs in parse(fragment).tags if tag == "a"]


def assert_safe(fragment: str) -> None:
    lowered = fragment.lower()
    for needle in ("<img", "<script", "<iframe", "<style", "<object", "<embed", "src="):
        assert needle not in lowered, needle
    allowed = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "em", "strong", "s", "code", "pre", "span", "a",
               "ul", "ol", "li", "blockquote", "hr", "br", "table", "thead", "tbody", "tr", "th", "td"}
    for tag, attrs in parse(fragment).tags:
        assert tag in allowed, tag
        assert not set(attrs) & {"src", "srcset", "title", "onerror", "onclick", "onload"}, attrs
        if tag == "a":
            assert re.match(r"(https?:|mailto:|action:copy-code:)", attrs["href"] or ""), attrs


# -- structure --------------------------------------------------------------------------------------


def test_headings_emphasis_and_strikethrough() -> None:
    out = render_markdown("# One\n\n### Three\n\n*em* **strong** ~~gone~~").html
    assert "<h1>One</h1>" in out and "<h3>Three</h3>" in out
    assert "<em>em</em>" in out and "<strong>strong</strong>" in out and "<s>gone</s>" in out
    assert "<html" not in out and "<body" not in out


def test_nested_lists_blockquote_and_rule() -> None:
    out = render_markdown("- a\n  1. b\n  2. c\n- d\n\n> quoted\n\n---\n").html
    assert tag_names(out)[:5] == ["ul", "li", "ol", "li", "li"]
    assert "<blockquote>" in out and "<hr" in out


def test_table_has_qt_attributes_and_alignment() -> None:
    out = render_markdown("| L | R |\n|:--|--:|\n| 1 | 2 |\n").html
    assert '<table border="1" cellspacing="0" cellpadding="4">' in out
    assert '<th align="left">L</th>' in out and '<td align="right">2</td>' in out
    assert "text-align" not in out  # Qt ignores it; align= is used instead


def test_inline_code_is_monospace_with_background_and_escaped() -> None:
    out = render_markdown("use `a<b>` here").html
    assert re.search(r'<code style="background-color: #[0-9a-f]{6}">a&lt;b&gt;</code>', out)


# -- code blocks ------------------------------------------------------------------------------------


def test_fenced_python_is_coloured_and_its_source_kept_exactly() -> None:
    result = render_markdown(f"Intro\n\n```python\n{PYTHON}```\n\n```\nplain\n```\n", message_id="m7")
    assert isinstance(result, RenderedMarkdown)
    assert result.code_blocks == (PYTHON, "plain\n")
    assert re.search(r'<span style="color: #[0-9A-Fa-f]{3,6}; font-weight: bold">def</span>', result.html)
    assert '"a&lt;b"' in result.html  # escaped by Pygments
    assert "<pre" in result.html and ">python<" in result.html
    assert hrefs(result.html) == ["action:copy-code:m7:0", "action:copy-code:m7:1"]
    assert '<a href="action:copy-code:m7:0">Copy</a>' in result.html


def test_pygments_styles_are_limited_to_what_qt_understands() -> None:
    # The default style draws Error tokens with a border, which Qt does not support.
    out = render_markdown("```python\n$ ? `\n```\n").html + render_markdown(f"```js\n{PYTHON}```").html
    for style in re.findall(r'style="([^"]*)"', out):
        for declaration in filter(None, (d.strip() for d in style.split(";"))):
            assert declaration.split(":")[0] in {"color", "background-color", "font-weight", "font-style",
                                                 "text-decoration", "font-size", "margin-top",
                                                 "margin-bottom", "white-space"}, declaration


@pytest.mark.parametrize("lang", ["", "no-such-language", "no-such-language extra words"])
def test_unknown_or_missing_language_is_escaped_plain_text(lang: str) -> None:
    result = render_markdown(f"```{lang}\n<b>bold</b> & <script>x</script>\n```\n")
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;</pre>" in result.html
    assert "<b>" not in result.html and "<script" not in result.html
    assert result.code_blocks == ("<b>bold</b> & <script>x</script>\n",)


def test_indented_code_block_counts_as_a_code_block() -> None:
    result = render_markdown("text\n\n    x = 1\n    y = 2\n")
    assert result.code_blocks == ("x = 1\ny = 2\n",)
    assert "<pre" in result.html and hrefs(result.html) == ["action:copy-code::0"]


def test_dark_and_light_code_backgrounds_differ() -> None:
    source = f"```python\n{PYTHON}```\n"
    light, dark = render_markdown(source).html, render_markdown(source, dark=True).html
    background = re.compile(r'<table width="100%"[^>]* bgcolor="(#[0-9a-f]{6})"')
    assert background.search(light)[1] != background.search(dark)[1]
    assert light != dark


# -- links and hostile input ------------------------------------------------------------------------


def test_only_http_https_and_mailto_become_links() -> None:
    out = render_markdown("[a](https://a.example/x?q=1&r=2) [b](http://b.example) [c](mailto:c@d.example) "
                          "[rel](/relative) [ftp](ftp://x) <https://auto.example> <me@mail.example>").html
    assert hrefs(out) == ["https://a.example/x?q=1&r=2", "http://b.example", "mailto:c@d.example",
                          "https://auto.example", "mailto:me@mail.example"]
    assert "rel" in out and "ftp" in out


def test_image_is_text_with_a_link_only_for_http() -> None:
    out = render_markdown("![a cat](https://img.example/cat.png) ![dot](data:image/png;base64,AAAA) "
                          "![f](file:///etc/passwd)\n\n![ref][r]\n\n[r]: http://img.example/r.png").html
    assert "[image: a cat]" in out and "[image: dot]" in out and "[image: ref]" in out
    assert "![f](file:///etc/passwd)" in out  # markdown-it does not parse file: destinations at all
    assert hrefs(out) == ["https://img.example/cat.png", "http://img.example/r.png"]
    assert "data:" not in out


HOSTILE = """\
<img src="http://evil.example/x.png" onerror="alert(1)">
<script>alert('x')</script>
<iframe src="https://evil.example"></iframe>
<style>body { display: none }</style>

Inline <img src=x onerror=alert(1)> and <a href="javascript:alert(1)">raw link</a>.

[js](javascript:alert(1)) [js2](JaVaScRiPt:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=)
[file](file:///etc/passwd) [vb](vbscript:msgbox) [rel](../secret) [<js>](<javascript:x>)
[t](http://ok.example "a\\" onmouseover=\\"alert(1)") [t2](https://ok.example 'x" src="y')
![img](http://evil.example/i.png "t\\" src=\\"z") ![data](data:image/png;base64,AAAA)
![file](file:///c:/x.png) ![js](javascript:alert(1)) ![ref][evil] <http://auto.example/a"b>
[![nested](http://evil.example/n.png)](https://outer.example)

[evil]: data:image/gif;base64,R0lGOD "title"

```html
<img src="x"><script>alert(1)</script>
```
"""


@pytest.mark.parametrize("dark", [False, True])
def test_hostile_input_renders_as_escaped_text_only(dark: bool) -> None:
    out = render_markdown(HOSTILE, message_id="m1", dark=dark).html
    assert_safe(out)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in out and "&lt;style&gt;" in out
    text = "".join(parse(out).text)  # what Qt shows: the hostile markup, as text
    assert '<img src="http://evil.example/x.png" onerror="alert(1)">' in text
    assert '<iframe src="https://evil.example"></iframe>' in text
    assert '<a href="javascript:alert(1)">raw link</a>' in text
    assert "[js](javascript:alert(1))" in text  # markdown-it refuses to parse it as a link
    assert "[image: nested]" in text and "[image: ref]" in text and "[image: data]" in text
    assert hrefs(out) == ["http://ok.example", "https://ok.example", "http://evil.example/i.png",
                          "http://auto.example/a%22b", "https://outer.example", "action:copy-code:m1:0"]


def test_link_title_cannot_inject_attributes() -> None:
    out = render_markdown('[t](http://ok.example "x\\" onclick=\\"alert(1)")').html
    assert parse(out).tags == [("p", {}), ("a", {"href": "http://ok.example"})]


FRAGMENTS = ["<img src=x>", "<script>", "<iframe ", "![a](", "](", "[", "]", "(", ")", "<", ">", "`", "```",
             "http://x", "javascript:", "data:image/png;base64,A", "file:///x", '"', "'", "=", "src", " ",
             "\n", "\n\n", "*", "|", "-", "#", "&", "\\", "    "]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=40).map("".join))
def test_fuzz_output_never_contains_active_content(text: str) -> None:
    out = render_markdown(text).html.lower()
    assert "<img" not in out and "<script" not in out and "src=" not in out
    assert_safe(out)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_plain_text_never_raises(text: str) -> None:
    assert isinstance(plain_text(text), str)


# -- plain text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("# Title\n\nSome **bold** and *em* and `code`.", "Title\n\nSome bold and em and code."),
        ("See [the docs](https://d.example) or <https://a.example>.",
         "See the docs (https://d.example) or https://a.example."),
        ("- a\n- b\n  1. c\n  2. d\n\nafter", "- a\n- b\n  1. c\n  2. d\n\nafter"),
        ("3. x\n4. y", "3. x\n4. y"),
        ("```python\nprint(1)\n    x = 2\n```", "print(1)\n    x = 2"),
        ("| A | B |\n|---|---|\n| 1 | [l](http://u.example) |", "A\tB\n1\tl (http://u.example)"),
        ("![cat](https://i.example/c.png) ![x](data:image/png;base64,AA)",
         "[image: cat] (https://i.example/c.png) [image: x]"),
        ("~~old~~ new\n\n---\n\n> quoted", "old new\n\n---\n\n> quoted"),
        ("<b>raw</b> &amp; &lt;", "<b>raw</b> & <"),
        ("", ""),
    ],
)
def test_plain_text(markdown: str, expected: str) -> None:
    assert plain_text(markdown) == expected


def test_a_single_newline_stays_a_line_break_as_it_streamed():
    """A poem or an address keeps its lines (CommonMark alone would join them into one paragraph)."""
    html = render_markdown("Roses are red,\nviolets are blue.").html
    assert "Roses are red,<br" in html and "violets are blue." in html
