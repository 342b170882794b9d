"""Chats answered by a remote engine (issue 13): llama.cpp's real llama-server on 127.0.0.1, the
real store. The answer streams and is saved as a local one is; its record says where it came from;
Stop closes the stream; answers run side by side; a server killed mid-answer loses nothing, and
once it is back, Continue carries the answer on."""

from __future__ import annotations

from app.core.conversations.store import ConversationStore
from app.core.inference.types import LoadOptions
from app.core.remote.connections import Connection, ConnectionsFile
from app.core.remote.keys import key_store
from app.session.chat_session import ChatSession
from app.session.engines import Engines
from app.session.local_backend import LocalBackend
from app.session.sampling import SamplingSettings
from tests.fakes.fake_backend import FakeBackend
from tests.fixtures.llama_server import API_KEY, LlamaServer

TIMEOUT = 60_000  # ms: a generous bound for a wait on a signal, never an assertion on speed
COUNT = "Count from one to five hundred, one number per line."  # greedy, SmolLM2 counts on and on


def remote_chat(qtbot, store: ConversationStore, server: LlamaServer, key: str = API_KEY,
                local=None) -> ChatSession:
    ConnectionsFile().put(Connection(name="box", base_url=server.base_url))
    key_store().set("box", key)
    chat = ChatSession(local or FakeBackend(model=None), store, SamplingSettings(), engines=Engines())
    chat.sampling.update(max_tokens=48, temperature=0.0, seed=7)
    with qtbot.waitSignal(chat.engine_changed, timeout=TIMEOUT,
                          check_params_cb=lambda info: info is not None) as connected:
        chat.choose_engine("box", server.model_id)
    info = connected.args[0]
    assert (info.connection, info.host, info.n_ctx) == ("box", f"127.0.0.1:{server.port}", 2048)
    return chat


def answer_begun(qtbot, chat: ChatSession) -> None:
    """Wait until the answer has text (send's own text_appended is the question's)."""
    qtbot.waitUntil(lambda: bool(chat.conversation.thread()[-1].text), timeout=TIMEOUT)


def stored_thread(store: ConversationStore, conversation_id: str):
    fresh = ConversationStore(store.path)
    try:
        return fresh.load(conversation_id)
    finally:
        fresh.close()


def test_a_remote_model_answers_and_every_answer_says_where_it_came_from(qtbot, store, llama_server) -> None:
    chat = remote_chat(qtbot, store, llama_server)
    with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT) as finished:
        assert chat.send("Name three colours.")
    stats = finished.args[0]
    assert stats.completion_tokens > 0 and stats.server_tokens_per_s > 0
    saved = stored_thread(store, chat.conversation.id)
    assert (saved.connection, saved.model) == ("box", llama_server.model_id)
    answer = saved.thread()[-1]
    assert answer.text.strip() and not answer.incomplete
    record = answer.generation
    assert (record.connection, record.server_host) == ("box", f"127.0.0.1:{llama_server.port}")
    assert record.server_model == llama_server.model_id
    assert record.system_fingerprint  # llama-server says its build ("b0-unknown" for this one)
    assert record.completion_tokens == stats.completion_tokens
    assert API_KEY not in repr(saved)


def test_stop_closes_the_remote_stream_and_keeps_what_came(qtbot, store, llama_server) -> None:
    chat = remote_chat(qtbot, store, llama_server)
    chat.sampling.update(max_tokens=0)  # until the context is full: only Stop ends it
    assert chat.send(COUNT)
    answer_begun(qtbot, chat)
    with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT) as finished:
        chat.stop()
    assert finished.args[0].stop_reason == "user"
    shown = chat.conversation.thread()[-1]
    assert shown.incomplete and shown.text
    assert stored_thread(store, chat.conversation.id).thread()[-1].text == shown.text


