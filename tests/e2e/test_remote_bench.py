"""bench/remote.py keeps working: one quick run against a real llama-server reports every figure.

The speeds themselves (the 0.95 ratio target) are the bench's to report, not a test's to assert:
they depend on the machine and its load. What is asserted is that the answers ran through the chat
session to their end, that both the app's and the server's speeds were measured, and that every
level of answers side by side was answered whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_quick_bench


@pytest.mark.timeout(600)
def test_the_quick_remote_bench_reports_the_app_and_server_speeds(llamadesk_home: Path,
                                                                   model_path: Path) -> None:
    figures, out, _ = run_quick_bench("remote.py", llamadesk_home, model_path)
    assert figures["model"] == model_path.name and figures["server_kind"] == "llama.cpp"
    assert (figures["parallel"], figures["threads"], figures["quick"]) == (4, 2, True)
    assert figures["answers"] == 2 and 0 < figures["tokens"] <= figures["max_tokens"]
    for key in ("app_tok_s", "server_tok_s", "ratio", "session_tok_s", "app_ttft_s", "server_prompt_ms"):
        assert figures[key] > 0, (key, figures)
    assert isinstance(figures["pass"], bool) and isinstance(figures["devices"], list)
    assert set(figures["levels"]) == {"1", "2", "4"}
    for level, row in figures["levels"].items():
        assert row["answers"] == int(level) and 0 < row["tokens"] <= int(level) * figures["max_tokens"]
        assert row["rounds"] == 1 and len(row["aggregate_tok_s_rounds"]) == 1
        for key in ("wall_s", "aggregate_tok_s", "per_answer_tok_s", "server_per_answer_tok_s"):
            assert row[key] > 0, (level, key, row)
    for label in ("app (RemoteBackend, on arrival)", "server (timings; prompt time)", "ratio app/server",
                  "answers at once"):
        assert label in out, out  # the human table
    # The bench's connection lives in the temporary home it made, never in the one it was given.
    assert not list(llamadesk_home.rglob("connection-keys.json"))
