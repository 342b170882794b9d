"""Issue 12, "Messages that read like a chat": the user's turns stand apart from the model's, the
actions and time of a message show over it on hover (and stay in the context menu for the keyboard),
and the version arrows are buttons large enough to hit."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QApplication

from app.core.conversations.conversation import Conversation, Message
from app.ui.chat.chat_view import ChatView
from app.ui.chat.message_actions_bar import ACTION_NAMES
from app.ui.chat.message_footer import message_time
from app.ui.shell.theme import DARK, LIGHT
from tests.ui.test_chat_rendering import anchors

QUESTION = "Which animals live in the Andes?"
ANSWER = "Llamas, alpacas, vicuñas and guanacos."


def chat() -> tuple[Conversation, Message, Message]:
    conversation = Conversation(title="Andes", titled_by_user=True)
    question = conversation.append("user", QUESTION)
    answer = conversation.append("assistant", ANSWER)
    return conversation, question, answer


def shown(qtbot, conversation: Conversation) -> ChatView:
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    view.show_conversation(conversation)
    return view


def point_in(view: ChatView, text: str) -> QPoint:
    """Where some text is drawn, in viewport pixels."""
    found = view.document().find(text)
    cursor = QTextCursor(view.document())
    cursor.setPosition(found.selectionStart() + 2)
    return view.cursorRect(cursor).center()


def hover(qtbot, view: ChatView, text: str) -> None:
    point = point_in(view, text)
    qtbot.mouseMove(view.viewport(), point + QPoint(1, 1))  # Qt drops a move to where the mouse was
    qtbot.mouseMove(view.viewport(), point)


def test_the_users_turns_are_in_a_tinted_band_and_the_models_on_the_page(qtbot) -> None:
    conversation, question, answer = chat()
    view = shown(qtbot, conversation)
    root = view.document().rootFrame()
    band = view.document().find(QUESTION).currentFrame()
    assert band is not root, "the question is not set apart"
    assert band.frameFormat().background().color().name() == LIGHT.user_bg
    assert band.frameFormat().leftMargin() > 0 and band.frameFormat().padding() > 0
    reply = view.document().find("Llamas, alpacas")
    assert reply.currentFrame() is root, "the answer is drawn in a band too"
    assert reply.block().blockFormat().background().style() == Qt.BrushStyle.NoBrush
    for name in ("You", "Assistant"):  # each turn is named, with space above it
        line = view.document().find(name, 0).block()
        assert line.text() == name and line.blockFormat().topMargin() > 0
    view.set_colors(DARK)  # the band follows the theme
    band = view.document().find(QUESTION).currentFrame()
    assert band.frameFormat().background().color().name() == DARK.user_bg != LIGHT.user_bg


def test_a_streamed_question_goes_into_its_band_and_the_answer_after_it(qtbot) -> None:
    conversation, question, answer = chat()
    view = shown(qtbot, Conversation(title="Empty"))
    view.set_conversation(conversation)
    view.begin_message("user", question.id)
    view.append_text(QUESTION)
    view.end_message(question)
    view.begin_message("assistant", answer.id)
    view.append_text("Llamas, ")
    view.append_text("alpacas, vicuñas and guanacos.")
    assert view.last_message_text() == ANSWER
    view.end_message(answer)
    root = view.document().rootFrame()
    assert view.document().find(QUESTION).currentFrame() is not root
    assert view.document().find("Llamas, alpacas").currentFrame() is root


def test_actions_are_not_written_under_every_message(qtbot) -> None:
    conversation, _, answer = chat()
    view = shown(qtbot, conversation)
    text = view.toPlainText()
    assert not any(word in text for word in ("Edit", "Regenerate", "Delete", "Copy text"))
    kept = ("action:edit", "action:delete", "action:regenerate")
    assert not any(href.startswith(kept) for href in anchors(view))


def test_hovering_a_message_shows_its_actions_and_time_and_a_click_asks_for_the_action(qtbot) -> None:
    conversation, question, answer = chat()
    question.created = datetime.now().replace(hour=14, minute=5).timestamp()
    view = shown(qtbot, conversation)
    bar = view.actions_bar
    assert bar.isVisible() and bar.message_id == answer.id, "the last answer shows its actions"
    hover(qtbot, view, QUESTION)
    assert bar.isVisible() and bar.message_id == question.id
    assert bar.offered() == ["edit", "copy", "delete"]
    assert bar.time_label.text() == "14:05" and "14:05" in bar.time_label.toolTip()
    question_line = view.name_line(question.id)
    assert question_line[0] <= bar.y() and bar.geometry().bottom() <= question_line[1] + 1, "not on its line"
    with qtbot.waitSignal(view.action_requested) as asked:
        qtbot.mouseClick(bar.buttons["edit"], Qt.MouseButton.LeftButton)
    assert asked.args == ["edit", question.id]
    hover(qtbot, view, "Llamas, alpacas")
    assert view.actions.hovered == answer.id
    assert bar.offered() == ["regenerate", "copy", "copy-plain", "delete"]
    hover(qtbot, view, QUESTION)
    QApplication.sendEvent(view.viewport(), QEvent(QEvent.Type.Leave))  # the mouse goes away
    assert bar.isVisible() and bar.message_id == answer.id


def test_the_bar_follows_its_message_when_the_chat_scrolls(qtbot) -> None:
    conversation = Conversation(title="Long", titled_by_user=True)
    for i in range(20):
        conversation.append("user" if i % 2 == 0 else "assistant", f"Message {i} " + "words " * 40)
    view = shown(qtbot, conversation)
    bar, last = view.actions_bar, conversation.thread()[-1]
    assert bar.message_id == last.id
    before = bar.y()
    view.verticalScrollBar().setValue(view.verticalScrollBar().value() - 100)
    assert bar.y() == before + 100


def test_the_version_arrows_are_buttons_large_enough_to_hit(qtbot) -> None:
    conversation, question, first = chat()
    second = conversation.add_version(first, "assistant", "Condors, too.")
    view = shown(qtbot, conversation)
    bar = view.actions_bar
    assert bar.message_id == second.id
    previous, following = bar.buttons["previous"], bar.buttons["next"]
    assert previous.isVisible() and bar.version_label.text() == "2/2"
    for button in (previous, following):
        assert button.width() >= 24 and button.height() >= 24, "too small to hit"
    assert not following.isEnabled(), "there is no later version"
    with qtbot.waitSignal(view.action_requested) as asked:
        qtbot.mouseClick(previous, Qt.MouseButton.LeftButton)
    assert asked.args == ["previous", second.id]
    assert "‹ 2/2 ›" in view.toPlainText()  # still said under the answer, its arrows links for Tab
    assert f"action:previous:{second.id}" in anchors(view)
    hover(qtbot, view, QUESTION)  # a message without versions has no arrows
    assert not previous.isVisible() and "previous" not in bar.offered()


def test_the_actions_are_in_the_context_menu_for_the_keyboard(qtbot) -> None:
    conversation, question, answer = chat()
    answer.incomplete = True
    view = shown(qtbot, conversation)
    cursor = QTextCursor(view.document())
    cursor.setPosition(view.document().find(QUESTION).selectionStart())
    view.setTextCursor(cursor)  # where Tab or the arrow keys left it
    menu = view.context_menu(QPoint(0, 0), keyboard=True)
    actions = {a.objectName(): a for a in menu.actions() if a.objectName() in ACTION_NAMES}
    assert list(actions) == ["edit", "copy", "delete"]
    with qtbot.waitSignal(view.action_requested) as asked:
        actions["delete"].trigger()
    assert asked.args == ["delete", question.id]
    menu = view.context_menu(point_in(view, "Llamas, alpacas"))  # the mouse's way: where it points
    names = [a.objectName() for a in menu.actions()]
    assert names.index("continue") < names.index("regenerate"), "a cut answer offers Continue first"
    assert "Continue" in view.toPlainText(), "Continue stays in the text, reachable by Tab"


def test_a_message_being_written_offers_no_actions(qtbot) -> None:
    conversation, question, answer = chat()
    view = shown(qtbot, Conversation(title="Empty"))
    view.set_conversation(conversation)
    view.begin_message("user", question.id)
    view.append_text(QUESTION)
    view.end_message(question)
    view.begin_message("assistant", answer.id)
    view.append_text("Llamas, alpacas")
    assert not view.actions_bar.isVisible()
    hover(qtbot, view, "Llamas, alpacas")
    assert not view.actions_bar.isVisible()
    names = [a.objectName() for a in view.context_menu(point_in(view, "Llamas, alpacas")).actions()]
    assert not set(names) & set(ACTION_NAMES)
    view.append_text(", vicuñas and guanacos.")
    view.end_message(answer)
    assert view.actions_bar.isVisible() and view.actions_bar.message_id == answer.id


def test_the_time_says_the_day_when_it_is_not_today() -> None:
    now = datetime(2026, 3, 12, 9, 30).timestamp()  # a Thursday
    assert message_time(datetime(2026, 3, 12, 14, 5).timestamp(), now)[0] == "14:05"
    assert message_time(datetime(2026, 3, 9, 14, 5).timestamp(), now)[0] == "Mon 14:05"
    assert message_time(datetime(2026, 1, 2, 8, 0).timestamp(), now)[0] == "2 Jan 08:00"
    short, full = message_time(datetime(2024, 11, 3, 8, 0).timestamp(), now)
    assert short == "3 Nov 2024" and full == "Sunday 3 November 2024, 08:00"
