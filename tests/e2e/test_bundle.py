"""The double-click app: build the PyInstaller bundle, then run it as a user would.

The bundle is built with the documented command (packaging/build_bundle.py) into a temporary
folder; PyInstaller's work folder is build/pyinstaller, so a later build reuses its analysis
(about 30 s on 2 cores; the first build takes longer). Then, from the bundle itself:
--version, --self-test with the real model (tokens come from the bundle's own llama.cpp), the
libraries a running bundle has loaded, and a build with --with-model that finds its model alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 1500  # a first build on 2 cores; later ones reuse build/pyinstaller
MAX_BUNDLE_MB = 300  # lean: 187 MB on Linux in 2026-11 (Qt + ICU 90, numpy 42, llama.cpp 6)

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT_S + 300)


def _build_script():
    """packaging/build_bundle.py as a module (`packaging` is not a package: pip's has that name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_bundle", REPO / "packaging" / "build_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(dist: Path, *options: str) -> Path:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        pytest.fail("PyInstaller is not installed in this environment: it is in the test extra "
                    "(pip install -e '.[test]', or python3 packaging/bootstrap.py test).")
    script = REPO / "packaging" / "build_bundle.py"
    result = subprocess.run([sys.executable, str(script), "--quiet", "--dist", str(dist), *options],
                            cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    print(result.stdout)  # size and build time, shown with -s
    exe = _build_script().executable(dist)
    assert exe.is_file() and os.access(exe, os.X_OK), result.stdout
    return exe


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The default bundle's executable (dist/llamadesk/llamadesk in a temporary dist folder)."""
    return _build(tmp_path_factory.mktemp("dist"))


def run_bundle(exe: Path, *args: str, home: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the bundle from a neutral folder with nothing of the source tree or the venv in reach."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(QT_QPA_PLATFORM="offscreen", LLAMADESK_HOME=str(home))
    return subprocess.run([str(exe), *args], cwd=home, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_version_from_the_bundle(bundle: Path, tmp_path: Path) -> None:
    from app import __version__

    result = run_bundle(bundle, "--version", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"llamadesk {__version__}"


def test_self_test_from_the_bundle_generates_real_tokens(bundle: Path, tmp_path: Path,
                                                         model_path: Path) -> None:
    result = run_bundle(bundle, "--self-test", "--model", str(model_path), home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    stats = json.loads(lines[0])
    assert stats["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert stats["completion_tokens"] > 0 and stats["prompt_tokens"] > 10
    assert stats["text"].strip()
    assert "Traceback" not in result.stderr, result.stderr
    assert (tmp_path / "logs" / "llamadesk.log").exists()


def test_the_bundle_is_lean_and_carries_llama_cpp_but_no_model(bundle: Path) -> None:
    root = bundle.parent
    internal = root / "_internal"
    lib = internal / "llama_cpp" / "lib"
    if sys.platform.startswith("linux"):
        for name in ("libllama.so", "libggml.so", "libggml-base.so.0", "libggml-cpu.so.0"):
            assert (lib / name).exists(), f"{name} is missing from {lib}"
    assert any(p.name.startswith(("libllama", "llama.")) for p in lib.iterdir())
    assert (internal / "resources" / "icons" / "hicolor" / "256x256" / "apps" / "llamadesk.png").is_file()
    assert not list(root.rglob("*.gguf")), "the default bundle must not include a model"
    unwanted = [p for p in root.rglob("*") if p.name.split(".")[0] in (
        "tkinter", "_tkinter", "pytest", "hypothesis", "gguf", "QtWebEngineCore", "QtQml", "QtQuick",
        "libQt6Qml", "libQt6Quick", "libqgtk3", "libgtk-3")]
    assert not unwanted, unwanted
    size_mb = _build_script().tree_size(root) / 1e6
    assert size_mb < MAX_BUNDLE_MB, f"the bundle grew to {size_mb:.0f} MB"


def _maps_of_tree(pid: int) -> list[str]:
    """/proc maps of a process and all its descendants (the model runs in a child process)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            found.append(Path(f"/proc/{current}/maps").read_text())
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def test_the_running_bundle_uses_its_own_llama_cpp(bundle: Path, running_app, tmp_path: Path,
                                                    model_path: Path) -> None:
    """The window (offscreen) with the model loaded: every llama/ggml library mapped into the
    window's process or the engine process it started comes from inside the bundle."""
    if not sys.platform.startswith("linux"):
        return  # /proc/<pid>/maps is Linux's
    app = running_app("--model", str(model_path), command=[str(bundle)], home=tmp_path, cwd=tmp_path)
    maps = "".join(_maps_of_tree(app.process.pid))
    closed = app.stop(signal.SIGINT, timeout_s=30)
    mapped = {line.split(maxsplit=5)[5] for line in maps.splitlines() if len(line.split(maxsplit=5)) == 6}
    llama = sorted(p for p in mapped if "libllama" in p or "libggml" in p)
    assert any("libllama" in p for p in llama), llama
    inside = str(bundle.parent.resolve()) + os.sep
    assert all(p.startswith(inside) for p in llama), llama
    assert closed.returncode == 0, closed.stderr
    assert "Traceback" not in closed.stderr, closed.stderr


def test_a_build_with_the_model_finds_it_alone(tmp_path_factory, tmp_path: Path, model_path: Path) -> None:
    exe = _build(tmp_path_factory.mktemp("dist-with-model"), "--with-model")
    bundled = list(exe.parent.rglob("*.gguf"))
    assert [p.name for p in bundled] == [model_path.name]
    assert bundled[0].stat().st_size == model_path.stat().st_size
    result = run_bundle(exe, "--self-test", home=tmp_path)  # no --model: the bundle's own
    assert result.returncode == 0, result.stdout + result.stderr
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["model"] == "SmolLM2-135M-Instruct.Q4_1" and stats["completion_tokens"] > 0


def test_the_bundle_downloads_a_model_from_the_hub(bundle: Path, tmp_path: Path) -> None:
    """huggingface_hub, httpx and ssl work from the bundle (a local fake hub stands in)."""
    from tests.fixtures.fake_hub import FakeHub
    from tests.fixtures.gguf_files import write_tiny_llama

    home = tmp_path / "home"
    home.mkdir()
    data = write_tiny_llama(tmp_path / "src.gguf").read_bytes()
    with FakeHub() as hub:  # sets HF_ENDPOINT for the bundle's environment
        hub.add_repo("someone/Tiny-GGUF", {"tiny-Q8_0.gguf": data})
        result = run_bundle(bundle, "models", "download", "someone/Tiny-GGUF", "tiny-Q8_0.gguf", home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    path = Path(result.stdout.strip())
    assert path == home / "data" / "models" / "someone" / "Tiny-GGUF" / "tiny-Q8_0.gguf"
    assert path.read_bytes() == data
    listed = run_bundle(bundle, "models", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["tiny-Q8_0"]  # no built-in model
