"""llama-cpp-python is reached through one module, so that an upgrade touches one file."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
ADAPTER = APP / "core" / "inference" / "local" / "llama_adapter.py"


def test_only_the_adapter_imports_llama_cpp() -> None:
    importers = []
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            if any(name.split(".")[0] == "llama_cpp" for name in names):
                importers.append(str(path.relative_to(APP)))
    assert importers and set(importers) == {str(ADAPTER.relative_to(APP))}
