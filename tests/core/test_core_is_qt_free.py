"""app/core must import and run without Qt: the design's first rule."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "app" / "core"
QT_PACKAGES = ("PySide6", "qasync", "shiboken6")


def test_no_module_in_app_core_imports_qt() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(CORE)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in QT_PACKAGES]
    assert not offenders, f"app/core imports Qt: {offenders}"


def test_importing_all_of_app_core_loads_no_qt() -> None:
    modules = sorted(".".join(("app", "core", *p.relative_to(CORE).with_suffix("").parts))
                     for p in CORE.rglob("*.py") if p.stem != "__init__")
    assert "app.core.inference.local.engine" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT_PACKAGES!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
