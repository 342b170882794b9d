"""ChatSession without a window or a model: a scripted backend, the real SQLite store.

What a user relies on: every question and answer is saved as it happens, Stop keeps what was
written, versions stay reachable, a refused request changes nothing, a failed save stops the
answer and keeps what the disk holds.
"""

from __future__ import annotations

from app.core.conversations.store import ConversationStore
from app.core.inference.types import EngineError
from app.session.chat_session import ChatSession
from app.session.sampling import SamplingSettings
from tests.fakes.fake_backend import FakeBackend, Script


def stored(store: ConversationStore, chat: ChatSession) -> list[tuple[str, str, bool]]:
    """The current thread as a fresh connection reads it from disk."""
    fresh = ConversationStore(store.path)
    try:
        if chat.conversation.id not in fresh.conversation_ids():
            return []
        return [(m.role, m.text, m.incomplete) for m in fresh.load(chat.conversation.id).thread()]
    finally:
        fresh.close()


def shown(chat: ChatSession) -> list[tuple[str, str, bool]]:
    return [(m.role, m.text, m.incomplete) for m in chat.conversation.thread()]


def answer(qtbot, chat: ChatSession, send) -> object:
    with qtbot.waitSignal(chat.answer_finished, timeout=5000) as finished:
        assert send()
    return finished.args[0]


def test_a_question_and_its_answer_are_saved_and_drawn_as_they_stream(qtbot, chat, store) -> None:
    drawn: list[tuple] = []
    chat.message_started.connect(lambda _c, role, _id: drawn.append(("start", role)))
    chat.text_appended.connect(lambda text: drawn.append(("text", text)))
    chat.message_finished.connect(lambda m: drawn.append(("end", m.role)))
    stats = answer(qtbot, chat, lambda: chat.send("Hi there"))
    assert stats.stop_reason == "eos"
    assert stored(store, chat) == shown(chat) == [("user", "Hi there", False),
                                                  ("assistant", "Hello, world.", False)]
    assert drawn[:4] == [("start", "user"), ("text", "Hi there"), ("end", "user"), ("start", "assistant")]
    assert "".join(t for kind, t in drawn if kind == "text")[len("Hi there"):] == "Hello, world."
    assert drawn[-1] == ("end", "assistant")
    record = chat.conversation.thread()[-1].generation
    assert record.model_file == "fake.gguf" and record.completion_tokens == 4 and record.seed == 7


def test_the_question_is_on_disk_before_the_backend_is_asked(qtbot, chat, store, backend) -> None:
    backend.auto = False
    assert chat.send("Saved first?")
    assert backend.requests[-1]["messages"][-1] == {"role": "user", "content": "Saved first?"}
    # the empty answer is there too, marked incomplete until it ends (a kill leaves it so)
    assert stored(store, chat) == [("user", "Saved first?", False), ("assistant", "", True)]
    backend.current.release()
    qtbot.waitUntil(lambda: not chat.generating)


def test_stop_keeps_what_was_written_marked_incomplete(qtbot, chat, store, backend) -> None:
    backend.auto = False
    assert chat.send("Tell me a story")
    backend.current.release(3)  # the prompt and two deltas
    qtbot.waitUntil(lambda: "Hello, " in "".join(chat.writer._buffer) + chat.conversation.thread()[-1].text)
    with qtbot.waitSignal(chat.answer_finished, timeout=5000) as finished:
        chat.stop()
    assert finished.args[0].stop_reason == "user"
    assert shown(chat)[-1] == ("assistant", "Hello, ", True) == stored(store, chat)[-1]
    assert not chat.generating and not backend.busy


def test_continue_carries_on_the_same_message(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=["Once", " upon"], stop_reason="length"), Script(deltas=[" a time."])]
    answer(qtbot, chat, lambda: chat.send("Story"))
    first = chat.conversation.thread()[-1]
    answer(qtbot, chat, lambda: chat.continue_answer(first.id))
    assert backend.requests[-1]["continue_text"] == "Once upon"
    assert shown(chat) == stored(store, chat) == [("user", "Story", False),
                                                  ("assistant", "Once upon a time.", False)]
    assert len(chat.conversation.messages) == 2


def test_regenerate_and_edit_make_versions_and_old_ones_stay_reachable(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=["One"]), Script(deltas=["Two"]), Script(deltas=["Three"])]
    answer(qtbot, chat, lambda: chat.send("Count"))
    old = chat.conversation.thread()[-1]
    answer(qtbot, chat, lambda: chat.regenerate(old.id))
    assert shown(chat)[-1][1] == "Two" and stored(store, chat)[-1][1] == "Two"
    chat.show_version(chat.conversation.thread()[-1].id, -1)
    assert shown(chat)[-1][1] == "One" == stored(store, chat)[-1][1]
    question = chat.conversation.thread()[0]
    answer(qtbot, chat, lambda: chat.edit(question.id, "Count again"))
    expected = [("user", "Count again", False), ("assistant", "Three", False)]
    assert shown(chat) == stored(store, chat) == expected
    chat.show_version(chat.conversation.thread()[0].id, -1)  # the old question, with its own answers
    assert shown(chat) == [("user", "Count", False), ("assistant", "One", False)] == stored(store, chat)


