"""bench/serve.py keeps working: one quick run through `python -m app serve` reports every figure.

The speeds themselves (the 0.95 ours/raw target) are the bench's to report, not a test's to assert:
they depend on the machine and its load. What is asserted is that raw llama-cpp-python and our
server both streamed whole answers and were measured, that our server answered every short
request at each level of clients, that it said where it served and stopped cleanly, and that the
quick run says it left the peers out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_quick_bench


@pytest.mark.timeout(600)
def test_the_quick_serve_bench_measures_our_server_beside_raw_llama_cpp(llamadesk_home: Path,
                                                                         model_path: Path) -> None:
    figures, out, err = run_quick_bench("serve.py", llamadesk_home, model_path)

    assert (figures["model"], figures["threads"], figures["quick"]) == (model_path.name, 2, True)
    assert figures["nice"] == 0  # raw runs at our engine's own priority: serve's is not lowered
    assert (figures["tokens"], figures["rounds"], figures["target"]) == (32, 2, 0.95)
    assert set(figures["tok_s"]) == {"raw", "ours", "llama_cpp_server", "llama_server"}
    for name in ("raw", "ours"):
        assert figures["tok_s"][name] > 0 and figures["ttft_s"][name] > 0, (name, figures)
        assert len(figures["tok_s_rounds"][name]) == 2, (name, figures)
        assert figures["tokens_each"][name] and min(figures["tokens_each"][name]) > 0, (name, figures)
    assert figures["ratio_ours_raw"] > 0 and figures["ratio_ours_raw_best"] > 0
    assert isinstance(figures["pass"], bool)

    requests = figures["requests_per_level"]
    assert requests > 0 and figures["levels"] == [1, 4]
    assert figures["req_served"]["ours"] == {"1": requests, "4": requests}, figures["req_detail"]
    assert all(value > 0 for value in figures["req_s"]["ours"].values()), figures["req_s"]

    # The quick run leaves the peers out, and says so.
    for peer in ("llama_cpp_server", "llama_server"):
        assert figures["tok_s"][peer] is None and figures["req_s"][peer] is None
        assert "skipped" in figures["peers"][peer]
    assert figures["ours_said"].startswith("Serving ") and " at http://127.0.0.1:" in figures["ours_said"]
    assert figures["ours_exit_status"] == 0  # Ctrl+C stops `python -m app serve` cleanly
    for label in ("raw llama-cpp-python (in process)", "ours (python -m app serve)", "ratio ours/raw",
                  "requests/s", "skipped"):
        assert label in out, out  # the human table
    # The bench's settings live in the temporary home it made, never in the one it was given.
    assert not list(llamadesk_home.rglob("library.json"))
