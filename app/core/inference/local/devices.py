"""Which compute devices this build of llama.cpp can use (CPU, CUDA, Metal, Vulkan...)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from app.core.inference.local import llama_adapter

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
    found = tuple(Device(name, description, _DEVICE_TYPES.get(kind, "other"))
                  for name, description, kind in llama_adapter.ggml_devices())
    return found or (Device("CPU", "", "CPU"),)


def gpu_offload_supported() -> bool:
    return llama_adapter.supports_gpu_offload()


def backend_name() -> str:
    """The backend answers run on: the first non-CPU device's, else CPU."""
    for dev in devices():
        if dev.kind != "CPU":
            return dev.backend
    return "CPU"
