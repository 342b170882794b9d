"""The sampling fields the shown chat's engine takes: the others are greyed out, their tooltip saying
which server ignores them ("Not taken by llama.cpp at gpu-box:8080"); the local engine takes all.

A field may be off for a reason of its own too (Mirostat's tau and eta while Mirostat is off): it is
on only while both allow it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.core.inference.types import ModelInfo


class EngineFields:
    def __init__(self, parts: dict[str, list[QWidget]]) -> None:
        """parts: each SamplingParams field's widgets (its caption, its editor, the note under it)."""
        self.parts = parts
        self._tips = {name: [w.toolTip() for w in widgets] for name, widgets in parts.items()}
        self._own: dict[str, bool] = {}  # fields off for a reason of their own
        self.untaken: frozenset[str] = frozenset()
        self._why = ""

    def show_engine(self, info: ModelInfo | None) -> None:
        """info: the engine answering the shown chat (None: not known yet, or the local engine's)."""
        fields = info.sampling_fields if info is not None else None
        self.untaken = frozenset() if fields is None else frozenset(self.parts) - fields
        self._why = f"Not taken by {info.backend}" if info is not None else ""
        for name in self.parts:
            self._apply(name)

    def enable(self, name: str, on: bool) -> None:
        """The field's own state (the engine may still grey it out)."""
        self._own[name] = on
        self._apply(name)

    def taken(self, name: str) -> bool:
        return name not in self.untaken

    def _apply(self, name: str) -> None:
        taken = self.taken(name)
        for widget, tip in zip(self.parts[name], self._tips[name], strict=True):
            widget.setEnabled(taken and self._own.get(name, True))
            widget.setToolTip(tip if taken else self._why)
