"""PyInstaller hook for llama-cpp-python (pyinstaller-hooks-contrib has none).

llama_cpp does not link llama.cpp: llama_cpp/llama_cpp.py and llama_cpp/_ggml.py open
`<package>/lib/libllama.so` and `<package>/lib/libggml.so` with ctypes at import time
(llama_cpp/_ctypes_extensions.py, load_shared_library: `lib<name>.so` on Linux, `.so` or `.dylib`
on macOS, `<name>.dll` or `lib<name>.dll` on Windows). PyInstaller cannot see those loads, so this
hook collects the package's shared libraries to the same relative path, `llama_cpp/lib/`, where
the unchanged loader finds them inside the bundle. The libraries find each other there too (their
RUNPATH is $ORIGIN; on macOS @loader_path; on Windows the loader adds the folder to the DLL path).

Only what the app loads is collected:
- pip installs every name of a Linux library as a separate full copy (libllama.so, libllama.so.0,
  libllama.so.0.5.0): the bare name (what ctypes opens) and the SONAME (`.so.0`, what the other
  libraries ask the dynamic linker for) are kept, the fully versioned copy is not. The same for
  macOS' `lib<name>.<x.y.z>.dylib`.
- libmtmd / llava (multimodal projectors) are left out: the app never imports llama_cpp.mtmd_cpp or
  llava_cpp. Set LLAMADESK_BUNDLE_MTMD=1 to keep them.
- llama_cpp.server (the OpenAI-compatible web server, needs FastAPI) is excluded.

Backend libraries of GPU builds (libggml-cuda.so, ggml-cuda.dll, libggml-vulkan.so, libggml-metal
or an embedded Metal library, *.metal / *.metallib) sit in the same folder and are collected by
the same rules. The CUDA runtime itself (cudart, cublas) is found by PyInstaller's dependency
analysis when it is on the library path at build time.
"""

from __future__ import annotations

import os
import re

from PyInstaller.utils.hooks import copy_metadata, get_package_paths, logger

_FULL_VERSION = re.compile(r"(\.so\.\d+\.\d+[\d.]*|\.\d+\.\d+\.\d+\.dylib)$")
_LIBRARY = re.compile(r"(\.so(\.\d+)?|\.dylib|\.dll)$")
_DATA = re.compile(r"\.(metal|metallib)$")
_MULTIMODAL = ("mtmd", "llava")


def _wanted(name: str) -> bool:
    if _FULL_VERSION.search(name):
        return False
    multimodal = any(part in name for part in _MULTIMODAL)
    return not multimodal or bool(os.environ.get("LLAMADESK_BUNDLE_MTMD"))


_, _package_dir = get_package_paths("llama_cpp")
_lib_dir = os.path.join(_package_dir, "lib")
_dest = os.path.join("llama_cpp", "lib")

binaries = []
datas = copy_metadata("llama-cpp-python")  # the About box reads importlib.metadata.version()
for _name in sorted(os.listdir(_lib_dir)) if os.path.isdir(_lib_dir) else ():
    _path = os.path.join(_lib_dir, _name)
    if not os.path.isfile(_path) or not _wanted(_name):
        continue
    if _LIBRARY.search(_name):
        binaries.append((_path, _dest))
    elif _DATA.search(_name):
        datas.append((_path, _dest))
if not any(os.path.basename(src).startswith(("libllama", "llama")) for src, _ in binaries):
    raise SystemExit(f"hook-llama_cpp: no llama library in {_lib_dir}: is llama-cpp-python built?")
logger.info("hook-llama_cpp: collecting %s", ", ".join(os.path.basename(src) for src, _ in binaries))

# llama_chat_format imports jinja2 (its hook collects what it needs); nothing else is lazy-loaded.
hiddenimports = ["llama_cpp._ggml"]
excludedimports = ["llama_cpp.server"]
