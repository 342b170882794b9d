"""The sampling settings panel: presets, sliders paired with exact numeric fields, seed, stop strings.

The panel edits a SamplingSettings model; it does not own the values. Whoever holds the model
(the chat session) swaps in another conversation's settings and the panel follows.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.presets import Preset, PresetError, PresetStore
from app.core.chat.sampling import MAX_STOP_LENGTH, MAX_STOPS, RANGES, SamplingParams
from app.session.chat_defaults import ChatDefaultsSession
from app.session.sampling import SamplingSettings
from app.ui.chat.defaults_buttons import DefaultsButtons
from app.ui.chat.engine_fields import EngineFields
from app.ui.chat.sampling_rows import (
    MIROSTAT_LABELS,
    SECTIONS,
    MaxTokensRow,
    SeedRow,
    SliderRow,
    format_stops,
    parse_stops,
)
from app.ui.shell.theme import colors_of

_JSON_FILTER = "Sampling presets (*.json);;All files (*)"


def _hint() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.hide()
    return label


def _show_hint(label: QLabel, text: str, error: bool = True) -> None:
    label.setText(text)
    label.setProperty("error", error)
    _color_hint(label)
    label.setVisible(bool(text))


def _color_hint(label: QLabel) -> None:
    """In the theme's colours (a palette, not a style sheet: it follows a theme switch)."""
    colors = colors_of(QApplication.palette())
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.WindowText,
                     QColor(colors.error if label.property("error") else colors.muted))
    label.setPalette(palette)


