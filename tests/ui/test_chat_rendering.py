"""What the reader sees: Markdown drawn, nothing fetched, code copyable, jump to the latest."""

from __future__ import annotations

from PySide6.QtCore import QObject, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication

from app.core.conversations.conversation import Conversation
from app.ui.chat.chat_view import ChatView
from tests.ui.conftest import open_window, seed_store

CODE = 'def greet(name):\n    return f"Hello, {name}!"\n'
ANSWER = (
    "# Greeting\n\nHere is **bold**, `inline code` and a [link](https://example.org/docs).\n\n"
    "| Language | Year |\n|---|---:|\n| Python | 1991 |\n| C | 1972 |\n\n"
    f"```python\n{CODE}```\n\n- one\n- two\n"
)
HOSTILE = (
    "![tracker](http://127.0.0.1:9/pixel.png) ![local](file:///etc/passwd) "
    "![data](data:image/png;base64,iVBORw0KGgo=)\n\n"
    '<img src="http://127.0.0.1:9/raw.png"> <link rel="stylesheet" href="http://127.0.0.1:9/s.css">\n\n'
    '<script>alert(1)</script> [click](javascript:alert(1)) <iframe src="http://127.0.0.1:9/"></iframe>\n\n'
    '[ref image][x]\n\n[x]: http://127.0.0.1:9/ref.png\n\n<a href="file:///etc/passwd">raw link</a>\n'
)


def anchors(view: ChatView) -> list[str]:
    """Every link target in the document, as the view would hand it to anchorClicked."""
    found, block = [], view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isAnchor() and fmt.anchorHref():
                found.append(fmt.anchorHref())
            it += 1
        block = block.next()
    return found


def has_images(view: ChatView) -> bool:
    block = view.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            if it.fragment().charFormat().isImageFormat():
                return True
            it += 1
        block = block.next()
    return False


def show(qtbot, text: str):
    window = open_window(qtbot)
    conversation = Conversation(title="Rendering", titled_by_user=True)
    conversation.append("user", "Show me")
    answer = conversation.append("assistant", text)
    seed_store(window, conversation)
    window.chat.open_conversation(conversation.id)
    return window, answer


class _Browser(QObject):
    """Stands in for the system browser: QDesktopServices hands it the URLs it would open."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


def test_an_answer_is_drawn_as_markdown_with_highlighted_code(qtbot) -> None:
    window, answer = show(qtbot, ANSWER)
    view = window.chat_view
    text = view.toPlainText()
    assert "# Greeting" not in text and "Greeting" in text  # a heading, not its syntax
    assert "**" not in text and "```" not in text
    assert "1991" in text and "| Python |" not in text  # a table, not its pipes
    assert view.document().toHtml().count("<table") >= 2  # the table and the code block
    keyword = view.document().find("def greet")
    keyword.setPosition(keyword.selectionStart() + 1)  # inside "def": its character format
    plain = view.document().find("Here is").charFormat().foreground().color().name()
    assert keyword.charFormat().foreground().color().name() != plain, "the keyword is not highlighted"
    assert f"action:copy-code:{answer.id}:0" in anchors(view)
    assert "https://example.org/docs" in anchors(view)


def test_the_copy_link_of_a_code_block_copies_its_source(qtbot) -> None:
    window, answer = show(qtbot, ANSWER)
    window.chat_view.anchorClicked.emit(QUrl(f"action:copy-code:{answer.id}:0"))
    assert QApplication.clipboard().text() == CODE


def test_copy_as_markdown_or_as_plain_text(qtbot) -> None:
    window, answer = show(qtbot, ANSWER)
    window.chat_view.anchorClicked.emit(QUrl(f"action:copy:{answer.id}"))
    assert QApplication.clipboard().text() == ANSWER
    window.chat_view.anchorClicked.emit(QUrl(f"action:copy-plain:{answer.id}"))
    plain = QApplication.clipboard().text()
    assert "Greeting" in plain and "**" not in plain and "```" not in plain and "# " not in plain
    assert "bold" in plain and "link (https://example.org/docs)" in plain


def test_a_hostile_answer_loads_nothing_and_opens_nothing_by_itself(qtbot) -> None:
    browser = _Browser()
    for scheme in ("http", "https", "file", "javascript", "data"):
        QDesktopServices.setUrlHandler(scheme, browser, "open")
    try:
        window, _ = show(qtbot, HOSTILE)
        view = window.chat_view
        QApplication.processEvents()  # pending layout; grab() then lays out and paints at once,
        view.grab()  # which is when Qt would ask for resources
        assert view.resources_refused == [] and not has_images(view)
        assert browser.opened == []
        allowed = ("action:", "http://127.0.0.1:9/", "llamadesk:")
        assert all(href.startswith(allowed) for href in anchors(view))
        text = view.toPlainText()
        assert "<script>alert(1)</script>" in text  # shown as text, harmless
        assert "[image: tracker]" in text
        for href in anchors(view):  # clicking: only http(s) goes to the browser, on the click
            view.anchorClicked.emit(QUrl(href))
        assert all(url.startswith("http://127.0.0.1:9/") for url in browser.opened)
        view.anchorClicked.emit(QUrl("javascript:alert(1)"))
        view.anchorClicked.emit(QUrl("file:///etc/passwd"))
        assert not any(url.startswith(("javascript", "file")) for url in browser.opened)
    finally:
        for scheme in ("http", "https", "file", "javascript", "data"):
            QDesktopServices.unsetUrlHandler(scheme)


def test_the_view_refuses_to_load_any_resource(qtbot) -> None:
    view = ChatView()
    qtbot.addWidget(view)
    view.setHtml('<p>x</p><img src="http://127.0.0.1:9/x.png"><img src="file:///etc/hostname">')
    view.grab()
    assert view.resources_refused  # Qt asked...
    assert not view.document().resource(2, QUrl("http://127.0.0.1:9/x.png"))  # ...and got nothing


def test_jump_to_latest_appears_when_scrolled_up(qtbot) -> None:
    conversation = Conversation(title="Long", titled_by_user=True)
    for i in range(40):
        conversation.append("user" if i % 2 == 0 else "assistant", f"Message {i} " + "words " * 60)
    window = open_window(qtbot)
    seed_store(window, conversation)
    window.chat.open_conversation(conversation.id)
    view, bar = window.chat_view, window.chat_view.verticalScrollBar()
    assert bar.value() == bar.maximum() and not view.jump_button.isVisible()
    bar.setValue(0)
    assert view.jump_button.isVisible()
    view.append_text(" more streamed text")  # a growing answer does not pull the reader down
    assert bar.value() == 0
    view.jump_button.click()
    assert bar.value() == bar.maximum() and not view.jump_button.isVisible()
