"""Streaming speed: raw llama-cpp-python beside the app's whole path, in one process.

    python bench/stream.py [--tokens 256] [--rounds 3] [--threads 2] [--model PATH] [--gpu-layers N]

Raw: Llama.generate on the chat prompt, greedy, counting tokens until end of text or --tokens.
App: the real main window (offscreen): composer -> chat session -> inference thread -> engine process ->
signals -> batched flushes into the chat view. Both decode the same greedy answer on the same
model file with the same threads; rounds alternate raw and app, and medians are compared.

tokens/s is the decode rate after the first token: (n - 1) / (last - first). For the app it is
taken where the user sees it: from the first text shown in the chat view to the finished
answer arriving in the GUI thread. Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from time import perf_counter

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT = "Write a long story about a llama who travels the world."


def raw_round(llm, tokens: list[int], max_tokens: int) -> dict:
    import llama_cpp

    vocab = llm._model.vocab
    count, first, last = 0, 0.0, 0.0
    started = perf_counter()
    for token in llm.generate(tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        last = perf_counter()
        if count == 0:
            first = last
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        count += 1
        if count >= max_tokens:
            break
    return {"tokens": count, "ttft_s": first - started, "tok_s": (count - 1) / (last - first)}


def app_round(window, max_tokens: int) -> dict:
    from PySide6.QtCore import QEventLoop, Qt
    from PySide6.QtTest import QTest

    from app.core.chat.sampling import GREEDY

    c = window.chat
    c.new_conversation()  # each round asks the same single question
    window.sampling.set_params(GREEDY.replace(max_tokens=max_tokens))  # a new chat starts from the defaults
    shown: list[float] = []
    done: list = []
    on_text = lambda: shown.append(perf_counter())  # noqa: E731
    on_done = lambda stats: done.append((perf_counter(), stats))  # noqa: E731
    window.chat_view.textChanged.connect(on_text)
    c.answer_finished.connect(on_done)
    loop = QEventLoop()  # sleeps between events, as the app's own loop does
    c.answer_finished.connect(loop.quit)
    window.composer.setPlainText(PROMPT)
    sent = perf_counter()
    QTest.keyClick(window.composer, Qt.Key.Key_Return)
    shown.clear()  # the user's own message is drawn synchronously on send
    loop.exec()
    for slot in (on_done, loop.quit):
        c.answer_finished.disconnect(slot)
    window.chat_view.textChanged.disconnect(on_text)
    finished_at, stats = done[0]
    n = stats.completion_tokens
    return {"tokens": n, "ttft_s": shown[0] - sent, "tok_s": (n - 1) / (finished_at - shown[0]),
            "engine_tok_s": stats.tokens_per_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--model")
    args = parser.parse_args()

    import llama_cpp
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.core.chat.sampling import GREEDY
    from app.core.inference.local.engine import Engine, LoadOptions
    from app.core.models.library_files import default_model_path
    from app.ui.main_window import MainWindow

    model = args.model or str(default_model_path())
    options = LoadOptions(n_ctx=4096, n_threads=args.threads, n_gpu_layers=args.gpu_layers)
    qt_app = QApplication.instance() or QApplication([])
    from app.session import tasks, workspace

    tasks.install_loop(qt_app)  # the window's flows run on it, as under app.gui
    workspace.PROPOSE_TITLES = False  # a chat title after each answer would run into the raw rounds

    window = MainWindow()
    window.show()
    loaded: list = []
    waiting = QEventLoop()
    window.model_session.loaded.connect(loaded.append)
    window.model_session.loaded.connect(waiting.quit)
    errors: list[str] = []
    window.chat.error.connect(errors.append)
    window.chat.error.connect(waiting.quit)
    window.model_session.load(model, options)
    waiting.exec()
    if errors:
        print(f"loading the model failed: {errors[0]}", file=sys.stderr)
        return 1
    window.sampling.set_params(GREEDY.replace(max_tokens=args.tokens))

    # Raw llama-cpp-python with the same file, threads and prompt tokens.
    prompt_tokens = _prompt_tokens(model, Engine, options)
    llm = llama_cpp.Llama(model_path=model, n_ctx=4096, n_threads=args.threads,
                          n_threads_batch=args.threads, n_gpu_layers=args.gpu_layers, verbose=False)

    raw_round(llm, prompt_tokens, 16)  # warm-up
    app_round(window, 16)
    raw, app = [], []
    for _ in range(args.rounds):
        raw.append(raw_round(llm, prompt_tokens, args.tokens))
        app.append(app_round(window, args.tokens))
    window.close()
    QTimer.singleShot(0, qt_app.quit)
    llm.close()

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    raw_tok_s, app_tok_s = med(raw, "tok_s"), med(app, "tok_s")
    figures = {
        "model": Path(model).name,
        "backend": loaded[0].backend,
        "gpu_layers": loaded[0].gpu_layers,
        "threads": args.threads,
        "tokens": app[0]["tokens"],
        "rounds": args.rounds,
        "raw_tok_s": round(raw_tok_s, 2),
        "app_tok_s": round(app_tok_s, 2),
        "app_engine_tok_s": round(med(app, "engine_tok_s"), 2),
        "raw_ttft_s": round(med(raw, "ttft_s"), 4),
        "app_ttft_s": round(med(app, "ttft_s"), 4),
        "ratio": round(app_tok_s / raw_tok_s, 3),
    }
    print(f"{'path':<28}{'tokens':>8}{'tok/s':>10}{'TTFT s':>10}")
    print(f"{'raw Llama.generate':<28}{raw[0]['tokens']:>8}{raw_tok_s:>10.1f}{figures['raw_ttft_s']:>10.3f}")
    print(f"{'app (engine->view)':<28}{app[0]['tokens']:>8}{app_tok_s:>10.1f}{figures['app_ttft_s']:>10.3f}")
    print(f"{'ratio app/raw':<28}{'':>8}{figures['ratio']:>10.3f}")
    print(json.dumps(figures))
    return 0


def _prompt_tokens(model: str, engine_class, options) -> list[int]:
    """The exact prompt tokens the app sends, so both paths decode the same answer."""
    engine = engine_class()
    engine.load(model, options)
    try:
        return engine.tokenize_chat([{"role": "user", "content": PROMPT}])
    finally:
        engine.unload()


if __name__ == "__main__":
    sys.exit(main())
