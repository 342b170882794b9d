"""No conversation is lost when the process is killed mid-answer (SIGKILL: no clean-up runs)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.core.conversations.store import ConversationStore

SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "stream_into_store.py"
EARLIER = ["Hi there!", "Hello! How can I help?",
           "Write a long story about a llama who travels the world."]


def streamed_since(pieces: list[tuple[float, str]], chars: int, seconds: float) -> bool:
    """Had `chars` characters streamed at least `seconds` ago?"""
    total = 0
    for at, text in list(pieces):
        total += len(text)
        if total >= chars:
            return time.time() - at >= seconds
    return False


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_killed_answer_keeps_everything_streamed_a_second_before(seed, tmp_path, model_path):
    extra_chars = random.Random(seed).randint(0, 400)  # a random point in the answer, counted in text
    database = tmp_path / "conversations.sqlite3"
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(database), str(model_path)],
                               stdout=subprocess.PIPE, text=True)
    ids = json.loads(process.stdout.readline())
    pieces: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: pieces.extend(
        tuple(json.loads(line)) for line in process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120

    def wait_until(condition) -> None:  # polls the streamed pieces: a wait, not a measure
        while not condition():
            assert time.monotonic() < deadline and process.poll() is None, "no answer streamed"
            time.sleep(0.01)

    wait_until(lambda: streamed_since(pieces, chars=20, seconds=1.0))  # the promise's second has passed
    target = len("".join(text for _, text in list(pieces))) + extra_chars
    wait_until(lambda: len("".join(text for _, text in list(pieces))) >= target)
    assert process.poll() is None, "the answer ended before the kill: use a longer prompt"
    killed_at = time.time()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    reader.join(timeout=10)

    store = ConversationStore(database)
    try:
        conversation = store.load(ids["conversation"])
    finally:
        store.close()
    thread = conversation.thread()
    assert [m.text for m in thread[:3]] == EARLIER
    assert not any(m.incomplete for m in thread[:3])
    answer = thread[3]
    assert answer.id == ids["answer"] and answer.incomplete
    streamed = "".join(text for _, text in pieces)
    streamed_a_second_before = "".join(text for at, text in pieces if at <= killed_at - 1.0)
    assert len(streamed_a_second_before) >= 20, "too little streamed to prove anything"
    assert streamed.startswith(answer.text), "the stored answer is what was streamed"
    assert answer.text.startswith(streamed_a_second_before), (
        f"lost text streamed over a second before the kill: stored {len(answer.text)} chars, "
        f"streamed {len(streamed_a_second_before)} by then")
