"""Sampling parameters: ranges, defaults (llama.cpp's), validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    help: str


# What each parameter does, in the words a tooltip shows.
RANGES: dict[str, Range] = {
    "temperature": Range(0.0, 2.0, "Randomness. 0 always picks the likeliest token; higher is "
                         "more varied and less predictable."),
    "top_p": Range(0.0, 1.0, "Nucleus sampling: pick only among the likeliest tokens whose "
                   "probabilities add up to this share. 1 turns it off."),
    "top_k": Range(0, 200, "Pick only among this many likeliest tokens. 0 turns it off."),
    "min_p": Range(0.0, 1.0, "Drop tokens less likely than this fraction of the likeliest one."),
    "repeat_penalty": Range(1.0, 2.0, "Make recently used tokens less likely. 1 turns it off."),
    "max_tokens": Range(1, 32768, "The longest answer, in tokens."),
}


@dataclass(frozen=True)
class SamplingParams:
    """Defaults are llama.cpp's own (common/common.h)."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None  # None: a new random seed for every answer

    def __post_init__(self) -> None:
        for name, rng in RANGES.items():
            value = getattr(self, name)
            if not rng.low <= value <= rng.high:
                raise ValueError(f"{name} must be between {rng.low} and {rng.high}, not {value}.")

    def replace(self, **changes: object) -> SamplingParams:
        return SamplingParams(**{**asdict(self), **changes})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SamplingParams:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


GREEDY = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0)
