"""The context meter, the overflow policies (on a small context), the system prompt, load settings."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.core.chat.context_window import OverflowPolicy
from app.core.conversations.conversation import Conversation
from app.core.conversations.store import ConversationStore
from app.ui.main_window import MainWindow
from tests.ui.conftest import seed_store, send

SMALL_CONTEXT = 512


def reload_with_context(qtbot, window: MainWindow, n_ctx: int) -> None:
    """Through the Model tab, as a user would: set the context length, press Reload."""
    panel = window.load_settings_panel
    panel.context.setValue(n_ctx)
    assert panel.apply_button.isEnabled()
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000) as loaded:
        panel.apply_button.click()
    assert loaded.args[0].n_ctx == n_ctx
    assert not panel.apply_button.isEnabled()  # the shown settings are the loaded ones


def long_chat(turns: int = 12) -> Conversation:
    chat = Conversation(title="Long chat", titled_by_user=True)
    for i in range(turns):
        chat.append("user", f"Question {i}: tell me about mountain number {i} and its animals.")
        chat.append("assistant", f"Answer {i}: " + "The mountain is tall and the llamas graze there. " * 4)
    return chat


@pytest.fixture
def small_window(qtbot, window):
    reload_with_context(qtbot, window, SMALL_CONTEXT)
    window.sampling_panel.rows["max_tokens"].spin.setValue(16)
    window.sampling_panel.rows["temperature"].spin.setValue(0.0)
    chat = long_chat()
    seed_store(window, chat)
    window.chat.open_conversation(chat.id)
    return window


def stored(window: MainWindow, conversation_id: str) -> Conversation:
    store = ConversationStore(window.store.path)
    try:
        return store.load(conversation_id)
    finally:
        store.close()


def test_the_meter_counts_the_draft_as_the_user_types(qtbot, window) -> None:
    meter = window.context_meter
    qtbot.waitUntil(lambda: meter.n_ctx == window.chat.model.n_ctx, timeout=5_000)
    empty = meter.used
    qtbot.keyClicks(window.composer, "Tell me everything about llamas, alpacas and vicunas. " * 5)
    qtbot.waitUntil(lambda: meter.used > empty + 40, timeout=5_000)
    assert f"/ {meter.n_ctx:,} tokens" in meter.bar.text()


def test_the_meter_follows_the_answer_and_ends_at_its_exact_count(qtbot, window) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(40)
    seen: list[int] = []
    window.chat.context_used.connect(lambda used, _n: seen.append(used))
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000) as finished:
        qtbot.keyClicks(window.composer, "Write a poem about the Andes.")
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    stats = finished.args[0]
    assert len(set(seen)) >= 3, "the meter did not move while the answer streamed"
    assert window.context_meter.used == stats.prompt_tokens + stats.completion_tokens


@pytest.mark.parametrize("policy, where", [(OverflowPolicy.DROP_OLDEST, "from the start"),
                                           (OverflowPolicy.KEEP_FIRST_LAST, "from the middle")])
def test_overflow_drops_turns_and_says_so(qtbot, small_window, policy, where) -> None:
    window = small_window
    window.context_meter.set_policy(policy)
    conversation = window.chat.conversation
    before = len(conversation.messages)
    send(qtbot, window, "And which mountain is the tallest?")
    answer = conversation.thread()[-1]
    assert answer.role == "assistant" and answer.text
    record = answer.generation
    assert record.dropped_messages > 0
    assert record.prompt_tokens + record.completion_tokens <= SMALL_CONTEXT
    assert "were not sent to the model for this answer" in window.chat_view.toPlainText()
    assert where in window.chat_view.toPlainText()
    assert len(conversation.messages) == before + 2  # nothing is deleted from the chat itself
    again = stored(window, conversation.id)
    assert len(again.messages) == before + 2 and again.thread()[-1].generation.dropped_messages > 0


def test_stop_policy_refuses_and_changes_nothing(qtbot, small_window) -> None:
    window = small_window
    window.context_meter.set_policy(OverflowPolicy.STOP)
    conversation = window.chat.conversation
    before = [m.text for m in conversation.thread()]
    with qtbot.waitSignal(window.chat.error, timeout=60_000) as error:
        qtbot.keyClicks(window.composer, "And which mountain is the tallest?")
        qtbot.keyClick(window.composer, Qt.Key.Key_Return)
    assert "context" in error.args[0]
    qtbot.waitUntil(lambda: not window.chat.generating, timeout=5_000)
    assert window.banner.isVisible()
    assert [m.text for m in conversation.thread()] == before
    assert [m.text for m in stored(window, conversation.id).thread()] == before
    assert window.composer.toPlainText() == "And which mountain is the tallest?"  # nothing typed is lost
    window.context_meter.set_policy(OverflowPolicy.DROP_OLDEST)  # the user picks another policy
    window.composer.clear()
    send(qtbot, window, "And which mountain is the tallest?")
    assert conversation.thread()[-1].generation.dropped_messages > 0


def test_refused_regenerate_and_edit_leave_the_versions_as_they_were(qtbot, small_window) -> None:
    window = small_window
    window.context_meter.set_policy(OverflowPolicy.STOP)
    conversation = window.chat.conversation
    last_answer, last_question = conversation.thread()[-1], conversation.thread()[-2]
    before = [m.id for m in conversation.thread()]
    order = [s.id for s in window.conversations.summaries]
    for action, message in (("regenerate", last_answer), ("edit", last_question)):
        with qtbot.waitSignal(window.chat.error, timeout=60_000):
            if action == "edit":
                window.chat.edit(message.id, "A different question about mountains?")
            else:
                window.chat.regenerate(message.id)
        qtbot.waitUntil(lambda: not window.chat.generating, timeout=5_000)
        assert [m.id for m in conversation.thread()] == before
        assert len(conversation.versions(message)) == 1
        assert [m.id for m in stored(window, conversation.id).thread()] == before
        assert len(stored(window, conversation.id).messages) == len(conversation.messages)
    assert [s.id for s in window.conversations.summaries] == order  # not moved to the top either
    assert window.composer.toPlainText() == "A different question about mountains?"


def test_a_refused_first_message_leaves_no_conversation_behind(qtbot, window) -> None:
    reload_with_context(qtbot, window, SMALL_CONTEXT)
    window.context_meter.set_policy(OverflowPolicy.STOP)
    window.chat.new_conversation()
    chats = len(window.conversations.summaries)
    window.composer.setPlainText("llama " * 1500)
    with qtbot.waitSignal(window.chat.error, timeout=60_000):
        window.composer.submit()
    qtbot.waitUntil(lambda: not window.chat.generating, timeout=5_000)
    assert len(window.conversations.summaries) == chats
    assert window.store.list_conversations(with_counts=False) == window.conversations.summaries
    assert window.composer.toPlainText().strip() == ("llama " * 1500).strip()


def test_a_prompt_larger_than_the_context_is_refused_under_every_policy(qtbot, small_window) -> None:
    window = small_window
    huge = "llama " * 1500
    for policy in OverflowPolicy:
        window.context_meter.set_policy(policy)
        with qtbot.waitSignal(window.chat.error, timeout=60_000) as error:
            window.composer.setPlainText(huge)
            window.composer.submit()
        assert "context holds" in error.args[0]
        qtbot.waitUntil(lambda: not window.chat.generating, timeout=5_000)
        window.composer.clear()
    send(qtbot, window, "Still there?")  # the app carries on
    assert window.chat.conversation.thread()[-1].text


def test_the_system_prompt_is_saved_with_the_conversation_and_sent(qtbot, window) -> None:
    window.sampling_panel.rows["max_tokens"].spin.setValue(8)
    send(qtbot, window, "Hello")
    conversation = window.chat.conversation
    panel = window.system_prompt_panel
    counted: list[int] = []
    window.chat.context_used.connect(lambda used, _n: counted.append(used))
    panel.editor.setPlainText("You are a pirate. Answer like one.")
    panel.commit()
    assert conversation.system_prompt == "You are a pirate. Answer like one."
    assert stored(window, conversation.id).system_prompt == "You are a pirate. Answer like one."
    assert window.side_tabs.tabText(1) == "System prompt •"
    send(qtbot, window, "Who are you?")
    assert window.chat.conversation.thread()[-1].generation.prompt_tokens > 20
    window.chat.new_conversation()
    assert panel.prompt() == ""  # a new chat starts from the default, not from the open chat's


def test_the_meter_follows_a_deleted_message_and_a_version_switch(qtbot, window) -> None:
    """Issue 12: the meter used to keep the old count after these."""
    window.sampling_panel.rows["max_tokens"].spin.setValue(8)
    send(qtbot, window, "Hello")
    send(qtbot, window, "Tell me about the sea, the waves, the wind and the lighthouses on the coast.")
    counts: list[int] = []
    window.chat.context_used.connect(lambda used, _n: counts.append(used))
    with qtbot.waitSignal(window.chat.context_used, timeout=30_000):
        qtbot.waitUntil(lambda: not window.chat.generating)
        window.chat.delete_message(window.chat.conversation.thread()[2].id)  # the long question
    after_delete = counts[-1]
    assert [m.role for m in window.chat.conversation.thread()] == ["user", "assistant"]
    with qtbot.waitSignal(window.chat.answer_finished, timeout=60_000):
        window.chat.regenerate(window.chat.conversation.thread()[-1].id)
    with qtbot.waitSignal(window.chat.context_used, timeout=30_000) as switched:
        window.chat.show_version(window.chat.conversation.thread()[-1].id, -1)
    assert switched.args[0] > 0 and after_delete > 0


def test_saved_system_prompts(qtbot, window) -> None:
    panel = window.system_prompt_panel
    panel.editor.setPlainText("Always answer in French.")
    panel.save_named("French")
    names = [panel.saved.itemData(i) for i in range(panel.saved.count())]
    assert "French" in names and "Helpful assistant" in names
    panel.editor.setPlainText("")
    panel.commit()
    panel.saved.activated.emit(names.index("French"))
    assert panel.prompt() == "Always answer in French."
    assert window.chat.conversation.system_prompt == "Always answer in French."
    panel.save_named("Helpful assistant")  # built in: refused, with a reason
    assert "built-in" in panel.hint.text()


def test_the_meter_says_full_when_the_next_message_would_be_cut(qtbot, small_window) -> None:
    window = small_window
    meter = window.context_meter
    qtbot.waitUntil(lambda: meter.n_ctx == SMALL_CONTEXT and meter.used > SMALL_CONTEXT, timeout=10_000)
    # the long chat is past it; the chat's own settings (max tokens 1,024) keep a quarter of the
    # context for the answer, and the meter says so (issue 12, item 15)
    assert "Full (128 tokens are kept for the answer): older messages will be left out" in meter.text()
    window.context_meter.set_policy(OverflowPolicy.KEEP_FIRST_LAST)
    qtbot.waitUntil(lambda: "messages in the middle will be left out" in meter.text(), timeout=5_000)
    window.context_meter.set_policy(OverflowPolicy.STOP)
    qtbot.waitUntil(lambda: "the next message will be refused" in meter.text(), timeout=5_000)
