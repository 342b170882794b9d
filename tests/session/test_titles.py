"""Issue 12, Titles: after the first answer the loaded model proposes a short title (unless the user
named the chat), without ever getting in the user's way. A scripted backend, the real SQLite store;
one test with the real model."""

from __future__ import annotations

import pytest

from app.core.chat.sampling import SamplingParams
from app.core.chat.titles import TITLE_MAX_TOKENS, TITLE_PREFIX, title_request
from app.core.conversations.conversation import title_from
from app.core.conversations.store import ConversationStore
from app.core.inference.types import EngineError, LoadOptions
from app.session.chat_session import ChatSession
from app.session.sampling import SamplingSettings
from tests.fakes.fake_backend import FakeBackend, Script

QUESTION = "How do lighthouses work at night?"


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(auto=False)  # each stream is released by the test


@pytest.fixture
def chat(qtbot, store, backend) -> ChatSession:
    return ChatSession(backend, store, SamplingSettings(), propose_titles=True)


def stored_title(store: ConversationStore, conversation_id: str) -> tuple[str, bool]:
    fresh = ConversationStore(store.path)
    try:
        conversation = fresh.load(conversation_id)
        return conversation.title, conversation.titled_by_user
    finally:
        fresh.close()


def first_answer(qtbot, chat: ChatSession, backend: FakeBackend) -> None:
    """The first question, answered; the title request (if any) is asked but not yet answered."""
    assert chat.send(QUESTION)
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        backend.current.release()


def test_the_models_title_is_saved_and_announced(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(), Script(deltas=["**Light", 'houses at Night**".'])]
    first_answer(qtbot, chat, backend)
    request = backend.requests[-1]
    assert request["messages"] == title_request(QUESTION, "Hello, world.")
    assert request["cache_key"] is None  # the chat's own KV cache is kept aside, not overwritten
    assert request["sampling"].max_tokens == TITLE_MAX_TOKENS and request["sampling"].temperature <= 0.3
    assert request["continue_text"] == TITLE_PREFIX  # the model carries on a title, not the chat
    assert chat.conversation.title == title_from(QUESTION)  # the first-message title meanwhile
    with qtbot.waitSignal(chat.retitled, timeout=5000) as retitled, qtbot.waitSignal(chat.list_changed):
        backend.current.release()
    assert retitled.args == [chat.conversation.id, "Lighthouses at Night"]
    assert chat.conversation.title == "Lighthouses at Night"
    assert stored_title(store, chat.conversation.id) == ("Lighthouses at Night", False)  # not the user's


def test_a_chat_the_user_renamed_is_not_retitled(qtbot, chat, store, backend) -> None:
    assert chat.send(QUESTION)
    store.rename(chat.conversation.id, "My lighthouse notes")  # what Conversations.rename does
    chat.on_renamed(chat.conversation.id, "My lighthouse notes")
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        backend.current.release()
    assert len(backend.requests) == 1 and not chat.titles.running  # no title was asked for
    assert stored_title(store, chat.conversation.id) == ("My lighthouse notes", True)


def test_a_rename_while_the_title_is_written_wins(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(), Script(deltas=["Lighthouses"])]
    first_answer(qtbot, chat, backend)
    assert chat.titles.running
    store.rename(chat.conversation.id, "Mine")  # from the list, say, while the chat is not shown
    backend.current.release()
    qtbot.waitUntil(lambda: not chat.titles.running, timeout=5000)
    assert stored_title(store, chat.conversation.id) == ("Mine", True)


def test_sending_while_the_title_is_written_stops_it_and_the_message_goes(qtbot, chat, store,
                                                                          backend) -> None:
    errors: list[str] = []
    chat.error.connect(errors.append)
    backend.scripts = [Script(), Script(deltas=["Light", "houses"] * 20), Script(deltas=["Sure."])]
    first_answer(qtbot, chat, backend)
    title_stream = backend.current
    title_stream.release(2)  # the title is being written
    assert chat.send("And in fog?")  # was: refused, the backend busy with the title
    assert title_stream.stopped and backend.requests[-1]["messages"][-1]["content"] == "And in fog?"
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        backend.current.release()
    assert [m.text for m in chat.conversation.thread()] == [QUESTION, "Hello, world.", "And in fog?", "Sure."]
    assert not chat.titles.running and errors == []
    assert stored_title(store, chat.conversation.id) == (title_from(QUESTION), False)


def test_regenerating_while_the_title_is_written_stops_it(qtbot, chat, backend) -> None:
    first_answer(qtbot, chat, backend)
    title_stream = backend.current
    assert chat.regenerate(chat.conversation.thread()[-1].id)
    assert title_stream.stopped and backend.current is not title_stream
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        backend.current.release()


@pytest.mark.parametrize("script", [Script(deltas=['"', '..."']), Script(deltas=[]),
                                    Script(deltas=["Ti"], fail=EngineError("The model failed."))])
def test_a_reply_with_no_usable_title_keeps_the_first_message_title_silently(qtbot, chat, store, backend,
                                                                             script) -> None:
    said: list[str] = []
    chat.error.connect(said.append)
    chat.retitled.connect(lambda *args: said.append("retitled"))
    backend.scripts = [Script(), script]
    first_answer(qtbot, chat, backend)
    backend.current.release()
    qtbot.waitUntil(lambda: not chat.titles.running, timeout=5000)
    assert said == [] and chat.conversation.title == title_from(QUESTION)
    assert stored_title(store, chat.conversation.id) == (title_from(QUESTION), False)


def test_a_stopped_first_answer_asks_for_no_title(qtbot, chat, backend) -> None:
    assert chat.send(QUESTION)
    backend.current.release(2)
    with qtbot.waitSignal(chat.answer_finished, timeout=5000) as finished:
        chat.stop()
    assert finished.args[0].stop_reason == "user" and len(backend.requests) == 1


def test_the_real_model_proposes_a_title(qtbot, store, model_path) -> None:
    from app.session.local_backend import LocalBackend

    backend = LocalBackend()
    with qtbot.waitSignal(backend.loaded, timeout=60_000):
        backend.load(str(model_path), LoadOptions(n_ctx=1024))
    sampling = SamplingSettings(SamplingParams(temperature=0.0, seed=1, max_tokens=40))
    chat = ChatSession(backend, store, sampling, propose_titles=True)
    try:
        with qtbot.waitSignal(chat.retitled, timeout=120_000) as retitled:
            assert chat.send("Explain briefly how a lighthouse lens makes its light visible far away.")
        title = retitled.args[1]
        assert title.strip() and title == chat.conversation.title
        assert stored_title(store, chat.conversation.id) == (title, False)
    finally:
        chat.shutdown()
