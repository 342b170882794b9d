"""A second launch hands its model path to the running Llamadesk instead of starting another.

In-process (pytest-qt): two SingleInstance objects on one name. As processes: a first `python -c`
claims and waits; a second, started in another working folder with a relative path, hands the
path over and exits 0; the first prints what it received.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app.single_instance import NAME_FILE, SingleInstance, server_name

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def name(tmp_path: Path) -> str:
    """A fresh server name: a socket path in tmp_path on Unix, a pipe name on Windows."""
    if sys.platform == "win32":
        return f"llamadesk-test-{uuid.uuid4().hex}"
    return str(tmp_path / "instance.sock")


def test_the_second_claim_loses_and_its_path_arrives_on_the_first(qtbot, name: str, tmp_path: Path) -> None:
    first, second = SingleInstance(), SingleInstance()
    try:
        assert first.claim(name) is True and first.is_primary
        assert second.claim(name) is False and not second.is_primary
        model = tmp_path / "dir with spaces" / "módel.gguf"
        with qtbot.waitSignal(first.opened, timeout=5000) as blocker:
            assert second.send(model) is True
        assert blocker.args == [str(model)]
        # A launch without a model only asks the window to come to the front.
        third = SingleInstance()
        assert third.claim(name) is False
        with qtbot.waitSignal(first.opened, timeout=5000) as blocker:
            assert third.send(None) is True
        assert blocker.args == [""]
    finally:
        first.close()
        second.close()
    # Once the first is gone the name is free again.
    again = SingleInstance()
    try:
        assert again.claim(name) is True
    finally:
        again.close()


def test_a_relative_path_is_handed_over_as_absolute(qtbot, name: str, tmp_path: Path, monkeypatch) -> None:
    first, second = SingleInstance(), SingleInstance()
    monkeypatch.chdir(tmp_path)
    try:
        assert first.claim(name)
        assert not second.claim(name)
        with qtbot.waitSignal(first.opened, timeout=5000) as blocker:
            assert second.send("models/small.gguf")
        assert blocker.args == [str(tmp_path / "models" / "small.gguf")]
    finally:
        first.close()
        second.close()


def test_garbage_from_a_stranger_is_ignored(qtbot, name: str) -> None:
    from PySide6.QtNetwork import QLocalSocket

    first = SingleInstance()
    received: list[str] = []
    first.opened.connect(received.append)
    try:
        assert first.claim(name)
        stranger = QLocalSocket()
        stranger.connectToServer(name)
        assert stranger.waitForConnected(1000)
        stranger.write(b'{"not": "ours"}\n')
        stranger.flush()
        unconnected = QLocalSocket.LocalSocketState.UnconnectedState
        qtbot.waitUntil(lambda: stranger.state() == unconnected, timeout=5000)
        assert received == []
        assert first.is_primary  # still serving
    finally:
        first.close()


def test_the_name_is_per_user_data_folder(tmp_path: Path) -> None:
    a, b = server_name(tmp_path / "a"), server_name(tmp_path / "b")
    assert a != b
    assert server_name(tmp_path / "a") == a  # stable across launches
    assert "llamadesk-" in a and len(os.path.basename(a)) == len("llamadesk-") + 16
    if sys.platform.startswith("linux") and os.environ.get("XDG_RUNTIME_DIR"):
        assert os.path.dirname(a) == os.environ["XDG_RUNTIME_DIR"]


def test_the_default_name_follows_llamadesk_home(llamadesk_home: Path) -> None:
    from app import paths

    assert server_name() == server_name(paths.data_dir())
    assert str(llamadesk_home) in str(paths.data_dir())


# ------------------------------------------------------------------------------- as processes

PRIMARY = """
import sys
from PySide6.QtCore import QCoreApplication, QTimer
from app.single_instance import SingleInstance
app = QCoreApplication([])
instance = SingleInstance()
print("primary" if instance.claim(sys.argv[1]) else "secondary", flush=True)
def opened(path):
    print("opened", path, flush=True)
    app.quit()
instance.opened.connect(opened)
QTimer.singleShot(60_000, app.quit)
app.exec()
instance.close()
"""

SECONDARY = """
import sys
from PySide6.QtCore import QCoreApplication
from app.single_instance import SingleInstance
app = QCoreApplication([])
instance = SingleInstance()
if instance.claim(sys.argv[1]):
    print("primary", flush=True)
    sys.exit(3)
