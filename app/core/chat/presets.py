"""Sampling presets: three built in, the user's own kept as JSON in the config folder.

A preset is a complete SamplingParams: applying one sets every parameter. Built-in names are
reserved (whatever their case). Every write goes to a temporary file first and then replaces the
presets file, so a crash never leaves half a file. Imports are checked in full before anything changes.
"""

from __future__ import annotations

import json
import logging
import os  # noqa: F401 - tests make os.replace fail through this module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import paths
from app.core.chat.sampling import SamplingParams
from app.core.common import settings_file
from app.core.common.atomic_file import write_text_atomically
from app.core.common.errors import UserFacingError

log = logging.getLogger(__name__)

FILE_NAME = "sampling-presets.json"
FORMAT_MARKER = "llamadesk-sampling-presets"
VERSION = 1
MAX_NAME_LENGTH = 64
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_PRESETS = 1000

BUILTIN: dict[str, SamplingParams] = {
    "Precise": SamplingParams(temperature=0.2, top_k=20, top_p=0.9, min_p=0.1),
    "Balanced": SamplingParams(),
    "Creative": SamplingParams(temperature=1.1, top_k=100, top_p=1.0, min_p=0.03, presence_penalty=0.3),
}


class PresetError(UserFacingError):
    """A preset operation that cannot be done or a file that cannot be read; `.message` says why."""



@dataclass(frozen=True)
class Preset:
    name: str
    params: SamplingParams
    builtin: bool


@dataclass
class Imported:
    """What an import did: `added` (names as stored), `renamed` (name in the file -> the name it
    was stored under, its own being taken), `present` (already there with the same settings)."""

    added: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    present: list[str] = field(default_factory=list)

    def summary(self, file_name: str) -> str:
        """What the import did, in words, naming every preset that had to take a new name."""
        if not self.added:
            return f"Nothing to import: you have the {_presets(len(self.present))} in {file_name} already."
        text = f"Imported {_presets(len(self.added))}."
        if self.renamed:
            pairs = [f"“{old}” as “{new}”" for old, new in self.renamed.items()]
            listed = pairs[0] if len(pairs) == 1 else ", ".join(pairs[:-1]) + " and " + pairs[-1]
            those = "a preset of that name" if len(pairs) == 1 else "presets of those names"
            text += f" Added {listed}, as you have {those} already."
        if self.present:
            text += f" Skipped {_presets(len(self.present))} you have already."
        return text


def _presets(count: int) -> str:
    return f"{count} preset{'' if count == 1 else 's'}"


