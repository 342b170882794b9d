"""How an answer was made, for its GenerationRecord: the model file's identity (its SHA-256,
cached in the store, else computed off the GUI thread) and the request's facts."""

from __future__ import annotations

import logging
from pathlib import Path

from app.core.chat.sampling import SamplingParams
from app.core.conversations.conversation import GenerationRecord
from app.core.conversations.store import ConversationStore, StoreError
from app.core.inference.types import GenerationStats, ModelInfo
from app.core.models.library_files import file_sha256
from app.session import tasks

log = logging.getLogger(__name__)


class AnswerRecords:
    def __init__(self, store: ConversationStore) -> None:
        self.store = store
        self._sha256: dict[str, str] = {}
        self._hashing = tasks.Latest("hash the model file")  # a newer model replaces the older hash

    def on_model_loaded(self, info: ModelInfo) -> None:
        self.hash_model(Path(info.path))

    def hash_model(self, path: Path) -> None:
        """SHA-256 of the model file for generation records: cached, else computed off-thread."""
        cached = self.store.cached_sha256(path)
        if cached:
            self._sha256[str(path)] = cached
            return
        self._hashing.start(self._hash(path))

    async def _hash(self, path: Path) -> None:
        try:
            digest = await tasks.in_long_thread(file_sha256, path)
        except OSError as error:
            log.warning("hashing %s failed: %s", path, error)
            return
        self._sha256[str(path)] = digest
        try:
            self.store.remember_sha256(path, digest)
        except (OSError, StoreError) as error:  # the file went away, or the store refuses writes
            log.info("not caching the hash of %s: %s", path, error)

    def record(self, info: ModelInfo | None, sampling: SamplingParams, stats: GenerationStats,
               dropped: int) -> GenerationRecord:
        if info is not None and info.remote:
            return self._remote_record(info, sampling, stats, dropped)
        path = Path(info.path) if info else None
        return GenerationRecord(
            model_file=path.name if path else "",
            model_size=path.stat().st_size if path and path.exists() else 0,
            model_sha256=self._sha256.get(str(path), "") if path else "",
            sampling=sampling.to_dict(),
            seed=stats.seed,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            ttft_s=stats.ttft_s,
            tokens_per_s=stats.tokens_per_s,
            stop_reason=stats.stop_reason,
            llama_cpp_version=info.llama_cpp_version if info else _llama_cpp_version(),
            dropped_messages=dropped,
            drafting=stats.drafting,
            drafted_tokens=stats.drafted_tokens,
            accepted_tokens=stats.accepted_tokens,
            drafting_turned_off=stats.drafting_turned_off,
        )

    @staticmethod
    def _remote_record(info: ModelInfo, sampling: SamplingParams, stats: GenerationStats,
                       dropped: int) -> GenerationRecord:
        """Where the answer came from: the connection, the server's host, the model id and
        fingerprint the server reported (llama_cpp_version: the server's build, when it says)."""
        return GenerationRecord(
            model_file=info.name, sampling=sampling.to_dict(), seed=stats.seed,
            prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens,
            ttft_s=stats.ttft_s, tokens_per_s=stats.tokens_per_s, stop_reason=stats.stop_reason,
            llama_cpp_version=info.llama_cpp_version, dropped_messages=dropped,
            connection=info.connection, server_host=info.host, server_model=stats.server_model or info.name,
            system_fingerprint=stats.system_fingerprint, server_tokens_per_s=stats.server_tokens_per_s)


def _llama_cpp_version() -> str:
    from importlib.metadata import version  # only when no model was loaded: rare

    return version("llama-cpp-python")
