"""Sampling parameters: ranges, defaults (llama.cpp's), validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    help: str


# llama.cpp takes a 32-bit seed (0xFFFFFFFF meaning "random"); a QSpinBox holds at most 2**31 - 1.
MAX_SEED = 2**31 - 1
MAX_STOPS = 8
MAX_STOP_LENGTH = 64
UNTIL_FULL = 0  # max_tokens: no limit of its own, the answer may run until the context is full

# What each parameter does, in the words a tooltip shows.
RANGES: dict[str, Range] = {
    "temperature": Range(0.0, 2.0, "Randomness. 0 always picks the likeliest token; higher is "
                         "more varied and less predictable."),
    "top_p": Range(0.0, 1.0, "Nucleus sampling: pick only among the likeliest tokens whose "
                   "probabilities add up to this share. 1 turns it off."),
    "top_k": Range(0, 200, "Pick only among this many likeliest tokens. 0 turns it off."),
    "min_p": Range(0.0, 1.0, "Drop tokens less likely than this fraction of the likeliest one. "
                   "0 turns it off."),
    "typical_p": Range(0.0, 1.0, "Locally typical sampling: keep the tokens whose surprise is closest to "
                       "the average. 1 turns it off."),
    "repeat_penalty": Range(1.0, 2.0, "Make tokens used in the recent window less likely. 1 turns it off."),
    "repeat_last_n": Range(-1, 4096, "How many recent tokens the repeat, presence and frequency penalties "
                           "look at. 0 turns them off; -1 uses the whole context."),
    "presence_penalty": Range(0.0, 2.0, "Make any token already used in the recent window less likely, "
                              "nudging the answer towards new topics. 0 turns it off."),
    "frequency_penalty": Range(0.0, 2.0, "Make tokens less likely the more often they were used in the "
                               "recent window. 0 turns it off."),
    "mirostat": Range(0, 2, "Mirostat steers the answer's surprise towards a target (tau) and replaces "
                      "top-k, top-p, min-p and typical-p. 0 turns it off; 1 and 2 are its two versions. "
                      "It has no effect at temperature 0."),
    "mirostat_tau": Range(0.0, 10.0, "Mirostat's target surprise: lower is more focused, higher "
                          "more varied."),
    "mirostat_eta": Range(0.0, 1.0, "How fast Mirostat corrects towards its target: its learning rate."),
    "max_tokens": Range(UNTIL_FULL, 32768, "The longest answer, in tokens; 0 sets no limit: the answer "
                        "may run until the context is full."),
    "seed": Range(0, MAX_SEED, "The random seed: a fixed seed repeats an answer exactly; "
                  "Random picks a new one for every answer."),
}

_INTEGERS = frozenset({"top_k", "repeat_last_n", "mirostat", "max_tokens", "seed"})


@dataclass(frozen=True)
class SamplingParams:
    """Defaults are llama.cpp's own (common/common.h), except max_tokens (llama.cpp: unlimited)."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None  # None: a new random seed for every answer
    typical_p: float = 1.0
    repeat_last_n: int = 64  # the penalties' window; 0: off, -1: the whole context
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    mirostat: int = 0  # 0: off, 1: Mirostat, 2: Mirostat 2.0
    mirostat_tau: float = 5.0
    mirostat_eta: float = 0.1
    stop: tuple[str, ...] = ()  # the user's stop strings, besides the chat template's

    def __post_init__(self) -> None:
        for name, rng in RANGES.items():
            value = getattr(self, name)
            if name == "seed" and value is None:
                continue
            object.__setattr__(self, name, _number(name, value, rng))
        object.__setattr__(self, "stop", _stops(self.stop))

    def replace(self, **changes: object) -> SamplingParams:
        return SamplingParams(**{**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SamplingParams:
        """Keys it does not know are ignored and missing ones take their defaults (older databases)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _number(name: str, value: object, rng: Range) -> int | float:
    integer = name in _INTEGERS
    low, high = (int(rng.low), int(rng.high)) if integer else (rng.low, rng.high)
    if isinstance(value, float) and integer and value.is_integer():
        value = int(value)  # 40.0 from a hand-edited file
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{name} must be {kind} between {low} and {high}, not {value!r}.")
    if not low <= value <= high:  # NaN fails this too
        raise ValueError(f"{name} must be between {low} and {high}, not {value}.")
    return value if integer else float(value)


def _stops(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise ValueError(f"stop must be a list of strings, not {value!r}.")
    if len(value) > MAX_STOPS:
        raise ValueError(f"stop holds at most {MAX_STOPS} strings, not {len(value)}.")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"stop strings must be text, not {item!r}.")
        if not 1 <= len(item) <= MAX_STOP_LENGTH:
            raise ValueError(f"Each stop string must be 1 to {MAX_STOP_LENGTH} characters long, "
                             f"not {len(item)}.")
    return tuple(value)


def answer_limit(max_tokens: int, room: int) -> int:
    """The most tokens an answer may take when `room` tokens of the context are left: max_tokens,
    or all the room with UNTIL_FULL (what llama.cpp's -1 means), never a zero-token answer."""
    return room if max_tokens <= UNTIL_FULL else min(max_tokens, room)


GREEDY = SamplingParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0)
