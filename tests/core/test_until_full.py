"""Issue 12, item 9: Max tokens "until the context is full" (UNTIL_FULL, 0) reaches the engine as no
limit: the answer runs until the model ends it or the context is full, never stops after one token."""

from __future__ import annotations

from pathlib import Path

from app.core.chat.sampling import GREEDY, UNTIL_FULL
from app.core.inference.local.engine import Engine, GenerationStats, LoadOptions

COUNT = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


def test_an_answer_without_a_limit_fills_the_context(model_path: Path) -> None:
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=256))  # the smallest context a load takes
    try:
        room = info.n_ctx - len(engine.tokenize_chat(COUNT))
        *deltas, stats = engine.stream(COUNT, GREEDY.replace(max_tokens=UNTIL_FULL))
    finally:
        engine.unload()
    assert isinstance(stats, GenerationStats)
    assert stats.completion_tokens == room and stats.stop_reason == "context_full", stats
    assert len("".join(deltas)) > 50
