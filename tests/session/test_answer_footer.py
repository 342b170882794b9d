"""Issue 12 item 17: what an answer's footer and its export say about how it was made.

A continued answer is one answer: its footer and its export count all its tokens, not only the
continuation's; counts read "1 token", not "1 tokens".
"""

from __future__ import annotations

from app.core.conversations.conversation import Conversation, GenerationRecord, Message
from app.core.conversations.store import ConversationStore
from app.core.conversations.transcripts import to_markdown, to_text
from app.session.chat_session import ChatSession
from app.session.sampling import SamplingParams
from app.ui.chat.message_footer import message_footer
from tests.fakes.fake_backend import Script


def answer(qtbot, chat: ChatSession, send) -> None:
    with qtbot.waitSignal(chat.answer_finished, timeout=5000):
        assert send()


def test_after_continue_the_footer_and_the_export_count_the_whole_answer(qtbot, chat, store,
                                                                         backend) -> None:
    backend.scripts = [Script(deltas=["Once", " upon", " a"], stop_reason="length"),
                       Script(deltas=[" time", "."])]
    answer(qtbot, chat, lambda: chat.send("Story"))
    first = chat.conversation.thread()[-1]
    ttft = first.generation.ttft_s
    answer(qtbot, chat, lambda: chat.continue_answer(first.id))
    fresh = ConversationStore(store.path)
    try:
        saved = fresh.load(chat.conversation.id)
    finally:
        fresh.close()
    for conversation in (chat.conversation, saved):  # as shown, and as the disk keeps it
        whole = conversation.thread()[-1]
        assert whole.text == "Once upon a time."
        record = whole.generation
        assert record.completion_tokens == 5 and record.stop_reason == "eos"
        assert record.ttft_s == ttft  # the first token came in the first part
        assert "5\u00a0tokens" in message_footer(whole)
        assert "5 tokens" in to_markdown(conversation) and "5 tokens" in to_text(conversation)


def test_a_continuation_that_fails_keeps_the_first_parts_record(qtbot, chat, backend) -> None:
    from app.core.inference.types import EngineError

    backend.scripts = [Script(deltas=["Once", " upon"], stop_reason="length"),
                       Script(deltas=[" a"], fail=EngineError("The engine stopped.",
                                                              kind=EngineError.GENERATION_FAILED))]
    answer(qtbot, chat, lambda: chat.send("Story"))
    first = chat.conversation.thread()[-1]
    with qtbot.waitSignal(chat.error, timeout=5000):
        assert chat.continue_answer(first.id)
    whole = chat.conversation.thread()[-1]
    assert whole.text == "Once upon a" and whole.incomplete
    assert whole.generation is not None and whole.generation.completion_tokens == 2


def _answered(tokens: int, dropped: int = 0) -> Message:
    record = GenerationRecord(model_file="tiny.gguf", completion_tokens=tokens, tokens_per_s=46.8,
                              ttft_s=2.76, stop_reason="eos", dropped_messages=dropped,
                              sampling=SamplingParams().to_dict())
    return Message("assistant", "Yes.", generation=record)


def test_counts_of_one_are_singular() -> None:
    footer = message_footer(_answered(1, dropped=1))
    assert "1\u00a0token ·" in footer and "1 tokens" not in footer.replace("\u00a0", " ")
    assert "1\u00a0earlier message not sent" in footer
    plural = message_footer(_answered(2, dropped=3))
    assert "2\u00a0tokens" in plural and "3\u00a0earlier messages not sent" in plural
    conversation = Conversation(title="One")
    conversation.append("user", "Sure?")
    conversation.append("assistant", "Yes.").generation = _answered(1).generation
    assert "1 token ·" in to_markdown(conversation)
