"""An assistant message's Markdown as an HTML fragment for Qt's QTextBrowser, and as plain text.

markdown-it-py parses CommonMark exactly and hands back a token stream, so each construct can be
written in the small HTML subset Qt's rich text understands (tables with bgcolor/cellpadding, align
attributes, inline span styles) rather than in browser HTML. Pygments colours fenced code with inline
styles (no stylesheet), filtered down to the CSS properties Qt knows.

Model output is untrusted, so the renderer refuses:
- raw HTML: parsed with html=False, it shows as escaped text;
- images: never an <img> (Qt would load it). An image shows as "[image: alt]", then, for http(s) only,
  its address as a link;
- links other than http, https and mailto (javascript:, data:, file:, relative...): the label only;
- link titles, and any CSS Pygments emits that Qt does not understand.
Every "=" in text or attribute values is written "&#61;", so a literal "=" in the output is always
attribute syntax written here: "src=" cannot appear, whatever the input.
"""

from __future__ import annotations

import html
import re
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

LINK_SCHEMES = ("http:", "https:", "mailto:")
IMAGE_LINK_SCHEMES = ("http:", "https:")
QT_CSS = frozenset({"color", "background-color", "font-weight", "font-style", "text-decoration"})
Tokens = Sequence[Token]
Env = MutableMapping[str, Any]  # per render: message_id, dark, code_blocks so far, open links' safety


@dataclass(frozen=True)
class _Theme:
    pygments: str  # Pygments style name
    block: str  # code block background
    header: str  # code block header row background
    text: str  # code text not coloured by Pygments
    muted: str  # language label
    inline: str  # inline code background


THEMES = {
    False: _Theme("default", "#f6f8fa", "#eaeef2", "#1f2328", "#59636e", "#eff1f3"),
    True: _Theme("github-dark", "#1e1f22", "#2b2d31", "#e6edf3", "#9198a1", "#2f3136"),
}


@dataclass(frozen=True)
class RenderedMarkdown:
    html: str  # HTML fragment (no <html>/<body>), ready for QTextCursor.insertHtml
    code_blocks: tuple[str, ...]  # raw source of each fenced/indented code block, in order


def _esc(text: str) -> str:
    """Escape for text and attribute values alike; "=" too (see the module docstring)."""
    return html.escape(text, quote=True).replace("=", "&#61;")


@cache
def _formatter(style: str) -> HtmlFormatter:
    return HtmlFormatter(noclasses=True, nowrap=True, style=style)


def _qt_tag(tag: str) -> str:
    """A Pygments <span style="..."> keeping only the declarations Qt understands."""
    match = re.fullmatch(r'<span style="([^"]*)">', tag)
    if not match:
        return tag  # </span>
    kept = [d.strip() for d in match[1].split(";") if d.split(":", 1)[0].strip() in QT_CSS]
    return f'<span style="{"; ".join(kept)}">' if kept else "<span>"


def _highlight(code: str, lang: str, style: str) -> str | None:
    """Coloured HTML for a known language, else None (nothing is guessed)."""
    if not lang:
        return None
    try:
        out = highlight(code, get_lexer_by_name(lang, stripnl=False, ensurenl=False), _formatter(style))
    except Exception:  # unknown language, or a lexer that fails: the caller shows plain text
        return None
    # Pygments escapes < > & " ' in text, so every "<" starts one of its own tags.
    parts = re.split(r"(<[^>]*>)", out)
    return "".join(_qt_tag(p) if p.startswith("<") else p.replace("=", "&#61;") for p in parts)


def _code_html(code: str, lang: str, env: Env) -> str:
    theme: _Theme = THEMES[env["dark"]]
    index = len(env["code_blocks"])
    env["code_blocks"].append(code)
    shown = code.removesuffix("\n")
    body = _highlight(shown, lang, theme.pygments)
    href = _esc(f"action:copy-code:{env['message_id']}:{index}")
    # pre-wrap: a QTextBrowser cannot scroll one block sideways, and a long line must not widen the
    # whole chat (every message would scroll with it, the Copy link out of view): it wraps instead.
    return (
        f'<table width="100%" border="0" cellspacing="0" cellpadding="6" bgcolor="{theme.block}"'
        ' style="margin-top: 6px; margin-bottom: 6px">'
        f'<tr bgcolor="{theme.header}"><td><span style="color: {theme.muted}; font-size: small">'
        f'{_esc(lang or "text")}</span></td><td align="right"><a href="{href}">Copy</a></td></tr>'
        f'<tr><td colspan="2"><pre style="color: {theme.text}; white-space: pre-wrap">'
        f'{_esc(shown) if body is None else body}'
        "</pre></td></tr></table>\n"
    )


