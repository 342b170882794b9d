"""Why a model cannot be loaded, found before llama.cpp tries where possible, and said in words.

The header and the memory estimate are checked first: a damaged file or one that cannot fit is
refused up front instead of letting llama.cpp abort or the OS kill the process mid-load. What
llama.cpp itself refuses is explained from its log.
"""

from __future__ import annotations

from pathlib import Path

from app.core.common.system import available_ram_bytes
from app.core.inference.local.llama_adapter import LlamaLog, version
from app.core.inference.types import EngineError, LoadOptions
from app.core.models import memory
from app.core.models.gguf_info import GGUFError, GGUFHeader, read_model


def checked_header(path: Path) -> GGUFHeader:
    """The model's header (part 1's, for a split model), or EngineError saying what is wrong."""
    try:
        return read_model(path)
    except GGUFError as error:
        raise EngineError(error.message, kind=error.kind) from error
    except OSError as error:
        raise EngineError(f"Cannot read {path}: {error.strerror}.", kind=EngineError.MISSING) from error


def check_fits(header: GGUFHeader, n_ctx: int, options: LoadOptions) -> None:
    """Refuse up front what cannot fit in RAM.

    Only the RAM share is checked here (free VRAM is not known for every backend); a GPU
    allocation failure is translated from llama.cpp's log instead (explain_load_failure).
    """
    available = available_ram_bytes()
    if available is None:
        return
    need = memory.estimate(header, n_ctx, options.n_gpu_layers, options.kv_cache_type).ram_bytes
    if need > available:
        gib = 1024**3
        raise EngineError(f"{header.path.name} needs about {need / gib:.1f} GiB of memory with a context "
                          f"of {n_ctx:,} tokens, but only {available / gib:.1f} GiB is free. Choose a "
                          "smaller model or quantisation, or a shorter context.",
                          kind=EngineError.DOES_NOT_FIT)


def explain_load_failure(header: GGUFHeader, llama_log: LlamaLog, error: Exception) -> EngineError:
    """The EngineError for a load llama.cpp refused, from what it logged meanwhile."""
    lowered = llama_log.text().lower()
    if "unknown model architecture" in lowered:
        return EngineError(f"{header.path.name} uses the architecture '{header.architecture}', which this "
                           f"version of llama.cpp (llama-cpp-python {version()}) cannot run.",
                           kind=EngineError.UNSUPPORTED_ARCHITECTURE)
    if any(s in lowered for s in ("failed to allocate", "out of memory", "unable to allocate")):
        return EngineError(f"{header.path.name} does not fit in memory with these settings. Offload fewer "
                           "layers to the GPU, choose a shorter context or a smaller model.",
                           kind=EngineError.DOES_NOT_FIT)
    reason = llama_log.last_error() or str(error)
    return EngineError(f"llama.cpp could not load {header.path.name}: {reason}",
                       kind=EngineError.CORRUPT if "tensor" in reason.lower() else EngineError.LOAD_FAILED)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"
