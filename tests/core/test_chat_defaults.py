"""Defaults for new chats: saved as JSON; a damaged file gives the built-in defaults and a notice."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.chat.defaults import ChatDefaults, DefaultsError, DefaultsStore
from app.core.chat.sampling import SamplingParams
from app.core.common import settings_file


def test_saved_defaults_are_read_back(tmp_path: Path) -> None:
    store = DefaultsStore(tmp_path / "chat-defaults.json")
    assert store.load() == ChatDefaults()  # none saved: the built-in ones
    saved = ChatDefaults("Answer in French.", SamplingParams(temperature=0.3, stop=("END",), seed=4))
    store.save(saved)
    assert DefaultsStore(tmp_path / "chat-defaults.json").load() == saved


@pytest.mark.parametrize("content", [b'{"sampling": {"temperature": 9}}', b'{"system_prompt": 3}',
                                     b'["not", "an", "object"]', b'{"sampling": '])
def test_a_damaged_file_gives_the_built_in_defaults_and_a_notice(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "chat-defaults.json"
    path.write_bytes(content)
    assert DefaultsStore(path).load() == ChatDefaults()
    [notice] = settings_file.take_notices()
    assert notice.startswith(f"Your defaults for new chats in {path} could not be read")
    assert "kept as chat-defaults.json.bad and new chats start from the built-in defaults" in notice
    assert (tmp_path / "chat-defaults.json.bad").read_bytes() == content


def test_a_save_that_fails_says_why(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(DefaultsError, match="could not be saved"):
        DefaultsStore(blocked / "chat-defaults.json").save(ChatDefaults())
