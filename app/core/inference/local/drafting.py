"""Guessing the next tokens for speculative decoding, and deciding whether guessing pays.

A drafter guesses; the model then reads the guesses in one batch and keeps each only where its own
choice is the same token (decoding.generate). Two drafters:

- PromptLookup finds the last few tokens earlier in the prompt or the answer and guesses that what
  followed them there follows again: text being edited, quoted or summarised with quotes, a list
  being continued. It costs a dictionary look-up per token and no model.
- DraftModel asks a small model with the same vocabulary for its greedy guesses.

On a CPU a batch of n tokens costs more than one token (on this 2-core machine with a 135M model:
1 token 13 ms, 5 tokens 40 ms, 17 tokens 95 ms), so guesses pay only when most are right. The
DraftGovernor sizes each guess by how the last ones fared, and in "auto" mode pauses drafting (for
longer each time) when drafted rounds deliver tokens more slowly than plain decoding does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from app.core.inference.local import llama_adapter
from app.core.inference.types import MAX_DRAFT_TOKENS, LoadOptions
from app.core.models.drafting_plan import plan
from app.core.models.gguf_info import GGUFHeader

log = logging.getLogger(__name__)

# The suffix looked up. Measured on bench/speculative.py's corpus with SmolLM2-135M on 2 cores: guesses
# after a match of 2 to 5 tokens were right about a third of the time, which costs more than it saves
# on a CPU; after 6 or more, mostly right.
NGRAM = 6
FIRST_DRAFT = 8  # tokens guessed in an answer's first drafted round
MIN_DRAFT = 2
JUDGE_AFTER_ROUNDS = 3  # drafted rounds before "auto" judges whether drafting pays (2 if none was right)
GIVE_UP_ACCEPTANCE = 0.5  # "auto" pauses drafting below this share of right guesses...
KEEP_ACCEPTANCE = 0.8  # ...keeps it from this share up; between the two, by the time drafted rounds take
PAUSE_TOKENS = 32  # "auto" pauses drafting this long the first time, twice as long each time after
RETRY_DRAFT = 4  # tokens guessed when drafting tries again
PLAIN_SPEED_WEIGHT = 0.1  # each plain decode's weight in the running mean of its duration


class Drafter(Protocol):
    name: str  # as GenerationStats.drafting says it
    cheap: bool  # guessing costs next to nothing (no model runs): the share of right guesses tells
    #              whether drafting pays; otherwise only its timing does

    def start(self, tokens: Sequence[int]) -> None:
        """A new answer to the prompt `tokens`."""

    def append(self, token: int) -> None:
        """The answer's next token (the model's choice)."""

    def draft(self, n: int) -> list[int]:
        """Up to n guesses for the tokens after those seen; [] when there is no good guess."""

    def close(self) -> None:
        """Free what it holds (a draft model)."""


class PromptLookup:
    """N-gram lookup over the prompt and the answer so far: the most recent earlier occurrence of the
    last NGRAM tokens, and the tokens that followed it there."""

    name = "prompt lookup"
    cheap = True

    def __init__(self) -> None:
        self._tokens: list[int] = []
        self._after: dict[tuple[int, ...], int] = {}  # n-gram -> where what followed it starts

    def start(self, tokens: Sequence[int]) -> None:
        self._tokens, self._after = [], {}
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        tokens = self._tokens
        end = len(tokens)  # the n-gram ending just before `token` is now followed by it
        if end >= NGRAM:
            self._after[tuple(tokens[end - NGRAM:end])] = end
        tokens.append(token)

    def draft(self, n: int) -> list[int]:
        tokens = self._tokens
        start = self._after.get(tuple(tokens[-NGRAM:])) if len(tokens) >= NGRAM else None
        return tokens[start:start + n] if start is not None else []

    def close(self) -> None:
        self._tokens, self._after = [], {}


class DraftModel:
    """Greedy guesses from a second, smaller model sharing the vocabulary, kept in step with the
    answer: its KV cache holds the prompt and the answer, and is cut back where a guess was wrong.
    If llama.cpp fails it, it guesses nothing more (`failed` says why) and the engine drops it."""

    cheap = False

    def __init__(self, llm: llama_adapter.Llama, file_name: str) -> None:
        self.llm = llm
        self.name = f"draft model {file_name}"
        self.failed = ""
        self._sampler = llama_adapter.greedy_sampler()
        self._tokens: list[int] = []

    def start(self, tokens: Sequence[int]) -> None:
        self._tokens = list(tokens)

    def append(self, token: int) -> None:
        self._tokens.append(token)

    def catch_up(self, prompt: Sequence[int], should_stop: Callable[[], bool]) -> bool:
        """Read what of `prompt` the draft model has not read yet, batch by batch (a long chat, or one
        switched to, is new to it): so the first drafted round does not stall, and Stop works between
        batches. False when stopped."""
        llm = self.llm
        try:
            llama_adapter.keep_common_prefix(llm, prompt)
            for start in range(llm.n_tokens, len(prompt) - 1, llm.n_batch):
                if should_stop():
                    return False
                llm.eval(prompt[start:min(len(prompt) - 1, start + llm.n_batch)])
        except (RuntimeError, ValueError) as error:
            self._fail(error)
        return True

    def draft(self, n: int) -> list[int]:
        llm, tokens = self.llm, self._tokens
        n = min(n, llm.n_ctx() - len(tokens))
        if n <= 0 or self.failed:
            return []
        try:
            llama_adapter.keep_common_prefix(llm, tokens)
            llm.eval(tokens[llm.n_tokens:])
            guesses: list[int] = []
            while True:
                guesses.append(llama_adapter.sample(llm, self._sampler))
                if len(guesses) == n:
                    return guesses
                llama_adapter.decode(llm, guesses[-1:], every_row=False)
        except (RuntimeError, ValueError) as error:  # a failed llama_decode: the answer goes on without
            self._fail(error)
            return []

    def _fail(self, error: Exception) -> None:
        log.warning("the draft model failed: %s", error)
        self.failed = str(error) or type(error).__name__

    def close(self) -> None:
        self.llm.close()


class PlainSpeed:
    """The running mean of one plain decode's duration, kept across answers: drafted rounds are
    judged against it."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def add(self, seconds: float) -> None:
        self.seconds = seconds if self.seconds is None else \
            self.seconds + PLAIN_SPEED_WEIGHT * (seconds - self.seconds)


