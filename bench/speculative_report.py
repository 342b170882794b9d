"""The figures and the table of bench/speculative.py: agreement between two answers, a prompt's row,
and the printed report (a table, then the JSON object as the last line)."""

from __future__ import annotations

import json
import statistics

CONTENDERS = ("raw", "auto", "off")


def agreement(tokenize, raw_text: str, app_text: str) -> dict:
    raw, app = tokenize(raw_text), tokenize(app_text)
    prefix = 0
    for a, b in zip(raw, app, strict=False):
        if a != b:
            break
        prefix += 1
    same = sum(a == b for a, b in zip(raw, app, strict=False))
    longest = max(len(raw), len(app))
    return {"prefix_share": round(prefix / len(raw), 4) if raw else 1.0,
            "position_share": round(same / longest, 4) if longest else 1.0,
            "identical": raw_text == app_text}


def prompt_row(name: str, kind: str, prompt_tokens: int, results: dict[str, list[dict]], tokenize) -> dict:
    tok_s = {c: statistics.median(r["tok_s"] for r in results[c]) for c in CONTENDERS}
    auto = results["auto"]
    drafted, accepted = sum(r["drafted"] for r in auto), sum(r["accepted"] for r in auto)
    return {
        "name": name, "kind": kind, "prompt_tokens": prompt_tokens,
        "tokens": {c: [r["tokens"] for r in results[c]] for c in CONTENDERS},
        "tok_s": {c: round(v, 2) for c, v in tok_s.items()},
        "tok_s_rounds": {c: [round(r["tok_s"], 2) for r in results[c]] for c in CONTENDERS},
        "ratio_auto_raw": round(tok_s["auto"] / tok_s["raw"], 3) if tok_s["raw"] else 0.0,
        "ratio_off_raw": round(tok_s["off"] / tok_s["raw"], 3) if tok_s["raw"] else 0.0,
        "drafting": next((r["drafting"] for r in auto if r["drafting"]), ""),
        "drafted": drafted, "accepted": accepted,
        "acceptance": round(accepted / drafted, 4) if drafted else None,
        "auto_paused_rounds": sum(r["turned_off"] for r in auto),  # rounds where auto paused drafting
        "app_cached_tokens": max(r["cached_tokens"] for c in ("auto", "off") for r in results[c]),
        "agreement": agreement(tokenize, results["raw"][0]["text"], auto[0]["text"]),
        "agreement_off": agreement(tokenize, results["raw"][0]["text"], results["off"][0]["text"]),
    }


def flash_row(name: str, kind: str, prompt_tokens: int, answers: dict[str, dict], tokenize) -> dict:
    raw, auto = answers["raw"], answers["auto"]
    return {"name": name, "kind": kind, "prompt_tokens": prompt_tokens,
            "tokens": {"raw": raw["tokens"], "auto": auto["tokens"]},
            "tok_s": {"raw": round(raw["tok_s"], 2), "auto": round(auto["tok_s"], 2)},
            "ratio_auto_raw": round(auto["tok_s"] / raw["tok_s"], 3) if raw["tok_s"] else 0.0,
            "drafted": auto["drafted"], "accepted": auto["accepted"],
            "app_cached_tokens": auto["cached_tokens"],
            "agreement": agreement(tokenize, raw["text"], auto["text"])}


def mean_share(values) -> float:
    return round(statistics.mean(values), 4)


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def report(figures: dict) -> None:
    print(f"model {figures['model']}, {figures['threads']} threads, n_ctx {figures['n_ctx']}, "
          f"{figures['tokens']} tokens, {figures['rounds']} round(s), app: {figures['app']}, "
          f"drafting auto: {figures['drafting']['auto'] or 'none'}")
    print(f"{'prompt':<32}{'kind':<9}{'tokens r/a/o':>14}{'raw t/s':>9}{'auto t/s':>9}{'off t/s':>9}"
          f"{'auto/raw':>9}{'off/raw':>8}{'accept':>8}{'paused':>9}{'agree pre':>10}{'agree pos':>10}"
          f"{'same':>6}")
    for row in figures["prompts"]:
        counts = "/".join(str(row["tokens"][c][0]) for c in CONTENDERS)
        accept = "-" if row["acceptance"] is None else f"{row['acceptance']:.2f}"
        turned = f"{row['auto_paused_rounds']}/{len(row['tokens']['auto'])}"
        agree = row["agreement"]
        print(f"{row['name'][:31]:<32}{row['kind']:<9}{counts:>14}{row['tok_s']['raw']:>9.1f}"
              f"{row['tok_s']['auto']:>9.1f}{row['tok_s']['off']:>9.1f}{row['ratio_auto_raw']:>9.3f}"
              f"{row['ratio_off_raw']:>8.3f}{accept:>8}{turned:>9}{agree['prefix_share']:>10.3f}"
              f"{agree['position_share']:>10.3f}{'yes' if agree['identical'] else 'no':>6}")
    for kind, group in figures["groups"].items():
        verdict = "PASS" if group["pass"] else "FAIL"
        print(f"{kind} prompts: median auto/raw {group['median_ratio_auto_raw']} "
              f"(target >= {group['target']}: {verdict}), median off/raw {group['median_ratio_off_raw']}")
    agree = figures["agreement"]
    print(f"greedy agreement with raw: identical answers {agree['identical']} of {agree['of']} "
          f"(drafting off: {agree['off_identical']} of {agree['of']}); mean share before the first "
          f"difference {agree['mean_prefix_share']}, mean share of positions that agree "
          f"{agree['mean_position_share']}")
    flash = figures["flash_attention"]
    ratios = ", ".join(f"{kind} {group['median_ratio_auto_raw']}" for kind, group in flash["groups"].items())
    print(f"with flash attention (raw Llama(flash_attn=True) vs the app, drafting auto: "
          f"{flash['drafting'] or 'none'}): identical answers {flash['identical']} of {flash['of']}; mean "
          f"share before the first difference {flash['mean_prefix_share']}, mean share of positions that "
          f"agree {flash['mean_position_share']}; median auto/raw {ratios} (informational)")
    parted = [row["name"] for row in flash["prompts"] if not row["agreement"]["identical"]]
    if parted:
        print(f"with flash attention the answers differ on: {', '.join(parted)}")
    stop = figures["stop"]
    for trial in stop["trials"]:
        latency = "not measured (the answer ended first)" if trial["latency_s"] is None else \
            f"latency {trial['latency_s'] * 1000:.0f} ms"
        print(f"stop with drafting on ({stop['drafting'] or 'nothing drafted'}), asked {trial['delay_s']} s "
              f"after the first token: {trial['tokens_seen_when_asked']} tokens had arrived, the answer had "
              f"{trial['tokens_when_stopped']} (limit {stop['limit']}, ended by {trial['stop_reason']}); "
              f"{latency}")
    most = "-" if stop["max_latency_s"] is None else f"{stop['max_latency_s'] * 1000:.0f} ms"
    print(f"stop latency: at most {most}; one drafted batch of {stop['batch_tokens']} tokens "
          f"{stop['batch_s'] * 1000:.0f} ms (one token {stop['one_token_s'] * 1000:.0f} ms) + send interval "
          f"{stop['send_every_s'] * 1000:.0f} ms = {stop['bound_s'] * 1000:.0f} ms: "
          f"{'within' if stop['within_bound'] else 'NOT within'} one batch")
    print(f"overall: {'PASS' if figures['pass'] else 'FAIL'}")
    print(json.dumps(figures))
