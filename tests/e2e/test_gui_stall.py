"""bench/gui_stall.py keeps working: one quick run measures every activity in the real window.

The figures themselves (the 50 ms target) are the bench's to report, not a test's to assert: they
depend on the machine and its load. What is asserted is that each activity ran to its end in the
window and that the meter saw the loop turn throughout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ACTIVITIES = {"stream", "import", "export", "search", "load", "models", "scan", "serve", "idle"}


@pytest.mark.timeout(600)
def test_the_quick_gui_stall_bench_measures_every_activity(llamadesk_home: Path, model_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(QT_QPA_PLATFORM="offscreen", LLAMADESK_HOME=str(llamadesk_home))
    result = subprocess.run([sys.executable, str(REPO / "bench" / "gui_stall.py"), "--quick",
                             "--model", str(model_path)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=540)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "Traceback" not in result.stderr, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    activities = figures["activities"]
    assert set(activities) == ACTIVITIES
    for name, row in activities.items():
        assert row["ticks"] > 0 and row["max_ms"] >= row["p99_ms"] >= 0, (name, row)
    assert figures["exported_files"] == figures["conversations"] + 1  # and the streamed chat, not the import
    assert figures["answer_tokens"] > 0 and figures["hits"]["model"] > 0
    served = figures["serve"]  # every API client answered while the window answered too
    assert served["answered"] == served["clients"] == 20 and served["window_tokens"] > 0
    assert figures["worst"] in ACTIVITIES and set(figures["pass"]) == ACTIVITIES - {"idle"}
    for label in ("streaming an answer", "importing", "exporting", "searching", "loading the model",
                  "opening the models window", "scanning a folder", "API clients while the window answers"):
        assert label in result.stdout, result.stdout  # the human table: one row per activity
