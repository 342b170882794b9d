"""Everything that depends on llama-cpp-python's internals, so that an upgrade touches this file only.

llama-cpp-python's `Llama` class covers loading and sampling, but the engine also needs what it
keeps private: the evaluated tokens and where the next batch goes (`input_ids`, `n_tokens`), the
low-level model and context (`_model`, `_ctx`) for the vocabulary and the KV state, the sampler's
penalty window, llama.cpp's log, and ggml's device registry (`_ggml`). Each use is one small
function here, checked against llama-cpp-python 0.3.x.
"""

from __future__ import annotations

import ctypes
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import llama_cpp
import numpy as np
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar, json_schema_to_gbnf

from app.core.inference.types import LoadOptions

log = logging.getLogger(__name__)

Llama = llama_cpp.Llama

# llama.cpp's ggml type for each KV cache type a user may choose (memory.KV_BYTES_PER_VALUE).
_GGML_TYPE_BF16 = 30  # ggml.h; llama_cpp exports no name for it
_KV_TYPES = {"f32": llama_cpp.GGML_TYPE_F32, "f16": llama_cpp.GGML_TYPE_F16, "bf16": _GGML_TYPE_BF16,
             "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q5_1": llama_cpp.GGML_TYPE_Q5_1,
             "q5_0": llama_cpp.GGML_TYPE_Q5_0, "q4_1": llama_cpp.GGML_TYPE_Q4_1,
             "q4_0": llama_cpp.GGML_TYPE_Q4_0, "iq4_nl": llama_cpp.GGML_TYPE_IQ4_NL}


# -- the library ----------------------------------------------------------------------------------

def version() -> str:
    return llama_cpp.__version__


def system_info() -> str:
    """llama.cpp's build and CPU features, as llama_print_system_info gives them."""
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def supports_gpu_offload() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def ggml_devices() -> list[tuple[str, str, int]]:
    """(name, description, ggml device type) of each compute device; [] when they cannot be listed.

    llama-cpp-python binds llama.h but not ggml's device registry, so the few ggml-backend
    functions needed are declared here over the library it already loaded.
    """
    try:
        from llama_cpp._ggml import libggml as lib

        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description):
            fn.restype = ctypes.c_char_p
            fn.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    except (ImportError, OSError, AttributeError):
        return []
    found = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        found.append(((lib.ggml_backend_dev_name(dev) or b"?").decode(),
                      (lib.ggml_backend_dev_description(dev) or b"").decode(),
                      lib.ggml_backend_dev_type(dev)))
    return found


class LlamaLog:
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


_llama_log: LlamaLog | None = None


def captured_log() -> LlamaLog:
    """The one LlamaLog of this process (llama.cpp has one log callback)."""
    global _llama_log
    if _llama_log is None:
        _llama_log = LlamaLog()
    return _llama_log


# -- a loaded model -------------------------------------------------------------------------------

def open_model(path: str, n_ctx: int, options: LoadOptions, n_threads: int) -> Llama:
    """A Llama for `path`; ValueError, RuntimeError or OSError when llama.cpp refuses it."""
    kv_type = _KV_TYPES[options.kv_cache_type]
    return llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_gpu_layers=options.n_gpu_layers,
                           n_threads=n_threads, n_threads_batch=n_threads, n_batch=options.n_batch,
                           flash_attn=options.flash_attn, use_mmap=options.use_mmap,
                           use_mlock=options.use_mlock, type_k=kv_type, type_v=kv_type, verbose=False)


def open_embedder(path: str, n_ctx: int, options: LoadOptions, n_threads: int) -> Llama:
    """A second Llama on the same file for embeddings: mean-pooled, one sequence per decode.

    Always memory-mapped, so the weights are shared with the loaded model instead of read twice.
    """
    return llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                           n_gpu_layers=options.n_gpu_layers, n_threads=n_threads, n_threads_batch=n_threads,
                           embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, use_mmap=True,
                           verbose=False)


def embed_tokens(llm: Llama, tokens: list[int]) -> list[float]:
    """The mean-pooled, L2-normalised embedding of one token sequence (at most llm.n_ctx() tokens).

    Llama.embed takes text only; this is its batch/decode loop for token ids. RuntimeError when
    llama_decode fails."""
    ctx, batch = llm._ctx, llm._batch
    ctx.kv_cache_clear()
    batch.reset()
    batch.add_sequence(tokens, 0, True)
    try:
        ctx.decode(batch)
        pointer = llama_cpp.llama_get_embeddings_seq(ctx.ctx, 0)
        if not pointer:
            raise RuntimeError("llama.cpp returned no embedding for the sequence")
        vector = np.ctypeslib.as_array(pointer, shape=(llm.n_embd(),)).astype(np.float64)
    finally:
        batch.reset()
        ctx.kv_cache_clear()
    norm = float(np.linalg.norm(vector))
    return (vector / norm if norm > 0 else vector).tolist()


@dataclass(frozen=True)
class SpecialTokens:
    bos_text: str  # "" when the model has no BOS token
    eos_text: str
    add_bos: bool  # the vocabulary asks for a BOS token before the prompt


def special_tokens(llm: Llama) -> SpecialTokens:
    model = llm._model
    eos, bos = llm.token_eos(), llm.token_bos()
    return SpecialTokens(bos_text=model.token_get_text(bos) if bos != -1 else "",
                         eos_text=model.token_get_text(eos) if eos != -1 else "",
                         add_bos=bool(llama_cpp.llama_vocab_get_add_bos(model.vocab)))


