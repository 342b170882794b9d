"""The one owner of a llama.cpp model: load, stream an answer, stop, unload.

Not thread-safe by design (llama.cpp contexts are not): exactly one thread, the inference
worker's, calls into an Engine. Only `should_stop`, a plain callable, crosses threads.
What depends on llama-cpp-python's internals is in llama_adapter.
"""

from __future__ import annotations

import codecs
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from time import perf_counter

from app.core.chat.reasoning import OPEN as OPEN_THOUGHT
from app.core.chat.sampling import SamplingParams, answer_limit
from app.core.common.system import available_ram_bytes, default_threads
from app.core.inference.local import decoding, llama_adapter
from app.core.inference.local import devices as backends
from app.core.inference.local.chat_template import ChatTemplate, TemplateError
from app.core.inference.local.conversation_caches import ConversationCaches
from app.core.inference.local.drafting import Drafter, DraftGovernor, PlainSpeed, open_drafter, replace_failed
from app.core.inference.local.embeddings import Embedder
from app.core.inference.local.kv_cache import KVCacheStore
from app.core.inference.local.load_checks import check_fits, checked_header, explain_load_failure, first_line
from app.core.inference.local.output_format import JsonEnd, grammar_for
from app.core.inference.local.stop_strings import StopMatcher
from app.core.inference.types import (  # noqa: F401 - re-exported: the engine's vocabulary
    API_CACHE_KEY,
    ChatMessages,
    Embeddings,
    EngineError,
    GenerationStats,
    LoadOptions,
    ModelInfo,
    OutputFormat,
)
from app.core.models.gguf_info import GGUFHeader, split_name

log = logging.getLogger(__name__)

# Used when a model carries no chat template: ChatML, which most instruction-tuned
# models understand; its markers are also stop strings, so a base model stops cleanly.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
FALLBACK_STOPS = ("<|im_end|>", "<|im_start|>")