sys.exit(0 if instance.send(sys.argv[2]) else 4)
"""


def _python(code: str, *args: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return [sys.executable, "-c", code, *args], env


def _start_primary(name: str, cwd: Path) -> subprocess.Popen:
    cmd, env = _python(PRIMARY, name)
    primary = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert primary.stdout.readline().strip() == "primary", primary.stderr.read() if primary.poll() else ""
    return primary


def test_a_second_process_hands_its_path_to_the_first_and_exits_0(name: str, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    primary = _start_primary(name, tmp_path)
    try:
        cmd, env = _python(SECONDARY, name, "model.gguf")
        second = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stdout + second.stderr
        out, err = primary.communicate(timeout=30)
    finally:
        if primary.poll() is None:
            primary.kill()
            primary.wait()
    assert primary.returncode == 0, err
    assert out.strip() == f"opened {elsewhere / 'model.gguf'}"


def test_a_crashed_instance_leaves_no_lock_behind(name: str, tmp_path: Path) -> None:
    if sys.platform == "win32":
        return  # a named pipe goes with its process: nothing can be left behind
    primary = _start_primary(name, tmp_path)
    primary.send_signal(signal.SIGKILL)  # no clean-up: the socket file stays
    primary.communicate(timeout=30)
    assert Path(name).exists(), "the killed instance should have left its socket file"
    # The next launch finds nobody answering, replaces the socket and is the first.
    cmd, env = _python(SECONDARY, name, "model.gguf")
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3 and result.stdout.strip() == "primary", result.stdout + result.stderr


def test_llamadesk_with_a_model_file_hands_it_to_the_running_window(running_app, tmp_path: Path,
                                                                    model_path: Path) -> None:
    """`llamadesk other.gguf` (what the desktop entry runs for a double-clicked file) while
    Llamadesk runs: the second process exits 0 and the running window loads other.gguf."""
    if sys.platform == "win32":
        return  # no SIGINT to end the first one there
    other = tmp_path / "other.gguf"
    other.symlink_to(model_path)
    first = running_app()  # started: its default model has loaded
    second = subprocess.run([sys.executable, "-m", "app", "other.gguf"], cwd=tmp_path, env=first.env,
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr
    first.wait_for_log(f"model loaded: {other}")
    closed = first.stop(signal.SIGINT)
    assert closed.returncode == 0, closed.stderr
    assert "Traceback" not in closed.stderr + second.stderr, closed.stderr + second.stderr


RACER = """
import sys
from PySide6.QtCore import QCoreApplication
from app.single_instance import SingleInstance
app = QCoreApplication([])
instance = SingleInstance()
print("ready", flush=True)
sys.stdin.readline()  # every racer claims when the test says go
print("primary" if instance.claim(sys.argv[1] or None) else "secondary", flush=True)
sys.stdin.readline()  # the primary keeps listening until every racer has looked
instance.close()
"""


def race(racers: list[subprocess.Popen]) -> list[str]:
    """Start the racers' claims together (each waits on its stdin once ready) and collect what each
    became; the primary listens until all have answered."""
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready", racer.communicate()
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outputs = [racer.stdout.readline().strip() for racer in racers]
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=60)
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    return outputs


def test_launches_at_the_same_moment_make_exactly_one_primary(name: str, tmp_path: Path) -> None:
    """Opening several .gguf files at once starts one process per file: only one may win."""
    cmd, env = _python(RACER, name)
    outputs = race([subprocess.Popen(cmd, cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True) for _ in range(4)])
    assert sorted(outputs) == ["primary", "secondary", "secondary", "secondary"], outputs


# ------------------------------------------------- one instance per data folder, whatever the environment

def test_the_published_name_is_found_whatever_the_environment(qtbot, tmp_path: Path, monkeypatch) -> None:
    """Two launches on one data folder whose XDG_RUNTIME_DIR differs: one primary, and the handover
    arrives (before: each computed its own socket path, and both became primary)."""
    data = tmp_path / "data"
    data.mkdir()
    for runtime in ("run-a", "run-b"):
        (tmp_path / runtime).mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run-a"))
    first = SingleInstance(data_dir=data)
    second = SingleInstance(data_dir=data)
    try:
        assert first.claim() is True
        published = (data / NAME_FILE).read_text().strip()
        assert published == first.name and Path(published).exists()
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run-b"))
        assert second.claim() is False and not second.is_primary
        with qtbot.waitSignal(first.opened, timeout=5000) as blocker:
            assert second.send(tmp_path / "m.gguf") is True
        assert blocker.args == [str(tmp_path / "m.gguf")]
    finally:
        second.close()
        first.close()
    assert not (data / NAME_FILE).exists()  # the primary took its name with it


def test_a_stale_published_name_is_replaced(qtbot, tmp_path: Path) -> None:
    """A crash leaves the name file (and maybe a socket nobody listens on): the next launch is primary."""
    data = tmp_path / "data"
    data.mkdir()
    (data / NAME_FILE).write_text(str(tmp_path / "gone.sock") + "\n")
    instance = SingleInstance(data_dir=data)
    try:
        assert instance.claim() is True and instance.is_primary
        assert (data / NAME_FILE).read_text().strip() == instance.name != str(tmp_path / "gone.sock")
    finally:
        instance.close()


CLAIMER = """
import sys
from PySide6.QtCore import QCoreApplication, QTimer
from app.single_instance import SingleInstance
app = QCoreApplication([])
instance = SingleInstance()
if not instance.claim():
    print("secondary", flush=True)
    sys.exit(0 if instance.send(sys.argv[1]) else 4)
