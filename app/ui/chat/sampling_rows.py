"""The sampling panel's editing widgets: slider rows (max tokens' with no limit), the seed row,
stop strings as text."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.sampling import MAX_SEED, RANGES, UNTIL_FULL, SamplingParams
from app.ui.shell.theme import colors_of

_ANY = 999_999_999  # the fields' own range: anything typed reaches the row's check


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


def number_text(value: float, integer: bool) -> str:
    return f"{int(value):,}" if integer else f"{value:g}"


def note_label(name: str) -> QLabel:
    """The small line under a field: its range, or what was done with the value typed."""
    note = QLabel()
    note.setObjectName(f"{name}Note")
    note.setWordWrap(True)
    font = note.font()
    font.setPointSizeF(font.pointSizeF() * 0.85)
    note.setFont(font)
    return note


def paint_note(note: QLabel, problem: str, range_text: str) -> None:
    """The range, muted; or the problem, in the theme's error colour (a palette, not a style sheet,
    so that it can follow a theme switch)."""
    colors = colors_of(QApplication.palette())
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.WindowText, QColor(colors.error if problem else colors.muted))
    note.setPalette(palette)
    note.setText(problem or range_text)
    note.setAlignment(Qt.AlignmentFlag.AlignLeft if problem else Qt.AlignmentFlag.AlignRight)


class SliderRow(QWidget):
    """A slider and a field showing one value, and a `note` (the panel puts it under them, as wide as
    the form) saying the range, or what was done with the last value typed.

    The field takes any number typed; one out of range is set to the nearest end and the note says
    so, instead of the field silently dropping a minus sign or a digit. The slider may cover less
    than the range (max_tokens): it then stops at its end.
    """

    edited = Signal(object)

    def __init__(self, name: str, spec: RowSpec, low: float | None = None) -> None:
        super().__init__()
        rng = RANGES[name]
        self._scale = 10**spec.decimals
        self._integer = not spec.decimals
        self.low = rng.low if low is None else low
        self.high = rng.high
        if spec.decimals:
            self.spin = QDoubleSpinBox()
            self.spin.setDecimals(spec.decimals)
        else:
            self.spin = QSpinBox()
        self.spin.setObjectName(name)
        self.spin.setRange(-_ANY, _ANY)  # what is typed arrives whole; _check says what is done with it
        self.spin.setSingleStep(spec.step)
        self.spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.spin.setFixedWidth(64)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.spin.setKeyboardTracking(False)  # typing "0.35" gives one value, not 0 then 0.3 then 0.35
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(self.low * self._scale),
                             round((spec.slider_max or rng.high) * self._scale))
        self.slider.setSingleStep(max(1, round(spec.step * self._scale)))
        self.slider.setPageStep(max(1, round(spec.step * self._scale * 10)))
        self.range_text = f"{self._text(self.low)} to {self._text(self.high)}"
        self.setToolTip(f"{rng.help} From {self.range_text}.")
        self.note = note_label(name)
        self.problem = ""  # what the note says was done with the last value typed, if anything
        self.column = QVBoxLayout(self)
        self.column.setContentsMargins(0, 0, 0, 0)
        self.column.setSpacing(0)
        line = QHBoxLayout()
        line.addWidget(self.slider, 1)
        line.addWidget(self.spin)
        self.column.addLayout(line)
        self._show_note("")
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def value(self) -> int | float:
        return int(self.spin.value()) if self._integer else self.spin.value()

    def set_value(self, value: float) -> None:
        if value != self.value():
            self._show_note("")  # another chat's settings: an old note no longer applies
        for w in (self.spin, self.slider):
            w.blockSignals(True)
        self.spin.setValue(value)
        self.slider.setValue(round(value * self._scale))
        for w in (self.spin, self.slider):
            w.blockSignals(False)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            self._show_note(self.problem)  # the note's colour follows the theme

    def _text(self, value: float) -> str:
        return number_text(value, self._integer)

    def _show_note(self, problem: str) -> None:
        """Under the field: the range, or (highlighted) what was done with a value out of it."""
        self.problem = problem
        paint_note(self.note, problem, self.range_text)

    def _check(self, value: float) -> tuple[float, str]:
        """The value to use for one typed, and what to tell the user when it is not the same."""
        if self.low <= value <= self.high:
            return value, ""
        used = min(max(value, self.low), self.high)
        side = "below" if value < self.low else "above"
        return used, f"{self._text(value)} is {side} {self._text(used)}: set to {self._text(used)}."

    def _from_slider(self, position: int) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(position / self._scale)
        self.spin.blockSignals(False)
        self._show_note("")
        self.edited.emit(self.value())

    def _from_spin(self, value: float) -> None:
        used, problem = self._check(int(value) if self._integer else value)
        if used != value:
            self.spin.blockSignals(True)
            self.spin.setValue(used)
            self.spin.blockSignals(False)
        self._show_note(problem)
        self.slider.blockSignals(True)
        self.slider.setValue(round(used * self._scale))
        self.slider.blockSignals(False)
        self.edited.emit(self.value())


class MaxTokensRow(SliderRow):
    """Max tokens, with "Until the context is full" (UNTIL_FULL): a limit of 1 and up, or none.

    0 or a negative number typed in the field means no limit too (llama.cpp's own -1), and says so.
    """

    def __init__(self, name: str, spec: RowSpec) -> None:
        super().__init__(name, spec, low=UNTIL_FULL + 1)
        self.until_full = QCheckBox("Until the context is full")
        self.until_full.setObjectName("untilFull")
        self.until_full.setToolTip("No limit of its own: the answer ends when the model ends it, at a "
                                   "stop string, or when the context is full.")
        self.setToolTip(f"{RANGES[name].help.split(';')[0]}: from {self.range_text}, or until the context "
                        "is full.")
        self.column.addWidget(self.until_full)
        self.until_full.toggled.connect(self._on_toggled)
        self._limit = SamplingParams().max_tokens  # the last limit, for when the box is unticked
        self.edited.connect(self._remember)

    def value(self) -> int:
        return UNTIL_FULL if self.until_full.isChecked() else int(self.spin.value())

    def set_value(self, value: float) -> None:
        unlimited = value <= UNTIL_FULL
        if not unlimited:
            super().set_value(value)
            self._limit = int(value)
        elif not self.until_full.isChecked():
            self._show_note("")
        self.until_full.blockSignals(True)
        self.until_full.setChecked(unlimited)
        self.until_full.blockSignals(False)
        self._enable()

    def _enable(self) -> None:
        for w in (self.spin, self.slider):
            w.setEnabled(not self.until_full.isChecked())

    def _remember(self, value: int) -> None:
        if value > UNTIL_FULL:
            self._limit = value

    def _on_toggled(self, checked: bool) -> None:
        if not checked:
            self.set_value(self._limit)
        self._enable()
        self._show_note("")
        self.edited.emit(self.value())

    def _from_spin(self, value: float) -> None:
        if value > UNTIL_FULL:
            super()._from_spin(value)
            return
        self.spin.blockSignals(True)
        self.spin.setValue(self._limit)  # kept for when the box is unticked
        self.spin.blockSignals(False)
        self.until_full.setChecked(True)  # emits `edited` (UNTIL_FULL)
        self._show_note(f"{int(value)} means no limit: the answer may run until the context is full.")


class SeedRow(QWidget):
    """A "Random" check box and a spin box for a fixed seed; `edited` carries None or the seed.
    A negative seed typed means random (llama.cpp's -1), and the `note` says so."""

    edited = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.random = QCheckBox("Random")
        self.random.setObjectName("seedRandom")
        self.spin = QSpinBox()
        self.spin.setObjectName("seed")
        self.spin.setRange(-_ANY, MAX_SEED)  # MAX_SEED is the most a QSpinBox holds
        self.spin.setKeyboardTracking(False)
        self.spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        self.spin.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.range_text = f"0 to {MAX_SEED:,}"
        self.setToolTip(f"{RANGES['seed'].help} From {self.range_text}.")
        self.note = note_label("seed")
        self.problem = ""
        paint_note(self.note, "", self.range_text)
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

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            paint_note(self.note, self.problem, self.range_text)

    def _changed(self, *_args: object) -> None:
        self.problem = ""
        if self.spin.value() < 0:
            self.problem = f"{self.spin.value()} means random: a new seed for every answer."
            for w in (self.random, self.spin):
                w.blockSignals(True)
            self.spin.setValue(0)
            self.random.setChecked(True)
            for w in (self.random, self.spin):
                w.blockSignals(False)
        paint_note(self.note, self.problem, self.range_text)
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
