"""What drafts tokens for speculative decoding with given load settings, and what it costs in memory.

Decided from the model headers alone, so the Model tab shows before loading what the engine will do
on loading. Drafting needs the model's logits at every drafted position: llama.cpp keeps them for the
last batch only, (MAX_DRAFT_TOKENS + 1) rows of n_vocab floats. (llama-cpp-python's own drafting keeps
them for the whole context, n_ctx x n_vocab x 4 bytes: about 800 MB at 4,096 tokens for a 49,152-token
vocabulary; the engine's decoding loop asks llama.cpp for the drafted rows only.) A draft model adds
its weights, its KV cache at the same context and its own logits rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.inference.types import MAX_DRAFT_TOKENS, LoadOptions
from app.core.models import memory
from app.core.models.gguf_info import GGUFError, GGUFHeader, read_model

PROMPT_LOOKUP = "prompt lookup"
GiB = 1024**3


@dataclass(frozen=True)
class DraftingPlan:
    source: str  # PROMPT_LOOKUP, "draft model <file name>", or "" (no drafting)
    note: str  # why drafting is off or not as asked; "" when it is as the settings ask
    extra_ram: int  # bytes drafting adds to the model's own estimate
    extra_vram: int
    draft_path: str = ""  # the draft model's file (part 1) when one drafts

    @property
    def on(self) -> bool:
        return bool(self.source)


def logits_bytes(n_vocab: int) -> int:
    """The logits of one drafted batch: the drafted tokens and the one before them."""
    return (MAX_DRAFT_TOKENS + 1) * n_vocab * 4


def vocabulary_mismatch(model: GGUFHeader, draft: GGUFHeader) -> str:
    """Why `draft` cannot draft for `model` (their token ids must mean the same texts); "" if it can.

    Stricter than llama.cpp's speculative example, which also allows up to 128 extra tokens at the
    end: the token lists must be the same."""
    (ours, our_digest), (theirs, their_digest) = model.vocabulary, draft.vocabulary
    if not ours or not theirs:
        return "one of them lists no vocabulary"
    if ours != theirs:
        return f"their vocabularies differ in size ({ours:,} and {theirs:,} tokens)"
    if our_digest != their_digest:
        return f"their vocabularies differ (both have {ours:,} tokens, but not the same ones)"
    return ""


def plan(header: GGUFHeader, n_ctx: int, options: LoadOptions, available_ram: int | None,
         read_header=read_model) -> DraftingPlan:
    """What drafts when `header`'s model loads with `options` at an n_ctx-token context, given the RAM
    available (None: unknown, not checked). A draft model that cannot be used falls back to prompt
    lookup; drafting that would not fit beside the model is off. Each such case has its note."""
    if options.drafting == "off":
        return DraftingPlan("", "", 0, 0)
    own = memory.estimate(header, n_ctx, options.n_gpu_layers, options.kv_cache_type).ram_bytes
    lookup_bytes = logits_bytes(header.vocabulary[0] or 32_000)
    note = ""
    if options.draft_model:
        draft_name = Path(options.draft_model).name
        try:
            draft = read_header(Path(options.draft_model))
        except (GGUFError, OSError) as error:
            reason = getattr(error, "message", None) or getattr(error, "strerror", None) or str(error)
            reason = reason.rstrip(".")
            draft = None
            note = f"The draft model {draft_name} cannot be used ({reason}): prompt lookup drafts instead."
        if draft is not None:
            mismatch = vocabulary_mismatch(header, draft)
            if mismatch:
                note = f"{draft_name} cannot draft for this model: {mismatch}. Prompt lookup drafts instead."
            else:
                need = memory.estimate(draft, n_ctx, -1 if options.n_gpu_layers else 0, options.kv_cache_type)
                ram = need.ram_bytes + logits_bytes(draft.vocabulary[0]) + lookup_bytes
                if available_ram is None or own + ram <= available_ram:
                    return DraftingPlan(f"draft model {draft_name}", "", ram, need.vram_bytes,
                                        draft_path=str(draft.path))
                note = (f"The draft model {draft_name} would not fit in memory beside this model (it needs "
                        f"{ram / GiB:.1f} GiB more): prompt lookup drafts instead.")
    if available_ram is not None and own + lookup_bytes > available_ram:
        return DraftingPlan("", f"Speculative decoding is off: the {lookup_bytes / 1024**2:.0f} MiB it needs "
                                "for drafted logits would not fit in memory beside this model.", 0, 0)
    return DraftingPlan(PROMPT_LOOKUP, note, lookup_bytes, 0)