def test_a_remote_answer_goes_on_while_another_chat_is_answered(qtbot, store, llama_server) -> None:
    chat = remote_chat(qtbot, store, llama_server)
    chat.sampling.update(max_tokens=200)  # greedy counting runs past 400 tokens: it is still going below
    assert chat.send(COUNT)
    answer_begun(qtbot, chat)
    first = chat.conversation
    chat.new_conversation()  # the first chat's answer is not stopped: the server answers both
    assert chat.conversation is not first and not chat.generating and first in chat.answering
    assert chat.conversation.connection == "box"  # a new chat is answered by the engine chosen last
    finished: list = []
    chat.answer_finished.connect(finished.append)
    assert chat.send("Name a fruit.")
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=TIMEOUT)
    assert all(stats.stop_reason != "user" for stats in finished)
    for conversation in (first, chat.conversation):
        answer = stored_thread(store, conversation.id).thread()[-1]
        assert answer.text.strip() and not answer.incomplete and answer.generation.connection == "box"


def test_a_server_killed_mid_answer_loses_nothing_and_continue_works_once_it_is_back(
        qtbot, store, own_llama_server) -> None:
    chat = remote_chat(qtbot, store, own_llama_server)
    chat.sampling.update(max_tokens=0)
    errors: list[str] = []
    chat.error.connect(errors.append)
    assert chat.send(COUNT)
    answer_begun(qtbot, chat)
    with qtbot.waitSignal(chat.generating_changed, timeout=TIMEOUT):
        own_llama_server.kill()
    partial = chat.conversation.thread()[-1]
    kept = partial.text
    assert partial.incomplete and kept
    assert stored_thread(store, chat.conversation.id).thread()[-1].text == kept
    assert errors and "box" in errors[-1]
    own_llama_server.start()
    chat.sampling.update(max_tokens=16)
    with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT):
        assert chat.continue_answer(partial.id)
    carried_on = stored_thread(store, chat.conversation.id).thread()[-1]
    assert carried_on.text.startswith(kept) and len(carried_on.text) > len(kept)
    assert not carried_on.incomplete


def test_a_wrong_key_is_said_plainly_and_never_shown(qtbot, store, llama_server) -> None:
    ConnectionsFile().put(Connection(name="box", base_url=llama_server.base_url))
    key_store().set("box", "wrong-key-987654321")
    chat = ChatSession(FakeBackend(model=None), store, SamplingSettings(), engines=Engines())
    with qtbot.waitSignal(chat.error, timeout=TIMEOUT) as refused:
        chat.choose_engine("box", llama_server.model_id)
    assert "key" in refused.args[0].lower() and "wrong-key-987654321" not in refused.args[0]
    with qtbot.waitSignal(chat.error, timeout=TIMEOUT) as failed:
        assert chat.send("Hello?")
    assert "key" in failed.args[0].lower()
    assert stored_thread(store, chat.conversation.id).thread()[0].text == "Hello?"  # the question is kept


def test_a_removed_connection_is_said(qtbot, store) -> None:
    chat = ChatSession(FakeBackend(model=None), store, SamplingSettings(), engines=Engines())
    with qtbot.waitSignal(chat.error, timeout=TIMEOUT) as failed:
        chat.choose_engine("gone", "some-model")
    assert "no connection named gone" in failed.args[0]


def test_the_local_model_answers_one_chat_while_the_server_answers_another(
        qtbot, store, llama_server, model_path) -> None:
    local = LocalBackend()
    with qtbot.waitSignal(local.loaded, timeout=TIMEOUT):
        local.load(str(model_path), LoadOptions(n_ctx=1024))
    try:
        chat = remote_chat(qtbot, store, llama_server, local=local)
        chat.sampling.update(max_tokens=200)  # greedy counting: still going when the local one starts
        assert chat.send(COUNT)
        answer_begun(qtbot, chat)
        remote = chat.conversation
        chat.new_conversation()
        chat.choose_engine()  # this chat: the local model
        assert chat.backend is local and remote in chat.answering
        finished: list = []
        chat.answer_finished.connect(finished.append)
        assert chat.send("Name a fruit.")
        qtbot.waitUntil(lambda: len(finished) == 2, timeout=TIMEOUT)
        by_conversation = {c.id: stored_thread(store, c.id).thread()[-1]
                           for c in (remote, chat.conversation)}
        assert by_conversation[remote.id].generation.connection == "box"
        local_record = by_conversation[chat.conversation.id].generation
        assert local_record.connection == "" and local_record.model_file.endswith(".gguf")
        assert all(a.text.strip() and not a.incomplete for a in by_conversation.values())
        assert stored_thread(store, chat.conversation.id).connection == ""
    finally:
        local.close()