class Engine:
    def __init__(self, kv_store: KVCacheStore | None = None) -> None:
        """kv_store: where each conversation's KV cache is kept between switches and restarts."""
        self._caches = ConversationCaches(kv_store)
        self._llm: llama_adapter.Llama | None = None
        self._template: ChatTemplate | None = None
        self._stops: tuple[str, ...] = ()
        self._special = llama_adapter.SpecialTokens("", "", False)
        self._opened_thought = False  # the last prompt ended inside an opened <think>
        self._embedder: Embedder | None = None  # the embedding context, opened on first use
        self._drafter: Drafter | None = None  # guesses tokens for speculative decoding
        self._drafting_mode = "off"
        self._plain_speed = PlainSpeed()  # drafted rounds are judged against it
        self.info: ModelInfo | None = None

    @property
    def is_loaded(self) -> bool:
        return self._llm is not None

    def load(self, path: str | Path, options: LoadOptions = LoadOptions()) -> ModelInfo:
        """Load a GGUF model, replacing the current one. On failure the engine holds no model.

        A split model loads from any of its parts. If loading with GPU layers fails, the model
        is loaded on the CPU instead and ModelInfo.gpu_note says why. A file that fails the
        header checks leaves the current model loaded.
        """
        header = checked_header(Path(path))
        self.unload()
        path = header.path  # part 1 of a split model
        n_ctx = options.n_ctx or int(header.context_length or 4096)
        offload = backends.gpu_offload_supported()
        note = ""
        if options.n_gpu_layers != 0 and not offload:
            note = f"This llama.cpp build has no GPU backend ({backends.backend_name()}): every layer " \
                   "runs on the CPU. See README to build with CUDA, Metal or Vulkan."
            options = replace(options, n_gpu_layers=0)
        check_fits(header, n_ctx, options)
        available = available_ram_bytes()  # before the model takes its share: drafting is planned beside it
        try:
            llm = self._create(path, n_ctx, options, header)
        except EngineError as error:
            if options.n_gpu_layers == 0 or error.kind == EngineError.UNSUPPORTED_ARCHITECTURE:
                raise
            log.warning("loading with %d GPU layers failed (%s); retrying on the CPU",
                        options.n_gpu_layers, error.message)
            note = f"Loaded on the CPU: offloading to the GPU failed ({first_line(error.message)})."
            options = replace(options, n_gpu_layers=0)
            check_fits(header, n_ctx, options)
            llm = self._create(path, n_ctx, options, header)
        try:
            self._set_up_chat_format(llm)
        except TemplateError as error:
            llm.close()
            raise EngineError(f"{path.name}: {error.message}", kind=EngineError.LOAD_FAILED) from error
        self._llm = llm
        self._embedder = Embedder(str(path), llm.n_ctx(), options, options.n_threads or default_threads())
        self._drafter, drafting_note = open_drafter(llm, header, llm.n_ctx(), options,
                                                    options.n_threads or default_threads(), available)
        self._drafting_mode, self._plain_speed = options.drafting, PlainSpeed()
        stat = path.stat()
        self._caches.fingerprint = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime}|{llm.n_ctx()}|" \
                                   f"{llama_adapter.version()}"
        n_layers = header.block_count
        offloaded = 0
        if offload and options.n_gpu_layers != 0:
            wanted = options.n_gpu_layers if options.n_gpu_layers > 0 else n_layers + 1
            offloaded = min(wanted, n_layers + 1)
        self.info = ModelInfo(
            path=str(path),
            name=split_name(path) if len(header.parts) > 1 else path.stem,
            architecture=header.architecture,
            n_ctx=llm.n_ctx(),
            n_layers=n_layers,
            gpu_layers=offloaded,
            backend=backends.backend_name(),
            chat_template="model" if header.has_chat_template else "fallback (ChatML)",
            llama_cpp_version=llama_adapter.version(),
            system_info=llama_adapter.system_info(),
            gpu_note=note,
            drafting=self._drafter.name if self._drafter is not None else "",
            drafting_note=drafting_note,
        )
        return self.info

    @staticmethod
    def _create(path: Path, n_ctx: int, options: LoadOptions, header: GGUFHeader) -> llama_adapter.Llama:
        llama_log = llama_adapter.captured_log()
        llama_log.clear()
        try:
            return llama_adapter.open_model(str(path), n_ctx, options, options.n_threads or default_threads())
        except (ValueError, RuntimeError, OSError) as error:
            raise explain_load_failure(header, llama_log, error) from error

    def unload(self) -> None:
        if self._llm is not None:
            self._caches.keep_current(self._llm)
            self._caches.save()
            self._llm.close()
        if self._embedder is not None:
            self._embedder.close()
        if self._drafter is not None:
            self._drafter.close()
        self._caches.forget_context()
        self._llm = self._embedder = self._drafter = None
        self._template = None
        self.info = None

    def tokenize_chat(self, messages: ChatMessages, continue_text: str = "",
                      should_stop: Callable[[], bool] = lambda: False) -> list[int]:
        """The prompt tokens for a conversation, ending where the assistant's answer starts.

        continue_text: the beginning of that answer, already written; the model carries it on.
        Raises TemplateError when the model's chat template fails, runs too long or is stopped.
        """
        llm = self._require()
        assert self._template is not None
        rendered = self._template.render(messages, should_stop)
        # Some templates (DeepSeek-R1 distills, QwQ) open the thought in the prompt itself: the answer
        # then starts inside it, and the tag is handed on so the thought is told apart all the same.
        self._opened_thought = not continue_text and rendered.rstrip().endswith(OPEN_THOUGHT)
        prompt = rendered + continue_text
        if not prompt:
            raise TemplateError("The model's chat template produced no text for this conversation, so "
                                "there is nothing for the model to read. The template in this model "
                                "file is broken: use another file of this model.")
        bos = self._special.bos_text
        add_bos = self._special.add_bos and not (bos and prompt.startswith(bos))
        return llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    def tokenize_text(self, text: str) -> list[int]:
        """A raw prompt's tokens: special tokens written as text are read as such, and BOS is added
        when the model wants one and the text does not start with it already."""
        llm = self._require()
        bos = self._special.bos_text
        add_bos = self._special.add_bos and not (bos and text.startswith(bos))
        return llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def tokenize_prompt(self, prompt: str | list[int]) -> list[int]:
        """The tokens of a raw prompt (text, or token ids used as they are).

        EngineError BAD_REQUEST for an empty prompt or ids outside the vocabulary; CONTEXT_TOO_SMALL
        when it leaves no room in the context for an answer."""
        llm = self._require()
        tokens = self.tokenize_text(prompt) if isinstance(prompt, str) else self._checked_ids(prompt)
        if not tokens:
            raise EngineError("The prompt is empty: there is nothing for the model to continue.",
                              kind=EngineError.BAD_REQUEST)
        if len(tokens) >= llm.n_ctx():
            raise EngineError(f"The prompt is {len(tokens):,} tokens long, but the model was loaded with a "
                              f"context of {llm.n_ctx():,} tokens, which must also hold the answer. Shorten "
                              "the prompt or load the model with a longer context.",
                              kind=EngineError.CONTEXT_TOO_SMALL)
        return tokens

    def embed(self, inputs: list[str] | list[list[int]]) -> Embeddings:
        """Mean-pooled, L2-normalised embeddings of texts or token-id lists, one vector per input.

        EngineError BAD_REQUEST for no inputs, an empty one, one longer than the embedding context
        (min(the loaded context, 2048) tokens) or ids outside the vocabulary."""
        self._require()
        assert self._embedder is not None
        if not inputs:
            raise EngineError("There is no input to embed.", kind=EngineError.BAD_REQUEST)
        token_lists = [self.tokenize_text(item) if isinstance(item, str) else self._checked_ids(item)
                       for item in inputs]
        return self._embedder.embed(token_lists)

    def stream(
        self,
        messages: ChatMessages,
        sampling: SamplingParams = SamplingParams(),
        should_stop: Callable[[], bool] = lambda: False,
        cache_key: str | None = None,
        continue_text: str = "",
        on_prompt_progress: Callable[[int, int], None] = lambda done, total: None,
        *,
        prompt: str | list[int] | None = None,
        output_format: OutputFormat | None = None,
    ) -> Iterator[str | GenerationStats]:
        """Yield the answer as text deltas, then one GenerationStats.

        `should_stop` is checked after every token, so a stop takes effect within one token,
        and between batches of a long prompt (`on_prompt_progress(done, total)` reports those).
        The KV cache keeps the evaluated tokens: the next turn re-uses the shared prefix. With a
        `cache_key` (the conversation's id), another conversation's cache is saved first and this
        one's restored, so switching between long chats does not re-read them (API_CACHE_KEY's
        tokens are never kept).
        `prompt` (text or token ids) replaces the chat: no template and none of its stop strings.
        `output_format` constrains the answer with a grammar (EngineError BAD_REQUEST if it cannot).
        """
        llm = self._require()
        started = perf_counter()
        grammar = grammar_for(llm, output_format)
        if prompt is None:
            tokens = self.tokenize_chat(messages, continue_text, should_stop)
            stop_strings, opened_thought = (*self._stops, *sampling.stop), self._opened_thought
        else:
            tokens = self.tokenize_prompt(prompt)
            stop_strings, opened_thought = tuple(sampling.stop), False
        self._caches.switch(llm, cache_key)
        cached = _common_prefix(llama_adapter.evaluated_tokens(llm), tokens)
        room = llm.n_ctx() - len(tokens)
        if room <= 0:
            raise EngineError(f"The conversation is {len(tokens):,} tokens long, but the model was loaded "
                              f"with a context of {llm.n_ctx():,} tokens. Start a new conversation, shorten "
                              "the message, or load the model with a longer context.",
                              kind=EngineError.CONTEXT_TOO_SMALL)
        max_tokens = answer_limit(sampling.max_tokens, room)
        self._drafter, note = replace_failed(self._drafter)
        if note and self.info is not None:
            self.info = replace(self.info, drafting=self._drafter.name, drafting_note=note)
        catch_up = getattr(self._drafter, "catch_up", lambda prompt, stop: True)  # a draft model's reading
        if not (self._read_prompt(llm, tokens, cached, should_stop, on_prompt_progress)
                and catch_up(tokens, should_stop)):
            yield GenerationStats(len(tokens), 0, 0.0, 0.0, perf_counter() - started, "user",
                                  cached_tokens=cached)
            return
        if opened_thought:
            yield OPEN_THOUGHT + "\n"
        seed = sampling.seed if sampling.seed is not None else random.randrange(2**31)
        llm.set_seed(seed)
        # llama.cpp itself treats -1 as 0 (off); "-1 = the whole context" is its CLI's.
        window = llm.n_ctx() if sampling.repeat_last_n < 0 else sampling.repeat_last_n
        llama_adapter.set_penalty_window(llm, window)
        governor = DraftGovernor(self._drafting_mode, self._plain_speed, cheap=self._drafter.cheap) \
            if self._drafter else None
        answer = decoding.generate(llm, tokens, decoding.sampler_settings(sampling, grammar), self._drafter,
                                   governor)
        self._caches.changed()
        ends_generation, piece = llama_adapter.token_reader(llm)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(stop_strings)  # the template's (for a chat) and the user's
        json_end = JsonEnd() if grammar is not None else None
        count, first, last = 0, 0.0, 0.0
        reason = "length" if max_tokens == sampling.max_tokens else "context_full"
        try:
            for token in answer:
                last = perf_counter()
                if count == 0:
                    first = last
                if ends_generation(token):
                    reason = "eos"
                    break
                count += 1
                raw = decoder.decode(piece(token))
                end = json_end.feed(raw) if json_end is not None else None
                text, hit = stops.feed(raw if end is None else raw[:end])
                if text:
                    yield text
                if hit or end is not None:  # a stop string, or the constrained JSON value is complete
                    reason = "eos"
                    break
                if count >= max_tokens:
                    break
                if should_stop():
                    reason = "user"
                    break
        except (RuntimeError, ValueError) as error:  # a failed llama_decode
            raise EngineError(f"Generation failed: {error}", kind=EngineError.GENERATION_FAILED) from error
        finally:
            answer.close()
        text, _ = stops.feed(decoder.decode(b"", final=True), final=True)
        if text:
            yield text
        decode_s = last - first
        yield GenerationStats(
            prompt_tokens=len(tokens),
            completion_tokens=count,
            ttft_s=(first or perf_counter()) - started,
            tokens_per_s=(count - 1) / decode_s if count > 1 and decode_s > 0 else 0.0,
            total_s=perf_counter() - started,
            stop_reason=reason,
            seed=seed,
            cached_tokens=cached,
            drafting=self._drafter.name if governor is not None and governor.rounds else "",
            drafted_tokens=governor.drafted if governor is not None else 0,
            accepted_tokens=governor.accepted if governor is not None else 0,
            drafting_turned_off=governor.turned_off if governor is not None else False,
        )

    def save_kv(self) -> None:
        """Write the snapshots taken at conversation switches to disk (when the engine is idle)."""
        self._caches.save()

    def keep_kv(self, keys: set[str]) -> None:
        """Forget every conversation's KV cache but these (in memory and on disk): a deleted
        chat's text must not outlive it in a snapshot, nor be saved again later."""
        self._caches.keep_only(keys)

    # -- helpers -------------------------------------------------------------------------

    def _read_prompt(self, llm: llama_adapter.Llama, prompt: list[int], cached: int,
                     should_stop: Callable[[], bool], on_progress: Callable[[int, int], None]) -> bool:
        """Evaluate a long prompt's new tokens batch by batch, all but the last (generate reads
        that one and reuses the rest as its cached prefix). False when stopped between batches."""
        end = len(prompt) - 1
        if end - cached <= llm.n_batch:
            return True
        self._caches.changed()
        llama_adapter.keep_first(llm, cached)
        try:
            for start in range(cached, end, llm.n_batch):
                on_progress(start - cached, end - cached)
                if should_stop():
                    return False
                llm.eval(prompt[start:min(end, start + llm.n_batch)])
        except (RuntimeError, ValueError) as error:  # a failed llama_decode
            raise EngineError(f"Reading the prompt failed: {error}",
                              kind=EngineError.GENERATION_FAILED) from error
        on_progress(end - cached, end - cached)
        return True

    def _checked_ids(self, ids: list[int]) -> list[int]:
        """Token ids as given, once each is known to the vocabulary (others reach llama.cpp's asserts)."""
        n_vocab = self._require().n_vocab()
        for token in ids:
            if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < n_vocab:
                raise EngineError(f"Token id {token!r} is not in this model's vocabulary (0 to "
                                  f"{n_vocab - 1:,}).", kind=EngineError.BAD_REQUEST)
        return list(ids)

    def _require(self) -> llama_adapter.Llama:
        if self._llm is None:
            raise EngineError("No model is loaded.", kind=EngineError.NOT_LOADED)
        return self._llm

    def _set_up_chat_format(self, llm: llama_adapter.Llama) -> None:
        self._special = llama_adapter.special_tokens(llm)
        template = llm.metadata.get("tokenizer.chat_template")
        self._stops = () if template else FALLBACK_STOPS
        self._template = ChatTemplate(template or FALLBACK_TEMPLATE, bos_token=self._special.bos_text,
                                      eos_token=self._special.eos_text)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