print("primary", flush=True)
def opened(path):
    print("opened", path, flush=True)
    app.quit()
instance.opened.connect(opened)
QTimer.singleShot(float(sys.argv[2]) * 1000, app.quit)
app.exec()
instance.close()
"""


def _environment(tmp_path: Path, label: str, variable: str) -> dict[str, str]:
    """One launch's environment: its own XDG_RUNTIME_DIR, or no XDG_RUNTIME_DIR and its own TMPDIR."""
    folder = tmp_path / label
    folder.mkdir(exist_ok=True)
    _, env = _python("")
    env = {k: v for k, v in env.items() if k not in ("XDG_RUNTIME_DIR", "TMPDIR")}
    env.update({"LLAMADESK_HOME": str(tmp_path / "home"), variable: str(folder)})
    return env


@pytest.mark.parametrize("variable", ["XDG_RUNTIME_DIR", "TMPDIR"])
def test_launches_in_different_environments_share_one_instance(tmp_path: Path, variable: str) -> None:
    if sys.platform == "win32":
        return  # a named pipe has one global namespace there
    first = subprocess.Popen([sys.executable, "-c", CLAIMER, "", "60"], cwd=tmp_path,
                             env=_environment(tmp_path, "a", variable), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "primary", first.stderr.read() if first.poll() else ""
        second = subprocess.run([sys.executable, "-c", CLAIMER, "model.gguf", "0"], cwd=tmp_path,
                                env=_environment(tmp_path, "b", variable), capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 0 and second.stdout.strip() == "secondary", second.stdout + second.stderr
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert out.strip() == f"opened {tmp_path / 'model.gguf'}", err


def test_racing_launches_in_different_environments_make_one_primary(tmp_path: Path) -> None:
    if sys.platform == "win32":
        return
    cmd, _ = _python(RACER, "")  # no name: each finds it from its own environment
    environments = [_environment(tmp_path, f"run-{i}", "XDG_RUNTIME_DIR") for i in range(4)]
    outputs = race([subprocess.Popen(cmd, cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True) for env in environments])
    assert sorted(outputs) == ["primary", "secondary", "secondary", "secondary"], outputs


def test_a_too_long_temporary_folder_falls_back_to_tmp(qtbot, tmp_path: Path, monkeypatch) -> None:
    if sys.platform == "win32":
        return
    long_tmp = tmp_path / ("t" * 60) / ("u" * 60)
    long_tmp.mkdir(parents=True)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(long_tmp))
    data = tmp_path / "data"
    data.mkdir()
    first, second = SingleInstance(data_dir=data), SingleInstance(data_dir=data)
    try:
        assert first.claim() is True and first.is_primary
        assert first.name.startswith("/tmp/llamadesk-")
        assert (data / NAME_FILE).read_text().strip() == first.name
        assert second.claim() is False
    finally:
        second.close()
        first.close()
