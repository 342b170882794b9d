"""Time to first token across a long chat, a conversation switch and a restart.

    python bench/turns.py [--turns 30] [--answer-tokens 80] [--threads 2] [--model PATH]

One conversation grows turn by turn through the app's Engine (greedy answers, about 100 tokens a
turn, so about 3,000 tokens of history by turn 30). TTFT is measured at turn 1 and at the last
turn; then another conversation is answered and the first one continued (switch), then the
engine is unloaded and a new one loaded, as after a restart, and the first one continued again.
Beside it, raw llama-cpp-python (create_chat_completion on a fresh Llama, as an app without a
saved KV cache must after a switch or restart) answers the same history: its TTFT is what the
cache saves. Prints a table, then one JSON object of the figures as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUESTIONS = [
    "Tell me about llamas.", "Where do they live?", "What do they eat?", "How tall are they?",
    "Are they friendly?", "How long do they live?", "What is their wool like?", "Can they carry loads?",
    "How do they talk to each other?", "What is a group of llamas called?", "Do they spit?",
    "How are they different from alpacas?", "Where did they come from?", "How fast can they run?",
    "What do baby llamas look like?", "How much water do they drink?", "Do they need shelter?",
    "Can they live in cold places?", "How are they sheared?", "What diseases do they get?",
    "Are they good guards for sheep?", "How smart are they?", "How do they sleep?",
    "What do farmers use them for?", "How heavy is a llama?", "Do they like to be alone?",
    "How do you train a llama?", "What colours can they be?", "Are they used in therapy?",
    "What is the oldest llama on record?", "Summarise everything in one sentence.",
    "Thank you!",
]


def ttft(engine, messages, sampling, key) -> tuple[float, str, object]:
    *pieces, stats = engine.stream(messages, sampling, cache_key=key)
    return stats.ttft_s, "".join(pieces), stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--answer-tokens", type=int, default=80)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model")
    args = parser.parse_args()

    import llama_cpp

    from app.core.chat.sampling import GREEDY
    from app.core.inference.local.engine import Engine, LoadOptions
    from app.core.inference.local.kv_cache import KVCacheStore
    from app.core.models.library_files import default_model_path

    model = args.model or str(default_model_path())
    options = LoadOptions(n_ctx=4096, n_threads=args.threads)
    sampling = GREEDY.replace(max_tokens=args.answer_tokens)
    turns = min(args.turns, len(QUESTIONS) - 2)
    folder = Path(tempfile.mkdtemp(prefix="llamadesk-kv-"))
    store = KVCacheStore(folder)
    engine = Engine(store)
    engine.load(model, options)

    # The first decode after a load is cold (page faults, thread start): warm up, then start afresh
    # with an empty KV cache, so turn 1 reads its whole prompt.
    ttft(engine, [{"role": "user", "content": "Hello"}], sampling, "warm-up")
    engine.unload()
    engine.load(model, options)
    history: list[dict[str, str]] = []
    figures: dict[str, float] = {}
    for turn in range(1, turns + 1):
        history.append({"role": "user", "content": QUESTIONS[turn - 1]})
        seconds, answer, stats = ttft(engine, history, sampling, "A")
        history.append({"role": "assistant", "content": answer})
        if turn == 1:
            figures["turn1_ttft_s"] = seconds
    figures["last_turn_ttft_s"] = seconds
    figures["history_tokens"] = stats.prompt_tokens + stats.completion_tokens

    ttft(engine, [{"role": "user", "content": "Write a poem about the sea."}], sampling, "B")
    history.append({"role": "user", "content": QUESTIONS[turns]})
    seconds, answer, stats = ttft(engine, history, sampling, "A")
    figures["switch_ttft_s"], figures["switch_cached_tokens"] = seconds, stats.cached_tokens
    history.append({"role": "assistant", "content": answer})

    engine.unload()  # saves the conversation's KV cache, as closing the app does
    engine = Engine(store)
    engine.load(model, options)
    history.append({"role": "user", "content": QUESTIONS[turns + 1]})
    seconds, _, stats = ttft(engine, history, sampling, "A")
    figures["restart_ttft_s"], figures["restart_cached_tokens"] = seconds, stats.cached_tokens
    figures["restart_prompt_tokens"] = stats.prompt_tokens
    engine.unload()

    raw = llama_cpp.Llama(model_path=model, n_ctx=4096, n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False)
    started = perf_counter()
    for _ in raw.create_chat_completion(history, max_tokens=1, temperature=0.0, stream=True):
        break
    figures["raw_cold_ttft_s"] = perf_counter() - started
    raw.close()
    for path in folder.glob("*"):
        path.unlink()
    folder.rmdir()

    base = figures["turn1_ttft_s"]
    figures["last_turn_ratio"] = figures["last_turn_ttft_s"] / base
    figures["switch_ratio"] = figures["switch_ttft_s"] / base
    figures["restart_ratio"] = figures["restart_ttft_s"] / base
    figures["raw_cold_over_restart"] = figures["raw_cold_ttft_s"] / figures["restart_ttft_s"]
    figures["turns"] = turns
    print(f"{'moment':<40}{'TTFT s':>10}{'x turn 1':>10}")
    rows = [("turn 1", "turn1_ttft_s"), (f"turn {turns} (KV prefix reuse)", "last_turn_ttft_s"),
            ("after switching away and back", "switch_ttft_s"), ("after a restart", "restart_ttft_s"),
            ("raw llama-cpp-python, cold history", "raw_cold_ttft_s")]
    for label, key in rows:
        print(f"{label:<40}{figures[key]:>10.3f}{figures[key] / base:>10.2f}")
    print(f"history: {figures['history_tokens']} tokens; targets: turn {turns} within 1.5x of turn 1, "
          "switch and restart within 2x")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
