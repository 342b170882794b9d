"""The app as a process, as a user (or a packaging script) runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_app(*args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # it sets it itself
    env["LLAMADESK_HOME"] = str(home)
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_self_test_prints_one_json_line_of_real_stats(tmp_path: Path) -> None:
    result = run_app("--self-test", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    stats = json.loads(lines[0])
    assert stats["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert stats["backend"] == "CPU"
    assert stats["prompt_tokens"] > 10
    assert stats["completion_tokens"] > 0
    assert stats["ttft_s"] > 0 and stats["tokens_per_s"] > 0
    assert stats["text"].strip()
    assert (tmp_path / "logs" / "llamadesk.log").exists(), "the app writes under LLAMADESK_HOME"
    assert "QThread" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    listed = run_app("conversations", "list", home=tmp_path)  # the self-test's chat is stored
    [line] = listed.stdout.splitlines()
    assert line.split("\t")[1:3] == ["Say hello in five words.", "2"]


def test_self_test_with_a_broken_model_fails_with_a_reason(tmp_path: Path) -> None:
    bad = tmp_path / "half.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    result = run_app("--self-test", "--model", str(bad), home=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("self-test failed: the model did not load: half.gguf ends inside its header")


def test_version_flag(tmp_path: Path) -> None:
    from app import __version__

    result = run_app("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"llamadesk {__version__}"


def test_the_gui_without_a_display_says_so_instead_of_crashing(tmp_path: Path) -> None:
    if sys.platform in ("win32", "darwin"):
        return  # those always have a display
    result = run_app(home=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "needs a display" in result.stderr


def test_ctrl_c_closes_the_running_app_cleanly(running_app) -> None:
    import signal

    if sys.platform == "win32":
        return  # no SIGINT to a GUI process there
    closed = running_app().stop(signal.SIGINT)  # started: the model has loaded
    assert closed.returncode == 0, closed.stderr
    assert "QThread" not in closed.stderr and "Traceback" not in closed.stderr, closed.stderr
