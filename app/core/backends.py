"""Which compute devices this build of llama.cpp can use (CPU, CUDA, Metal, Vulkan...).

llama-cpp-python binds llama.h but not ggml's device registry, so the few ggml-backend
functions needed are declared here over the library it already loaded.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import llama_cpp

_DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "integrated GPU", 3: "accelerator"}


@dataclass(frozen=True)
class Device:
    name: str  # e.g. "CPU", "CUDA0", "Metal"
    description: str
    kind: str  # one of _DEVICE_TYPES' values

    @property
    def backend(self) -> str:
        return self.name.rstrip("0123456789") or self.name


@functools.cache
def devices() -> tuple[Device, ...]:
    try:
        from llama_cpp._ggml import libggml

        lib = libggml
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    except (ImportError, OSError, AttributeError):
        return (Device("CPU", "", "CPU"),)
    found = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        found.append(Device(
            name=(lib.ggml_backend_dev_name(dev) or b"?").decode(),
            description=(lib.ggml_backend_dev_description(dev) or b"").decode(),
            kind=_DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "other"),
        ))
    return tuple(found) or (Device("CPU", "", "CPU"),)


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def backend_name() -> str:
    """The backend answers run on: the first non-CPU device's, else CPU."""
    for dev in devices():
        if dev.kind != "CPU":
            return dev.backend
    return "CPU"
