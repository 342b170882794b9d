"""The model library's slow work as flows: scanning its folders, importing and deleting files,
reading a model's header, hashing it, and describing the llama.cpp build.

Widgets await these (the answer is theirs) and watch `changed` (files came or went); none of them
touches the disk's models or llama.cpp itself. The user's choices (folders, default model, load
settings) are a small JSON file: `library` reads and writes them directly.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.core.inference.types import BuildInfo
from app.core.models import library_files
from app.core.models.gguf_info import GGUFError, GGUFHeader, read_model
from app.core.models.library import ModelLibrary
from app.core.models.library_files import LibraryError, ModelEntry, file_sha256
from app.session.tasks import in_long_thread, in_thread


@dataclass(frozen=True)
class ImportResult:
    imported: list[Path]  # the new files in the library, in the order asked
    problems: list[str]  # why each refused file was refused, for people


def _import_each(library: ModelLibrary, files: list[str], link: bool) -> ImportResult:
    imported, problems = [], []
    for file in files:
        try:
            imported.append(library.import_model(file, link=link))
        except LibraryError as error:
            problems.append(error.message)
    return ImportResult(imported, problems)


UNKNOWN_BUILD = BuildInfo("unknown", False, "?")


async def read_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """A model's header, read in a worker thread (a draft model's, for the Model tab's estimate).
    Raises GGUFError or OSError: the caller says why it cannot be used."""
    return await in_thread(read_model, path)


class LibrarySession(QObject):
    changed = Signal()  # models were imported or deleted: lists of them scan again

    def __init__(self, library: ModelLibrary | None = None,
                 describe_build: Callable[[], Awaitable[BuildInfo | None]] | None = None,
                 parent: QObject | None = None) -> None:
        """describe_build: asks the engine's process what its llama.cpp build can run on
        (LocalBackend.build); without one, the build is not known."""
        super().__init__(parent)
        self.library = library or ModelLibrary()
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._describe_build = describe_build
        self._build: BuildInfo | None = None

    def default_model(self) -> Path | None:
        return self.library.default_model()

    async def scan(self) -> list[ModelEntry]:
        """Every model in the library's folders, broken ones with their reason."""
        return await in_thread(self.library.scan)

    async def import_files(self, files: Iterable[str | os.PathLike[str]], link: bool = False) -> ImportResult:
        """Copy (or link) each file into the models folder; one refused file does not stop the rest.
        The one import of the app: a drop on the window and the models window both come here."""
        result = await in_thread(_import_each, self.library, [str(f) for f in files], link)
        if result.imported:
            self.changed.emit()
        return result

    async def delete(self, path: str | os.PathLike[str]) -> list[Path]:
        """Delete a model's files (every part) from the models folder. Raises LibraryError."""
        removed = await in_thread(library_files.delete_model, path, self.library.models_folder)
        self.library.forget(path, removed)  # the settings are the GUI thread's: forgotten here
        self.changed.emit()
        return removed

    async def header(self, path: str | os.PathLike[str]) -> GGUFHeader | None:
        """The model's header (for the memory estimate); None when it cannot be read."""
        try:
            return await read_header(path)
        except (GGUFError, OSError):
            return None

    async def sha256(self, path: str | os.PathLike[str]) -> str:
        """The file's SHA-256, computed once per version of the file (gigabytes take seconds)."""
        stat = await in_thread(os.stat, path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = await in_long_thread(file_sha256, path)
        return self._hashes[key]

    async def build(self) -> BuildInfo:
        """The llama.cpp build, asked of the engine's process the first time and remembered."""
        if self._build is None:
            described = await self._describe_build() if self._describe_build is not None else None
            if described is None:
                return UNKNOWN_BUILD
            self._build = described
        return self._build