def token_reader(llm: Llama) -> tuple[Callable[[int], bool], Callable[[int], bytes]]:
    """(ends_generation(token), piece(token) -> its bytes) for decoding an answer token by token."""
    model = llm._model
    vocab, is_eog = model.vocab, llama_cpp.llama_vocab_is_eog
    return (lambda token: bool(is_eog(vocab, token))), (lambda token: model.detokenize([token]))


# -- grammars (constrained output) ----------------------------------------------------------------

JSON_OBJECT_GBNF = JSON_GBNF  # llama.cpp's grammars/json.gbnf: any JSON object


def json_schema_gbnf(schema: str) -> str:
    """llama.cpp's JSON-schema-to-GBNF converter (llama-cpp-python's copy). Raises on a schema it
    cannot express (ValueError, KeyError, TypeError... the converter's own)."""
    return json_schema_to_gbnf(schema)


def grammar(llm: Llama, gbnf: str) -> LlamaGrammar | None:
    """A grammar for Llama.generate; None when llama.cpp cannot parse it (passing such a grammar
    to generate would add a null sampler to the chain)."""
    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, gbnf.encode("utf-8"), b"root")
    if not sampler:
        return None
    llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(gbnf)


def set_penalty_window(llm: Llama, n: int) -> None:
    """The tokens the repeat penalties look back over. It is no argument of generate: the sampler
    reads this attribute at every call."""
    llm.last_n_tokens_size = n


def evaluated_tokens(llm: Llama) -> list[int]:
    """The tokens whose KV cache the context holds, in order."""
    return llm.input_ids[: llm.n_tokens].tolist()


def evaluated_count(llm: Llama) -> int:
    return llm.n_tokens


def keep_first(llm: Llama, n: int) -> None:
    """Keep the first `n` evaluated tokens: the next `eval` appends after them and drops the KV
    cache beyond."""
    llm.n_tokens = n


# -- the KV state ---------------------------------------------------------------------------------

def read_state(llm: Llama) -> bytes:
    """llama.cpp's context state (the KV cache of the evaluated tokens) as bytes."""
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_get_size(ctx)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_get_data(ctx, buffer, size)
    return bytes(buffer)[:written]


def write_state(llm: Llama, tokens: list[int], state: bytes) -> bool:
    """Put a state read by read_state back, with the tokens it holds; generate then reuses them as
    a prefix. False (and the context reset) when llama.cpp refuses it."""
    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if llama_cpp.llama_state_set_data(llm._ctx.ctx, buffer, len(state)) != len(state):
        llm.reset()
        return False
    llm.input_ids[: len(tokens)] = np.asarray(tokens, dtype=np.intc)
    llm.n_tokens = len(tokens)
    llm._requires_eval = True  # the logits are not restored: generate re-evaluates one token
    return True


# -- token by token, with drafted batches ---------------------------------------------------------

Sampler = llama_cpp._internals.LlamaSampler


def new_sampler(llm: Llama, **params) -> Sampler:
    """The sampler chain Llama.generate would build from the same keyword arguments (temp, top_k,
    top_p, min_p, typical_p, penalties, mirostat, grammar); it keeps its own penalty and grammar
    state, so each token it samples must be one the answer keeps."""
    return llm._init_sampler(**params)


def greedy_sampler() -> Sampler:
    sampler = Sampler()
    sampler.add_greedy()
    return sampler


def sample(llm: Llama, sampler: Sampler, row: int = -1) -> int:
    """A token from the logits of the last decoded batch's `row` (its position in the batch; -1: the
    last), which the sampler then counts as chosen."""
    return sampler.sample(llm._ctx, row)


def decode(llm: Llama, tokens: list[int], every_row: bool) -> None:
    """Evaluate `tokens` (at most n_batch) after the evaluated ones, in one llama_decode; with
    `every_row` llama.cpp keeps the logits of each position, else of the last only.
    RuntimeError when llama_decode fails."""
    n_past = llm.n_tokens
    llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
    llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=every_row)
    llm._ctx.decode(llm._batch)
    llm.input_ids[n_past:n_past + len(tokens)] = tokens
    llm.n_tokens = n_past + len(tokens)


def rewind(llm: Llama, n: int) -> bool:
    """Forget the evaluated tokens after the first `n` (their KV cache too); False when this model's
    cache cannot be cut (recurrent models), and nothing changed."""
    if n >= llm.n_tokens:
        return True
    if not llm._ctx.kv_cache_seq_rm(-1, n, -1):
        return False
    llm.n_tokens = n
    return True


def keep_common_prefix(llm: Llama, tokens) -> None:
    """Keep the evaluated tokens that `tokens` start with, all but their last (whose logits the next
    decode must give); forget the rest, or everything where the cache cannot be cut."""
    keep = 0
    for a, b in zip(evaluated_tokens(llm), tokens[:-1], strict=False):
        if a != b:
            break
        keep += 1
    if not rewind(llm, keep):
        llm.reset()


def can_rewind(llm: Llama) -> bool:
    """Whether drafted tokens can be taken back: not in recurrent or hybrid models, whose state holds
    every token read so far."""
    model = llm._model.model
    return not (llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model))
