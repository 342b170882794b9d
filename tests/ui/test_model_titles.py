"""The model titles a chat after its first answer: the list and the window title follow."""

from __future__ import annotations

import pytest

from tests.ui.conftest import open_window, send


@pytest.mark.model_titles
def test_the_models_title_reaches_the_list_and_the_window_title(qtbot, model_path) -> None:
    window = open_window(qtbot)
    with qtbot.waitSignal(window.model_session.loaded, timeout=60_000):
        window.model_session.load(str(model_path))
    with qtbot.waitSignal(window.chat.retitled, timeout=120_000) as retitled:
        send(qtbot, window, "How does a lighthouse lens work?")
    conversation_id, title = retitled.args
    assert title and title != "How does a lighthouse lens work?"
    assert window.conversations.title_of(conversation_id) == title
    qtbot.waitUntil(lambda: window.windowTitle().startswith(title[:20]), timeout=5_000)
    window.close()
