"""Remote answers: the app's streamed speed beside llama-server's own, and answers side by side.

    python bench/remote.py [--quick] [--answers 8] [--tokens 128] [--threads 2] [--parallel 4]
                           [--levels 1,2,4] [--rounds 3] [--model PATH]

llama.cpp's llama-server runs on 127.0.0.1 (tests/fixtures/llama_server.py starts it, with an API
key) serving the embedded model, `--parallel 4 -t 2`. The app's side is a ChatSession with the
real Engines and store (LLAMADESK_HOME in a temporary folder) on the qasync loop over an offscreen
QApplication, the chat answered by that server as a user's connection (choose_engine).

  a) --answers answers one after another, each in a new chat (fixed prompts, temperature 0,
     --tokens tokens at most). Per answer, the app's tokens/s is GenerationStats.tokens_per_s: the
     completion tokens after the first over the time from the first text to the end, as they
     arrived (RemoteBackend measures it); the server's is its own timings.predicted_per_second
     (GenerationStats.server_tokens_per_s). Their means and ratio are reported (target >= 0.95),
     with the session's own view (its first text_appended to answer_finished: the answer writer
     hands text on in batches, so this starts a batch late and reads a little high), the app's
     time to the first text and the server's prompt time.
  b) 1, 2 and 4 conversations answered at once through the one server and the one ChatSession
     (send in a chat, new chat, send, …: a remote answer goes on while another chat is shown):
     aggregate tokens/s = all completion tokens / the wall time from the first send to the last
     answer's end; and the mean per-answer tokens/s, the app's and the server's. Each level runs
     --rounds times (other load on the machine varies); the round of median aggregate is reported.

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from time import perf_counter
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/qt_waits.py

from qt_waits import next_emission  # noqa: E402

TIMEOUT_S = 600.0  # one answer (or one level's answers); a hang fails the bench instead of stalling it
TARGET_RATIO = 0.95
CONNECTION = "bench"
PROMPTS = [
    "Write a long story about a llama who travels the world.",
    "Describe, step by step, how bread is baked at home.",
    "Explain how a bicycle works, part by part.",
    "Write a long letter to a friend about a summer by the sea.",
    "Describe the water cycle in detail.",
    "Tell the history of the printing press.",
    "Write a long poem about the mountains in winter.",
    "Explain how to plant and care for a vegetable garden.",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short answers, short answers side by side")
    parser.add_argument("--answers", type=int)
    parser.add_argument("--tokens", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--levels", default="1,2,4", help="how many answers at once, comma-separated")
    parser.add_argument("--rounds", type=int, help="rounds of each level (the median one is reported)")
    parser.add_argument("--model")
    args = parser.parse_args()
    args.answers = args.answers or (2 if args.quick else 8)
    args.tokens = args.tokens or (24 if args.quick else 128)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.levels = sorted({int(level) for level in args.levels.split(",")})
    if not 0 < min(args.levels) <= max(args.levels) <= len(PROMPTS) or min(args.answers, args.rounds) < 1:
        parser.error(f"--answers and --rounds must be at least 1, --levels from 1 to {len(PROMPTS)}")

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="llamadesk-remote-") as home:
        os.environ["LLAMADESK_HOME"] = home  # nothing touches the user's own data
        figures = run(args)
    figures["devices"] = server_devices()
    figures.update(quick=args.quick, cpus=os.cpu_count(), loadavg_1m_before=round(load_before, 2))
    report(figures)
    return 0


def server_devices() -> list[str]:
    """The GPUs this llama-server build can use (`--list-devices`); none: it runs on the CPU."""
    import subprocess

    from tests.fixtures.llama_server import binary

    listed = subprocess.run([str(binary()), "--list-devices"], capture_output=True, text=True, timeout=60)
    lines = [line.strip() for line in listed.stdout.splitlines()[1:]]  # after "Available devices:"
    return [line for line in lines if line and line != "(none)"]


def run(args) -> dict:
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.core.models.library_files import default_model_path
    from app.session import tasks
    from tests.fixtures.llama_server import LlamaServer

    model = Path(args.model or default_model_path())
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(qt_app)
    asyncio.set_event_loop(loop)
    tasks.finalize_async_generators(loop)  # as gui.py does
    with LlamaServer(model, parallel=args.parallel, threads=args.threads) as server, loop:
        try:
            return loop.run_until_complete(measure(server, args))
        finally:
            loop.run_until_complete(wind_down(loop))


async def wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """What closing left running (the HTTP clients' aclose, streams' readers) ends while the loop
    still runs, as asyncio.run arranges; otherwise their cleanup fails once it has stopped."""
    gc.collect()  # readers left in reference cycles are finalized now, as tasks on this loop
    await asyncio.sleep(0)
    pending = asyncio.all_tasks() - {asyncio.current_task()}
    if pending:
        await asyncio.wait(pending, timeout=10)
    await loop.shutdown_asyncgens()


async def measure(server, args) -> dict:
    from app.core.conversations.store import ConversationStore, default_store_path
    from app.core.remote.connections import Connection, ConnectionsFile
    from app.core.remote.keys import key_store
    from app.session.chat_session import ChatSession
    from app.session.engines import Engines
    from app.session.local_backend import LocalBackend
    from app.session.sampling import SamplingSettings
    from tests.fixtures.llama_server import API_KEY

    ConnectionsFile().put(Connection(name=CONNECTION, base_url=server.base_url))
    key_store().set(CONNECTION, API_KEY)
    store = ConversationStore(default_store_path())
    chat = ChatSession(LocalBackend(), store, SamplingSettings(), engines=Engines())  # no local model loaded
    try:
        connected = _signal(chat.engine_changed, failures=[chat.error], when=lambda info: info is not None)
        chat.choose_engine(CONNECTION, server.model_id)
        (info,) = await connected
        chat_kind = chat.backend.kind
        finished: list = []  # the server's Finished events: its prompt time is not in GenerationStats
        _observe_finished(chat.backend, finished)
        await one_answer(chat, PROMPTS[0], 8)  # warm-up: the connection, the server's first request
        finished.clear()
        answers = [await one_answer(chat, PROMPTS[i % len(PROMPTS)], args.tokens)
                   for i in range(args.answers)]
        prompt_ms = [f.prompt_ms for f in finished if f.prompt_ms is not None]
        levels = {str(level): await level_rounds(chat, level, args.tokens, args.rounds)
                  for level in args.levels}
    finally:
        chat.shutdown()
        store.close()
    app_tok_s = _mean(a["app_tok_s"] for a in answers)
    server_tok_s = _mean(a["server_tok_s"] for a in answers)
    return {
        "model": Path(server.model).name, "server": f"llama-server {info.llama_cpp_version}".strip(),
        "server_kind": chat_kind, "threads": args.threads, "parallel": args.parallel,
        "slot_n_ctx": info.n_ctx, "answers": args.answers, "max_tokens": args.tokens,
        "tokens": round(_mean(a["tokens"] for a in answers), 1),
        "app_tok_s": round(app_tok_s, 2), "server_tok_s": round(server_tok_s, 2),
        "ratio": round(app_tok_s / server_tok_s, 3), "target_ratio": TARGET_RATIO,
        "pass": app_tok_s / server_tok_s >= TARGET_RATIO,
        "session_tok_s": round(_mean(a["session_tok_s"] for a in answers), 2),
        "app_ttft_s": round(_mean(a["ttft_s"] for a in answers), 4),
        "server_prompt_ms": round(_mean(prompt_ms), 2) if prompt_ms else None,
        "levels": levels,
    }


# -- the two measurements -------------------------------------------------------------------------

async def one_answer(chat, prompt: str, max_tokens: int) -> dict:
    """A new chat, one question: until its answer has finished (the shown chat: the session's own
    signals say when its text came)."""
    new_chat(chat, max_tokens)
    shown: list[float] = []
    on_text = lambda _text: shown.append(perf_counter())  # noqa: E731
    waiter = _signal(chat.answer_finished, failures=[chat.error])
    if not chat.send(prompt):
        raise RuntimeError("the chat session refused the question")
    shown.clear()  # send shows the question itself at once
    chat.text_appended.connect(on_text)
    try:
        (stats,) = await waiter
    finally:
        chat.text_appended.disconnect(on_text)
    ended, n = perf_counter(), stats.completion_tokens
    seen_s = ended - shown[0] if shown else 0.0
    return {"tokens": n, "app_tok_s": stats.tokens_per_s, "server_tok_s": stats.server_tokens_per_s,
            "session_tok_s": (n - 1) / seen_s if n > 1 and seen_s > 0 else 0.0, "ttft_s": stats.ttft_s}


async def level_rounds(chat, count: int, max_tokens: int, rounds: int) -> dict:
    """`rounds` rounds of `count` answers at once; the round of median aggregate speed, with every
    round's aggregate (the machine's other load varies from one round to the next)."""
    measured = [await side_by_side(chat, count, max_tokens) for _ in range(rounds)]
    ranked = sorted(measured, key=lambda row: row["aggregate_tok_s"])
    return {**ranked[(len(ranked) - 1) // 2], "rounds": rounds,
            "aggregate_tok_s_rounds": [row["aggregate_tok_s"] for row in measured]}


async def side_by_side(chat, count: int, max_tokens: int) -> dict:
    """`count` chats answered at once: send in one, open a new one, send, …; until all have ended."""
    done: list = []
    all_done = asyncio.get_event_loop().create_future()

    def on_finished(stats) -> None:
        done.append(stats)
        if len(done) == count and not all_done.done():
            all_done.set_result(None)

    def on_error(message: str) -> None:
        if not all_done.done():
            all_done.set_exception(RuntimeError(message))

    chat.answer_finished.connect(on_finished)
    chat.error.connect(on_error)
    try:
        started = perf_counter()
        for prompt in PROMPTS[:count]:
            new_chat(chat, max_tokens)
            if not chat.send(prompt):
                raise RuntimeError("the chat session refused the question")
        await asyncio.wait_for(all_done, TIMEOUT_S)
        wall_s = perf_counter() - started
    finally:
        chat.answer_finished.disconnect(on_finished)
        chat.error.disconnect(on_error)
    tokens = sum(stats.completion_tokens for stats in done)
    return {"answers": count, "tokens": tokens, "wall_s": round(wall_s, 3),
            "aggregate_tok_s": round(tokens / wall_s, 2),
            "per_answer_tok_s": round(_mean(stats.tokens_per_s for stats in done), 2),
            "server_per_answer_tok_s": round(_mean(stats.server_tokens_per_s for stats in done), 2)}


def new_chat(chat, max_tokens: int) -> None:
    """An empty chat (answered by the engine chosen last), greedy: a new chat starts from the defaults."""
    chat.new_conversation()
    chat.sampling.update(max_tokens=max_tokens, temperature=0.0, seed=7)


# -- waiting while the loop turns -----------------------------------------------------------------

def _signal(signal, failures: list = (), when=lambda *args: True) -> Awaitable[Any]:
    return next_emission(signal, failures, when, TIMEOUT_S)


def _observe_finished(backend, seen: list) -> None:
    """Keep each Finished the client yields (the server's prompt time), passing every event on.
    The backend must be connected: connecting makes its client anew."""
    from app.core.remote.client import Finished

    chat = backend.client.chat

    async def observed(*args, **kwargs):
        async with contextlib.aclosing(chat(*args, **kwargs)) as events:
            async for event in events:
                if isinstance(event, Finished):
                    seen.append(event)
                yield event

    backend.client.chat = observed


def _mean(values) -> float:
    values = list(values)
    return statistics.fmean(values) if values else 0.0


# -- the report ------------------------------------------------------------------------------------

def report(figures: dict) -> None:
    from app.core.common.text import plural

    prompt_ms = figures["server_prompt_ms"]
    devices = ", ".join(figures["devices"]) or "the CPU (no GPU device in this build)"
    print(f"{figures['server']} on 127.0.0.1 serving {figures['model']} on {devices}: --parallel "
          f"{figures['parallel']} -t {figures['threads']}, {figures['slot_n_ctx']} tokens a slot; "
          f"{figures['cpus']} CPUs, load average {figures['loadavg_1m_before']} before the run")
    print(f"a) {plural(figures['answers'], 'answer')} one after another, up to "
          f"{figures['max_tokens']} tokens, temperature 0 (means)")
    print(f"{'':<34}{'tok/s':>9}{'TTFT s':>9}")
    print(f"{'app (RemoteBackend, on arrival)':<34}{figures['app_tok_s']:>9.1f}{figures['app_ttft_s']:>9.3f}")
    print(f"{'chat session (its signals)':<34}{figures['session_tok_s']:>9.1f}")
    server_prompt = f"{prompt_ms / 1000:>9.3f}" if prompt_ms is not None else f"{'-':>9}"
    print(f"{'server (timings; prompt time)':<34}{figures['server_tok_s']:>9.1f}{server_prompt}")
    verdict = "pass" if figures["pass"] else "FAIL"
    print(f"{'ratio app/server':<34}{figures['ratio']:>9.3f}  (target >= {TARGET_RATIO}: {verdict})")
    rounds = next(iter(figures["levels"].values()))["rounds"]
    print(f"b) answers at once through the one server and chat session (the median of "
          f"{plural(rounds, 'round')})")
    print(f"{'at once':<10}{'tokens':>8}{'wall s':>9}{'total tok/s':>13}{'app tok/s each':>16}"
          f"{'server tok/s each':>19}")
    for level, row in figures["levels"].items():
        print(f"{level:<10}{row['tokens']:>8}{row['wall_s']:>9.2f}{row['aggregate_tok_s']:>13.1f}"
              f"{row['per_answer_tok_s']:>16.1f}{row['server_per_answer_tok_s']:>19.1f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
