"""Saved system prompts: a few built in, the user's own kept as JSON in the config folder.

A conversation carries its own system prompt; these are the ones offered to pick from.
Writes go to a temporary file that then replaces the old one, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import paths
from app.core.common import settings_file
from app.core.common.errors import UserFacingError

log = logging.getLogger(__name__)

FILE_NAME = "system-prompts.json"
MAX_NAME_LENGTH = 64
MAX_PROMPT_LENGTH = 100_000

BUILTIN: dict[str, str] = {
    "Helpful assistant": "You are a helpful, honest assistant. Answer clearly and concisely.",
    "Concise": "Answer in as few words as possible. No preamble, no summary.",
    "Programmer": "You are an expert programmer. Give working code in fenced code blocks with the "
                  "language named, and explain only what is not obvious.",
    "Translator": "Translate the user's text into English, keeping its tone. Reply with the "
                  "translation only.",
}


def _check_file(document: Any) -> dict[str, str]:
    """The user's prompts in the file's document: {"prompts": {name: text}}; DamagedSettings if not."""
    if not isinstance(document, dict):
        raise settings_file.DamagedSettings("it does not hold an object")
    prompts = document.get("prompts", {})
    if not isinstance(prompts, dict):
        raise settings_file.DamagedSettings("“prompts” is not a set of names and texts")
    for name, text in prompts.items():
        if not isinstance(text, str):
            raise settings_file.DamagedSettings(f"the prompt “{name[:40]}” is not text")
        if not name.strip() or len(name) > MAX_NAME_LENGTH or len(text) > MAX_PROMPT_LENGTH:
            raise settings_file.DamagedSettings(f"the prompt “{name[:40]}” is too long or has no name")
    return prompts


KIND = settings_file.SettingsKind(name=FILE_NAME, what="Your saved system prompts", check=_check_file,
                                  fallback="Llamadesk started with the built-in ones")


class SystemPromptError(UserFacingError):
    """A saved prompt that cannot be stored as asked; `.message` says why."""


@dataclass(frozen=True)
class SavedPrompt:
    name: str
    text: str
    builtin: bool


class SystemPromptStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / FILE_NAME

    def _user_prompts(self) -> dict[str, str]:
        """The user's prompts; a damaged file is set aside (and the user told) by the settings policy."""
        return settings_file.load(KIND, self.path, dict)

    def all(self) -> list[SavedPrompt]:
        """Built-in prompts first, then the user's in name order."""
        user = self._user_prompts()
        return [SavedPrompt(n, t, True) for n, t in BUILTIN.items()] + \
               [SavedPrompt(n, user[n], False) for n in sorted(user, key=str.casefold)]

    def save(self, name: str, text: str) -> str:
        """Save (or replace) a user prompt; the name as stored."""
        name = " ".join(str(name).split())
        if not 1 <= len(name) <= MAX_NAME_LENGTH:
            raise SystemPromptError(f"A prompt name must be 1 to {MAX_NAME_LENGTH} characters long.")
        if name.casefold() in {n.casefold() for n in BUILTIN}:
            raise SystemPromptError(f"“{name}” is a built-in prompt; choose another name.")
        if not text.strip():
            raise SystemPromptError("An empty system prompt cannot be saved.")
        if len(text) > MAX_PROMPT_LENGTH:
            raise SystemPromptError(f"A system prompt can be at most {MAX_PROMPT_LENGTH:,} characters.")
        prompts = self._user_prompts()
        prompts[name] = text
        self._write(prompts)
        return name

    def delete(self, name: str) -> None:
        if name in BUILTIN:
            raise SystemPromptError(f"“{name}” is built in and cannot be deleted.")
        prompts = self._user_prompts()
        if prompts.pop(name, None) is not None:
            self._write(prompts)

    def _write(self, prompts: dict[str, str]) -> None:
        try:
            text = json.dumps({"prompts": prompts}, ensure_ascii=False, indent=1)
            settings_file.save(KIND, self.path, text)
        except OSError as error:
            raise SystemPromptError(f"Could not save the prompts: {error.strerror or error}.") from error
