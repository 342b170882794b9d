"""A reasoning model's answer (issue 12, "Reasoning models"): its <think>…</think> thought is kept
apart from the answer as it streams, saved with it, announced on its own signal, never sent back to
the model; regenerate and continue keep working."""

from __future__ import annotations

from app.core.conversations.store import ConversationStore
from app.session.chat_session import ChatSession
from tests.fakes.fake_backend import Script

REASONED = ["<think>", "I add", " two and two…</think>", "The answer"]


def on_disk(store: ConversationStore, chat: ChatSession) -> list[tuple[str, str, str]]:
    """(role, thought, text) of the current thread, as a fresh connection reads it."""
    fresh = ConversationStore(store.path)
    try:
        return [(m.role, m.thought, m.text) for m in fresh.load(chat.conversation.id).thread()]
    finally:
        fresh.close()


def answer(qtbot, chat: ChatSession, send) -> None:
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        assert send()


def test_the_thought_is_kept_apart_announced_and_never_sent_back(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=REASONED), Script(deltas=["Five."])]
    thoughts: list[str] = []
    texts: list[str] = []
    chat.thought_appended.connect(thoughts.append)
    chat.text_appended.connect(texts.append)
    chat.writer_clock = iter([100.0, 112.5]).__next__  # the first thought piece, the closing tag
    answer(qtbot, chat, lambda: chat.send("What is 2 + 2?"))
    assert on_disk(store, chat) == [("user", "", "What is 2 + 2?"),
                                    ("assistant", "I add two and two…", "The answer")]
    assert "".join(thoughts) == "I add two and two…"
    assert "".join(texts) == "What is 2 + 2?The answer"  # the view's answer text holds no thought
    assert chat.conversation.thread()[-1].generation.thought_s == 12.5
    answer(qtbot, chat, lambda: chat.send("And 2 + 3?"))
    assert backend.requests[-1]["messages"] == [
        {"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "The answer"},
        {"role": "user", "content": "And 2 + 3?"}]


def test_a_thought_is_on_disk_while_the_model_still_thinks(qtbot, chat, store, backend) -> None:
    backend.auto = False
    backend.scripts = [Script(deltas=REASONED)]
    chat.save_interval_s = 0  # every flush is saved
    assert chat.send("What is 2 + 2?")
    with qtbot.waitSignal(chat.thought_appended, timeout=5000):
        backend.current.release(3)  # the prompt, "<think>", "I add"
    assert on_disk(store, chat)[-1] == ("assistant", "I add", "")
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        chat.stop()
    stopped = chat.conversation.thread()[-1]
    assert (stopped.thought, stopped.text, stopped.incomplete) == ("I add", "", True)


def test_continuing_an_answer_stopped_mid_thought_goes_on_thinking(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=["<think>", "I add"], stop_reason="length"),
                       Script(deltas=[" then check.", "</think>", "Four."])]
    answer(qtbot, chat, lambda: chat.send("What is 2 + 2?"))
    stopped = chat.conversation.thread()[-1]
    answer(qtbot, chat, lambda: chat.continue_answer(stopped.id))
    assert on_disk(store, chat)[-1] == ("assistant", "I add\n\nthen check.", "Four.")
    answer(qtbot, chat, lambda: chat.continue_answer(stopped.id))  # after the thought: more answer
    assert on_disk(store, chat)[-1] == ("assistant", "I add\n\nthen check.", "Four.Hello, world.")


def test_a_regenerated_answer_has_its_own_thought(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=["<think>First idea.</think>One"]),
                       Script(deltas=["<think>", "Second idea.", "</think>", "Two"])]
    answer(qtbot, chat, lambda: chat.send("Count"))
    first = chat.conversation.thread()[-1]
    answer(qtbot, chat, lambda: chat.regenerate(first.id))
    assert on_disk(store, chat)[-1] == ("assistant", "Second idea.", "Two")
    versions = chat.conversation.versions(chat.conversation.thread()[-1])
    assert [(m.thought, m.text) for m in versions] == [("First idea.", "One"), ("Second idea.", "Two")]


def test_an_answer_without_a_thought_announces_none(qtbot, chat, store) -> None:
    thoughts: list[str] = []
    chat.thought_appended.connect(thoughts.append)
    answer(qtbot, chat, lambda: chat.send("Hi"))
    assert thoughts == [] and on_disk(store, chat)[-1] == ("assistant", "", "Hello, world.")
    assert chat.conversation.thread()[-1].generation.thought_s == 0.0