class SamplingPanel(QWidget):
    """`rows` holds a SliderRow per numeric parameter, by SamplingParams field name."""

    presets_changed = Signal()  # a preset was saved, renamed, deleted or imported

    def __init__(self, settings: SamplingSettings, parent=None, presets: PresetStore | None = None,
                 defaults: ChatDefaultsSession | None = None) -> None:
        """defaults: what new chats start from (None: the built-in values, and no "save as default")."""
        super().__init__(parent)
        self.setObjectName("samplingPanel")
        self._settings = settings
        self._store = presets if presets is not None else PresetStore()
        self._presets: list[Preset] = []
        self._shown_stop: tuple[str, ...] | None = None
        self.rows: dict[str, SliderRow] = {}
        self._parts: dict[str, list[QWidget]] = {}  # each field's caption, editor and note

        content = QWidget()
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 4, 0)
        column.addWidget(self._build_presets())
        for title, specs in SECTIONS.items():
            box = QGroupBox(title)
            form = QFormLayout(box)
            if title == "Mirostat":
                self._add_mirostat(form)
            for name, spec in specs.items():
                row = MaxTokensRow(name, spec) if name == "max_tokens" else SliderRow(name, spec)
                row.edited.connect(lambda value, name=name: self._settings.update(**{name: value}))
                self._add_row(form, name, spec.label, row)
                form.addRow(row.note)
                self.rows[name] = row
            if title == "Answer":
                self._add_seed_and_stops(form)
            column.addWidget(box)
        self.defaults_buttons = DefaultsButtons(
            defaults, lambda: defaults and defaults.save_sampling(self._settings.params),
            lambda: self._settings.set_params(defaults.values.sampling if defaults else SamplingParams()),
            "these sampling settings")
        self.reset_button = self.defaults_buttons.reset_button
        column.addWidget(self.defaults_buttons)
        column.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        # Wide enough for every field beside the scroll bar: nothing is hidden under it.
        bar_width = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(content.minimumSizeHint().width() + bar_width)
        self.scroll_area = scroll
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 6, 2, 6)
        layout.addWidget(scroll)

        for widget in content.findChildren(QAbstractSlider) + content.findChildren(QAbstractSpinBox) + \
                content.findChildren(QComboBox):
            widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not WheelFocus: see eventFilter
            widget.installEventFilter(self)
        self.engine_fields = EngineFields(self._parts)  # greys out what the chat's engine ignores
        self._reload_presets()
        settings.changed.connect(self._show)
        self._show(settings.params)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            for hint in (self.preset_hint, self.stop_hint):
                _color_hint(hint)  # the theme changed: keep the hints readable

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The wheel scrolls the panel, and changes a value only in the field that has the focus."""
        if event.type() == QEvent.Type.Wheel and isinstance(watched, QWidget) and not watched.hasFocus():
            QCoreApplication.sendEvent(self.scroll_area.verticalScrollBar(), event)
            return True
        return super().eventFilter(watched, event)

    # -- construction ----------------------------------------------------------------------------

    def _add_row(self, form: QFormLayout, name: str, label: str, widget: QWidget) -> None:
        caption = QLabel(label)
        caption.setToolTip(widget.toolTip())
        form.addRow(caption, widget)
        self._parts[name] = [caption, widget] + ([widget.note] if hasattr(widget, "note") else [])

    def _build_presets(self) -> QGroupBox:
        box = QGroupBox("Preset")
        grid = QGridLayout(box)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setPlaceholderText("Custom")
        self.preset_combo.setToolTip("Choose a preset to set every parameter at once.")
        self.preset_combo.activated.connect(self._on_preset_activated)
        self.save_preset_button = QPushButton("Save as…")
        self.rename_preset_button = QPushButton("Rename")
        self.delete_preset_button = QPushButton("Delete")
        self.import_presets_button = QPushButton("Import…")
        self.export_presets_button = QPushButton("Export…")
        self.save_preset_button.setToolTip("Keep the current settings as a preset of your own.")
        self.export_presets_button.setToolTip("Write your own presets to a file.")
        self.import_presets_button.setToolTip("Add the presets in a file. One whose name you use already "
                                              "is added under a new name, such as “Fast (2)”.")
        self.save_preset_button.clicked.connect(self.save_preset_as)
        self.rename_preset_button.clicked.connect(self.rename_preset)
        self.delete_preset_button.clicked.connect(self.delete_preset)
        self.import_presets_button.clicked.connect(self.import_presets)
        self.export_presets_button.clicked.connect(self.export_presets)
        self.preset_hint = _hint()
        self.preset_hint.setObjectName("presetHint")
        grid.addWidget(self.preset_combo, 0, 0, 1, 3)
        grid.addWidget(self.save_preset_button, 1, 0)
        grid.addWidget(self.rename_preset_button, 1, 1)
        grid.addWidget(self.delete_preset_button, 1, 2)
        grid.addWidget(self.import_presets_button, 2, 0)
        grid.addWidget(self.export_presets_button, 2, 1)
        grid.addWidget(self.preset_hint, 3, 0, 1, 3)
        return box

    def _add_mirostat(self, form: QFormLayout) -> None:
        self.mirostat_combo = QComboBox()
        self.mirostat_combo.setObjectName("mirostat")
        for mode, label in enumerate(MIROSTAT_LABELS):
            self.mirostat_combo.addItem(label, mode)
        self.mirostat_combo.setToolTip(RANGES["mirostat"].help)
        self.mirostat_combo.currentIndexChanged.connect(
            lambda index: self._settings.update(mirostat=self.mirostat_combo.itemData(index)))
        self._add_row(form, "mirostat", "Mode", self.mirostat_combo)

    def _add_seed_and_stops(self, form: QFormLayout) -> None:
        self.seed_row = SeedRow()
        self.seed_row.edited.connect(lambda seed: self._settings.update(seed=seed))
        self._add_row(form, "seed", "Seed", self.seed_row)
        form.addRow(self.seed_row.note)
        self.stop_edit = QLineEdit()
        self.stop_edit.setObjectName("stop")
        self.stop_edit.setPlaceholderText("e.g. User:, \\n\\n")
        self.stop_edit.setToolTip(
            f"The answer ends before any of these strings (up to {MAX_STOPS}, each 1 to {MAX_STOP_LENGTH} "
            "characters), besides the model's own. Separate them with commas or line breaks; "
            "write \\n for a line break, \\, for a comma, \\s for a space at either end.")
        self.stop_edit.textEdited.connect(self._check_stops)  # a hint while typing,
        self.stop_edit.editingFinished.connect(self._apply_stops)  # the model on Enter or leaving the field
        self.stop_hint = _hint()
        self.stop_hint.setObjectName("stopHint")
        holder = QWidget()
        holder.setToolTip(self.stop_edit.toolTip())
        box = QVBoxLayout(holder)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.stop_edit)
        box.addWidget(self.stop_hint)
        self._add_row(form, "stop", "Stop at", holder)

    def clear_hints(self) -> None:
        """Another chat is shown: what was said about the last one's presets or stops goes."""
        _show_hint(self.preset_hint, "")
        _show_hint(self.stop_hint, "")
        self.defaults_buttons.say("")

    # -- model -> widgets ------------------------------------------------------------------------

    def _show(self, params: SamplingParams) -> None:
        for name, row in self.rows.items():
            row.set_value(getattr(params, name))
        self.mirostat_combo.blockSignals(True)
        self.mirostat_combo.setCurrentIndex(self.mirostat_combo.findData(params.mirostat))
        self.mirostat_combo.blockSignals(False)
        for name in ("mirostat_tau", "mirostat_eta"):
            self.engine_fields.enable(name, params.mirostat != 0)
        self.seed_row.set_value(params.seed)
        if params.stop != self._shown_stop:  # keep what the user is typing while other values change
            self._shown_stop = params.stop
            self.stop_edit.setText(format_stops(params.stop))
            _show_hint(self.stop_hint, "")
        self._select_matching_preset(params)

    def _select_matching_preset(self, params: SamplingParams) -> None:
        current = self.current_preset()
        if current is not None and current.params == params:
            name = current.name  # e.g. a user preset equal to Balanced stays selected
        else:
            name = next((p.name for p in self._presets if p.params == params), None)
        self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentIndex(-1 if name is None else self.preset_combo.findData(name))
        self.preset_combo.blockSignals(False)
        selected = self.current_preset()
        user = selected is not None and not selected.builtin
        self.rename_preset_button.setEnabled(user)
        self.delete_preset_button.setEnabled(user)

    # -- widgets -> model ------------------------------------------------------------------------

    def _check_stops(self, text: str) -> SamplingParams | None:
        """The settings with these stop strings, or None after showing why they cannot be."""
        try:
            params = self._settings.params.replace(stop=parse_stops(text))
        except ValueError as error:
            _show_hint(self.stop_hint, str(error))
            return None
        _show_hint(self.stop_hint, "")
        return params

    def _apply_stops(self) -> None:
        params = self._check_stops(self.stop_edit.text())
        if params is not None:
            self._shown_stop = params.stop
            self._settings.set_params(params)

    # -- presets ---------------------------------------------------------------------------------

    def current_preset(self) -> Preset | None:
        name = self.preset_combo.currentData()
        return next((p for p in self._presets if p.name == name), None)

    def apply_preset(self, name: str) -> None:
        preset = next((p for p in self._presets if p.name == name), None)
        if preset is None:
            _show_hint(self.preset_hint, f"There is no preset named “{name}”.")
            return
        _show_hint(self.preset_hint, "")
        self._settings.set_params(preset.params)
        self._select_matching_preset(preset.params)  # even when the values did not change

    def _on_preset_activated(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if name is not None:
            self.apply_preset(name)

    def _reload_presets(self, select: str | None = None) -> None:
        self._presets = self._store.presets()
        combo = self.preset_combo
        combo.blockSignals(True)
        combo.clear()
        for i, preset in enumerate(self._presets):
            if i and not preset.builtin and self._presets[i - 1].builtin:
                combo.insertSeparator(combo.count())  # built-ins above, the user's own below
            combo.addItem(preset.name, preset.name)
        if select is not None:
            combo.setCurrentIndex(combo.findData(select))
        combo.blockSignals(False)
        self._select_matching_preset(self._settings.params)

    def _changed_presets(self, select: str | None, message: str = "") -> None:
        self._reload_presets(select)
        _show_hint(self.preset_hint, message, error=False)
        self.presets_changed.emit()

    def save_preset_as(self) -> None:
        current = self.current_preset()
        suggestion = current.name if current is not None and not current.builtin else ""
        name, ok = QInputDialog.getText(self, "Save preset", "Name for the current settings:",
                                        QLineEdit.EchoMode.Normal, suggestion)
        if not ok or not name.strip():
            return
        exists = any(p.name == name.strip() and not p.builtin for p in self._presets)
        if exists and QMessageBox.question(
                self, "Replace preset", f"Replace the preset “{name.strip()}” with the current settings?"
        ) != QMessageBox.StandardButton.Yes:
            return
        try:
            saved = self._store.save(name, self._settings.params)
        except PresetError as error:
            _show_hint(self.preset_hint, error.message)
            return
        self._changed_presets(saved)

    def rename_preset(self) -> None:
        current = self.current_preset()
        if current is None or current.builtin:
            return
        name, ok = QInputDialog.getText(self, "Rename preset", "New name:", QLineEdit.EchoMode.Normal,
                                        current.name)
        if not ok or not name.strip() or name.strip() == current.name:
            return
        try:
            renamed = self._store.rename(current.name, name)
        except PresetError as error:
            _show_hint(self.preset_hint, error.message)
            return
        self._changed_presets(renamed)

    def delete_preset(self) -> None:
        current = self.current_preset()
        if current is None or current.builtin:
            return
        if QMessageBox.question(
                self, "Delete preset", f"Delete the preset “{current.name}”? This cannot be undone; the "
                "current settings stay as they are."
        ) != QMessageBox.StandardButton.Yes:
            return
        try:
            self._store.delete(current.name)
        except PresetError as error:
            _show_hint(self.preset_hint, error.message)
            return
        self._changed_presets(None, f"Deleted “{current.name}”. The current settings are unchanged.")

    def import_presets(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import presets", "", _JSON_FILTER)
        if not path:
            return
        try:
            result = self._store.import_(Path(path))
        except PresetError as error:
            _show_hint(self.preset_hint, error.message)
            return
        self._changed_presets(None, result.summary(Path(path).name))

    def export_presets(self) -> None:
        if all(p.builtin for p in self._store.presets()):
            _show_hint(self.preset_hint, "There are no presets of your own to export: use Save as… first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export presets", "sampling-presets.json", _JSON_FILTER)
        if not path:
            return
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".json")
        try:
            count = self._store.export(target)
        except PresetError as error:
            _show_hint(self.preset_hint, error.message)
            return
        _show_hint(self.preset_hint, f"Exported {count} preset{'s' if count != 1 else ''} to {target.name}.",
                   error=False)
