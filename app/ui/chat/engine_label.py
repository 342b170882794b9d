"""How a remote model is named in the window: "model-id · connection", a long id cut in the middle (its
end tells models apart: the size, the quantization, the file's name), a path by its file's name; the
full id goes in a tooltip."""

from __future__ import annotations

MODEL_ID_CHARS = 40  # characters of a model id shown whole; a longer one is elided in the middle
_HEAD = 14  # of those, the ones kept from its start ("/home/me/mod…", "meta-llama/Lla…")


def short_id(model_id: str, limit: int = MODEL_ID_CHARS) -> str:
    """The id, or its start and end around "…" when longer than `limit` characters. An id that is
    a file's path (llama-server's, unless started with --alias) is named by the file: "…/model.gguf"."""
    if len(model_id) <= limit:
        return model_id
    if model_id.startswith("/") or model_id[1:3] in (":\\", ":/"):
        model_id = "…/" + model_id.replace("\\", "/").rsplit("/", 1)[-1]
        if len(model_id) <= limit:
            return model_id
    head = min(_HEAD, limit // 3)
    return model_id[:head] + "…" + model_id[len(model_id) - (limit - head - 1):]


def remote_label(model_id: str, connection: str) -> str:
    """ "qwen2.5-7b · gpu-box" (the id shortened when long)."""
    return f"{short_id(model_id)} · {connection}"
