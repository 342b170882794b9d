"""Speculative decoding: the app with drafting beside raw llama-cpp-python, on quoting and ordinary prompts.

    python bench/speculative.py [--quick] [--tokens 256] [--rounds 3] [--threads 2]
                                [--model PATH]

Every prompt of bench/speculative_corpus.py is answered greedily (GREEDY, max_tokens --tokens) on the
same model file (the embedded SmolLM2-135M unless --model), n_ctx 4096, --threads threads, by:
- raw: llama_cpp.Llama in this process, Llama.generate greedy without drafting, on the exact prompt
  tokens the app sends (its chat template, from an Engine's tokenize_chat);
- auto: the app's real engine with drafting "auto" (the default), in its own process (EngineProcess,
  niceness 0: the same priority as raw);
- off: the same engine with drafting "off", to tell drafting's gain from the app's own overhead.
Rounds alternate the three, the order turning with each round and prompt. Each answer reads its whole
prompt: raw resets its context; before each app answer the engine answers one token to an unrelated
raw prompt, so its context shares no prefix with the chat (the answer's cached_tokens, reported,
must be 0).

tokens/s is the decode rate after the first token, (n - 1) / (last - first), as bench/stream.py
defines it: for raw measured here; for the app GenerationStats.tokens_per_s, which the engine measures
the same way around the same tokens. Per prompt: the median over rounds, ratios auto/raw and off/raw,
the acceptance of drafted tokens and whether "auto" turned drafting off, and greedy token agreement
with raw (both answers' texts tokenized by raw's tokenizer: the share of raw's tokens before the
first difference, the share of positions that agree, whether the texts are identical). Targets: the
median auto/raw ratio of quoting prompts >= 1.5, of ordinary prompts >= 0.98.

Stop latency: drafting "on", STOP_PROMPT; Stop is requested (EngineProcess.request_stop) from a timer
STOP_DELAYS_S after the first token arrived, and the time to the finished answer is measured (the
most and the median over the trials). It should be within one drafted batch (1 + MAX_DRAFT_TOKENS
tokens in one llama_decode, timed on raw) plus the engine process's send interval (SEND_EVERY_S).

Agreement with flash attention: llama.cpp's CPU kernels can compute a position in a batch a little
differently than alone (another order of sums), so a drafted batch can round a near-tie otherwise
than plain decoding and the greedy answers part. With flash attention that happens later: at short
contexts not at all (measured), at a few hundred tokens it does. One more round answers every prompt
by raw Llama(flash_attn=True) and by the engine process with LoadOptions(flash_attn=True, drafting
"auto"), both from an empty context, raw reading the prompt in the app's batches. Reported: identical
answers, the same agreement shares, and the median auto/raw ratio per kind (informational: no target).

--quick: one round, one prompt of each kind, 48 tokens; the same table and JSON keys.
Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.speculative_corpus import CORPUS, QUICK, STOP_PROMPT  # noqa: E402
from bench.speculative_report import CONTENDERS, flash_row, mean_share, prompt_row, report, rounded  # noqa: E402

N_CTX = 4096
TARGETS = {"quoting": 1.5, "ordinary": 0.98}
STOP_LIMIT = 256  # the stopped answers' max_tokens: Stop, not the limit, ends them
STOP_DELAYS_S = (0.2, 0.25, 0.3, 0.35, 0.4)  # Stop is asked this long after the first token (--quick: 3)
BATCH_TIMINGS = 7


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, two prompts, short answers")
    parser.add_argument("--tokens", type=int, help="max_tokens of each answer (256; --quick 48)")
    parser.add_argument("--rounds", type=int, help="rounds (3; --quick 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model")
    args = parser.parse_args()
    args.tokens = args.tokens or (48 if args.quick else 256)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if min(args.rounds, args.threads) < 1 or args.tokens < 2:
        parser.error("--tokens must be at least 2, --rounds and --threads at least 1")

    from app.core.models.library_files import default_model_path

    model = Path(args.model or default_model_path() or "").resolve()
    if not model.is_file():
        print(f"No model file at {model}: pass --model PATH.", file=sys.stderr)
        return 1
    corpus = [entry for entry in CORPUS if not args.quick or entry[0] in QUICK]
    with tempfile.TemporaryDirectory(prefix="llamadesk-speculative-bench-") as home:
        os.environ["LLAMADESK_HOME"] = home  # the engine's KV snapshots and log stay out of the user's data
        figures = run(args, model, corpus, Path(home))
    if figures is None:
        return 1
    report(figures)
    return 0


def run(args, model: Path, corpus: list[tuple[str, str, str]], home: Path) -> dict | None:
    import llama_cpp

    from app.core.inference.local import llama_adapter
    from app.core.inference.local.engine import Engine
    from app.core.inference.local.engine_process import EngineProcess
    from app.core.inference.local.engine_server import SEND_EVERY_S
    from app.core.inference.types import MAX_DRAFT_TOKENS, EngineError, LoadOptions

    options = LoadOptions(n_ctx=N_CTX, n_threads=args.threads, n_gpu_layers=0)
    prompts = _prompt_tokens(Engine, model, replace_drafting(options, "off"), corpus)
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_threads=args.threads,
                          n_threads_batch=args.threads, n_gpu_layers=0, verbose=False)
    engines = {mode: EngineProcess(home / f"engine-{mode}.log", niceness=0) for mode in ("auto", "off")}
    ids = itertools.count(1)
    try:
        try:
            infos = {mode: engine.load(str(model), replace_drafting(options, mode))
                     for mode, engine in engines.items()}
        except EngineError as error:
            print(f"The engine could not load {model.name}: {error.message}", file=sys.stderr)
            return None
        first = corpus[0]
        raw_round(llm, prompts[first[0]], 8)  # warm-up: the file's pages, the threads
        for engine in engines.values():
            app_round(engine, ids, first[2], 8)
        rounds: dict[str, dict[str, list[dict]]] = {name: {c: [] for c in CONTENDERS}
                                                    for name, _, _ in corpus}
        for round_no in range(args.rounds):
            for index, (name, _, text) in enumerate(corpus):
                turn = (round_no + index) % len(CONTENDERS)
                for contender in CONTENDERS[turn:] + CONTENDERS[:turn]:
                    if contender == "raw":
                        result = raw_round(llm, prompts[name], args.tokens)
                    else:
                        result = app_round(engines[contender], ids, text, args.tokens)
                    rounds[name][contender].append(result)
            print(f"round {round_no + 1} of {args.rounds} done", file=sys.stderr, flush=True)

        stop_text = dict((n, t) for n, _, t in CORPUS)[STOP_PROMPT]
        infos_on = engines["off"].load(str(model), replace_drafting(options, "on"))
        trials = [stop_round(engines["off"], ids, stop_text, delay)
                  for delay in (STOP_DELAYS_S[::2] if args.quick else STOP_DELAYS_S)]
        stop = {"drafting": infos_on.drafting, "limit": STOP_LIMIT, "trials": trials}
        batch_s, token_s = _decode_times(llm, llama_adapter, prompts.get(STOP_PROMPT) or prompts[first[0]],
                                         1 + MAX_DRAFT_TOKENS)

        def tokenize(text: str) -> list[int]:  # raw's tokenizer, for every agreement figure
            return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

        rows = [prompt_row(name, kind, len(prompts[name]), rounds[name], tokenize)
                for name, kind, _ in corpus]
        try:
            flash = flash_attention_round(args, model, corpus, prompts, engines["auto"], options, ids,
                                          tokenize)
        except EngineError as error:
            print(f"The engine could not load {model.name} with flash attention: {error.message}",
                  file=sys.stderr)
            return None
    finally:
        for engine in engines.values():
            engine.close()
        llm.close()
    stop.update(batch_tokens=1 + MAX_DRAFT_TOKENS, batch_s=round(batch_s, 4), one_token_s=round(token_s, 4),
                send_every_s=SEND_EVERY_S, bound_s=round(batch_s + SEND_EVERY_S, 4))
    latencies = [trial["latency_s"] for trial in trials]
    stop["max_latency_s"] = None if None in latencies else max(latencies)
    stop["median_latency_s"] = None if None in latencies else statistics.median(latencies)
    stop["within_bound"] = stop["max_latency_s"] is not None and stop["max_latency_s"] <= stop["bound_s"]

    groups = {}
    for kind, target in TARGETS.items():
        mine = [row for row in rows if row["kind"] == kind]
        auto = statistics.median(r["ratio_auto_raw"] for r in mine) if mine else None
        off = statistics.median(r["ratio_off_raw"] for r in mine) if mine else None
        groups[kind] = {"prompts": len(mine), "median_ratio_auto_raw": rounded(auto, 3),
                        "median_ratio_off_raw": rounded(off, 3), "target": target,
                        "pass": auto is not None and auto >= target}
    identical = sum(row["agreement"]["identical"] for row in rows)
    return {
        "model": model.name, "quick": args.quick, "threads": args.threads, "n_ctx": N_CTX,
        "tokens": args.tokens, "rounds": args.rounds, "cpus": os.cpu_count(),
        "app": "engine process (EngineProcess, niceness 0)",
        "drafting": {mode: info.drafting for mode, info in infos.items()},
        "prompts": rows, "groups": groups,
        "agreement": {"identical": identical, "of": len(rows),
                      "mean_prefix_share": mean_share(r["agreement"]["prefix_share"] for r in rows),
                      "mean_position_share": mean_share(r["agreement"]["position_share"] for r in rows),
                      "off_identical": sum(r["agreement_off"]["identical"] for r in rows)},
        "stop": stop, "targets": TARGETS, "flash_attention": flash,
        "pass": all(group["pass"] for group in groups.values()),
    }


def replace_drafting(options, mode: str, **more):
    from dataclasses import replace

    return replace(options, drafting=mode, **more)


def flash_attention_round(args, model: Path, corpus, prompts: dict[str, list[int]], engine, options, ids,
                          tokenize) -> dict:
    """One round of raw and the app (drafting "auto") both with flash attention, where a batched
    position is computed like a lone one for longer: how many greedy answers stay raw's."""
    import llama_cpp

    info = engine.load(str(model), replace_drafting(options, "auto", flash_attn=True))
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_threads=args.threads,
                          n_threads_batch=args.threads, n_batch=options.n_batch, n_gpu_layers=0,
                          flash_attn=True, verbose=False)
    try:
        first = corpus[0]
        raw_round(llm, prompts[first[0]], 8, like_the_app=True)  # warm-up
        app_round(engine, ids, first[2], 8)
        rows = []
        for index, (name, kind, text) in enumerate(corpus):
            answers = {}
            for contender in ("raw", "auto") if index % 2 == 0 else ("auto", "raw"):
                answers[contender] = (raw_round(llm, prompts[name], args.tokens, like_the_app=True)
                                      if contender == "raw" else app_round(engine, ids, text, args.tokens))
            rows.append(flash_row(name, kind, len(prompts[name]), answers, tokenize))
        print("flash attention round done", file=sys.stderr, flush=True)
    finally:
        llm.close()
    groups = {}
    for kind in TARGETS:
        ratios = [row["ratio_auto_raw"] for row in rows if row["kind"] == kind]
        groups[kind] = {"prompts": len(ratios),
                        "median_ratio_auto_raw": rounded(statistics.median(ratios), 3) if ratios else None}
    return {"raw": "llama_cpp.Llama(flash_attn=True), greedy, no drafting",
            "app": "engine process, LoadOptions(flash_attn=True, drafting=\"auto\")",
            "drafting": info.drafting, "identical": sum(row["agreement"]["identical"] for row in rows),
            "of": len(rows),
            "mean_prefix_share": mean_share(row["agreement"]["prefix_share"] for row in rows),
            "mean_position_share": mean_share(row["agreement"]["position_share"] for row in rows),
            "groups": groups, "prompts": rows}


