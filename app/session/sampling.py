"""The sampling parameters of the chat being shown, as an observable object."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.core.chat.sampling import SamplingParams


class SamplingSettings(QObject):
    """An observable SamplingParams: the sliders edit it, the chat session saves it with its chat."""

    changed = Signal(object)  # SamplingParams

    def __init__(self, params: SamplingParams = SamplingParams(), parent=None) -> None:
        super().__init__(parent)
        self._params = params

    @property
    def params(self) -> SamplingParams:
        return self._params

    def set_params(self, params: SamplingParams) -> None:
        if params != self._params:
            self._params = params
            self.changed.emit(params)

    def update(self, **changes: object) -> None:
        self.set_params(self._params.replace(**changes))
