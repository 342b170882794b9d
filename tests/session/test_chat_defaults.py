"""Issue 12, Defaults vs this chat: a new chat starts from the user's defaults, not from the chat
that was open; "save as default" is explicit and kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.chat.defaults import DefaultsStore
from app.core.chat.sampling import SamplingParams
from app.core.common import settings_file
from app.core.conversations.store import ConversationStore
from app.session.chat_defaults import ChatDefaultsSession
from app.session.chat_session import ChatSession
from app.session.sampling import SamplingSettings
from tests.fakes.fake_backend import FakeBackend


@pytest.fixture
def defaults_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "chat-defaults.json"


def make_chat(store: ConversationStore, defaults: ChatDefaultsSession) -> ChatSession:
    sampling = SamplingSettings(defaults.values.sampling)  # as Workspace makes it
    return ChatSession(FakeBackend(), store, sampling, defaults=defaults)


def chat_with_one_answer(qtbot, store, defaults: ChatDefaultsSession) -> ChatSession:
    chat = make_chat(store, defaults)
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        assert chat.send("Hello")
    return chat


def test_a_new_chat_starts_from_the_defaults_not_from_the_open_chat(qtbot, store, defaults_path) -> None:
    chat = chat_with_one_answer(qtbot, store, ChatDefaultsSession(DefaultsStore(defaults_path)))
    chat.sampling.update(temperature=1.7)
    chat.set_system_prompt("You are a pirate.")
    chat.new_conversation()
    assert chat.conversation.sampling == chat.sampling.params == SamplingParams()  # was: temperature 1.7
    assert chat.conversation.system_prompt == ""  # was: the pirate
    older = ConversationStore(store.path)
    try:  # the chat that was open keeps its own
        kept = older.load(older.list_conversations()[0].id)
        assert kept.sampling.temperature == 1.7 and kept.system_prompt == "You are a pirate."
    finally:
        older.close()


def test_saved_defaults_are_what_new_chats_start_from_after_a_restart(qtbot, store, defaults_path) -> None:
    defaults = ChatDefaultsSession(DefaultsStore(defaults_path))
    chat = chat_with_one_answer(qtbot, store, defaults)
    chosen = SamplingParams(temperature=0.3, top_k=12, stop=("END",))
    chat.sampling.set_params(chosen)
    with qtbot.waitSignal(defaults.saved, timeout=5000) as saved:
        defaults.save_sampling(chat.sampling.params)
    assert saved.args == ["New chats will start with these sampling settings."]
    with qtbot.waitSignal(defaults.saved, timeout=5000):
        defaults.save_system_prompt("  Answer in French.\n")
    chat.sampling.update(temperature=1.2)  # this chat drifts on; the defaults stay
    chat.new_conversation()
    assert chat.conversation.sampling == chat.sampling.params == chosen
    assert chat.conversation.system_prompt == "Answer in French."

    again = ChatDefaultsSession(DefaultsStore(defaults_path))  # the next start
    first = make_chat(store, again)
    assert first.conversation.sampling == first.sampling.params == chosen
    assert first.conversation.system_prompt == "Answer in French."


def test_a_damaged_defaults_file_gives_the_built_in_ones_and_a_notice(qtbot, store, defaults_path) -> None:
    defaults_path.parent.mkdir(parents=True)
    defaults_path.write_text('{"sampling": {"temperature": "hot"}}')
    chat = make_chat(store, ChatDefaultsSession(DefaultsStore(defaults_path)))
    assert chat.conversation.sampling == SamplingParams() and chat.conversation.system_prompt == ""
    [notice] = settings_file.take_notices()
    assert "Your defaults for new chats" in notice and "built-in defaults" in notice
    assert defaults_path.with_name("chat-defaults.json.bad").exists()


def test_defaults_that_cannot_be_saved_are_said_and_still_used_until_closing(qtbot, store, tmp_path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    defaults = ChatDefaultsSession(DefaultsStore(blocked / "chat-defaults.json"))
    chat = chat_with_one_answer(qtbot, store, defaults)
    with qtbot.waitSignal(defaults.failed, timeout=5000) as failed:
        defaults.save_sampling(SamplingParams(temperature=0.4))
    assert "could not be saved" in failed.args[0] and "until Llamadesk closes" in failed.args[0]
    chat.new_conversation()
    assert chat.conversation.sampling.temperature == 0.4