def test_a_refused_request_changes_nothing_and_returns_the_draft(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=[], fail=EngineError("Too long.", kind=EngineError.CONTEXT_TOO_SMALL))]
    errors: list[str] = []
    chat.error.connect(errors.append)
    with qtbot.waitSignal(chat.draft_returned, timeout=5000) as draft:
        assert chat.send("A very long question")
    assert shown(chat) == [] == stored(store, chat)
    assert chat.conversation.id not in store.conversation_ids()  # the new chat was never begun
    assert draft.args == ["A very long question"] and errors == ["Too long."]


def test_a_failure_mid_answer_keeps_the_text_and_says_why(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=["Par", "tial"], fail=EngineError("The engine stopped.",
                                                                         kind=EngineError.GENERATION_FAILED))]
    with qtbot.waitSignal(chat.error, timeout=5000) as error:
        assert chat.send("Go")
    assert error.args == ["The engine stopped."]
    assert shown(chat)[-1] == ("assistant", "Partial", True) == stored(store, chat)[-1]
    assert not chat.generating


def test_a_second_request_while_one_runs_is_refused_and_changes_nothing(qtbot, chat, store, backend) -> None:
    backend.auto = False
    assert chat.send("First")
    before = stored(store, chat)
    assert not chat.send("Second")
    assert not chat.regenerate(chat.conversation.thread()[-1].id)
    assert stored(store, chat) == before and len(backend.requests) == 1
    backend.current.release()
    qtbot.waitUntil(lambda: not chat.generating)


def test_a_full_disk_mid_answer_stops_it_and_memory_matches_the_disk(qtbot, chat, store, backend) -> None:
    backend.auto = False
    backend.scripts = [Script(deltas=["Start. ", "x" * 200_000])]
    chat.save_interval_s = 0  # every flush saves
    assert chat.send("Write a lot")
    backend.current.release(2)  # the prompt, "Start. "
    qtbot.waitUntil(lambda: stored(store, chat)[-1][1] == "Start. ")
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    with qtbot.waitSignal(chat.error, timeout=5000) as error:
        backend.current.release(1)  # more text than the disk can take
    assert "could not be saved" in error.args[0] and "full" in error.args[0].lower()
    assert not chat.generating and backend.current.stopped
    store.db.execute("PRAGMA max_page_count = 1073741823")
    expected = [("user", "Write a lot", False), ("assistant", "Start. ", True)]
    assert shown(chat) == stored(store, chat) == expected


def test_closing_mid_answer_saves_what_arrived_marked_incomplete(qtbot, chat, store, backend) -> None:
    backend.auto = False
    assert chat.send("Long answer please")
    backend.current.release(3)  # arrived, not yet iterated or flushed
    chat.shutdown()
    assert backend.closed
    assert stored(store, chat)[-1] == ("assistant", "Hello, ", True)


def test_dropped_messages_are_announced_above_the_answer(qtbot, chat, backend) -> None:
    backend.scripts = [Script(dropped=3)]
    with qtbot.waitSignal(chat.notice_inserted, timeout=5000) as notice:
        assert chat.send("Hi")
    assert notice.args[0] == chat.conversation.thread()[-1].id and "3 earlier messages" in notice.args[1]
    qtbot.waitUntil(lambda: not chat.generating)


def test_a_newer_context_count_replaces_an_older_one(qtbot, chat) -> None:
    counts: list[int] = []
    chat.context_used.connect(lambda used, n_ctx: counts.append(used))
    chat.count_context("one two three four five six")
    chat.count_context("one")
    qtbot.waitUntil(lambda: bool(counts))
    qtbot.waitUntil(lambda: not chat._counting.running)
    assert counts == [5]  # 1 word + 4: only the newer count answered


def test_deleting_a_message_brings_its_sibling_version_back(qtbot, chat, store, backend) -> None:
    backend.scripts = [Script(deltas=["A"]), Script(deltas=["B"])]
    answer(qtbot, chat, lambda: chat.send("Q"))
    answer(qtbot, chat, lambda: chat.regenerate(chat.conversation.thread()[-1].id))
    chat.delete_message(chat.conversation.thread()[-1].id)
    assert shown(chat) == [("user", "Q", False), ("assistant", "A", False)] == stored(store, chat)


def test_without_a_model_a_message_is_refused_and_nothing_is_saved(qtbot, store) -> None:
    """Issue 12: sending with no model used to save the question and an empty failed answer."""
    chat = ChatSession(FakeBackend(model=None), store, SamplingSettings())
    with qtbot.waitSignal(chat.error) as error:
        assert not chat.send("Hello?")
    assert "No model is loaded" in error.args[0] and "Download models" in error.args[0]
    assert chat.conversation.messages == [] and store.conversation_ids() == set()


def test_a_message_sent_while_the_model_loads_is_answered_once_it_has(qtbot, store) -> None:
    backend = FakeBackend(model=None)
    backend.is_loading = True
    chat = ChatSession(backend, store, SamplingSettings())
    assert chat.send("Hello?")
    qtbot.waitUntil(lambda: not chat.generating)
    assert [m.role for m in chat.conversation.thread()] == ["user", "assistant"]
