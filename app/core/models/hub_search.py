"""Finding GGUF models on the Hugging Face hub: search, a repository's files, our recommendations.

No Qt: the app calls these from a worker thread (session/hub_search.py). Downloading is hub.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from huggingface_hub import HfApi, get_session
from huggingface_hub.utils import hf_raise_for_status

from app.core.models.hub import API_TIMEOUT, auth_headers, endpoint_url, hub_errors

_SORTS = {"downloads": "downloads", "likes": "likes", "last_modified": "lastModified"}
_QUANT = re.compile(r"(?<![A-Z0-9])(I?Q[1-8](?:_[0-9A-Z]{1,2})*|TQ[12]_0|MXFP4|BF16|F16|F32)(?![A-Z0-9])")


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool


@dataclass(frozen=True)
class HubFile:
    filename: str
    size: int
    sha256: str | None
    quantization: str


@dataclass(frozen=True)
class Recommended:
    repo_id: str
    filename: str
    size: int  # approximate: the hub's listing gives the exact one
    summary: str


RECOMMENDED: tuple[Recommended, ...] = (
    Recommended("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
                808_000_000, "Tiny and quick: everyday questions on any laptop."),
    Recommended("HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF", "smollm2-1.7b-instruct-q4_k_m.gguf",
                1_060_000_000, "Small and fast, good at short English answers and rewriting."),
    Recommended("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf",
                1_120_000_000, "Small, multilingual, decent at code and structured output."),
    Recommended("bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
                2_020_000_000, "A good balance of speed and quality for chat and summaries."),
    Recommended("bartowski/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct-Q4_K_M.gguf",
                2_390_000_000, "Strong reasoning and maths for its size; long context."),
    Recommended("bartowski/Mistral-7B-Instruct-v0.3-GGUF", "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
                4_370_000_000, "Solid general-purpose 7B: writing, chat, European languages."),
    Recommended("bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
                4_680_000_000, "Capable 7B for code, maths and many languages (8 GB RAM or more)."),
    Recommended("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
                4_920_000_000, "The best all-rounder here: chat, writing, reasoning (8 GB RAM or more)."),
)


def quantization(filename: str) -> str:
    """'Q4_K_M' from 'Llama-3.2-1B-Instruct-Q4_K_M.gguf'; '' when the name does not say."""
    found = _QUANT.findall(PurePosixPath(filename).name.upper())
    return found[-1] if found else ""


# --- searching and listing -------------------------------------------------------------------


def search_models(query: str, sort: str = "downloads", limit: int = 30,
                  token: str | None = None) -> list[HubModel]:
    """GGUF repositories whose name contains `query`, best first by `sort`.

    A plain GET rather than HfApi.list_models: that one retries connection errors five times
    with backoff (about 20 s), and offline must be said at once.
    """
    if sort not in _SORTS:
        raise ValueError(f"sort must be one of {sorted(_SORTS)}")
    endpoint = endpoint_url()
    params: dict = {"filter": "gguf", "sort": _SORTS[sort], "limit": limit,
                    "expand": ["downloads", "likes", "lastModified", "gated", "tags"]}
    if query.strip():
        params["search"] = query.strip()
    with hub_errors(endpoint):
        response = get_session().get(f"{endpoint}/api/models", params=params, headers=auth_headers(token),
                                     timeout=API_TIMEOUT)
        hf_raise_for_status(response)
        items = response.json()
    return [HubModel(repo_id=item["id"], downloads=item.get("downloads") or 0, likes=item.get("likes") or 0,
                     last_modified=_datetime(item.get("lastModified")), gated=bool(item.get("gated")))
            for item in items]


def list_gguf_files(repo_id: str, token: str | None = None) -> list[HubFile]:
    """The .gguf files of a repository with size and sha256; split parts are listed as they are."""
    endpoint = endpoint_url()
    with hub_errors(endpoint, repo_id):
        info = HfApi(endpoint=endpoint).model_info(repo_id, files_metadata=True, token=token or False,
                                                   timeout=API_TIMEOUT)
    files = []
    for sibling in info.siblings or ():
        if sibling.rfilename.lower().endswith(".gguf"):
            lfs = sibling.lfs
            files.append(HubFile(sibling.rfilename, sibling.size or (lfs.size if lfs else 0),
                                 lfs.sha256 if lfs else None, quantization(sibling.rfilename)))
    return sorted(files, key=lambda f: f.filename)


def _datetime(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
