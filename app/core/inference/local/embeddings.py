"""Embeddings of the loaded model: a second llama.cpp context on the same file, made on first use.

The chat context keeps its KV cache (a conversation's prefix) and its settings; embeddings need
`embedding=True` and mean pooling, so they get a context of their own, freed with the model.
"""

from __future__ import annotations

from app.core.inference.local import llama_adapter
from app.core.inference.types import Embeddings, EngineError, LoadOptions

MAX_EMBEDDING_CONTEXT = 2048  # tokens per input: one batch; longer inputs are refused, not truncated
# Tokens per request, all inputs together: the engine makes embeddings between two answers, and
# nothing else (the window's next answer) runs meanwhile: one request must not hold it for minutes.
MAX_EMBEDDING_TOKENS = 16384


class Embedder:
    """Owned by the Engine, called from its one thread."""

    def __init__(self, path: str, model_n_ctx: int, options: LoadOptions, n_threads: int) -> None:
        self._path, self._options, self._n_threads = path, options, n_threads
        self.limit = min(model_n_ctx, MAX_EMBEDDING_CONTEXT)
        self._llm: llama_adapter.Llama | None = None

    def check(self, token_lists: list[list[int]]) -> None:
        """EngineError(BAD_REQUEST) for an empty input, one longer than the context, or more tokens
        in all than one request may hold."""
        total = sum(len(tokens) for tokens in token_lists)
        if total > MAX_EMBEDDING_TOKENS:
            raise EngineError(f"The inputs are {total:,} tokens in all, but one request may hold at most "
                              f"{MAX_EMBEDDING_TOKENS:,}. Send them in several requests.",
                              kind=EngineError.BAD_REQUEST)
        for i, tokens in enumerate(token_lists):
            which = f"Input {i + 1}" if len(token_lists) > 1 else "The input"
            if not tokens:
                raise EngineError(f"{which} is empty: there is nothing to embed.",
                                  kind=EngineError.BAD_REQUEST)
            if len(tokens) > self.limit:
                raise EngineError(f"{which} is {len(tokens):,} tokens long, but embeddings take at most "
                                  f"{self.limit:,} tokens per input. Split it into shorter pieces.",
                                  kind=EngineError.BAD_REQUEST)

    def embed(self, token_lists: list[list[int]]) -> Embeddings:
        self.check(token_lists)
        llm = self._open()
        try:
            vectors = [llama_adapter.embed_tokens(llm, tokens) for tokens in token_lists]
        except (RuntimeError, ValueError) as error:  # a failed llama_decode
            raise EngineError(f"Making the embeddings failed: {error}",
                              kind=EngineError.GENERATION_FAILED) from error
        return Embeddings(vectors, sum(len(tokens) for tokens in token_lists))

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    def _open(self) -> llama_adapter.Llama:
        if self._llm is None:
            try:
                self._llm = llama_adapter.open_embedder(self._path, self.limit, self._options,
                                                        self._n_threads)
            except (ValueError, RuntimeError, OSError) as error:
                raise EngineError(f"The model could not be prepared for embeddings: {error}",
                                  kind=EngineError.GENERATION_FAILED) from error
        return self._llm
