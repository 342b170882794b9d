"""`python -m app --self-test`: the real window, driven as a user would drive it.

The smoke test of every build: load the model through the worker, type a prompt into the
composer, press Enter, wait for the streamed answer in the chat view, print one JSON line.
"""

from __future__ import annotations

import asyncio
import json

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.ui.main_window import MainWindow

PROMPT = "Say hello in five words."


class SelfTestError(Exception):
    pass


class _FirstEmission:
    """A future for whichever of some signals fires first; created before the work starts."""

    def __init__(self, **signals) -> None:
        self.future: asyncio.Future = asyncio.get_event_loop().create_future()
        for name, signal in signals.items():
            signal.connect(lambda *args, name=name: self._fire(name, args))

    def _fire(self, name: str, args: tuple) -> None:
        if not self.future.done():
            self.future.set_result((name, args))

    async def wait(self, timeout_s: float) -> tuple[str, tuple]:
        try:
            return await asyncio.wait_for(self.future, timeout_s)
        except TimeoutError:
            raise SelfTestError(f"nothing happened within {timeout_s:.0f} s") from None


class SelfTest:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self._load = _FirstEmission(loaded=window.model_session.loaded, error=window.model_session.failed)

    async def run(self, timeout_s: float) -> int:
        try:
            result = await self._run(timeout_s)
        except SelfTestError as error:
            print(f"self-test failed: {error}", flush=True)
            return 1
        print(json.dumps(result), flush=True)
        return 0

    async def _run(self, timeout_s: float) -> dict:
        window, c = self.window, self.window.chat
        event, args = await self._load.wait(timeout_s)
        if event == "error":
            raise SelfTestError(f"the model did not load: {args[0]}")
        info = args[0]
        answer = _FirstEmission(finished=c.answer_finished, error=c.error)
        window.composer.setFocus()
        window.composer.setPlainText(PROMPT)
        QTest.keyClick(window.composer, Qt.Key.Key_Return)
        if not c.generating:
            raise SelfTestError("pressing Enter in the composer did not send the message")
        event, args = await answer.wait(timeout_s)
        if event == "error":
            raise SelfTestError(f"the answer failed: {args[0]}")
        stats = args[0]
        text = window.chat_view.last_message_text()
        if not text.strip():
            raise SelfTestError("the answer shown in the chat view is empty")
        return {
            "model": info.name,
            "backend": info.backend,
            "gpu_layers": info.gpu_layers,
            "prompt_tokens": stats.prompt_tokens,
            "completion_tokens": stats.completion_tokens,
            "ttft_s": round(stats.ttft_s, 4),
            "tokens_per_s": round(stats.tokens_per_s, 2),
            "text": text,
        }
