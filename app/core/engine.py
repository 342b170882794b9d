"""The one owner of a llama.cpp model: load, stream an answer, stop, unload.

Not thread-safe by design (llama.cpp contexts are not): exactly one thread, the inference
worker's, calls into an Engine. Only `should_stop`, a plain callable, crosses threads.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from time import perf_counter

import llama_cpp

from app.core import backends, memory
from app.core.chat_template import ChatTemplate, TemplateError
from app.core.engine_types import (  # noqa: F401 - re-exported: the engine's vocabulary
    EngineError,
    GenerationStats,
    LoadOptions,
    Message,
    ModelInfo,
)
from app.core.gguf_info import GGUFError, GGUFHeader, read_model, split_name
from app.core.kv_cache import KVCacheStore, Snapshot, restore_snapshot, take_snapshot
from app.core.sampling import SamplingParams
from app.core.system import available_ram_bytes, default_threads

log = logging.getLogger(__name__)

# Used when a model carries no chat template: ChatML, which most instruction-tuned
# models understand; its markers are also stop strings, so a base model stops cleanly.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
FALLBACK_STOPS = ("<|im_end|>", "<|im_start|>")
# llama.cpp's ggml type for each KV cache type a user may choose (memory.KV_BYTES_PER_VALUE).
_GGML_TYPE_BF16 = 30  # ggml.h; llama_cpp exports no name for it
_KV_TYPES = {"f32": llama_cpp.GGML_TYPE_F32, "f16": llama_cpp.GGML_TYPE_F16, "bf16": _GGML_TYPE_BF16,
             "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q5_1": llama_cpp.GGML_TYPE_Q5_1,
             "q5_0": llama_cpp.GGML_TYPE_Q5_0, "q4_1": llama_cpp.GGML_TYPE_Q4_1,
             "q4_0": llama_cpp.GGML_TYPE_Q4_0, "iq4_nl": llama_cpp.GGML_TYPE_IQ4_NL}
_KV_MEMORY_BUDGET = 1024**3  # recent conversations' KV caches kept in RAM besides the disk copy


class _LlamaLog:
    """Keeps llama.cpp's recent log lines: they hold the real reason a load fails."""

    WARN, ERROR, CONT = 3, 4, 5  # enum ggml_log_level (ggml.h)

    def __init__(self) -> None:
        self.lines: deque[tuple[int, str]] = deque(maxlen=200)
        self._callback = llama_cpp.llama_log_callback(self._on_log)  # referenced: not GC'd
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _on_log(self, level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", errors="replace")
        if level == self.CONT and self.lines:
            last_level, last = self.lines[-1]
            self.lines[-1] = (last_level, last + line)
        else:
            self.lines.append((level, line))
        if level in (self.WARN, self.ERROR):
            log.debug("llama.cpp: %s", line.strip())

    def clear(self) -> None:
        self.lines.clear()

    def text(self) -> str:
        return "\n".join(line.strip() for _, line in self.lines)

    def last_error(self) -> str:
        """The most specific error: llama.cpp's "error loading model: <why>", else the last one."""
        errors = [line.strip() for level, line in self.lines if level == self.ERROR]
        for line in errors:
            if "error loading model:" in line:
                return line.split("error loading model:", 1)[1].strip()
        return errors[-1] if errors else ""


_llama_log: _LlamaLog | None = None


def _capture_llama_log() -> _LlamaLog:
    global _llama_log
    if _llama_log is None:
        _llama_log = _LlamaLog()
    return _llama_log


class Engine:
    def __init__(self, kv_store: KVCacheStore | None = None) -> None:
        """kv_store: where each conversation's KV cache is kept between switches and restarts."""
        self._kv_store = kv_store
        self._kv_owner: str | None = None  # the conversation whose tokens the KV cache holds
        self._kv_dirty = False  # it changed since it was saved or restored
        self._kv_memory: OrderedDict[str, Snapshot] = OrderedDict()  # recent snapshots, newest last
        self._kv_unsaved: set[str] = set()  # snapshots in memory not yet on disk
        self._fingerprint = ""
        self._llm: llama_cpp.Llama | None = None
        self._template: ChatTemplate | None = None
        self._stops: tuple[str, ...] = ()
        self._add_bos = False
        self._bos_text = ""
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
        header = self._check_header(Path(path))
        self.unload()
        path = header.path  # part 1 of a split model
        n_ctx = options.n_ctx or int(header.context_length or 4096)
        offload = backends.gpu_offload_supported()
        note = ""
        if options.n_gpu_layers != 0 and not offload:
            note = f"This llama.cpp build has no GPU backend ({backends.backend_name()}): every layer " \
                   "runs on the CPU. See README to build with CUDA, Metal or Vulkan."
            options = replace(options, n_gpu_layers=0)
        self._check_fits(header, n_ctx, options)
        try:
            llm = self._create(path, n_ctx, options, header)
        except EngineError as error:
            if options.n_gpu_layers == 0 or error.kind == EngineError.UNSUPPORTED_ARCHITECTURE:
                raise
            log.warning("loading with %d GPU layers failed (%s); retrying on the CPU",
                        options.n_gpu_layers, error.message)
            note = f"Loaded on the CPU: offloading to the GPU failed ({_first_line(error.message)})."
            options = replace(options, n_gpu_layers=0)
            self._check_fits(header, n_ctx, options)
            llm = self._create(path, n_ctx, options, header)
        try:
            self._set_up_chat_format(llm)
        except TemplateError as error:
            llm.close()
            raise EngineError(EngineError.LOAD_FAILED, f"{path.name}: {error.message}") from error
        self._llm = llm
        stat = path.stat()
        self._fingerprint = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime}|{llm.n_ctx()}|" \
                            f"{llama_cpp.__version__}"
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
            llama_cpp_version=llama_cpp.__version__,
            system_info=llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
            gpu_note=note,
        )
        return self.info

    def _create(self, path: Path, n_ctx: int, options: LoadOptions, header: GGUFHeader) -> llama_cpp.Llama:
        log_ = _capture_llama_log()
        log_.clear()
        kv_type = _KV_TYPES[options.kv_cache_type]
        try:
            return llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_gpu_layers=options.n_gpu_layers,
                n_threads=options.n_threads or default_threads(),
                n_threads_batch=options.n_threads or default_threads(),
                n_batch=options.n_batch,
                flash_attn=options.flash_attn,
                use_mmap=options.use_mmap,
                use_mlock=options.use_mlock,
                type_k=kv_type,
                type_v=kv_type,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise self._explain_load_failure(header, log_, error) from error

    def unload(self) -> None:
        if self._llm is not None:
            self._snapshot_owner()
            self.save_kv()
            self._llm.close()
        self._kv_owner = None
        self._kv_memory.clear()
        self._llm = None
        self._template = None
        self.info = None

    def tokenize_chat(self, messages: Sequence[Message], continue_text: str = "",
                      should_stop: Callable[[], bool] = lambda: False) -> list[int]:
        """The prompt tokens for a conversation, ending where the assistant's answer starts.

        continue_text: the beginning of that answer, already written; the model carries it on.
        Raises TemplateError when the model's chat template fails, runs too long or is stopped.
        """
        llm = self._require()
        assert self._template is not None
        prompt = self._template.render(messages, should_stop) + continue_text
        if not prompt:
            raise TemplateError("The model's chat template produced no text for this conversation, so "
                                "there is nothing for the model to read. The template in this model "
                                "file is broken: use another file of this model.")
        add_bos = self._add_bos and not (self._bos_text and prompt.startswith(self._bos_text))
        return llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    def stream(
        self,
        messages: Sequence[Message],
        sampling: SamplingParams = SamplingParams(),
        should_stop: Callable[[], bool] = lambda: False,
        cache_key: str | None = None,
        continue_text: str = "",
        on_prompt_progress: Callable[[int, int], None] = lambda done, total: None,
    ) -> Iterator[str | GenerationStats]:
        """Yield the answer as text deltas, then one GenerationStats.

        `should_stop` is checked after every token, so a stop takes effect within one token,
        and between batches of a long prompt (`on_prompt_progress(done, total)` reports those).
        The KV cache keeps the evaluated tokens: the next turn re-uses the shared prefix. With a
        `cache_key` (the conversation's id), another conversation's cache is saved first and this
        one's restored, so switching between long chats does not re-read them.
        """
        llm = self._require()
        started = perf_counter()
        self._switch_kv(cache_key)
        prompt = self.tokenize_chat(messages, continue_text, should_stop)
        cached = _common_prefix(llm.input_ids[: llm.n_tokens], prompt)
        room = llm.n_ctx() - len(prompt)
        if room <= 0:
            raise EngineError(
                EngineError.CONTEXT_TOO_SMALL,
                f"The conversation is {len(prompt):,} tokens long, but the model was loaded with "
                f"a context of {llm.n_ctx():,} tokens. Start a new conversation, shorten the "
                "message, or load the model with a longer context.",
            )
        max_tokens = min(sampling.max_tokens, room)
        if not self._read_prompt(llm, prompt, cached, should_stop, on_prompt_progress):
            yield GenerationStats(len(prompt), 0, 0.0, 0.0, perf_counter() - started, "user",
                                  cached_tokens=cached)
            return
        seed = sampling.seed if sampling.seed is not None else random.randrange(2**31)
        llm.set_seed(seed)
        # The penalties' window is no argument of generate: _init_sampler reads this attribute at
        # every call. llama.cpp itself treats -1 as 0 (off); "-1 = the whole context" is its CLI's.
        llm.last_n_tokens_size = llm.n_ctx() if sampling.repeat_last_n < 0 else sampling.repeat_last_n
        tokens = llm.generate(
            prompt,
            temp=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            min_p=sampling.min_p,
            typical_p=sampling.typical_p,
            repeat_penalty=sampling.repeat_penalty,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            mirostat_mode=sampling.mirostat,
            mirostat_tau=sampling.mirostat_tau,
            mirostat_eta=sampling.mirostat_eta,
        )
        self._kv_dirty = True
        vocab = llm._model.vocab
        is_eog = llama_cpp.llama_vocab_is_eog
        piece = llm._model.detokenize
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = _StopMatcher((*self._stops, *sampling.stop))  # the template's and the user's
        count, first, last = 0, 0.0, 0.0
        reason = "length" if max_tokens == sampling.max_tokens else "context_full"
        try:
            for token in tokens:
                last = perf_counter()
                if count == 0:
                    first = last
                if is_eog(vocab, token):
                    reason = "eos"
                    break
                count += 1
                text, hit = stops.feed(decoder.decode(piece([token])))
                if text:
                    yield text
                if hit:
                    reason = "eos"
                    break
                if count >= max_tokens:
                    break
                if should_stop():
                    reason = "user"
                    break
        except (RuntimeError, ValueError) as error:  # a failed llama_decode
            raise EngineError(EngineError.GENERATION_FAILED, f"Generation failed: {error}") from error
        finally:
            tokens.close()
        text, _ = stops.feed(decoder.decode(b"", final=True), final=True)
        if text:
            yield text
        decode_s = last - first
        yield GenerationStats(
            prompt_tokens=len(prompt),
            completion_tokens=count,
            ttft_s=(first or perf_counter()) - started,
            tokens_per_s=(count - 1) / decode_s if count > 1 and decode_s > 0 else 0.0,
            total_s=perf_counter() - started,
            stop_reason=reason,
            seed=seed,
            cached_tokens=cached,
        )

    # -- helpers -------------------------------------------------------------------------

    def _read_prompt(self, llm: llama_cpp.Llama, prompt: list[int], cached: int,
                     should_stop: Callable[[], bool], on_progress: Callable[[int, int], None]) -> bool:
        """Evaluate a long prompt's new tokens batch by batch, all but the last (generate reads
        that one and reuses the rest as its cached prefix). False when stopped between batches."""
        end = len(prompt) - 1
        if end - cached <= llm.n_batch:
            return True
        self._kv_dirty = True
        llm.n_tokens = cached  # eval appends after n_tokens and drops the KV cache beyond it
        try:
            for start in range(cached, end, llm.n_batch):
                on_progress(start - cached, end - cached)
                if should_stop():
                    return False
                llm.eval(prompt[start:min(end, start + llm.n_batch)])
        except (RuntimeError, ValueError) as error:  # a failed llama_decode
            raise EngineError(EngineError.GENERATION_FAILED, f"Reading the prompt failed: {error}") from error
        on_progress(end - cached, end - cached)
        return True

    def save_kv(self) -> None:
        """Write the snapshots taken at conversation switches to disk (when the engine is idle)."""
        if self._kv_store is None:
            return
        for key in list(self._kv_unsaved):
            snapshot = self._kv_memory.get(key)
            if snapshot is not None:
                self._kv_store.save(key, snapshot)
        self._kv_unsaved.clear()

    def keep_kv(self, keys: set[str]) -> None:
        """Forget every conversation's KV cache but these (in memory and on disk): a deleted
        chat's text must not outlive it in a snapshot, nor be saved again later."""
        for key in [k for k in self._kv_memory if k not in keys]:
            del self._kv_memory[key]
            self._kv_unsaved.discard(key)
        if self._kv_owner is not None and self._kv_owner not in keys:
            self._kv_owner, self._kv_dirty = None, False
        if self._kv_store is not None:
            self._kv_store.prune(keys)

    def _switch_kv(self, cache_key: str | None) -> None:
        """Keep the current conversation's KV cache and bring back `cache_key`'s, if known."""
        if cache_key == self._kv_owner or self._kv_store is None:
            return
        self._snapshot_owner()
        self._kv_owner = cache_key
        if cache_key is None:
            return
        snapshot = self._kv_memory.get(cache_key) or self._kv_store.load(cache_key, self._fingerprint)
        fits = snapshot is not None and snapshot.fingerprint == self._fingerprint
        if fits and restore_snapshot(self._require(), snapshot):
            log.info("restored %d cached tokens for %s", len(snapshot.tokens), cache_key)

    def _snapshot_owner(self) -> None:
        """A copy of the KV cache in memory (fast); save_kv writes it to disk later."""
        llm = self._llm
        if self._kv_owner and self._kv_dirty and llm is not None and llm.n_tokens:
            self._kv_memory[self._kv_owner] = take_snapshot(llm, self._fingerprint)
            self._kv_memory.move_to_end(self._kv_owner)
            self._kv_unsaved.add(self._kv_owner)
            while sum(len(s.state) for s in self._kv_memory.values()) > _KV_MEMORY_BUDGET:
                oldest, snapshot = self._kv_memory.popitem(last=False)
                if oldest in self._kv_unsaved and self._kv_store is not None:
                    self._kv_store.save(oldest, snapshot)
                    self._kv_unsaved.discard(oldest)
        self._kv_dirty = False

    def _require(self) -> llama_cpp.Llama:
        if self._llm is None:
            raise EngineError(EngineError.NOT_LOADED, "No model is loaded.")
        return self._llm

    def _set_up_chat_format(self, llm: llama_cpp.Llama) -> None:
        model = llm._model
        eos, bos = llm.token_eos(), llm.token_bos()
        eos_text = model.token_get_text(eos) if eos != -1 else ""
        self._bos_text = model.token_get_text(bos) if bos != -1 else ""
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(model.vocab))
        template = llm.metadata.get("tokenizer.chat_template")
        self._stops = () if template else FALLBACK_STOPS
        self._template = ChatTemplate(template or FALLBACK_TEMPLATE, bos_token=self._bos_text,
                                      eos_token=eos_text)

    @staticmethod
    def _check_header(path: Path) -> GGUFHeader:
        try:
            return read_model(path)
        except GGUFError as error:
            raise EngineError(error.kind, error.message) from error
        except OSError as error:
            raise EngineError(EngineError.MISSING, f"Cannot read {path}: {error.strerror}.") from error

    @staticmethod
    def _check_fits(header: GGUFHeader, n_ctx: int, options: LoadOptions) -> None:
        """Refuse up front what cannot fit in RAM, instead of letting the OS kill us mid-load.

        Only the RAM share is checked here (free VRAM is not known for every backend); a GPU
        allocation failure is translated from llama.cpp's log instead (_explain_load_failure).
        """
        available = available_ram_bytes()
        if available is None:
            return
        need = memory.estimate(header, n_ctx, options.n_gpu_layers, options.kv_cache_type).ram_bytes
        if need > available:
            gib = 1024**3
            raise EngineError(
                EngineError.DOES_NOT_FIT,
                f"{header.path.name} needs about {need / gib:.1f} GiB of memory with a context of "
                f"{n_ctx:,} tokens, but only {available / gib:.1f} GiB is free. Choose a smaller "
                "model or quantisation, or a shorter context.",
            )

    @staticmethod
    def _explain_load_failure(header: GGUFHeader, llama_log: _LlamaLog, error: Exception) -> EngineError:
        lowered = llama_log.text().lower()
        if "unknown model architecture" in lowered:
            return EngineError(
                EngineError.UNSUPPORTED_ARCHITECTURE,
                f"{header.path.name} uses the architecture '{header.architecture}', which this version "
                f"of llama.cpp (llama-cpp-python {llama_cpp.__version__}) cannot run.",
            )
        if any(s in lowered for s in ("failed to allocate", "out of memory", "unable to allocate")):
            return EngineError(
                EngineError.DOES_NOT_FIT,
                f"{header.path.name} does not fit in memory with these settings. Offload fewer layers "
                "to the GPU, choose a shorter context or a smaller model.",
            )
        reason = llama_log.last_error() or str(error)
        return EngineError(
            EngineError.CORRUPT if "tensor" in reason.lower() else EngineError.LOAD_FAILED,
            f"llama.cpp could not load {header.path.name}: {reason}",
        )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class _StopMatcher:
    """Cuts the stream at the first stop string, holding back text that may begin one."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str, final: bool = False) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self.pending += text
        for stop in self.stops:
            at = self.pending.find(stop)
            if at != -1:
                out, self.pending = self.pending[:at], ""
                return out, True
        if final:
            out, self.pending = self.pending, ""
            return out, False
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(out):]
        return out, False
