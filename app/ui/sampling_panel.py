"""The sampling settings panel: sliders paired with exact numeric fields.

The panel edits a SamplingSettings model; it does not own the values. Whoever holds the model
(the chat controller) swaps in another conversation's settings and the panel follows.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.sampling import RANGES, SamplingParams


class SamplingSettings(QObject):
    """An observable SamplingParams."""

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


# name: (label, decimals, step, slider maximum (None: the range's own))
_ROWS = {
    "temperature": ("Temperature", 2, 0.05, None),
    "top_p": ("Top-p", 2, 0.01, None),
    "top_k": ("Top-k", 0, 1, None),
    "max_tokens": ("Max tokens", 0, 16, 4096),
}


class _SliderRow(QWidget):
    """A slider and a spin box showing one value; the spin box takes any value in range."""

    edited = Signal(object)

    def __init__(self, name: str, decimals: int, step: float, slider_max: float | None) -> None:
        super().__init__()
        rng = RANGES[name]
        self._scale = 10**decimals
        if decimals:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(decimals)
        else:
            self.spin = QSpinBox()
        self.spin.setObjectName(name)
        self.spin.setRange(rng.low, rng.high)
        self.spin.setSingleStep(step)
        self.spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.spin.setFixedWidth(64)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(rng.low * self._scale), int((slider_max or rng.high) * self._scale))
        self.slider.setSingleStep(int(step * self._scale))
        self.setToolTip(rng.help)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)
        self._integer = not decimals

    def set_value(self, value: float) -> None:
        for w in (self.spin, self.slider):
            w.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(int(round(value * self._scale)))
        for w in (self.spin, self.slider):
            w.blockSignals(False)

    def _from_slider(self, position: int) -> None:
        value = position / self._scale
        self.spin.blockSignals(True)
        self.spin.setValue(value)
        self.spin.blockSignals(False)
        self.edited.emit(int(value) if self._integer else value)

    def _from_spin(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(value * self._scale)))
        self.slider.blockSignals(False)
        self.edited.emit(int(value) if self._integer else value)


class SamplingPanel(QWidget):
    def __init__(self, settings: SamplingSettings, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("samplingPanel")
        self._settings = settings
        box = QGroupBox("Sampling")
        form = QFormLayout(box)
        self.rows: dict[str, _SliderRow] = {}
        for name, (label, decimals, step, slider_max) in _ROWS.items():
            row = _SliderRow(name, decimals, step, slider_max)
            row.edited.connect(lambda value, name=name: self._settings.update(**{name: value}))
            caption = QLabel(label)
            caption.setToolTip(RANGES[name].help)
            form.addRow(caption, row)
            self.rows[name] = row
        self.reset_button = reset = QPushButton("Reset to defaults")
        reset.clicked.connect(lambda: self._settings.set_params(SamplingParams()))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 6, 6)
        layout.addWidget(box)
        layout.addWidget(reset)
        layout.addStretch(1)
        settings.changed.connect(self._show)
        self._show(settings.params)

    def _show(self, params: SamplingParams) -> None:
        for name, row in self.rows.items():
            row.set_value(getattr(params, name))
