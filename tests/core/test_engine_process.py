"""The engine in a process of its own: answers, failures with their kind, and a crash the parent survives."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.core.chat.sampling import GREEDY
from app.core.inference.local.engine_process import EngineCrashed, EngineProcess
from app.core.inference.local.engine_server import ENGINE_NICENESS
from app.core.inference.types import EngineError, GenerationStats, LoadOptions

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def process(tmp_path: Path):
    engine = EngineProcess(tmp_path / "engine.log")
    yield engine
    engine.close()


def test_a_refused_load_arrives_with_its_kind_and_the_process_answers_afterwards(process, model_path: Path,
                                                                                  tmp_path: Path) -> None:
    with pytest.raises(EngineError) as caught:
        process.load(str(tmp_path / "absent.gguf"), LoadOptions(n_ctx=512))
    assert caught.value.kind == EngineError.MISSING and "does not exist" in caught.value.message
    info = process.load(str(model_path), LoadOptions(n_ctx=512))
    assert info.n_ctx == 512 and process.count(HELLO) > 0
    events = list(process.generate(1, HELLO, GREEDY.replace(max_tokens=4), "chat", "", "stop"))
    assert [e[0] for e in events][0] == "prompt_ready" and events[-1][0] == "finished"
    assert isinstance(events[-1][1], GenerationStats) and "".join(e[1] for e in events if e[0] == "token")


def test_a_process_that_dies_is_reported_as_crashed_and_started_again(process, model_path: Path) -> None:
    process.load(str(model_path), LoadOptions(n_ctx=1024, n_batch=8))
    long_prompt = [{"role": "user", "content": "llama " * 200}]  # ~600 tokens, read in batches of 8
    answer = process.generate(2, long_prompt, GREEDY.replace(max_tokens=8), None, "", "stop")
    assert next(answer)[0] == "prompt_ready"
    assert next(answer)[0] == "progress"
    process.kill("a test")  # while it reads the prompt
    with pytest.raises(EngineCrashed) as caught:
        list(answer)
    assert caught.value.kind == EngineError.CRASHED and not caught.value.stopped
    assert process.info() is None and process.restarts == 1  # a fresh process, no model yet


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the priority from /proc")
@pytest.mark.parametrize("niceness", [ENGINE_NICENESS, 0])
def test_the_engine_yields_the_cpu_to_the_window_and_only_then(tmp_path: Path, niceness: int) -> None:
    """The window's engine runs below the window's priority; serve's (niceness 0) at its own."""
    engine = EngineProcess(tmp_path / "engine.log", niceness)
    try:
        engine.build()  # starts the process
        stat = Path(f"/proc/{engine.pid}/stat").read_text()
        assert int(stat.rsplit(")", 1)[1].split()[16]) == min(19, os.nice(0) + niceness)
    finally:
        engine.close()
