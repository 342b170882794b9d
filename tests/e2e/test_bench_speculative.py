"""bench/speculative.py keeps working: one quick run measures raw, drafting "auto" and "off" on a
quoting and an ordinary prompt, the greedy agreement, the acceptance, the stop latency, and the
exactness of drafting with flash attention.

The speeds (the 1.5x and 0.98x targets) and the stop latency's bound are the bench's to report, not a
test's to assert: they depend on the machine and its load. What is asserted is what a reader of the
figures depends on: every contender answered every prompt and was measured on its whole prompt, the
agreement shares are shares, drafting drafted on the quoting prompt and its acceptance is reported,
and Stop ended the drafted answer before its limit. How many drafted greedy answers equal raw's, with
and without flash attention, is reported, not asserted: where llama.cpp's kernels compute a batched
position differently from a lone one depends on the context length and the machine (tests/core/
test_drafting.py asserts the equality where it holds: short contexts, flash attention).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_quick_bench


@pytest.mark.timeout(600)
def test_the_quick_speculative_bench_reports_speed_agreement_acceptance_and_stop(llamadesk_home: Path,
                                                                                 model_path: Path) -> None:
    figures, out, err = run_quick_bench("speculative.py", llamadesk_home, model_path)

    assert (figures["model"], figures["quick"], figures["threads"]) == (model_path.name, True, 2)
    assert (figures["tokens"], figures["rounds"], figures["n_ctx"]) == (48, 1, 4096)
    assert figures["drafting"] == {"auto": "prompt lookup", "off": ""}
    rows = figures["prompts"]
    assert sorted(row["kind"] for row in rows) == ["ordinary", "quoting"]
    for row in rows:
        for contender in ("raw", "auto", "off"):
            assert len(row["tokens"][contender]) == 1 and row["tokens"][contender][0] > 1, (contender, row)
            assert row["tok_s"][contender] > 0, (contender, row)
        assert row["ratio_auto_raw"] > 0 and row["ratio_off_raw"] > 0
        assert row["app_cached_tokens"] == 0, row  # the app read its whole prompt, as raw did
        for key in ("agreement", "agreement_off"):
            shares = row[key]
            assert 0 <= shares["prefix_share"] <= 1 and 0 <= shares["position_share"] <= 1, (key, row)
            assert isinstance(shares["identical"], bool)
            if shares["identical"]:
                assert shares["prefix_share"] == shares["position_share"] == 1

    quoting = next(row for row in rows if row["kind"] == "quoting")
    assert quoting["drafting"] == "prompt lookup" and quoting["drafted"] > 0, quoting
    assert 0 <= quoting["accepted"] <= quoting["drafted"]
    assert quoting["acceptance"] == round(quoting["accepted"] / quoting["drafted"], 4)
    assert 0 <= quoting["auto_paused_rounds"] <= 1

    agreement = figures["agreement"]
    assert agreement["of"] == 2 and 0 <= agreement["identical"] <= 2 and 0 <= agreement["off_identical"] <= 2
    assert 0 <= agreement["mean_prefix_share"] <= 1 and 0 <= agreement["mean_position_share"] <= 1

    flash = figures["flash_attention"]
    assert flash["drafting"] == "prompt lookup" and flash["of"] == 2 and 0 <= flash["identical"] <= 2
    assert 0 <= flash["mean_prefix_share"] <= 1 and 0 <= flash["mean_position_share"] <= 1
    assert sorted(row["name"] for row in flash["prompts"]) == sorted(row["name"] for row in rows)
    for row in flash["prompts"]:
        assert row["tokens"]["raw"] > 1 and row["tokens"]["auto"] > 1 and row["ratio_auto_raw"] > 0, row
        assert row["app_cached_tokens"] == 0, row  # both read the whole prompt from an empty context
        shares = row["agreement"]
        assert 0 <= shares["prefix_share"] <= 1 and 0 <= shares["position_share"] <= 1, row
    assert next(row for row in flash["prompts"] if row["kind"] == "quoting")["drafted"] > 0, flash
    for kind in ("quoting", "ordinary"):
        assert flash["groups"][kind]["prompts"] == 1 and flash["groups"][kind]["median_ratio_auto_raw"] > 0

    for kind, target in (("quoting", 1.5), ("ordinary", 0.98)):
        group = figures["groups"][kind]
        assert group["prompts"] == 1 and group["target"] == target and isinstance(group["pass"], bool)
        assert group["median_ratio_auto_raw"] > 0 and group["median_ratio_off_raw"] > 0
    assert figures["pass"] == all(group["pass"] for group in figures["groups"].values())

    stop = figures["stop"]
    assert stop["drafting"] == "prompt lookup" and len(stop["trials"]) == 3, stop
    for trial in stop["trials"]:
        assert trial["stop_reason"] == "user" and trial["latency_s"] is not None and trial["latency_s"] >= 0
        assert trial["tokens_seen_when_asked"] <= trial["tokens_when_stopped"] < stop["limit"], trial
    assert stop["max_latency_s"] == max(trial["latency_s"] for trial in stop["trials"])
    assert stop["batch_tokens"] == 17 and stop["batch_s"] > 0 and stop["one_token_s"] > 0
    assert stop["bound_s"] == round(stop["batch_s"] + stop["send_every_s"], 4)
    assert isinstance(stop["within_bound"], bool)

    for label in ("auto/raw", "quoting prompts: median auto/raw", "ordinary prompts: median auto/raw",
                  "identical answers", "with flash attention (raw Llama(flash_attn=True)",
                  "stop with drafting on", "stop latency: at most",
                  "overall:"):
        assert label in out, out  # the human table