def test_a_model_the_server_no_longer_offers_is_said_with_what_it_offers(qtbot, store, llama_server) -> None:
    ConnectionsFile().put(Connection(name="box", base_url=llama_server.base_url))
    key_store().set("box", API_KEY)
    chat = ChatSession(FakeBackend(model=None), store, SamplingSettings(), engines=Engines())
    with qtbot.waitSignal(chat.error, timeout=TIMEOUT) as failed:
        chat.choose_engine("box", "llama-3-70b-gone")
    assert "no longer offers the model llama-3-70b-gone" in failed.args[0]
    assert llama_server.model_id in failed.args[0]  # what it offers instead


def long_history(chat: ChatSession, store: ConversationStore) -> None:
    """Twenty turns of about 150 tokens each: more than the server's 2,048 tokens a slot."""
    conversation = chat.conversation
    for i in range(20):
        conversation.append("user", f"Question {i}: " + "tell me about llamas and alpacas " * 20)
        conversation.append("assistant", f"Answer {i}: " + "llamas are camelids from the Andes " * 20)
    store.insert_conversations([conversation])


def test_a_chat_longer_than_the_servers_context_follows_the_overflow_policy(
        qtbot, store, llama_server) -> None:
    from app.core.chat.context_window import OverflowPolicy

    chat = remote_chat(qtbot, store, llama_server)
    long_history(chat, store)
    notices: list[str] = []
    chat.notice_inserted.connect(lambda _id, text: notices.append(text))
    with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT) as finished:
        assert chat.send("And vicuñas?")
    assert finished.args[0].prompt_tokens <= 2048
    answer = stored_thread(store, chat.conversation.id).thread()[-1]
    assert answer.generation.dropped_messages > 0 and not answer.incomplete
    assert notices and "earlier messages from the start" in notices[0]

    chat.overflow_policy = OverflowPolicy.STOP
    returned: list[str] = []
    chat.draft_returned.connect(returned.append)
    with qtbot.waitSignal(chat.error, timeout=TIMEOUT) as refused:
        assert chat.send("And guanacos?")
    assert "This conversation needs" in refused.args[0]
    qtbot.waitUntil(lambda: returned == ["And guanacos?"], timeout=TIMEOUT)  # nothing was kept of it
    assert stored_thread(store, chat.conversation.id).thread()[-1].text == answer.text


def test_editing_the_shown_chats_connection_connects_again_with_the_new_key(
        qtbot, store, llama_server) -> None:
    from app.session.workspace import Workspace

    ConnectionsFile().put(Connection(name="box", base_url=llama_server.base_url))
    key_store().set("box", "wrong-key-987654321")
    workspace = Workspace(store=store, propose_titles=False)  # its local engine loads nothing
    chat = workspace.chat
    try:
        with qtbot.waitSignal(chat.error, timeout=TIMEOUT):
            chat.choose_engine("box", llama_server.model_id)  # refused: the wrong key
        with qtbot.waitSignal(chat.engine_changed, timeout=TIMEOUT,
                              check_params_cb=lambda info: info is not None and info.connection == "box"):
            workspace.connections.save(Connection(name="box", base_url=llama_server.base_url), API_KEY,
                                       replacing="box")
        with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT):
            assert chat.send("Hello?")
        assert chat.conversation.thread()[-1].generation.connection == "box"
    finally:
        workspace.close()


def test_a_new_chat_is_answered_by_the_engine_of_the_chat_shown(qtbot, store, llama_server) -> None:
    chat = remote_chat(qtbot, store, llama_server)
    with qtbot.waitSignal(chat.answer_finished, timeout=TIMEOUT):
        assert chat.send("Hi")
    remote = chat.conversation
    chat.new_conversation()
    assert chat.conversation.connection == "box"
    chat.choose_engine()  # this one: the local engine
    chat.open_conversation(remote.id)  # an older chat answered remotely
    chat.new_conversation()
    assert (chat.conversation.connection, chat.conversation.model) == ("box", llama_server.model_id)
