"""The app as a process: one `running_app` fixture starts it and waits for it to be ready.

Readiness is the app's own signal, a line in its log ("model loaded" by default); the wait polls
the log file under a generous deadline and fails at once if the process ends instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120  # a cold start on a busy 2-core machine; a normal one takes a few seconds


def app_environment(home: Path, python: bool = True) -> dict[str, str]:
    """What the app sees: its own LLAMADESK_HOME, offscreen Qt, no display. For `python -m app`
    the repository is on PYTHONPATH (the launch may be from another folder); a bundle gets
    nothing of the source tree or the venv."""
    dropped = {"DISPLAY", "WAYLAND_DISPLAY", "LLAMADESK_DEBUG"}
    if not python:
        dropped |= {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(LLAMADESK_HOME=str(home), QT_QPA_PLATFORM="offscreen", PYTHONIOENCODING="utf-8")
    if python:
        env["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return env


@dataclass
class RunningApp:
    """A started Llamadesk process and the folder it writes to."""

    process: subprocess.Popen
    home: Path
    env: dict[str, str]

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "llamadesk.log"

    def log(self) -> str:
        path = self.log_path
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def wait_for_log(self, text: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until `text` is in the log; fails with the process's output if it ends first."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if self.process.poll() is not None:
                out, err = self.process.communicate()
                pytest.fail(f"the app ended (status {self.process.returncode}) before {text!r} was "
                            f"in its log:\n{out}\n{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} in the log within {timeout_s:.0f} s")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """Send `sig` (Ctrl+C by default) and wait for the process to end; its status and output."""
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=timeout_s)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)


@pytest.fixture
def running_app(llamadesk_home: Path) -> Iterator[Callable[..., RunningApp]]:
    """start(*args, command=None, home=None, cwd=REPO, ready="model loaded"): runs `python -m app
    ARGS` (or `command ARGS`, e.g. a bundle's executable) and returns once `ready` is in its log
    (ready="" returns at once). Whatever still runs at the end of the test is killed."""
    started: list[RunningApp] = []

    def start(*args: str, command: list[str] | None = None, home: Path | None = None, cwd: Path = REPO,
              ready: str = "model loaded") -> RunningApp:
        home = home or llamadesk_home
        env = app_environment(home, python=command is None)
        argv = [*(command or [sys.executable, "-m", "app"]), *args]
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        running = RunningApp(process, home, env)
        started.append(running)
        if ready:
            running.wait_for_log(ready)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.communicate()


# -- the command line, as a user runs it (shared by the CLI test modules) ---------------------------

def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m app ARGS` from the repository root, as a user on a UTF-8 terminal runs it."""
    environment = {k: v for k, v in os.environ.items() if k not in ("LLAMADESK_DEBUG", "QT_QPA_PLATFORM")}
    environment.update({"LLAMADESK_HOME": str(home), "PYTHONIOENCODING": "utf-8", **env})
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=environment,
                          capture_output=True, encoding="utf-8", errors="surrogateescape", timeout=60)


def assert_fails(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 1, nothing on stdout, one line on stderr that holds every needle."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_usage_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "" and "usage:" in result.stderr and "Traceback" not in result.stderr


def run_quick_bench(script: str, home: Path, model_path: Path) -> tuple[dict, str, str]:
    """`bench/SCRIPT --quick --model PATH` as a user runs it, offscreen, in its own process group
    (should it hang, it and the servers it started end together); its JSON figures (the last
    line), stdout and stderr, once it has ended with status 0 and no traceback."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="offscreen", LLAMADESK_HOME=str(home))
    process = subprocess.Popen([sys.executable, str(REPO / "bench" / script), "--quick", "--model",
                                str(model_path)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=540)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, out[-3000:] + err[-5000:]
    assert "Traceback" not in err, err
    return json.loads(out.strip().splitlines()[-1]), out, err
