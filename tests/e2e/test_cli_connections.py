"""`python -m app connections add | list | test | remove`, run as a user runs them: a separate process
with LLAMADESK_HOME pointing at a temporary folder, against llama.cpp's real llama-server. The key goes
in on stdin and must never come out: not on stdout or stderr, not in connections.json."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.remote.connections import FILE_NAME
from app.core.remote.keys import FILE_NAME as KEYS_FILE
from tests.e2e.conftest import REPO, assert_fails, assert_usage_error
from tests.fixtures.llama_server import API_KEY, LlamaServer


def connections(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m app connections ARGS` with `stdin` on its standard input; the key never shows, nor
    goes into the log."""
    environment = {k: v for k, v in os.environ.items() if k not in ("LLAMADESK_DEBUG", "QT_QPA_PLATFORM")}
    environment.update({"LLAMADESK_HOME": str(home), "PYTHONIOENCODING": "utf-8"})
    result = subprocess.run([sys.executable, "-m", "app", "connections", *args], cwd=REPO, env=environment,
                            input=stdin, capture_output=True, encoding="utf-8", timeout=120)
    log = home / "logs" / "llamadesk.log"
    logged = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    for key in (API_KEY, "wrong-key-abcdef"):
        assert key not in result.stdout and key not in result.stderr and key not in logged
    return result


def config(home: Path) -> Path:
    return home / "config"


def test_add_list_test_and_remove_against_llama_server(llamadesk_home: Path, llama_server: LlamaServer):
    home = llamadesk_home
    added = connections(home, "add", "gpu", llama_server.base_url + "/", "--key-stdin",
                        "--header", "X-Team: llm", "--timeout", "30", stdin=API_KEY + "\n")
    keys_file = config(home) / KEYS_FILE
    assert (added.returncode, added.stderr) == (0, "")
    where = f"a private file ({keys_file.resolve()}, mode 0600)"
    assert added.stdout == f"Added gpu: {llama_server.base_url} (key in {where})\n"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert API_KEY not in (config(home) / FILE_NAME).read_text()
    assert connections(home, "add", "open", "http://127.0.0.1:9/v1").stdout == \
        "Added open: http://127.0.0.1:9/v1 (no key)\n"

    listed = connections(home, "list")
    assert (listed.returncode, listed.stdout, listed.stderr) == (
        0, f"gpu\t{llama_server.base_url}\tkey\nopen\thttp://127.0.0.1:9/v1\tno key\n", "")

    tested = connections(home, "test", "gpu")
    assert (tested.returncode, tested.stderr) == (0, "")
    assert tested.stdout == f"gpu: 1 model at 127.0.0.1:{llama_server.port}\n{llama_server.model_id}\n"

    removed = connections(home, "remove", "gpu")
    assert (removed.returncode, removed.stdout) == (0, "Removed gpu\n")
    assert API_KEY not in keys_file.read_text()  # its key went with it
    assert connections(home, "list").stdout == "open\thttp://127.0.0.1:9/v1\tno key\n"
    assert_fails(connections(home, "remove", "gpu"), "No connection named gpu")
    assert_fails(connections(home, "test", "gpu"), "No connection named gpu")


def test_a_wrong_key_fails_the_test_saying_so(llamadesk_home: Path, llama_server: LlamaServer):
    connections(llamadesk_home, "add", "gpu", llama_server.base_url, "--key-stdin",
                stdin="wrong-key-abcdef\n")
    line = assert_fails(connections(llamadesk_home, "test", "gpu"), "API key", "gpu")
    assert "refused" in line


def test_a_server_that_is_not_there_fails_the_test(llamadesk_home: Path):
    from tests.fixtures.llama_server import free_port

    connections(llamadesk_home, "add", "gone", f"http://127.0.0.1:{free_port()}/v1")
    assert_fails(connections(llamadesk_home, "test", "gone"), "Could not reach", "127.0.0.1")


def test_nothing_to_list_prints_nothing(llamadesk_home: Path):
    result = connections(llamadesk_home, "list")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_taken_name_or_a_wrong_input_stores_nothing(llamadesk_home: Path):
    home = llamadesk_home
    connections(home, "add", "gpu", "http://gpu-box:8080/v1")
    assert_fails(connections(home, "add", "gpu", "http://other:8080/v1", "--key-stdin", stdin=API_KEY),
                 "A connection named gpu exists: remove it first")
    assert_fails(connections(home, "add", "x", "gpu-box:8080"), "http:// or https://")
    assert_fails(connections(home, "add", "x", "http://gpu-box/v1", "--header", "Authorization: Bearer k"),
                 "API key field")
    assert_fails(connections(home, "add", "x", "http://gpu-box/v1", "--key-stdin", stdin="\n"), "no key")
    assert_fails(connections(home, "add", "x", "http://gpu-box/v1", "--timeout", "0"), "timeout")
    assert connections(home, "list").stdout == "gpu\thttp://gpu-box:8080/v1\tno key\n"
    assert not (config(home) / KEYS_FILE).exists() or API_KEY not in (config(home) / KEYS_FILE).read_text()


@pytest.mark.parametrize("args", [[], ["add", "gpu"], ["test"], ["rename", "a", "b"],
                                  ["add", "gpu", "http://x/v1", "--key", API_KEY],
                                  ["add", "gpu", "http://x/v1", f"--key={API_KEY}"]])
def test_wrong_usage_exits_2(llamadesk_home: Path, args: list[str]):
    assert_usage_error(connections(llamadesk_home, *args))


def test_doctor_names_a_damaged_connections_file(llamadesk_home: Path):
    config(llamadesk_home).mkdir(exist_ok=True)
    (config(llamadesk_home) / FILE_NAME).write_text('{"connections": [{"name": "a", "base_url": "ftp://x"}]}')
    result = subprocess.run([sys.executable, "-m", "app", "doctor"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "LLAMADESK_HOME": str(llamadesk_home)}, timeout=120)
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert ["problem", f"settings {FILE_NAME}",
            "damaged: the connection “a”: The base URL must start with http:// or https://, e.g. "
            "http://gpu-box:8080/v1."] in rows
    assert ["ok", f"settings {KEYS_FILE}", "ok"] in rows
    assert (config(llamadesk_home) / FILE_NAME).exists()  # doctor reports, the app sets aside
