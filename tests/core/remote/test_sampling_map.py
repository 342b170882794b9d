"""Which sampling fields each kind of server takes, how they are sent, and that llama-server uses them."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from app.core.chat.sampling import SamplingParams
from app.core.remote.client import Finished, OpenAIClient
from app.core.remote.connections import Connection
from app.core.remote.sampling_map import STANDARD, request_fields, supported_fields
from tests.fixtures.llama_server import API_KEY

LLAMA_EXTRA = {"top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n", "mirostat", "mirostat_tau",
               "mirostat_eta"}


def test_each_kind_honours_its_own_fields():
    assert {"temperature", "top_p", "max_tokens", "seed", "stop", "presence_penalty",
            "frequency_penalty"} == STANDARD
    assert supported_fields("llama.cpp") == STANDARD | LLAMA_EXTRA
    assert supported_fields("vllm") == STANDARD | {"top_k", "min_p", "repeat_penalty"}
    assert supported_fields("ollama") == supported_fields("openai-compatible") == STANDARD
    assert supported_fields("something new") == STANDARD


def test_no_limit_a_random_seed_and_no_stops_are_left_to_the_server():
    body = request_fields(SamplingParams(max_tokens=0, seed=None, stop=()), "openai-compatible")
    assert set(body) == STANDARD - {"max_tokens", "seed", "stop"}
    body = request_fields(SamplingParams(max_tokens=64, seed=7, stop=("END", "##")), "openai-compatible")
    assert (body["max_tokens"], body["seed"], body["stop"]) == (64, 7, ["END", "##"])


def test_a_kind_gets_only_the_fields_it_takes_under_its_own_names():
    sampling = SamplingParams(top_k=0, repeat_penalty=1.2, typical_p=0.9)
    vllm = request_fields(sampling, "vllm")
    assert vllm["repetition_penalty"] == 1.2 and "repeat_penalty" not in vllm
    assert vllm["top_k"] == -1  # vLLM's "off"
    assert "typical_p" not in vllm and "mirostat" not in vllm
    llama = request_fields(sampling, "llama.cpp")
    assert (llama["top_k"], llama["repeat_penalty"], llama["typical_p"]) == (0, 1.2, 0.9)
    assert "top_k" not in request_fields(sampling, "ollama")


def test_llama_server_samples_with_the_fields_sent(llama_server):
    """The slot that wrote the answer reports the sampling it used (llama-server's GET /slots)."""
    sampling = SamplingParams(temperature=0.3, top_p=0.7, top_k=17, min_p=0.11, typical_p=0.9,
                              repeat_penalty=1.3, repeat_last_n=33, presence_penalty=0.2,
                              frequency_penalty=0.4,
                              mirostat=2, mirostat_tau=4.5, mirostat_eta=0.2, seed=1234, max_tokens=4)
    fields = request_fields(sampling, "llama.cpp")

    async def main():
        client = OpenAIClient(Connection(name="local", base_url=llama_server.base_url), API_KEY)
        try:
            events = [e async for e in client.chat("m", [{"role": "user", "content": "Hi"}], fields)]
        finally:
            await client.aclose()
        return events

    assert isinstance(asyncio.run(main())[-1], Finished)
    slots = httpx2.get(f"{llama_server.root}/slots", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    used = next(slot["params"] for slot in slots if slot.get("params", {}).get("top_k") == 17)
    for name, value in fields.items():
        assert used[name] == pytest.approx(value), name