class DraftGovernor:
    """One answer's drafting: how many tokens to guess next, the tally, and in "auto" mode whether
    drafting pays. Where it does not, "auto" pauses it for PAUSE_TOKENS tokens of the answer, twice as
    long each time, then tries a few guesses again: an answer that explains first and quotes later
    (most of them) still gains, while chat that never quotes pays for a few short tries at most."""

    def __init__(self, mode: str, plain: PlainSpeed, most: int = MAX_DRAFT_TOKENS,
                 cheap: bool = True) -> None:
        self.mode, self.plain, self.most, self.cheap = mode, plain, most, cheap
        self.size = min(FIRST_DRAFT, most)
        self.drafted = self.accepted = self.rounds = 0  # the whole answer's
        self.turned_off = False  # "auto" paused drafting at least once: too few guesses were right
        self.tokens = 0  # the answer's tokens so far (after its first)
        self._resume_at, self._pause = 0, PAUSE_TOKENS
        self._since_judged()

    def _since_judged(self) -> None:
        """The tally "auto" judges: the rounds since drafting (re)started."""
        self._drafted = self._accepted = self._rounds = self._emitted = 0
        self._seconds = 0.0  # spent in those drafted rounds (guessing and the batch)

    @property
    def active(self) -> bool:
        return self.mode != "off" and self.most > 0 and self.tokens >= self._resume_at

    def next_size(self, room: int) -> int:
        """Tokens to guess now, with `room` positions left in the context after the next token. A
        draft model waits for one plain decode first: its rounds are judged against that speed."""
        if not self.active or (not self.cheap and self.plain.seconds is None):
            return 0
        return min(self.size, room)

    def record_plain(self, seconds: float) -> None:
        self.tokens += 1
        self.plain.add(seconds)

    def begin_round(self, guesses: int) -> None:
        """A batch with `guesses` guesses was read; accept() counts each kept, end_round() ends the
        round, unchecked() takes back those a Stop left unread before it ended."""
        self.drafted += guesses
        self._drafted += guesses
        self.rounds += 1
        self._rounds += 1

    def accept(self) -> None:
        self.accepted += 1
        self._accepted += 1

    def unchecked(self, guesses: int) -> None:
        """The answer ended at a kept guess (a Stop, a stop string, the length): the guesses after it
        were never compared with the model's choice, so they count neither way."""
        self.drafted -= guesses

    def end_round(self, guesses: int, accepted: int, seconds: float) -> None:
        """The round's `guesses`, the first `accepted` of them right, took `seconds`: the next size,
        and in "auto" mode whether drafting goes on."""
        self.tokens += accepted + 1
        self._seconds += seconds
        self._emitted += accepted + 1
        self.size = min(self.size * 2, self.most) if accepted == guesses else max(MIN_DRAFT, accepted + 1)
        judge = self._rounds >= (JUDGE_AFTER_ROUNDS if self._accepted else JUDGE_AFTER_ROUNDS - 1)
        if self.mode == "auto" and judge and not self._pays():
            self.turned_off = True
            self._resume_at, self._pause = self.tokens + self._pause, self._pause * 2
            self.size = min(RETRY_DRAFT, self.most)
            self._since_judged()

    def _pays(self) -> bool:
        """Whether drafted rounds deliver tokens faster than plain decoding. For cheap guesses the share
        of right ones decides where it is clear, and timing (noisy on a busy machine) only in between;
        a draft model's guesses cost a model's work, so its timing decides."""
        share = self._accepted / self._drafted
        if share < GIVE_UP_ACCEPTANCE:
            return False
        if self.cheap and share >= KEEP_ACCEPTANCE:
            return True
        return self.plain.seconds is None or self._emitted / self._seconds >= 1.0 / self.plain.seconds


