"""The answer's tokens, one at a time, with or without drafted batches (speculative decoding).

Plain decoding evaluates the last token and samples the next from its logits, as Llama.generate does.
With a drafter, the last token and up to n guesses are evaluated in one batch with the logits of
every position; the sampler then picks the model's own token at each position in turn, and the
guesses stand only as long as they equal those picks. So every token yielded is the model's choice
under the same sampler (the same penalties, grammar and random draws as plain decoding); with greedy
sampling the answer is the plain one except where batched arithmetic rounds a near-tie differently.

Unlike Llama(draft_model=...), which needs logits_all (an n_ctx x n_vocab float buffer, copied out of
llama.cpp after every batch), only the drafted batch's rows are asked of llama.cpp, and they are read
where they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import perf_counter

from app.core.chat.sampling import SamplingParams
from app.core.inference.local import llama_adapter
from app.core.inference.local.drafting import Drafter, DraftGovernor


def sampler_settings(sampling: SamplingParams, grammar=None) -> dict:
    """Llama.generate's keyword arguments for a sampler chain from the window's sampling settings."""
    return dict(temp=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, min_p=sampling.min_p,
                typical_p=sampling.typical_p, repeat_penalty=sampling.repeat_penalty,
                frequency_penalty=sampling.frequency_penalty, presence_penalty=sampling.presence_penalty,
                mirostat_mode=sampling.mirostat, mirostat_tau=sampling.mirostat_tau,
                mirostat_eta=sampling.mirostat_eta, grammar=grammar)


def generate(llm: llama_adapter.Llama, prompt: Sequence[int], sampling: dict,
             drafter: Drafter | None = None, governor: DraftGovernor | None = None) -> Iterator[int]:
    """Yield the answer's tokens after `prompt` (sampling: Llama.generate's keyword arguments). The
    evaluated tokens the context keeps are reused as far as they match the prompt.

    A token is yielded before anything after it is evaluated, so a consumer that stops (closes the
    generator) within one token stops the work; the context then holds the prompt and the answer's
    tokens evaluated so far, never an unchecked guess. RuntimeError or ValueError when llama_decode fails."""
    sampler = llama_adapter.new_sampler(llm, **sampling)
    llama_adapter.keep_common_prefix(llm, prompt)
    llm.eval(prompt[llm.n_tokens:])  # at least the last prompt token: its logits give the first token
    valid = llm.n_tokens  # the evaluated tokens that are the prompt and the answer so far
    token = llama_adapter.sample(llm, sampler)
    drafting = drafter is not None and governor is not None
    if drafting:
        drafter.start(prompt)
    most = min(llm.n_batch, llm.n_ctx()) - 1  # one batch holds the token and its guesses
    unchecked = 0  # guesses of the round in progress not compared yet
    try:
        while True:
            yield token
            room = llm.n_ctx() - llm.n_tokens - 1
            if room < 0:
                return
            started = perf_counter()
            guesses: list[int] = []
            if drafting:
                drafter.append(token)
                size = min(governor.next_size(room), most)
                guesses = drafter.draft(size)[:size] if size > 0 else []
            llama_adapter.decode(llm, [token, *guesses], every_row=bool(guesses))
            valid += 1
            if not guesses:
                if drafting:
                    governor.record_plain(perf_counter() - started)
                token = llama_adapter.sample(llm, sampler)
                continue
            accepted, spent = 0, perf_counter() - started
            governor.begin_round(len(guesses))
            for row, guess in enumerate(guesses):
                token = llama_adapter.sample(llm, sampler, row)
                if token != guess:
                    break
                accepted += 1
                valid += 1
                governor.accept()
                unchecked = len(guesses) - row - 1  # if the answer ends at this token
                yield token
                drafter.append(token)
            else:
                token = llama_adapter.sample(llm, sampler, len(guesses))  # the row after the last guess
            unchecked = 0
            governor.end_round(len(guesses), accepted, spent)
            if not llama_adapter.rewind(llm, valid):  # never kept: a wrong guess would stay in the context
                raise RuntimeError("llama.cpp could not take back the rejected guesses")
    finally:
        if unchecked:
            governor.unchecked(unchecked)
        llama_adapter.rewind(llm, valid)