def _free_name(name: str, taken: set[str]) -> str:
    """`name` with the first free number: "Fast (2)", "Fast (3)"… (shortened to fit if need be)."""
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = name[:MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix
        if candidate not in taken:
            return candidate
        number += 1


def _numbered(candidate: str, name: str) -> bool:
    """Whether `candidate` is `name` with a number, as _free_name makes them."""
    number = candidate.removeprefix(f"{name} (").removesuffix(")")
    return candidate.startswith(f"{name} (") and candidate.endswith(")") and number.isdigit()


def is_reserved(name: str) -> bool:
    return name.strip().casefold() in {n.casefold() for n in BUILTIN}


def check_name(name: object) -> str:
    """The name without surrounding spaces, or PresetError saying what is wrong with it."""
    if not isinstance(name, str):
        raise PresetError(f"A preset name must be text, not {name!r}.")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise PresetError(f"A preset name must be 1 to {MAX_NAME_LENGTH} characters long.")
    if any(not c.isprintable() for c in name):
        raise PresetError("A preset name cannot hold line breaks or other control characters.")
    if is_reserved(name):
        raise PresetError(f"“{name}” is the name of a built-in preset; choose another name.")
    return name


def default_path() -> Path:
    return paths.config_dir() / FILE_NAME


class PresetStore:
    """The user's presets in one JSON file (read on every call: small, and always current)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    # -- reading ---------------------------------------------------------------------------

    def presets(self) -> list[Preset]:
        """Built-ins first, in their order, then the user's sorted by name.

        A damaged presets file shows only the built-ins: it is set aside and the user told once.
        """
        user = self._read_user()
        return [*(Preset(n, p, True) for n, p in BUILTIN.items()),
                *(Preset(n, user[n], False) for n in sorted(user, key=str.casefold))]

    def names(self) -> list[str]:
        return [p.name for p in self.presets()]

    def get(self, name: str) -> SamplingParams:
        for preset in self.presets():
            if preset.name == name:
                return preset.params
        raise PresetError(f"There is no preset named “{name}”.")

    def matching(self, params: SamplingParams) -> str | None:
        """The name of the first preset holding exactly these params, if any."""
        return next((p.name for p in self.presets() if p.params == params), None)

    # -- changing --------------------------------------------------------------------------

    def save(self, name: str, params: SamplingParams) -> str:
        """Add a user preset or overwrite one; returns the name as stored (without outer spaces)."""
        name = check_name(name)
        user = self._read_user()
        user[name] = params
        self._check_count(user)
        self._write(user)
        return name

    def rename(self, old: str, new: str) -> str:
        user = self._read_user()
        if old in BUILTIN:
            raise PresetError(f"“{old}” is a built-in preset and cannot be renamed.")
        if old not in user:
            raise PresetError(f"There is no preset named “{old}”.")
        new = check_name(new)
        if new != old and new in user:
            raise PresetError(f"A preset named “{new}” exists already.")
        params = user.pop(old)
        user[new] = params
        self._write(user)
        return new

    def delete(self, name: str) -> None:
        user = self._read_user()
        if name in BUILTIN:
            raise PresetError(f"“{name}” is a built-in preset and cannot be deleted.")
        if name not in user:
            raise PresetError(f"There is no preset named “{name}”.")
        del user[name]
        self._write(user)

    def export(self, path: Path, names: list[str] | None = None) -> int:
        """Write the user's presets (all, or those named) to `path`; returns how many."""
        user = self._read_user()
        if names is not None:
            missing = [n for n in names if n not in user]
            if missing:
                raise PresetError(f"There is no user preset named “{missing[0]}”.")
            user = {n: user[n] for n in names}
        try:
            write_text_atomically(Path(path), _document(user))
        except OSError as error:
            raise PresetError(f"Cannot write {path}: {error.strerror or error}.") from error
        return len(user)

    def import_(self, path: Path) -> Imported:
        """Add the presets in `path`. One whose name is taken is added under a new name ("Fast (2)"),
        never over the user's own; one the user has already (same settings, under its name or a
        numbered one) is skipped.

        The whole file is checked first: if anything in it is wrong, nothing changes.
        """
        path = Path(path)
        try:
            with path.open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
        except OSError as error:
            raise PresetError(f"Cannot read {path.name}: {error.strerror or error}.") from error
        if len(data) > MAX_FILE_BYTES:
            raise PresetError(f"{path.name} is too large to be a presets file.")
        incoming = _parse(data, path.name)
        if not incoming:
            raise PresetError(f"{path.name} holds no presets.")
        user = self._read_user()
        result = Imported()
        for name, params in incoming.items():
            if any(user[n] == params for n in user if n == name or _numbered(n, name)):
                result.present.append(name)  # imported before, perhaps under a new name
                continue
            stored = _free_name(name, set(user) | set(incoming)) if name in user else name
            user[stored] = params
            result.added.append(stored)
            if stored != name:
                result.renamed[name] = stored
        if result.added:
            self._check_count(user)
            self._write(user)
        return result

    # -- helpers ---------------------------------------------------------------------------

    def _read_user(self) -> dict[str, SamplingParams]:
        """The user's presets; a damaged file is set aside (and the user told) by the settings policy."""
        return settings_file.load(KIND, self.path, dict)

    @staticmethod
    def _check_count(user: dict) -> None:
        if len(user) > MAX_PRESETS:
            raise PresetError(f"There can be at most {MAX_PRESETS} presets.")

    def _write(self, user: dict[str, SamplingParams]) -> None:
        try:
            settings_file.save(KIND, self.path, _document(user))
        except OSError as error:
            reason = error.strerror or error
            raise PresetError(f"Cannot save the presets to {self.path}: {reason}.") from error


def _document(user: dict[str, SamplingParams]) -> str:
    document = {"format": FORMAT_MARKER, "version": VERSION,
                "presets": [{"name": name, "sampling": params.to_dict()} for name, params in user.items()]}
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _check_file(document: Any) -> dict[str, SamplingParams]:
    """The presets in the user's own presets file, or DamagedSettings saying what is wrong."""
    try:
        return _from_document(document, FILE_NAME)
    except PresetError as error:
        reason = error.message.rstrip(".")
        reason = reason.removeprefix(f"{FILE_NAME}: ").replace(f"{FILE_NAME} ", "it ", 1)
        raise settings_file.DamagedSettings(reason) from None


KIND = settings_file.SettingsKind(name=FILE_NAME, what="Your sampling presets", check=_check_file,
                                  fallback="Llamadesk started with the built-in ones",
                                  max_bytes=MAX_FILE_BYTES)


def _parse(data: bytes, where: str) -> dict[str, SamplingParams]:
    """The presets in a file's bytes, or PresetError naming the first problem."""
    def reject(constant: str) -> object:
        raise PresetError(f"{where} holds {constant}, which is not a number presets accept.")

    try:
        document = json.loads(data.decode("utf-8"), parse_constant=reject)
    except UnicodeDecodeError:
        raise PresetError(f"{where} is not a presets file: it is not UTF-8 text.") from None
    except json.JSONDecodeError as error:
        raise PresetError(f"{where} is not a presets file: invalid JSON at line {error.lineno}, "
                          f"column {error.colno} ({error.msg}).") from None
    except RecursionError:
        raise PresetError(f"{where} is not a presets file: it is nested too deeply.") from None
    return _from_document(document, where)


def _from_document(document: Any, where: str) -> dict[str, SamplingParams]:
    """The presets in a parsed document, or PresetError naming the first problem."""
    if not isinstance(document, dict) or document.get("format") != FORMAT_MARKER:
        raise PresetError(f"{where} is not a Llamadesk presets file.")
    if document.get("version") != VERSION:
        raise PresetError(f"{where} has presets format version {document.get('version')!r}; "
                          f"this Llamadesk reads version {VERSION}.")
    items = document.get("presets")
    if not isinstance(items, list):
        raise PresetError(f"{where}: “presets” must be a list.")
    if len(items) > MAX_PRESETS:
        raise PresetError(f"{where} holds more than {MAX_PRESETS} presets.")
    out: dict[str, SamplingParams] = {}
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("sampling"), dict):
            raise PresetError(f"{where}: preset {i} must be an object with a name and sampling settings.")
        try:
            name = check_name(item.get("name"))
        except PresetError as error:
            raise PresetError(f"{where}: preset {i}: {error.message}") from None
        if name in out:
            raise PresetError(f"{where}: the name “{name}” appears twice.")
        try:
            out[name] = SamplingParams.from_dict(item["sampling"])
        except ValueError as error:
            raise PresetError(f"{where}: preset “{name}”: {error}") from None
    return out