def open_drafter(llm: llama_adapter.Llama, header: GGUFHeader, n_ctx: int, options: LoadOptions,
                 n_threads: int, available_ram: int | None) -> tuple[Drafter | None, str]:
    """The drafter the settings ask for with the model `llm` just loaded from `header`, and a note
    when it is not what they ask (drafting_plan's: a draft model that cannot be used or drafting that
    would not fit; or a model whose KV cache cannot be cut back). available_ram: free before the model
    loaded (the plan counts the model's own memory)."""
    if options.drafting == "off":
        return None, ""
    if not llama_adapter.can_rewind(llm):
        return None, (f"Speculative decoding is off: {header.architecture} models keep a running state "
                      "that cannot take back a wrong guess.")
    chosen = plan(header, n_ctx, options, available_ram)
    if not chosen.on:
        return None, chosen.note
    if not chosen.draft_path:
        return PromptLookup(), chosen.note
    draft_options = replace(options, n_gpu_layers=-1 if options.n_gpu_layers else 0)
    try:
        draft = llama_adapter.open_model(chosen.draft_path, n_ctx, draft_options, n_threads)
    except (ValueError, RuntimeError, OSError) as error:
        name = Path(chosen.draft_path).name
        return PromptLookup(), f"llama.cpp could not load the draft model {name} ({error}): " \
                               "prompt lookup drafts instead."
    if not llama_adapter.can_rewind(draft):
        draft.close()
        return PromptLookup(), f"The draft model {Path(chosen.draft_path).name} keeps a running state " \
                               "that cannot take back a wrong guess: prompt lookup drafts instead."
    return DraftModel(draft, Path(chosen.draft_path).name), chosen.note


def replace_failed(drafter: Drafter | None) -> tuple[Drafter | None, str]:
    """A draft model that llama.cpp failed gives way to prompt lookup, with the note that says why;
    any other drafter stays, with no note."""
    failed = getattr(drafter, "failed", "")
    if drafter is None or not failed:
        return drafter, ""
    drafter.close()
    return PromptLookup(), f"The {drafter.name} failed ({failed}): prompt lookup drafts instead."

