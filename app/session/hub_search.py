"""Searching the Hugging Face hub and listing a repository's files, as flows: the HTTP calls run in
a worker thread. The caller keeps one of each running (`tasks.Latest`): a newer search cancels
the older, so a stale answer is never shown."""

from __future__ import annotations

from app.core.models import hub_search
from app.core.models.hub_search import HubFile, HubModel
from app.session.tasks import in_thread


async def search_models(query: str, sort: str = "downloads", token: str | None = None) -> list[HubModel]:
    """GGUF repositories matching `query`, best first by `sort`. Raises HubError."""
    return await in_thread(hub_search.search_models, query, sort=sort, token=token)


async def list_gguf_files(repo_id: str, token: str | None = None) -> list[HubFile]:
    """The repository's .gguf files with their size and checksum. Raises HubError."""
    return await in_thread(hub_search.list_gguf_files, repo_id, token=token)
