"""How much RAM and GPU memory a model needs with given load settings, from its header alone.

The estimate follows how llama.cpp places a model:

- Weights. `n_gpu_layers = N` offloads the *last* N repeating layers (blk.*); a value above
  the layer count (or -1, "all") also offloads the output layer (output.weight, output_norm).
  The input layer (token_embd) always stays in RAM. A model without output.weight reuses
  token_embd as its output layer ("tied"): offloaded, that copy counts in VRAM too.
  Tensors are counted at their real size per layer, so layers of different size split right.
- KV cache. One K and one V value per KV head dimension per token per layer (GQA: the
  header's head_count_kv), at the cache type's size; each layer's cache lives where the layer
  runs.
- Compute buffers: COMPUTE_FIXED_BYTES in RAM (runtime, host buffers, logits), plus
  COMPUTE_PER_TOKEN_BYTES per context token for the scratch buffers, on the GPU when any layer
  is offloaded, else in RAM. Together they make 256 MiB at a 4096-token context, the
  allowance the engine has always made. Generous on purpose: llama.cpp 0.3.36 reports CPU
  compute buffers of 99 MiB at 4096 tokens and 166 MiB at 8192 for the embedded SmolLM2
  (about 32 MiB + 17 KiB a token); models with more heads or a larger vocabulary need more.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from app.core.models.gguf_info import GGUFHeader

MiB = 1024**2
COMPUTE_FIXED_BYTES = 128 * MiB
COMPUTE_PER_TOKEN_BYTES = 32 * 1024

# Bytes per cached value for llama.cpp's KV cache types (quantised ones: block bytes / 32).
KV_BYTES_PER_VALUE = {
    "f32": 4.0, "f16": 2.0, "bf16": 2.0,
    "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32, "q4_1": 20 / 32, "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}
TIGHT_FRACTION = 0.85  # from here up to 100% of what is available: "tight"
FILE_OVERHEAD_BYTES = 256 * MiB  # runtime and a modest context beside a file's weights
FITS, TIGHT, WONT_FIT = "fits", "tight", "won't fit"

_LAYER = re.compile(r"^blk\.(\d+)\.")
_OUTPUT_PREFIXES = ("output.", "output_norm.")


@dataclass(frozen=True)
class MemoryEstimate:
    n_ctx: int
    n_gpu_layers: int  # as asked (-1: all)
    gpu_layers: int  # layers offloaded, the output layer counting as one (as llama.cpp reports)
    kv_type: str
    weights_ram: int
    weights_vram: int
    kv_ram: int
    kv_vram: int
    compute_ram: int
    compute_vram: int

    @property
    def ram_bytes(self) -> int:
        return self.weights_ram + self.kv_ram + self.compute_ram

    @property
    def vram_bytes(self) -> int:
        return self.weights_vram + self.kv_vram + self.compute_vram

    @property
    def kv_bytes(self) -> int:
        return self.kv_ram + self.kv_vram

    def as_dict(self) -> dict[str, int | str]:
        return {**asdict(self), "ram_bytes": self.ram_bytes, "vram_bytes": self.vram_bytes}


def offloaded_layers(n_layers: int, n_gpu_layers: int) -> tuple[range, bool]:
    """The repeating layers llama.cpp puts on the GPU, and whether the output layer goes too."""
    wanted = n_layers + 1 if n_gpu_layers < 0 else n_gpu_layers
    on_gpu = min(wanted, n_layers + 1)
    return range(max(n_layers - on_gpu, 0), n_layers), on_gpu > n_layers


def estimate(header: GGUFHeader, n_ctx: int, n_gpu_layers: int, kv_type: str = "f16") -> MemoryEstimate:
    """Memory for `header`'s model with an n_ctx-token context and n_gpu_layers offloaded."""
    if kv_type not in KV_BYTES_PER_VALUE:
        raise ValueError(f"unknown KV cache type {kv_type!r}; one of {', '.join(KV_BYTES_PER_VALUE)}")
    if n_ctx < 0:
        raise ValueError(f"n_ctx must not be negative, not {n_ctx}")
    n_layers = header.block_count
    gpu_range, output_on_gpu = offloaded_layers(n_layers, n_gpu_layers)

    ram = vram = 0
    token_embd = 0
    tied = not any(t.name == "output.weight" for t in header.tensors)
    for tensor in header.tensors:
        size = tensor.n_bytes or 0
        match = _LAYER.match(tensor.name)
        if match:
            on_gpu = int(match[1]) in gpu_range
        elif tensor.name.startswith(_OUTPUT_PREFIXES):
            on_gpu = output_on_gpu
        else:  # token_embd and other input tensors stay on the CPU
            on_gpu = False
            if tensor.name == "token_embd.weight":
                token_embd = size
        if on_gpu:
            vram += size
        else:
            ram += size
    if tied and output_on_gpu:
        vram += token_embd  # the output layer's copy of the tied embeddings

    bytes_per_value = KV_BYTES_PER_VALUE[kv_type]
    kv_ram = kv_vram = 0
    for layer, values in enumerate(header.kv_values_per_token()):
        size = round(n_ctx * values * bytes_per_value)
        if layer in gpu_range:
            kv_vram += size
        else:
            kv_ram += size

    scratch = n_ctx * COMPUTE_PER_TOKEN_BYTES
    any_gpu = len(gpu_range) > 0 or output_on_gpu
    return MemoryEstimate(
        n_ctx=n_ctx,
        n_gpu_layers=n_gpu_layers,
        gpu_layers=len(gpu_range) + int(output_on_gpu),
        kv_type=kv_type,
        weights_ram=ram,
        weights_vram=vram,
        kv_ram=kv_ram,
        kv_vram=kv_vram,
        compute_ram=COMPUTE_FIXED_BYTES + (0 if any_gpu else scratch),
        compute_vram=scratch if any_gpu else 0,
    )


def _share(need: int, available: int) -> float:
    if available <= 0:
        return float("inf") if need > 0 else 0.0
    return need / available


def file_verdict(file_size: int, available: int | None) -> str:
    """FITS, TIGHT or WONT_FIT from a model file's size alone, before its header is downloaded:
    the weights, ~15 % more, and the runtime with a modest context; "" when availability is unknown."""
    if available is None:
        return ""
    need = file_size * 1.15 + FILE_OVERHEAD_BYTES
    return FITS if need <= available * TIGHT_FRACTION else TIGHT if need <= available else WONT_FIT


def verdict(estimate: MemoryEstimate, available_ram: int | None, available_vram: int | None) -> str:
    """FITS, TIGHT (85-100% of what is available) or WONT_FIT, by the worse of RAM and VRAM.

    An availability of None (the system does not say) is not checked; VRAM is checked only
    when the estimate puts something on the GPU (0 available VRAM then means it won't fit).
    """
    shares = []
    if available_ram is not None:
        shares.append(_share(estimate.ram_bytes, available_ram))
    if estimate.vram_bytes and available_vram is not None:
        shares.append(_share(estimate.vram_bytes, available_vram))
    worst = max(shares, default=0.0)
    if worst > 1:
        return WONT_FIT
    return TIGHT if worst >= TIGHT_FRACTION else FITS