def _fence(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    """Fenced and indented code blocks (the latter have no info string)."""
    info = unescapeAll(tokens[idx].info).split()
    return _code_html(tokens[idx].content, info[0] if info else "", env)


def _code_inline(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    background = THEMES[env["dark"]].inline
    return f'<code style="background-color: {background}">{_esc(tokens[idx].content)}</code>'


def _text(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    return _esc(tokens[idx].content)


def _link_open(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    """A link with a safe scheme, else nothing (the label shows as text); titles are dropped."""
    href = str(tokens[idx].attrGet("href") or "")
    safe = href.lower().startswith(LINK_SCHEMES)
    env["links"].append(safe)
    return f'<a href="{_esc(href)}">' if safe else ""


def _link_close(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    return "</a>" if env["links"].pop() else ""


def _image(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    """Never an <img>: "[image: alt]", then the address as a link if http(s) and not inside a link."""
    token = tokens[idx]
    out = f"[image: {_esc(self.renderInlineAsText(token.children, options, env))}]"
    src = str(token.attrGet("src") or "")
    if src.lower().startswith(IMAGE_LINK_SCHEMES) and not any(env["links"]):
        out += f' <a href="{_esc(src)}">{_esc(src)}</a>'
    return out


def _table_open(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    return '<table border="1" cellspacing="0" cellpadding="4">\n'


def _cell_open(self: Any, tokens: Tokens, idx: int, options: Any, env: Env) -> str:
    """<th>/<td> with Qt's align attribute (markdown-it writes a style Qt ignores)."""
    token = tokens[idx]
    align = re.fullmatch(r"text-align:(left|center|right)", str(token.attrGet("style") or ""))
    return f'<{token.tag} align="{align[1]}">' if align else f"<{token.tag}>"


@cache
def _md() -> MarkdownIt:
    # breaks: a single newline is a line break, as it was while the answer streamed (a poem, an address)
    md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])
    rules = {"fence": _fence, "code_block": _fence, "code_inline": _code_inline, "text": _text,
             "link_open": _link_open, "link_close": _link_close, "image": _image,
             "table_open": _table_open, "th_open": _cell_open, "td_open": _cell_open}
    for name, rule in rules.items():
        md.add_render_rule(name, rule)
    return md


def render_markdown(text: str, message_id: str = "", dark: bool = False) -> RenderedMarkdown:
    """The message as Qt rich text; code blocks' Copy links are action:copy-code:{message_id}:{index}."""
    env: dict[str, Any] = {"message_id": message_id, "dark": dark, "code_blocks": [], "links": []}
    out = _md().render(text, env)
    return RenderedMarkdown(out, tuple(env["code_blocks"]))


WARM_UP_LANGUAGES = ("python", "javascript", "typescript", "bash", "json", "c", "cpp", "rust", "go",
                     "java", "html", "css", "sql", "yaml")


def warm_up() -> None:
    """Import the renderer and compile the common languages' highlighters (a tenth of a second
    the first time): done in a worker thread at start, it is not paid by the first chat opened."""
    code = "\n\n".join(f"```{lang}\nx = 1\n```" for lang in WARM_UP_LANGUAGES)
    text = f"# Title\n\n*a* **b** `c` [d](https://example.org)\n\n| a |\n|---|\n| b |\n\n{code}"
    for dark in (False, True):
        render_markdown(text, dark=dark)


def _inline_text(children: Sequence[Token] | None) -> str:
    """Inline tokens as text: links as "label (url)", images as "[image: alt] (url)" for http(s)."""
    md = _md()
    parts: list[str] = []
    links: list[tuple[int, str]] = []
    for tok in children or []:
        if tok.type in ("text", "code_inline"):
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif tok.type == "link_open":
            links.append((len(parts), "" if tok.markup == "autolink" else str(tok.attrGet("href") or "")))
        elif tok.type == "link_close":
            start, href = links.pop()
            if href and href != "".join(parts[start:]):
                parts.append(f" ({href})")
        elif tok.type == "image":
            parts.append(f"[image: {md.renderer.renderInlineAsText(tok.children, md.options, {})}]")
            src = str(tok.attrGet("src") or "")
            if src.lower().startswith(IMAGE_LINK_SCHEMES) and not links:
                parts.append(f" ({src})")
    return "".join(parts)


def plain_text(text: str) -> str:
    """The Markdown as readable plain text, for "Copy as plain text"."""
    blocks: list[list[Any]] = []  # [text, blank line after it?]
    lists: list[int | None] = []  # per open list: the next item's number, None for bullets
    indents = [""]  # prefix of each line in the innermost open list item or quote
    bullet = ""  # replaces the indent on the first line of a list item
    row: list[str] = []  # cells of the table row being read
    gap = True

    def add(block: str, gap: bool = True) -> None:
        nonlocal bullet
        lines = block.split("\n")
        first = (bullet or indents[-1]) + lines[0] if lines[0] else (bullet or indents[-1]).rstrip()
        blocks.append(["\n".join([first, *(indents[-1] + line if line else "" for line in lines[1:])]), gap])
        bullet = ""

    for tok in _md().parse(text):
        kind = tok.type
        if kind in ("bullet_list_open", "ordered_list_open"):
            lists.append(int(tok.attrGet("start") or 1) if kind == "ordered_list_open" else None)
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists and blocks:  # a blank line after the outermost list
                blocks[-1][1] = True
        elif kind == "table_close" and blocks:
            blocks[-1][1] = True
        elif kind == "list_item_open":
            number = lists[-1]
            mark = "- " if number is None else f"{number}. "
            if number is not None:
                lists[-1] = number + 1
            bullet = indents[-1] + mark
            indents.append(indents[-1] + " " * len(mark))
        elif kind == "blockquote_open":
            indents.append(indents[-1] + "> ")
        elif kind in ("list_item_close", "blockquote_close"):
            if bullet:  # an empty list item
                add("", gap=False)
            indents.pop()
        elif kind == "paragraph_open":
            gap = not tok.hidden  # paragraphs in a tight list item: no blank line after
        elif kind == "heading_open":
            gap = True
        elif kind == "tr_open":
            row = []
        elif kind in ("th_open", "td_open"):
            row.append("")
        elif kind == "inline" and row:
            row[-1] = _inline_text(tok.children)
        elif kind == "inline":
            add(_inline_text(tok.children), gap)
        elif kind == "tr_close":
            row, cells = [], row
            add("\t".join(cells), gap=False)
        elif kind in ("fence", "code_block"):
            add(tok.content.removesuffix("\n"))
        elif kind == "hr":
            add("---")
    return "\n".join(block + ("\n" if blank else "") for block, blank in blocks).strip("\n")
