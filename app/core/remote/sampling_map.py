"""Which sampling parameters each kind of OpenAI-compatible server honours, and how they are sent.

The standard fields are OpenAI's own; llama-server and vLLM also accept extra fields in the same
JSON body. What a server would ignore is not sent, and the sampling panel greys it out.
"""

from __future__ import annotations

from app.core.chat.sampling import UNTIL_FULL, SamplingParams

STANDARD = frozenset({"temperature", "top_p", "max_tokens", "seed", "stop", "presence_penalty",
                      "frequency_penalty"})
_EXTRA: dict[str, frozenset[str]] = {
    "llama.cpp": frozenset({"top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n", "mirostat",
                            "mirostat_tau", "mirostat_eta"}),
    "vllm": frozenset({"top_k", "min_p", "repeat_penalty"}),
}
# The JSON name where a server calls a field differently from SamplingParams.
_RENAMED: dict[str, dict[str, str]] = {"vllm": {"repeat_penalty": "repetition_penalty"}}


def supported_fields(kind: str) -> frozenset[str]:
    """Names of SamplingParams fields the endpoint honours (an unknown kind: the standard ones)."""
    return STANDARD | _EXTRA.get(kind, frozenset())


def request_fields(sampling: SamplingParams, kind: str) -> dict:
    """The JSON body fields for `sampling`; "no limit", "random seed" and "no stops" are left out,
    so the server's own behaviour applies."""
    body: dict = {}
    renamed = _RENAMED.get(kind, {})
    for name in sorted(supported_fields(kind)):
        value = getattr(sampling, name)
        if name == "max_tokens" and value == UNTIL_FULL or name == "seed" and value is None:
            continue
        if name == "stop":
            if not value:
                continue
            value = list(value)
        if kind == "vllm" and name == "top_k" and value == 0:
            value = -1  # vLLM's "off" (older versions refuse 0)
        body[renamed.get(name, name)] = value
    return body
