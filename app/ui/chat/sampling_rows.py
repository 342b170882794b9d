"""The sampling panel's editing widgets: slider rows, the seed row, stop strings as text."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QSlider,
    QSpinBox,
    QWidget,
)

from app.core.chat.sampling import MAX_SEED, RANGES


class RowSpec:
    """How one numeric parameter is shown: its label, decimals, step and slider maximum."""

    def __init__(self, label: str, decimals: int, step: float, slider_max: float | None = None) -> None:
        self.label, self.decimals, self.step, self.slider_max = label, decimals, step, slider_max


# Every numeric SamplingParams field with a slider, by section, in display order.
SECTIONS: dict[str, dict[str, RowSpec]] = {
    "Sampling": {
        "temperature": RowSpec("Temperature", 2, 0.05),
        "top_k": RowSpec("Top-k", 0, 1),
        "top_p": RowSpec("Top-p", 2, 0.01),
        "min_p": RowSpec("Min-p", 2, 0.01),
        "typical_p": RowSpec("Typical-p", 2, 0.01),
    },
    "Penalties": {
        "repeat_penalty": RowSpec("Repeat penalty", 2, 0.01),
        "repeat_last_n": RowSpec("Window (tokens)", 0, 16, 1024),
        "presence_penalty": RowSpec("Presence penalty", 2, 0.05),
        "frequency_penalty": RowSpec("Frequency penalty", 2, 0.05),
    },
    "Mirostat": {
        "mirostat_tau": RowSpec("Tau (target)", 2, 0.1),
        "mirostat_eta": RowSpec("Eta (rate)", 2, 0.01),
    },
    "Answer": {
        "max_tokens": RowSpec("Max tokens", 0, 16, 4096),
    },
}

MIROSTAT_LABELS = ("Off", "Mirostat 1", "Mirostat 2")


class SliderRow(QWidget):
    """A slider and a spin box showing one value; the spin box takes any value in range.

    The slider may cover less than the range (max_tokens): it then stops at its end.
    """

    edited = Signal(object)

    def __init__(self, name: str, spec: RowSpec) -> None:
        super().__init__()
        rng = RANGES[name]
        self._scale = 10**spec.decimals
        self._integer = not spec.decimals
        if spec.decimals:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(spec.decimals)
        else:
            self.spin = QSpinBox()
        self.spin.setObjectName(name)
        self.spin.setRange(rng.low, rng.high)
        self.spin.setSingleStep(spec.step)
        self.spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.spin.setFixedWidth(64)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.spin.setKeyboardTracking(False)  # typing "0.35" gives one value, not 0 then 0.3 then 0.35
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(rng.low * self._scale), round((spec.slider_max or rng.high) * self._scale))
        self.slider.setSingleStep(max(1, round(spec.step * self._scale)))
        self.slider.setPageStep(max(1, round(spec.step * self._scale * 10)))
        self.setToolTip(rng.help)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def value(self) -> int | float:
        return int(self.spin.value()) if self._integer else self.spin.value()

    def set_value(self, value: float) -> None:
        for w in (self.spin, self.slider):
            w.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(round(value * self._scale))
        for w in (self.spin, self.slider):
            w.blockSignals(False)

    def _from_slider(self, position: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(position / self._scale)
        self.spin.blockSignals(False)
        self.edited.emit(self.value())

    def _from_spin(self, value: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(value * self._scale))
        self.slider.blockSignals(False)
        self.edited.emit(self.value())


class SeedRow(QWidget):
    """A "Random" check box and a spin box for a fixed seed; `edited` carries None or the seed."""

    edited = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.random = QCheckBox("Random")
        self.random.setObjectName("seedRandom")
        self.spin = QSpinBox()
        self.spin.setObjectName("seed")
        self.spin.setRange(0, MAX_SEED)
        self.spin.setKeyboardTracking(False)
        self.spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.setToolTip(RANGES["seed"].help)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.random)
        layout.addWidget(self.spin, 1)
        self.random.toggled.connect(self._changed)
        self.spin.valueChanged.connect(self._changed)

    def value(self) -> int | None:
        return None if self.random.isChecked() else self.spin.value()

    def set_value(self, seed: int | None) -> None:
        for w in (self.random, self.spin):
            w.blockSignals(True)
        self.random.setChecked(seed is None)
        if seed is not None:
            self.spin.setValue(seed)
        self.spin.setEnabled(seed is not None)
        for w in (self.random, self.spin):
            w.blockSignals(False)

    def _changed(self, *_args: object) -> None:
        self.spin.setEnabled(not self.random.isChecked())
        self.edited.emit(self.value())


# Stop strings as one line of text: separated by commas or line breaks, spaces around each ignored.
# Escapes: \n line break, \r carriage return, \t tab, \, comma, \s space (kept at either end), \\ backslash.
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", ",": ",", "s": " ", "\\": "\\"}


def parse_stops(text: str) -> tuple[str, ...]:
    """The stop strings a line of text holds (empty items, e.g. after a trailing comma, are skipped)."""
    items: list[str] = []
    chars: list[tuple[str, bool]] = []  # (character, escaped)

    def finish() -> None:
        while chars and not chars[0][1] and chars[0][0] in " \t":
            chars.pop(0)
        while chars and not chars[-1][1] and chars[-1][0] in " \t":
            chars.pop()
        if chars:
            items.append("".join(c for c, _ in chars))
        chars.clear()

    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            chars.append((_ESCAPES[text[i + 1]], True))
            i += 2
            continue
        if c in ",\n\r":
            finish()
        else:
            chars.append((c, False))
        i += 1
    finish()
    return tuple(items)


def format_stops(stops: tuple[str, ...]) -> str:
    """The text parse_stops reads back as `stops`."""
    def escape(stop: str) -> str:
        text = (stop.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
                .replace("\t", "\\t").replace(",", "\\,"))
        stripped = text.lstrip(" ")
        text = "\\s" * (len(text) - len(stripped)) + stripped
        stripped = text.rstrip(" ")
        return stripped + "\\s" * (len(text) - len(stripped))
    return ", ".join(escape(s) for s in stops)