# -- the contenders ---------------------------------------------------------------------------------

def raw_round(llm, tokens: list[int], max_tokens: int, like_the_app: bool = False) -> dict:
    """Llama.generate greedy from an empty context (reset: the whole prompt is read again).

    like_the_app: a prompt longer than one batch is read as the app's engine reads it (all but its last
    token in n_batch batches, then the last alone), so both compute every prompt position alike."""
    import llama_cpp

    vocab = llm._model.vocab
    llm.reset()
    answer: list[int] = []
    first = last = 0.0
    started = perf_counter()
    if like_the_app and len(tokens) - 1 > llm.n_batch:
        llm.eval(tokens[:-1])  # Llama.generate then reuses this prefix and evaluates the last token
    for token in llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        last = perf_counter()
        if not answer and not first:
            first = last
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        answer.append(token)
        if len(answer) >= max_tokens:
            break
    n = len(answer)
    text = llm.detokenize(answer).decode("utf-8", errors="replace")
    return {"tokens": n, "tok_s": (n - 1) / (last - first) if n > 1 and last > first else 0.0,
            "ttft_s": first - started, "text": text}


def _clear_context(engine, ids) -> None:
    """A one-token answer to an unrelated raw prompt: the engine's context then shares no prefix with
    the chat, so the next answer reads its whole prompt, as raw's does after reset."""
    from app.core.chat.sampling import GREEDY

    for _ in engine.generate(next(ids), [], GREEDY.replace(max_tokens=1), None, "", "stop", prompt="Hello"):
        pass


