"""Issue 15: speculative decoding in the engine, on the real embedded model.

Every token of an answer must be the model's own choice: drafted guesses only save work. With greedy
sampling that means the plain answer; with a seed, the same sampled answer. Stop still works per token.

Where the answers are compared, the contexts are short and the model runs with flash attention: there
llama.cpp computes a position the same whether it is read alone or in a batch (measured), so drafting
must give exactly the plain tokens. (At longer contexts, and without flash attention sooner, its CPU
kernels sum in another order in a batch: logits differ a little and a near-tie may go the other way;
bench/speculative.py measures how often.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.chat.sampling import GREEDY
from app.core.inference.local import decoding, drafting, llama_adapter
from app.core.inference.local import engine as engine_module
from app.core.inference.local.drafting import DraftGovernor, PlainSpeed, PromptLookup
from app.core.inference.local.engine import Engine, GenerationStats, LoadOptions
from app.core.models import drafting_plan, memory
from app.core.models.gguf_info import read_model
from tests.fixtures.hostile_gguf import string, strings, u32, write

LIST = [{"role": "user", "content": "Continue this list of fruits, in the same format:\n\n"
                                    "1. Apple - red, sweet\n2. Banana - yellow, sweet\n"
                                    "3. Lemon - yellow, sour\n4. Lime - green, sour\n5."}]
QUOTE = [{"role": "user", "content": "Summarise this text, quoting its key sentences:\n\n"
                                     "The quick brwon fox jumps over the lazy dog. It was a sunny day in the "
                                     "vilage, and the children were playing in the feild near the old mill."}]
SHORT = GREEDY.replace(max_tokens=48)
STORY = [{"role": "user", "content": "Write a long story about a llama who travels the world."}]


def answer(engine: Engine, messages, sampling=SHORT, **kwargs) -> tuple[str, GenerationStats]:
    """The answer read from an empty context: the prompt is evaluated in one batch every time (how a
    prompt is split into batches also changes the last digits of the logits)."""
    llama_adapter.rewind(engine._llm, 0)
    *deltas, stats = engine.stream(messages, sampling, **kwargs)
    return "".join(deltas), stats


@pytest.fixture(scope="module")
def plain(model_path: Path) -> Engine:
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=2048, drafting="off", flash_attn=True))
    assert info.drafting == "" and info.drafting_note == ""
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def drafted(model_path: Path) -> Engine:
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=2048, drafting="on", flash_attn=True))
    assert info.drafting == "prompt lookup" and info.drafting_note == ""
    yield engine
    engine.unload()


def test_prompt_lookup_guesses_what_followed_the_last_tokens_most_recently() -> None:
    assert drafting.NGRAM == 6
    lookup = PromptLookup()
    lookup.start([1, 2, 3, 4, 5, 6, 10, 11, 1, 2, 3, 4, 5, 6, 20, 21, 22, 30])
    assert lookup.draft(4) == []  # "... 22 30" never came before
    for token in (1, 2, 3, 4, 5):
        lookup.append(token)
    assert lookup.draft(8) == []  # five tokens match: too weak a clue
    lookup.append(6)
    assert lookup.draft(2) == [20, 21]  # after "1 2 3 4 5 6": the latest occurrence's continuation
    assert lookup.draft(8) == [20, 21, 22, 30, 1, 2, 3, 4]
    lookup.append(7)
    assert lookup.draft(4) == []


def test_quoting_answers_are_drafted_and_equal_plain_decoding(plain: Engine, drafted: Engine) -> None:
    for messages in (LIST, QUOTE):
        expected, plain_stats = answer(plain, messages)
        text, stats = answer(drafted, messages)
        assert text == expected
        assert stats.completion_tokens == plain_stats.completion_tokens
        assert stats.drafting == "prompt lookup"
        assert stats.drafted_tokens > 0 and 0 < stats.accepted_tokens <= stats.drafted_tokens
        assert plain_stats.drafting == "" and plain_stats.drafted_tokens == plain_stats.accepted_tokens == 0


class Scripted:
    """A drafter that knows the plain answer's tokens and guesses them, except every `wrong`-th
    token of the answer, which it guesses wrong: full batches, with a wrong guess now and then."""

    name = "scripted"
    cheap = True

    def __init__(self, answer: list[int], wrong: int, wrong_token: int) -> None:
        self.answer, self.wrong, self.wrong_token = answer, wrong, wrong_token
        self.at = 0

    def start(self, tokens) -> None:
        self.at = 0

    def append(self, token: int) -> None:
        self.at += 1

    def draft(self, n: int) -> list[int]:
        return [self.wrong_token if (self.at + i) % self.wrong == self.wrong - 1 else token
                for i, token in enumerate(self.answer[self.at:self.at + n])]

    def close(self) -> None:
        pass


def plain_tokens(engine: Engine, messages, n: int) -> list[int]:
    """The first n token ids of the greedy plain answer."""
    llama_adapter.rewind(engine._llm, 0)
    stream = decoding.generate(engine._llm, engine.tokenize_chat(messages), dict(temp=0.0))
    tokens = [token for _, token in zip(range(n), stream, strict=False)]
    stream.close()
    return tokens


@pytest.fixture
def scripted(model_path: Path):
    """An engine drafting "on" whose drafter is replaced by a Scripted one (set by the test)."""
    engine = Engine()
    engine.load(model_path, LoadOptions(n_ctx=2048, drafting="on", flash_attn=True))
    yield engine
    engine.unload()


def test_a_sampled_answer_with_a_seed_is_the_plain_one(plain: Engine) -> None:
    """The sampler draws once per kept token, as in plain decoding: drafting changes no draw, and a
    guess is kept only where the draw chose it."""
    llm = plain._llm
    prompt = plain.tokenize_chat(STORY)
    sampling = dict(temp=0.9, top_k=40, top_p=0.95, min_p=0.05)

    def sampled(drafter=None, governor=None) -> list[int]:
        llm.set_seed(4321)
        llama_adapter.rewind(llm, 0)
        stream = decoding.generate(llm, prompt, sampling, drafter, governor)
        tokens = [token for _, token in zip(range(60), stream, strict=False)]
        stream.close()
        return tokens

    expected = sampled()
    zebra = llm.tokenize(b" zebra", add_bos=False)[0]
    governor = DraftGovernor("on", PlainSpeed())
    assert sampled(Scripted(expected, wrong=3, wrong_token=zebra), governor) == expected
    assert 0 < governor.accepted < governor.drafted


class WrongGuesses:
    """A drafter whose every guess is a token the model would not choose (it stays on one id)."""

    name = "wrong guesses"
    cheap = True

    def __init__(self, token: int) -> None:
        self.token, self.seen = token, []

    def start(self, tokens) -> None:
        self.seen = list(tokens)

    def append(self, token: int) -> None:
        self.seen.append(token)

    def draft(self, n: int) -> list[int]:
        return [self.token] * n

    def close(self) -> None:
        pass


def test_wrong_guesses_are_never_kept_and_the_context_keeps_no_guess(plain: Engine, drafted: Engine) -> None:
    llm = drafted._llm
    prompt = drafted.tokenize_chat(STORY)
    eos = llm.token_eos()
    guesser = WrongGuesses(token=llm.tokenize(b" zebra", add_bos=False)[0])
    governor = DraftGovernor("on", PlainSpeed())
    expected, tokens = [], []
    for source, out, args in ((plain._llm, expected, (None, None)), (llm, tokens, (guesser, governor))):
        llama_adapter.rewind(source, 0)
        stream = decoding.generate(source, prompt, dict(temp=0.0), *args)
        for token in stream:
            out.append(token)
            if token == eos or len(out) == 24:
                break
        stream.close()
    assert tokens == expected
    assert guesser.token not in tokens
    assert governor.rounds > 0 and governor.accepted == 0 and governor.drafted >= 2 * governor.rounds
    # What the context holds: the prompt and the answer (all but the last token, not yet read).
    assert llama_adapter.evaluated_tokens(llm) == prompt + tokens[:-1]


def test_stop_takes_effect_at_the_token_asked_even_inside_a_drafted_batch(plain: Engine,
                                                                          scripted: Engine) -> None:
    long = GREEDY.replace(max_tokens=200)
    scripted._drafter = Scripted(plain_tokens(plain, STORY, 200), wrong=1000, wrong_token=0)
    for stop_after in (9, 14, 21):  # inside the first batches of 8 and 16 guesses
        seen: list[str] = []
        stats = None
        for event in scripted.stream(STORY, long, should_stop=lambda s=seen, n=stop_after: len(s) >= n):
            if isinstance(event, str):
                seen.append(event)
            else:
                stats = event
        assert stats is not None and stats.stop_reason == "user"
        assert stats.completion_tokens == stop_after
        assert stats.accepted_tokens >= stop_after - 2  # the stop came while guesses were being read...
        assert stats.drafted_tokens == stats.accepted_tokens  # ...and the guesses never looked at don't count


def drafted_round(governor: DraftGovernor, drafted: int, accepted: int, seconds: float) -> None:
    """A whole drafted round, told to the governor as decoding.generate tells it."""
    governor.begin_round(drafted)
    for _ in range(accepted):
        governor.accept()
    governor.end_round(drafted, accepted, seconds)


def test_auto_pauses_drafting_while_guesses_stay_wrong_and_tries_again_later_but_on_keeps_it() -> None:
    speed = PlainSpeed()
    speed.add(0.010)
    auto, forced = DraftGovernor("auto", speed), DraftGovernor("on", speed)

    def wrong_rounds(governor: DraftGovernor, rounds: int) -> None:
        for _ in range(rounds):
            if governor.next_size(room=1000):
                drafted_round(governor, drafted=governor.next_size(room=1000), accepted=0, seconds=0.03)
            else:
                governor.record_plain(0.010)

    wrong_rounds(auto, 5)
    wrong_rounds(forced, 5)
    assert auto.turned_off and auto.rounds == 2 and auto.next_size(room=1000) == 0  # paused
    assert not forced.turned_off and forced.rounds == 5 and forced.next_size(room=1000) >= 2
    wrong_rounds(auto, drafting.PAUSE_TOKENS - 4)  # 2 drafted rounds and 3 plain tokens so far
    assert auto.next_size(room=1000) == 0
    wrong_rounds(auto, 1)
    assert auto.next_size(room=1000) == drafting.RETRY_DRAFT  # tries again, with a few guesses
    wrong_rounds(auto, 2 + 2 * drafting.PAUSE_TOKENS - 1)  # wrong again: paused twice as long
    assert auto.rounds == 4 and auto.next_size(room=1000) == 0
    wrong_rounds(auto, 1)
    assert auto.next_size(room=1000) == drafting.RETRY_DRAFT

    good = DraftGovernor("auto", speed)
    for _ in range(6):
        size = good.next_size(room=1000)
        drafted_round(good, drafted=size, accepted=size, seconds=0.05)
    assert not good.turned_off and good.next_size(room=1000) == 16 and good.next_size(room=5) == 5


def test_auto_pauses_drafting_where_guesses_stay_wrong(plain: Engine, model_path: Path) -> None:
    engine = Engine()
    engine.load(model_path, LoadOptions(n_ctx=2048, flash_attn=True))  # "auto" is the default
    try:
        expected, _ = answer(plain, STORY)
        zebra = plain._llm.tokenize(b" zebra", add_bos=False)[0]
        engine._drafter = Scripted(plain_tokens(plain, STORY, 48), wrong=1, wrong_token=zebra)
        text, stats = answer(engine, STORY)
        assert text == expected and stats.completion_tokens == 48
        assert stats.drafting_turned_off and stats.accepted_tokens == 0
        # Two rounds (8 guesses, then 2) were enough to judge; 32 tokens later, two more (4, then 2).
        assert stats.drafted_tokens == drafting.FIRST_DRAFT + drafting.MIN_DRAFT + drafting.RETRY_DRAFT \
            + drafting.MIN_DRAFT
    finally:
        engine.unload()


def test_a_draft_model_drafts_when_it_shares_the_vocabulary(plain: Engine, model_path: Path) -> None:
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=2048, drafting="on", draft_model=str(model_path),
                                               flash_attn=True))
    try:
        assert info.drafting == f"draft model {model_path.name}" and info.drafting_note == ""
        expected, _ = answer(plain, LIST)
        text, stats = answer(engine, LIST)
        assert text == expected
        assert stats.drafting == info.drafting and stats.accepted_tokens > 0
        # The same model guesses its own greedy choices: nearly every guess is right.
        assert stats.accepted_tokens >= 0.8 * stats.drafted_tokens
    finally:
        engine.unload()


def other_vocabulary(path: Path) -> Path:
    tokens = [f"t{i}" for i in range(128)]
    write(path, [string("general.architecture", "llama"), u32("llama.block_count", 1),
                 string("tokenizer.ggml.model", "gpt2"), strings("tokenizer.ggml.tokens", tokens)])
    return path


def test_a_draft_model_with_another_vocabulary_falls_back_to_prompt_lookup(model_path: Path,
                                                                           tmp_path: Path) -> None:
    draft = other_vocabulary(tmp_path / "other.gguf")
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=2048, draft_model=str(draft)))
    try:
        assert info.drafting == "prompt lookup"
        assert info.drafting_note == ("other.gguf cannot draft for this model: their vocabularies differ in "
                                      "size (49,152 and 128 tokens). Prompt lookup drafts instead.")
    finally:
        engine.unload()


def test_drafting_is_off_and_says_why_when_its_memory_would_not_fit(model_path: Path, monkeypatch) -> None:
    header = read_model(model_path)
    own = memory.estimate(header, 2048, 0, "f16").ram_bytes
    monkeypatch.setattr(engine_module, "available_ram_bytes", lambda: own + 1024)  # room for the model only
    engine = Engine()
    info = engine.load(model_path, LoadOptions(n_ctx=2048))
    try:
        assert info.drafting == ""
        assert info.drafting_note.startswith("Speculative decoding is off: the 3 MiB it needs for drafted "
                                             "logits would not fit in memory")
        text, stats = answer(engine, LIST)
        assert text and stats.drafted_tokens == 0 and stats.drafting == ""
    finally:
        engine.unload()
    assert drafting_plan.logits_bytes(49_152) == 17 * 49_152 * 4


def test_a_draft_model_waits_for_a_plain_decode_to_be_judged_against() -> None:
    speed = PlainSpeed()
    governor = DraftGovernor("auto", speed, cheap=False)
    assert governor.next_size(room=1000) == 0
    governor.record_plain(0.013)
    assert governor.next_size(room=1000) == drafting.FIRST_DRAFT
    # Right guesses that cost more than plain decoding: a draft model is paused all the same.
    for _ in range(3):
        drafted_round(governor, drafted=4, accepted=3, seconds=0.2)
    assert governor.turned_off and governor.next_size(room=1000) == 0


LONG = [{"role": "user", "content": "Here are my notes:\n\n" + "The river rose after the storm. " * 150
                                    + "\n\nSummarise them in one sentence."}]


def test_stop_while_the_draft_model_reads_a_long_prompt(model_path: Path) -> None:
    engine = Engine()
    engine.load(model_path, LoadOptions(n_ctx=2048, n_batch=128, drafting="on", draft_model=str(model_path)))
    try:
        read: list[int] = []
        stream = engine.stream(LONG, SHORT, on_prompt_progress=lambda done, total: read.append(done == total),
                               should_stop=lambda: bool(read) and read[-1])  # Stop once the model read it
        *deltas, stats = stream
        assert stats.stop_reason == "user" and stats.completion_tokens == 0 and not deltas
        prompt = engine.tokenize_chat(LONG)
        assert llama_adapter.evaluated_count(engine._llm) == len(prompt) - 1
        assert llama_adapter.evaluated_count(engine._drafter.llm) < len(prompt) - 1  # stopped between batches
    finally:
        engine.unload()


def test_a_failing_draft_model_gives_way_to_prompt_lookup(model_path: Path, plain: Engine) -> None:
    engine = Engine()
    engine.load(model_path, LoadOptions(n_ctx=2048, drafting="on", draft_model=str(model_path),
                                        flash_attn=True))
    try:
        def broken(tokens) -> None:  # as llama-cpp-python reports a failed llama_decode (a GPU out of memory)
            raise RuntimeError("llama_decode returned -3")

        engine._drafter.llm.eval = broken
        expected, _ = answer(plain, LIST)
        text, stats = answer(engine, LIST)
        assert text == expected and stats.stop_reason == "eos" and stats.accepted_tokens == 0
        text, stats = answer(engine, LIST)  # the next answer: prompt lookup drafts
        assert text == expected and stats.drafting == "prompt lookup"
        assert engine.info.drafting == "prompt lookup"
        assert engine.info.drafting_note == (f"The draft model {model_path.name} failed (llama_decode "
                                             "returned -3): prompt lookup drafts instead.")
    finally:
        engine.unload()
