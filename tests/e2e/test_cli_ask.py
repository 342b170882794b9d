"""`python -m app ask "prompt"` (issue 13, "Command line"), run as a user runs it: a separate process
with LLAMADESK_HOME pointing at a temporary folder, answered by the embedded model or by llama.cpp's
real llama-server. Only the answer reaches stdout; it is stored as a conversation unless --no-save;
failures end in one line on stderr (never a traceback, never the key); Ctrl+C keeps what came."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.conversations.conversation import Conversation
from app.core.conversations.store import ConversationStore, default_store_path
from tests.e2e.conftest import REPO, assert_fails, assert_usage_error, run_cli
from tests.fixtures.hostile_gguf import bit_flipped_model, huge_block_count
from tests.fixtures.hostile_openai import HostileServer, chunk, json_reply, sse_reply
from tests.fixtures.llama_server import API_KEY, LlamaServer

CHAT = "/v1/chat/completions"
MODELS = {"object": "list", "data": [{"id": "thinker", "object": "model", "owned_by": "someone"}]}
WRONG_KEY = "wrong-key-abcdef"


def stored(home: Path) -> list[Conversation]:
    """What the store under `home` holds (the test's LLAMADESK_HOME)."""
    path = default_store_path()
    assert path.is_relative_to(home)
    if not path.exists():
        return []
    store = ConversationStore(path)
    try:
        return [store.load(summary.id) for summary in store.list_conversations()]
    finally:
        store.close()


def only_conversation(home: Path) -> Conversation:
    conversations = stored(home)
    assert len(conversations) == 1, conversations
    return conversations[0]


def ask(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app ask ARGS`; no key may show on stdout or stderr or in the log."""
    result = run_cli(home, "ask", *args)
    log = home / "logs" / "llamadesk.log"
    logged = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    for key in (API_KEY, WRONG_KEY):
        assert key not in result.stdout and key not in result.stderr and key not in logged
    return result


def add_connection(home: Path, name: str, url: str, key: str = "") -> None:
    added = subprocess.run([sys.executable, "-m", "app", "connections", "add", name, url,
                            *(["--key-stdin"] if key else [])], cwd=REPO, input=key + "\n",
                           env={**os.environ, "LLAMADESK_HOME": str(home)}, capture_output=True, text=True,
                           timeout=60)
    assert added.returncode == 0, added.stderr


def saved_as(result: subprocess.CompletedProcess[str]) -> str:
    """The id said on stderr after the answer."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    line = result.stderr.splitlines()[-1]
    assert line.startswith("Saved as conversation "), result.stderr
    return line.removeprefix("Saved as conversation ")


def test_a_local_answer_is_printed_and_stored(llamadesk_home: Path, model_path: Path) -> None:
    result = ask(llamadesk_home, "--max-tokens", "12", "--system", "Answer briefly.",
                 "What is the capital of France?")
    conversation_id = saved_as(result)
    assert result.stderr == f"Saved as conversation {conversation_id}\n"
    assert result.stdout.strip() and result.stdout.endswith("\n")

    listed = run_cli(llamadesk_home, "conversations", "list")
    assert listed.stdout.startswith(f"{conversation_id}\tWhat is the capital of France?\t2\t")
    conversation = only_conversation(llamadesk_home)
    assert (conversation.model, conversation.connection) == (model_path.name, "")
    assert conversation.system_prompt == "Answer briefly."
    question, answer = conversation.thread()
    assert question.text == "What is the capital of France?"
    # What was printed is what was stored, ended by a line break (the answer's own, if it has one).
    assert result.stdout == answer.text + ("" if answer.text.endswith("\n") else "\n")
    assert not answer.incomplete
    record = answer.generation
    assert record.model_file == model_path.name and record.model_size == model_path.stat().st_size
    assert 0 < record.completion_tokens <= 12 and record.sampling["max_tokens"] == 12
    assert record.stop_reason in ("eos", "length") and record.connection == ""


def test_no_save_stores_nothing_and_a_library_name_chooses_the_model(llamadesk_home: Path,
                                                                       model_path: Path) -> None:
    result = ask(llamadesk_home, "--no-save", "--model", model_path.stem, "--max-tokens", "4", "Hi")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip()
    assert stored(llamadesk_home) == []
    assert run_cli(llamadesk_home, "conversations", "list").stdout == ""


def test_an_unknown_model_fails_saying_so(llamadesk_home: Path) -> None:
    assert_fails(ask(llamadesk_home, "--model", "no-such-model", "Hi"), "No model named no-such-model",
                 "models list")
    assert stored(llamadesk_home) == []


@pytest.mark.parametrize("damage", ["header", "vocabulary"])
def test_a_corrupt_model_fails_in_one_line_and_stores_nothing(damage: str, llamadesk_home: Path,
                                                              tmp_path: Path, model_path: Path) -> None:
    if damage == "header":
        path = huge_block_count(tmp_path / "layers.gguf")
    else:  # one bit flipped: llama.cpp would abort on it while loading
        path = bit_flipped_model(model_path, tmp_path / "flipped.gguf")
    assert_fails(ask(llamadesk_home, "--model", str(path), "Hi"), f"{path.name} is",
                 "Download the file again")
    assert stored(llamadesk_home) == []


def test_a_remote_answer_is_stored_with_its_connection(llamadesk_home: Path,
                                                       llama_server: LlamaServer) -> None:
    add_connection(llamadesk_home, "box", llama_server.base_url, API_KEY)
    result = ask(llamadesk_home, "--connection", "box", "--max-tokens", "8", "Say hello.")
    conversation_id = saved_as(result)
    assert result.stdout.strip()
    conversation = only_conversation(llamadesk_home)
    assert conversation.id == conversation_id
    assert (conversation.connection, conversation.model) == ("box", llama_server.model_id)  # the first listed
    answer = conversation.thread()[-1]
    assert result.stdout == answer.text + ("" if answer.text.endswith("\n") else "\n")  # printed as stored
    assert not answer.incomplete
    record = answer.generation
    assert (record.connection, record.server_host) == ("box", f"127.0.0.1:{llama_server.port}")
    assert record.system_fingerprint and record.server_model
    assert 0 < record.completion_tokens <= 8
    assert API_KEY.encode() not in default_store_path().read_bytes()

    assert_fails(ask(llamadesk_home, "--connection", "box", "--model", "nope", "Hi"), "box",
                 "has no model nope", f"it offers {llama_server.model_id}")
    assert len(stored(llamadesk_home)) == 1


def test_an_unknown_connection_fails_saying_so(llamadesk_home: Path) -> None:
    assert_fails(ask(llamadesk_home, "--connection", "nope", "Hi"), "No connection named nope",
                 "connections list")


def test_a_wrong_key_fails_without_showing_it(llamadesk_home: Path, llama_server: LlamaServer) -> None:
    add_connection(llamadesk_home, "box", llama_server.base_url, WRONG_KEY)
    line = assert_fails(ask(llamadesk_home, "--connection", "box", "Hi"), "box", "API key")
    assert "refused" in line
    assert stored(llamadesk_home) == []


@pytest.fixture
def hostile():
    with HostileServer() as server:
        server.on("/v1/models", json_reply(200, MODELS))
        yield server


def test_a_thought_goes_to_stderr_and_only_the_answer_to_stdout(llamadesk_home: Path, hostile) -> None:
    hostile.on(CHAT, sse_reply([chunk(reasoning="The user greets. ", model="thinker"),
                                chunk(reasoning="Greet back.", model="thinker"),
                                chunk("Hello there.", model="thinker"),
                                chunk(finish="stop", model="thinker")]))
    add_connection(llamadesk_home, "odd", hostile.base_url)
    result = ask(llamadesk_home, "--connection", "odd", "Hi")
    conversation_id = saved_as(result)
    assert result.stdout == "Hello there.\n"
    assert result.stderr == f"The user greets. Greet back.\nSaved as conversation {conversation_id}\n"
    answer = only_conversation(llamadesk_home).thread()[-1]
    assert (answer.text, answer.thought) == ("Hello there.", "The user greets. Greet back.")
    assert hostile.requests[-1].body["model"] == "thinker"


def test_a_busy_server_is_said_on_stderr_and_retried(llamadesk_home: Path, hostile) -> None:
    hostile.on(CHAT, json_reply(503, {"error": {"message": "all slots are busy"}}, {"Retry-After": "0"}),
               sse_reply([chunk("Hello", model="thinker"), chunk(finish="stop", model="thinker")]))
    add_connection(llamadesk_home, "odd", hostile.base_url)
    result = ask(llamadesk_home, "--connection", "odd", "Hi")
    conversation_id = saved_as(result)
    assert result.stdout == "Hello\n"
    busy, saved = result.stderr.splitlines()
    assert busy.startswith("odd is busy (503): trying again") and saved.endswith(conversation_id)


def test_an_answer_cut_short_keeps_what_came_and_fails(llamadesk_home: Path, hostile) -> None:
    hostile.on(CHAT, sse_reply([chunk("Half an ", model="thinker")], cut=True))
    add_connection(llamadesk_home, "odd", hostile.base_url)
    result = ask(llamadesk_home, "--connection", "odd", "--model", "thinker", "Hi")
    assert (result.returncode, result.stdout) == (1, "Half an \n")
    conversation = only_conversation(llamadesk_home)
    assert result.stderr.splitlines() == [result.stderr.strip()] and "odd" in result.stderr
    assert result.stderr.strip().endswith(f"What came is stored as conversation {conversation.id}, "
                                          "marked incomplete.")
    answer = conversation.thread()[-1]
    assert (answer.text, answer.incomplete, answer.generation) == ("Half an ", True, None)


def interrupt_after_first_text(home: Path, *args: str) -> tuple[str, subprocess.CompletedProcess[str]]:
    """Start `ask ARGS`, wait for the first bytes of the answer, then press Ctrl+C."""
    environment = {k: v for k, v in os.environ.items() if k not in ("LLAMADESK_DEBUG", "QT_QPA_PLATFORM")}
    environment.update({"LLAMADESK_HOME": str(home), "PYTHONIOENCODING": "utf-8"})
    process = subprocess.Popen([sys.executable, "-m", "app", "ask", *args], cwd=REPO, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = os.read(process.stdout.fileno(), 4096)  # blocks until the answer begins
        assert first, process.communicate(timeout=60)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return (first + out).decode(), subprocess.CompletedProcess(process.args, process.returncode, "",
                                                               err.decode())


def test_ctrl_c_stops_a_remote_answer_and_keeps_it_incomplete(llamadesk_home: Path, hostile) -> None:
    def one_piece_then_nothing(handler) -> None:
        sse_reply([chunk("Once upon", model="thinker")], cut=True)(handler)  # the end never comes
        handler.server.stopping.wait()

    hostile.on(CHAT, one_piece_then_nothing)
    add_connection(llamadesk_home, "odd", hostile.base_url)
    printed, result = interrupt_after_first_text(llamadesk_home, "--connection", "odd", "Tell a story")
    assert result.returncode == 130, result.stderr
    assert printed == "Once upon\n"
    conversation = only_conversation(llamadesk_home)
    assert result.stderr == (f"Stopped: the answer so far is stored as conversation {conversation.id}, "
                             "marked incomplete.\n")
    answer = conversation.thread()[-1]
    assert (answer.text, answer.incomplete, answer.generation.stop_reason) == ("Once upon", True, "user")
    assert answer.generation.connection == "odd"


def endless_answers(home: Path) -> None:
    """The user's default sampling: greedy and without a limit, so the embedded model's answer to
    COUNT is long and runs until it is stopped."""
    config = home / "config"
    config.mkdir(exist_ok=True)
    (config / "chat-defaults.json").write_text(json.dumps(
        {"sampling": {"temperature": 0.0, "top_k": 1, "seed": 1, "max_tokens": 0}}))


COUNT = "Count from 1 to 2000, one number per line."


def test_ctrl_c_stops_a_local_answer_and_keeps_it_incomplete(llamadesk_home: Path, model_path: Path) -> None:
    endless_answers(llamadesk_home)
    printed, result = interrupt_after_first_text(llamadesk_home, "--model", str(model_path), COUNT)
    assert result.returncode == 130, result.stderr
    conversation = only_conversation(llamadesk_home)
    assert result.stderr.endswith(f"stored as conversation {conversation.id}, marked incomplete.\n")
    answer = conversation.thread()[-1]
    assert answer.incomplete and answer.text and printed in (answer.text, answer.text + "\n")
    assert answer.generation.stop_reason == "user" and answer.generation.sampling["max_tokens"] == 0


def test_a_reader_going_away_ends_it_quietly_and_keeps_the_answer(llamadesk_home: Path) -> None:
    """`python -m app ask … | head -c 20`: the pipe closes mid-answer."""
    endless_answers(llamadesk_home)
    environment = {k: v for k, v in os.environ.items() if k not in ("LLAMADESK_DEBUG", "QT_QPA_PLATFORM")}
    environment.update({"LLAMADESK_HOME": str(llamadesk_home), "PYTHONIOENCODING": "utf-8"})
    process = subprocess.Popen([sys.executable, "-m", "app", "ask", COUNT], cwd=REPO, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert os.read(process.stdout.fileno(), 20)  # the answer has begun
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141, err
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert err == ""
    answer = only_conversation(llamadesk_home).thread()[-1]
    assert answer.text and answer.incomplete and answer.generation is None


@pytest.mark.parametrize("args", [[], ["  "], ["--max-tokens", "-1", "Hi"], ["--max-tokens", "many", "Hi"],
                                  ["--connection"]])
def test_usage_errors(llamadesk_home: Path, args: list[str]) -> None:
    assert_usage_error(run_cli(llamadesk_home, "ask", *args))


def test_without_a_default_model_it_says_so(llamadesk_home: Path, monkeypatch, capsys) -> None:
    """No embedded model installed and none chosen (a bundle built without it)."""
    from app import cli
    from app.__main__ import _parser
    from app.core.models import library

    monkeypatch.setattr(library, "default_model_path", lambda: None)
    assert cli.run(_parser().parse_args(["ask", "Hi"])) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("There is no default model: give one with --model")
    assert stored(llamadesk_home) == []