def app_round(engine, ids, text: str, max_tokens: int) -> dict:
    from app.core.chat.sampling import GREEDY

    _clear_context(engine, ids)
    pieces: list[str] = []
    stats = None
    for event in engine.generate(next(ids), [{"role": "user", "content": text}],
                                 GREEDY.replace(max_tokens=max_tokens), None, "", "stop"):
        if event[0] == "token":
            pieces.append(event[1])
        elif event[0] == "finished":
            stats = event[1]
    return {"tokens": stats.completion_tokens, "tok_s": stats.tokens_per_s, "ttft_s": stats.ttft_s,
            "text": "".join(pieces), "drafting": stats.drafting, "drafted": stats.drafted_tokens,
            "accepted": stats.accepted_tokens, "turned_off": stats.drafting_turned_off,
            "cached_tokens": stats.cached_tokens, "stop_reason": stats.stop_reason}


def stop_round(engine, ids, text: str, delay_s: float) -> dict:
    """Stop asked `delay_s` after the first token arrived, from a timer thread: at a moment unrelated
    to the engine's messages (asked when a message arrives, it lands between the engine's tokens, at
    once); the time until the finished answer."""
    import threading

    from app.core.chat.sampling import GREEDY

    _clear_context(engine, ids)
    request = next(ids)
    seen = [0]
    asked: list[tuple[float, int]] = []
    timer = None
    finished_at, stats = None, None

    def ask() -> None:
        asked.append((perf_counter(), seen[0]))
        engine.request_stop(request)

    for event in engine.generate(request, [{"role": "user", "content": text}],
                                 GREEDY.replace(max_tokens=STOP_LIMIT), None, "", "stop"):
        if event[0] == "token":
            seen[0] += event[2]
            if timer is None:
                timer = threading.Timer(delay_s, ask)
                timer.start()
        elif event[0] == "finished":
            finished_at, stats = perf_counter(), event[1]
    if timer is not None:
        timer.cancel()
    return {"delay_s": delay_s, "latency_s": round(finished_at - asked[0][0], 4) if asked else None,
            "tokens_seen_when_asked": asked[0][1] if asked else None,
            "tokens_when_stopped": stats.completion_tokens, "stop_reason": stats.stop_reason,
            "drafted": stats.drafted_tokens, "accepted": stats.accepted_tokens}


def _decode_times(llm, adapter, prompt: list[int], batch: int) -> tuple[float, float]:
    """The median time of one drafted batch (`batch` tokens, logits of every row, in one llama_decode)
    and of one plain token, right after `prompt`, on raw."""
    llm.reset()
    llm.eval(prompt)
    rows = prompt[-batch:]
    times: dict[int, list[float]] = {batch: [], 1: []}
    for _ in range(BATCH_TIMINGS):
        for size in (batch, 1):
            started = perf_counter()
            adapter.decode(llm, rows[:size], every_row=size > 1)
            times[size].append(perf_counter() - started)
            adapter.rewind(llm, len(prompt))
    return statistics.median(times[batch]), statistics.median(times[1])


def _prompt_tokens(engine_class, model: Path, options, corpus) -> dict[str, list[int]]:
    """The exact prompt tokens the app sends for each prompt (its chat template), for raw."""
    engine = engine_class()
    engine.load(model, options)
    try:
        return {name: engine.tokenize_chat([{"role": "user", "content": text}]) for name, _, text in corpus}
    finally:
        engine.unload()


if __name__ == "__main__":
    sys.exit(main())
