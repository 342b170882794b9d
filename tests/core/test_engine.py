"""The engine on the real embedded model, and on real broken inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.chat.sampling import GREEDY, SamplingParams
from app.core.inference.local.engine import Engine, EngineError, GenerationStats, LoadOptions
from tests.fixtures.gguf_files import truncated_copy, without_chat_template, write_gguf

HELLO = [{"role": "user", "content": "Say hello in five words."}]
STORY = [{"role": "user", "content": "Write a long story about a llama who travels the world."}]


@pytest.fixture(scope="module")
def engine(model_path: Path) -> Engine:
    engine = Engine()
    engine.load(model_path)
    yield engine
    engine.unload()


def run(engine: Engine, messages, sampling=GREEDY, **kwargs) -> tuple[list[str], GenerationStats]:
    events = list(engine.stream(messages, sampling, **kwargs))
    *deltas, stats = events
    assert isinstance(stats, GenerationStats)
    assert all(isinstance(d, str) for d in deltas)
    return deltas, stats


def test_load_reports_the_model(model_path: Path) -> None:
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=2048))
    try:
        assert info.name == "SmolLM2-135M-Instruct.Q4_1"
        assert info.architecture == "llama"
        assert info.n_ctx == 2048
        assert info.n_layers == 30
        assert info.backend == "CPU" and info.gpu_layers == 0
        assert info.chat_template == "model"
    finally:
        engine.unload()
    assert not engine.is_loaded


def test_streams_an_answer_with_plausible_stats(engine: Engine) -> None:
    deltas, stats = run(engine, HELLO, GREEDY.replace(max_tokens=64))
    text = "".join(deltas)
    assert len(deltas) >= 3, "the answer arrives in pieces, not at once"
    assert "hello" in text.lower()
    assert "<|im_end|>" not in text and "<|im_start|>" not in text
    assert stats.prompt_tokens == len(engine.tokenize_chat(HELLO))
    assert 3 <= stats.completion_tokens <= 64
    assert stats.stop_reason == "eos"
    assert 0 < stats.ttft_s < stats.total_s
    assert stats.tokens_per_s > 0  # speed itself is measured by bench/stream.py, not asserted


def test_greedy_is_repeatable_and_max_tokens_is_exact(engine: Engine) -> None:
    first, stats = run(engine, STORY, GREEDY.replace(max_tokens=20))
    second, _ = run(engine, STORY, GREEDY.replace(max_tokens=20))
    assert "".join(first) == "".join(second)
    assert stats.completion_tokens == 20 and stats.stop_reason == "length"


def test_fixed_seed_repeats_a_sampled_answer(engine: Engine) -> None:
    sampling = SamplingParams(temperature=1.2, seed=1234, max_tokens=24)
    a, _ = run(engine, STORY, sampling)
    b, _ = run(engine, STORY, sampling)
    assert "".join(a) == "".join(b)


def test_stop_after_the_third_token_yields_at_most_one_more(engine: Engine) -> None:
    seen: list[str] = []
    stream = engine.stream(STORY, GREEDY.replace(max_tokens=200), should_stop=lambda: len(seen) >= 3)
    stats = None
    for event in stream:
        if isinstance(event, str):
            seen.append(event)
        else:
            stats = event
    assert stats is not None and stats.stop_reason == "user"
    assert 3 <= stats.completion_tokens <= 4
    assert len(seen) <= 4


def test_a_model_without_chat_template_uses_the_fallback(model_path: Path, tmp_path: Path) -> None:
    engine = Engine()
    info = engine.load(without_chat_template(model_path, tmp_path / "no-template.gguf"))
    try:
        assert info.chat_template == "fallback (ChatML)"
        deltas, stats = run(engine, HELLO, GREEDY.replace(max_tokens=48))
        assert stats.completion_tokens > 0 and "".join(deltas).strip()
        assert "<|im_end|>" not in "".join(deltas)
    finally:
        engine.unload()


def test_a_prompt_longer_than_the_context_is_refused(model_path: Path) -> None:
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=256))
    try:
        long = [{"role": "user", "content": "llama " * 400}]
        with pytest.raises(EngineError) as caught:
            list(engine.stream(long, GREEDY))
        assert caught.value.kind == EngineError.CONTEXT_TOO_SMALL
        assert f"context of {info.n_ctx} tokens" in caught.value.message
        _, stats = run(engine, HELLO, GREEDY.replace(max_tokens=8))  # still usable
        assert stats.completion_tokens > 0
    finally:
        engine.unload()


def test_stream_without_a_model_says_so() -> None:
    with pytest.raises(EngineError) as caught:
        list(Engine().stream(HELLO))
    assert caught.value.kind == EngineError.NOT_LOADED


# Each bad input: (how to make it, load options, expected kind, words the message must hold)
def _missing(tmp: Path, model: Path) -> Path:
    return tmp / "nowhere" / "model.gguf"


def _text_file(tmp: Path, model: Path) -> Path:
    path = tmp / "notes.gguf"
    path.write_text("These are my shopping notes, not a model.\n")
    return path


def _empty_file(tmp: Path, model: Path) -> Path:
    path = tmp / "empty.gguf"
    path.write_bytes(b"")
    return path


def _truncated(tmp: Path, model: Path) -> Path:
    return truncated_copy(model, tmp / "half.gguf", 0.5)


def _cut_in_header(tmp: Path, model: Path) -> Path:
    return truncated_copy(model, tmp / "header-only.gguf", 0.001)


def _corrupt_counts(tmp: Path, model: Path) -> Path:
    data = bytearray(model.read_bytes()[:4096])
    data[8:16] = (2**40).to_bytes(8, "little")  # tensor count: absurd
    path = tmp / "corrupt.gguf"
    path.write_bytes(bytes(data))
    return path


def _unknown_arch(tmp: Path, model: Path) -> Path:
    return write_gguf(tmp / "alien.gguf", {"general.architecture": "notarealarch"},
                      [("token_embd.weight", (16, 16))], sparse=False)


def _too_big(tmp: Path, model: Path) -> Path:
    # A well-formed llama GGUF declaring 64 GiB of weights (sparse: no disk used).
    return write_gguf(tmp / "huge.gguf", {"general.architecture": "llama", "llama.block_count": 1},
                      [("token_embd.weight", (131072, 131072))])


HEADER_KINDS = {EngineError.MISSING, EngineError.NOT_GGUF, EngineError.TRUNCATED, EngineError.CORRUPT}
BAD_INPUTS = [
    (_missing, LoadOptions(), EngineError.MISSING, "does not exist"),
    (_text_file, LoadOptions(), EngineError.NOT_GGUF, "not a GGUF model file"),
    (_empty_file, LoadOptions(), EngineError.NOT_GGUF, "empty"),
    (_truncated, LoadOptions(), EngineError.TRUNCATED, "incomplete"),
    (_cut_in_header, LoadOptions(), EngineError.TRUNCATED, "cut short"),
    (_corrupt_counts, LoadOptions(), EngineError.CORRUPT, "corrupt"),
    (_unknown_arch, LoadOptions(), EngineError.UNSUPPORTED_ARCHITECTURE, "notarealarch"),
    (_too_big, LoadOptions(), EngineError.DOES_NOT_FIT, "GiB"),
    (None, LoadOptions(n_ctx=4_000_000), EngineError.DOES_NOT_FIT, "shorter context"),
]


@pytest.mark.parametrize(("make", "options", "kind", "words"), BAD_INPUTS,
                         ids=[case[2] + "-" + (case[0].__name__ if case[0] else "huge_context")
                              for case in BAD_INPUTS])
def test_bad_input_gets_a_clear_error_and_the_engine_stays_usable(
    make, options: LoadOptions, kind: str, words: str, engine: Engine, model_path: Path,
    tmp_path: Path,
) -> None:
    path = make(tmp_path, model_path) if make else model_path
    engine.load(model_path)
    with pytest.raises(EngineError) as caught:
        engine.load(path, options)
    assert caught.value.kind == kind
    assert words in caught.value.message
    # A file the header checks refuse never unloads the model that works; one that llama.cpp
    # (or the memory check) refuses was tried after unloading it (the worker loads it again).
    assert engine.is_loaded == (kind in HEADER_KINDS)
    engine.load(model_path)  # the next good load works
    _, stats = run(engine, HELLO, GREEDY.replace(max_tokens=8))
    assert stats.completion_tokens > 0


# A DeepSeek-R1-style template: the assistant's turn opens with "<think>" in the prompt itself.
THINK_OPENING = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                 "{% endfor %}<|im_start|>assistant\n<think>\n")


def test_a_template_that_opens_the_thought_hands_the_tag_on(model_path: Path, tmp_path: Path) -> None:
    """The model's output then starts inside a thought; the answer's first text says so, so the
    thought is kept apart like one the model opened itself."""
    from app.core.chat.reasoning import ReasoningSplitter
    from tests.fixtures.template_models import with_chat_template

    thinking = Engine()
    thinking.load(with_chat_template(model_path, tmp_path / "thinks.gguf", THINK_OPENING))
    try:
        deltas = [d for d in thinking.stream([{"role": "user", "content": "What is 2 + 2?"}],
                                             SamplingParams(max_tokens=6, seed=1)) if isinstance(d, str)]
    finally:
        thinking.unload()
    assert deltas[0] == "<think>\n"
    splitter = ReasoningSplitter()
    pieces = [kind for d in deltas for kind, _text in splitter.feed(d)]
    assert pieces and set(pieces) == {"thought"}  # SmolLM2 never closes it: all of it is thought
