"""Plain data exchanged with the engine, importable without loading llama.cpp.

The window imports these at start; llama.cpp (and numpy) load only with the first model.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.common.errors import UserFacingError


class EngineError(UserFacingError):
    """A failure of the engine: loading, reading the prompt or writing the answer."""

    MISSING = "missing"
    NOT_GGUF = "not_gguf"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    UNSUPPORTED_ARCHITECTURE = "unsupported_architecture"
    DOES_NOT_FIT = "does_not_fit"
    CONTEXT_TOO_SMALL = "context_too_small"
    NOT_LOADED = "not_loaded"
    LOAD_FAILED = "load_failed"
    GENERATION_FAILED = "generation_failed"
    CRASHED = "crashed"  # the engine's process ended unexpectedly (EngineCrashed)
    BAD_REQUEST = "bad_request"  # cannot be served as asked: a schema the grammar cannot express, an
    #                             embedding input longer than its context, a token id not in the vocabulary
    DEFAULT_KIND = GENERATION_FAILED


# The KV cache key of API requests: their prompts share one slot that is never snapshotted, so an
# API request costs no conversation its cache and no API prompt is written to disk.
API_CACHE_KEY = "api"


@dataclass(frozen=True)
class OutputFormat:
    """The shape an answer must have, enforced while sampling by llama.cpp's grammar."""

    kind: str = "text"  # "text" | "json_object" (any JSON object) | "json_schema"
    schema: str = ""  # kind "json_schema": the JSON schema, as JSON text


@dataclass(frozen=True)
class Embeddings:
    vectors: list[list[float]]  # one per input, in order: mean-pooled, L2-normalised
    tokens: int  # input tokens read, all inputs together


DRAFTING_MODES = ("auto", "on", "off")
MAX_DRAFT_TOKENS = 16  # the most tokens one drafted batch guesses (the logits rows it needs: this + 1)


@dataclass(frozen=True)
class LoadOptions:
    n_ctx: int = 4096  # 0: the length the model was trained for
    n_gpu_layers: int = 0  # -1: all (the output layer too), 0: CPU only, N: the last N layers
    n_threads: int | None = None  # None: one per physical core
    n_batch: int = 512
    flash_attn: bool = False
    use_mmap: bool = True
    use_mlock: bool = False
    kv_cache_type: str = "f16"  # a key of app.core.models.memory.KV_BYTES_PER_VALUE
    # Speculative decoding (drafting): "auto" drafts where it pays and pauses (for longer each time)
    # where it does not; "on" always drafts; "off" never does.
    drafting: str = "auto"  # one of DRAFTING_MODES
    draft_model: str = ""  # a small GGUF sharing the model's vocabulary that drafts; "": prompt lookup


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    architecture: str
    n_ctx: int
    n_layers: int
    gpu_layers: int  # layers actually offloaded (the output layer counts as one)
    backend: str
    chat_template: str  # "model" or "fallback (ChatML)"
    llama_cpp_version: str
    system_info: str = ""  # llama.cpp's build and CPU features (llama_print_system_info)
    gpu_note: str = ""  # why fewer layers than asked are on the GPU (none, fell back to the CPU), or ""
    # A remote engine's model (path and name are then its model id on the server):
    connection: str = ""  # the connection's name ("" = the local engine)
    host: str = ""  # the server's host[:port]
    sampling_fields: frozenset[str] | None = None  # SamplingParams fields it honours (None: every one)
    exact_count: bool = True  # count() asks the model's own tokenizer (False: an estimate, shown "≈")
    # What drafts tokens for speculative decoding: "prompt lookup", "draft model <file name>", or ""
    # (off); and why it is off or not as asked ("" when it is as the settings ask).
    drafting: str = ""
    drafting_note: str = ""

    @property
    def remote(self) -> bool:
        return bool(self.connection)

    @property
    def label(self) -> str:
        """How people know it: the file's name, or "model-id · connection" for a remote model."""
        if self.remote:
            return f"{self.name} · {self.connection}"
        return self.name


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float  # from the request to the first token sampled
    tokens_per_s: float  # decode speed after the first token
    total_s: float
    stop_reason: str  # "eos", "length", "context_full" or "user"
    seed: int = 0  # the seed the sampler used
    cached_tokens: int = 0  # prompt tokens found in the KV cache, not processed again
    # What a remote server reported about the answer ("" / 0 for the local engine):
    server_model: str = ""
    system_fingerprint: str = ""
    server_tokens_per_s: float = 0.0  # its own decode speed (llama-server's timings)
    # Speculative decoding in this answer (the local engine): what drafted ("" when nothing did),
    # the tokens guessed, how many of them the model accepted as its own choice, and whether
    # "auto" paused drafting (at least once) because too few were accepted.
    drafting: str = ""
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    drafting_turned_off: bool = False


ChatMessages = list[dict[str, str]]  # [{"role": ..., "content": ...}, ...]: what a model is asked


@dataclass(frozen=True)
class BuildInfo:
    """What this llama.cpp build can run on (asked of the engine's process: the window's process
    never loads llama.cpp)."""

    backend: str  # the device answers run on: "CUDA", "Metal", "Vulkan" or "CPU"
    gpu_offload: bool
    llama_cpp_version: str  # llama-cpp-python's

    @property
    def description(self) -> str:
        gpu = "GPU offload available" if self.gpu_offload else "no GPU offload in this build"
        return f"llama.cpp backends: {self.backend} ({gpu})"
