"""The set-up script's backend choice stays in step with pyproject.toml."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bootstrap():
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "packaging" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_backend_rebuild_installs_the_pinned_llama_cpp_python() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert bootstrap().LLAMA_PACKAGE in deps


def test_a_backend_choice_is_part_of_the_recorded_setup(monkeypatch) -> None:
    module = bootstrap()
    monkeypatch.setenv("LLAMADESK_BACKEND", "CUDA")
    assert module.wanted_stamp([])["backend"] == "cuda"
    monkeypatch.delenv("LLAMADESK_BACKEND")
    assert module.wanted_stamp([])["backend"] == ""
    monkeypatch.setenv("LLAMADESK_BACKEND", "opencl")
    with pytest.raises(SystemExit, match="must be one of cpu, cuda, metal, vulkan"):
        module.chosen_backend()
