"""What a new chat starts from: the user's default system prompt and sampling, kept as JSON.

A chat carries its own system prompt and sampling; these are the values a new one begins with,
changed only when the user says "save as default" (never by editing the chat that is open). A
damaged file is set aside and the built-in defaults are used (app/core/common/settings_file.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import paths
from app.core.chat.sampling import SamplingParams
from app.core.chat.system_prompts import MAX_PROMPT_LENGTH
from app.core.common import settings_file
from app.core.common.errors import UserFacingError

FILE_NAME = "chat-defaults.json"


@dataclass(frozen=True)
class ChatDefaults:
    system_prompt: str = ""
    sampling: SamplingParams = field(default_factory=SamplingParams)


def _check_file(document: Any) -> ChatDefaults:
    """{"system_prompt": text, "sampling": {name: value}}; DamagedSettings (or ValueError) if not."""
    if not isinstance(document, dict):
        raise settings_file.DamagedSettings("it does not hold an object")
    prompt = document.get("system_prompt", "")
    if not isinstance(prompt, str) or len(prompt) > MAX_PROMPT_LENGTH:
        raise settings_file.DamagedSettings("“system_prompt” is not a text of at most "
                                            f"{MAX_PROMPT_LENGTH:,} characters")
    sampling = document.get("sampling", {})
    if not isinstance(sampling, dict):
        raise settings_file.DamagedSettings("“sampling” is not a set of names and values")
    return ChatDefaults(prompt, SamplingParams.from_dict(sampling))  # a value out of range: ValueError


KIND = settings_file.SettingsKind(name=FILE_NAME, what="Your defaults for new chats", check=_check_file,
                                  fallback="new chats start from the built-in defaults")


class DefaultsError(UserFacingError):
    """The defaults could not be saved; `.message` says why."""


class DefaultsStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / FILE_NAME

    def load(self) -> ChatDefaults:
        """The saved defaults; the built-in ones when there are none or the file is damaged."""
        return settings_file.load(KIND, self.path, ChatDefaults)

    def save(self, defaults: ChatDefaults) -> None:
        text = json.dumps({"system_prompt": defaults.system_prompt, "sampling": defaults.sampling.to_dict()},
                          ensure_ascii=False, indent=1)
        try:
            settings_file.save(KIND, self.path, text)
        except OSError as error:
            raise DefaultsError(f"Your defaults for new chats could not be saved: "
                                f"{error.strerror or error}.") from error
