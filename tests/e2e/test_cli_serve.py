"""`python -m app serve` (issue 14, "Headless"), run as a script or a service manager runs it: a
process of its own with LLAMADESK_HOME pointing at a temporary folder. It says where it serves on
one stdout line, answers the real OpenAI client, and Ctrl+C (or SIGTERM) ends it with status 0."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import httpx2
import openai
import pytest

from tests.e2e.conftest import REPO, app_environment, assert_fails, run_cli

KEY = "ld-test-key-0123456789abcdef"


def start_serving(home: Path, *args: str, key: str = "") -> tuple[subprocess.Popen, str]:
    """The process and its URL, from its one line `Serving MODEL at URL`."""
    process = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", "0", *args], cwd=REPO,
                               env=app_environment(home), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    if key:
        process.stdin.write(key + "\n")
    process.stdin.close()
    process.stdin = None  # communicate() must not flush it again
    line = process.stdout.readline()  # blocks until it serves, or ends
    if not line.startswith("Serving "):
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"serve did not start: {line!r} {out!r} {err[-3000:]!r}")
    return process, line.rsplit(" at ", 1)[1].strip()


def stopped(process: subprocess.Popen, how: signal.Signals = signal.SIGINT) -> subprocess.CompletedProcess:
    process.send_signal(how)
    out, err = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.timeout(300)
def test_serve_answers_the_openai_client_and_ctrl_c_ends_it_cleanly(llamadesk_home: Path, model_path) -> None:
    process, url = start_serving(llamadesk_home, "--model", str(model_path))
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        if sys.platform.startswith("linux"):  # no window to yield to: the engine keeps serve's priority
            assert niceness(engine_pid(process.pid)) == niceness(process.pid)
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)
        answer = client.chat.completions.create(model=model_path.stem, temperature=0, max_tokens=12,
                                                messages=[{"role": "user", "content": "Say hello."}])
        assert answer.choices[0].message.content.strip()
        assert model_path.stem in [m.id for m in client.models.list().data]
    finally:
        ended = stopped(process)
    assert ended.returncode == 0, ended.stderr[-3000:]
    assert "Traceback" not in ended.stderr


@pytest.mark.timeout(300)
def test_serve_on_the_network_needs_a_key_and_checks_it(llamadesk_home: Path, model_path) -> None:
    refused = run_cli(llamadesk_home, "serve", "--host", "0.0.0.0", "--model", str(model_path))
    assert refused.returncode == 2 and not refused.stdout and "--key-stdin" in refused.stderr
    process, url = start_serving(llamadesk_home, "--host", "0.0.0.0", "--key-stdin",
                                 "--model", str(model_path), key=KEY)
    try:
        local = "http://127.0.0.1:" + url.rsplit(":", 1)[1]
        assert httpx2.get(f"{local}/models", timeout=30).status_code == 401
        with_key = httpx2.get(f"{local}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert with_key.status_code == 200
    finally:
        ended = stopped(process, signal.SIGTERM)
    assert ended.returncode == 0, ended.stderr[-3000:]
    assert KEY not in ended.stdout + ended.stderr
    log = llamadesk_home / "logs" / "llamadesk.log"
    assert not log.exists() or KEY not in log.read_text(encoding="utf-8", errors="replace")


def test_serve_says_plainly_when_the_model_cannot_load(llamadesk_home: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    assert_fails(run_cli(llamadesk_home, "serve", "--port", "0", "--model", str(broken)), "broken.gguf")


def niceness(pid: int) -> int:
    """A process's nice value (the 19th field of /proc/PID/stat)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def engine_pid(serve_pid: int) -> int:
    """The engine's own process: the child of `serve` that multiprocessing spawned to run it."""
    children = [c for task in Path(f"/proc/{serve_pid}/task").iterdir()  # the inference thread starts it
                for c in (task / "children").read_text().split()]
    for child in children:
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command:
            return int(child)
    raise AssertionError("no engine process found")


@pytest.mark.timeout(300)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the engine's process through /proc")
def test_an_engine_that_dies_is_loaded_again_and_the_server_stays_where_it_was(
        llamadesk_home: Path, model_path) -> None:
    process, url = start_serving(llamadesk_home, "--model", str(model_path))
    try:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)
        ask = dict(model="", temperature=0, max_tokens=8, messages=[{"role": "user", "content": "Say hi."}])
        assert client.chat.completions.create(**ask).choices[0].message.content
        engine = os.pidfd_open(engine_pid(process.pid))  # readable once the process has ended
        try:
            signal.pidfd_send_signal(engine, signal.SIGKILL)
            select.select([engine], [], [])  # until it has died: a request sent before would find out
        finally:
            os.close(engine)
        try:  # the request that finds the engine gone may say so (500, "crashed"); the next is answered
            answer = client.chat.completions.create(**ask)
        except openai.InternalServerError as error:
            assert "stopped unexpectedly" in str(error)
            answer = client.chat.completions.create(**ask)
        assert answer.choices[0].message.content  # on the same address
        log = llamadesk_home / "logs" / "llamadesk.log"
        assert "again" in log.read_text(encoding="utf-8")  # the model was loaded again...
        for _ in range(3):  # ...and the server was not started again (elsewhere) for it
            assert client.chat.completions.create(**ask).choices[0].message.content
    finally:
        ended = stopped(process)
    assert ended.returncode == 0, ended.stderr[-3000:]
    assert "Serving" not in ended.stdout  # said once, when it started (read by start_serving)
