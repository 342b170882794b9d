"""A conversation answered by a remote engine remembers its connection and model id, and each
answer's record says where it came from (issue 13): through the store, a copy, recovery, an older
database, and a JSON export and import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from app.core.conversations.conversation import Conversation, GenerationRecord
from app.core.conversations.recovery import recover
from app.core.conversations.store import ConversationStore
from app.core.conversations.transcript_json import from_json, to_json

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "databases"


def remote_conversation() -> Conversation:
    c = Conversation(title="Llamas", connection="gpu-box", model="meta-llama/Llama-3.1-8B-Instruct")
    c.append("user", "Where do llamas live?")
    answer = c.append("assistant", "In South America.")
    answer.generation = GenerationRecord(
        model_file="meta-llama/Llama-3.1-8B-Instruct", completion_tokens=5, stop_reason="eos",
        connection="gpu-box", server_host="gpu-box:8080", server_model="llama-3.1-8b",
        system_fingerprint="b5000-abc", server_tokens_per_s=41.5)
    return c


def test_the_connection_and_the_answers_origin_are_stored(store) -> None:
    original = remote_conversation()
    store.insert_conversations([original])
    fresh = ConversationStore(store.path)
    try:
        loaded = fresh.load(original.id)
    finally:
        fresh.close()
    assert loaded == original
    assert (loaded.connection, loaded.model) == ("gpu-box", "meta-llama/Llama-3.1-8B-Instruct")
    copy = store.load(store.duplicate(original.id))
    assert copy.connection == "gpu-box"
    loaded.connection, loaded.model = "", "local.gguf"  # switched back to the local engine
    store.save_conversation(loaded)
    assert (store.load(original.id).connection, store.load(original.id).model) == ("", "local.gguf")


def test_recovery_keeps_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "conversations.sqlite3"
    store = ConversationStore(path)
    original = remote_conversation()
    store.insert_conversations([original])
    store.close()
    recover(path)
    store = ConversationStore(path)
    try:
        loaded = store.load(original.id)
        assert loaded.connection == "gpu-box"
        assert loaded.thread()[-1].generation.system_fingerprint == "b5000-abc"
    finally:
        store.close()


def test_a_database_from_before_remote_engines_opens_as_local(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    shutil.copy(FIXTURES / "schema-6.sqlite3", path)
    store = ConversationStore(path)
    try:
        [summary] = store.list_conversations()
        loaded = store.load(summary.id)
        assert (loaded.connection, loaded.model) == ("", "x.gguf")
        assert loaded.find("m2").generation.connection == ""
    finally:
        store.close()


def test_json_round_trip_keeps_where_answers_came_from_and_local_files_stay_as_they_were() -> None:
    original = remote_conversation()
    [back] = from_json(to_json([original]))
    assert back.connection == "gpu-box"
    assert back.thread()[-1].generation == original.thread()[-1].generation
    local = Conversation(title="Local", model="x.gguf")
    local.append("user", "Hi")
    local.append("assistant", "Hello").generation = GenerationRecord(model_file="x.gguf", stop_reason="eos")
    written = json.loads(to_json([local]))["conversations"][0]
    assert "connection" not in written  # files without remote answers are unchanged
    assert "server_host" not in written["messages"][1]["generation"]
    [back] = from_json(to_json([local]))
    assert back.connection == "" and back.thread()[-1].generation.server_host == ""


def test_every_transcript_says_where_a_remote_answer_came_from(tmp_path: Path) -> None:
    from app.core.conversations.transcripts import export_to_path

    conversation = remote_conversation()
    for fmt in ("md", "html", "txt"):
        [written] = export_to_path([conversation], fmt, tmp_path / f"chat.{fmt}")
        text = written.read_text(encoding="utf-8")
        assert "meta-llama/Llama-3.1-8B-Instruct · gpu-box" in text
        assert "via gpu-box (gpu-box:8080 b5000-abc)" in text
