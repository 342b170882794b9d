"""What the window remembers between runs: geometry, splitters and which side panels are shown, last
chat, theme, text size.

Kept in an ini file in the config folder (so LLAMADESK_HOME moves it too), through QSettings,
which stores Qt's geometry and splitter blobs as they are. Every value read is checked
(window_settings.window_value_problem): one that cannot be used falls back to its default, and the
file is first copied aside as window.ini.bad, with one notice for the window to show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from app import paths
from app.core.common import settings_file
from app.core.common.window_settings import (
    TEXT_SIZES,
    THEMES,
    WINDOW_FILE,
    WINDOW_KEYS,
    WINDOW_LABELS,
    window_value_problem,
)

__all__ = ["TEXT_SIZES", "THEMES", "Preferences", "step_text_size"]


class Preferences:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.config_dir() / WINDOW_FILE
        self._settings = self._open()
        self._drop_bad_values()

    def _open(self) -> QSettings:
        """QSettings on the file; one that is not a small regular INI file is set aside first."""
        problem = None
        try:
            settings_file.read_bytes(self.path, 1024 * 1024)  # a FIFO or a huge file must not hang us
        except settings_file.DamagedSettings as error:
            problem = str(error)
        except OSError:
            pass  # absent, or QSettings will say it cannot read it
        if problem is None:
            settings = QSettings(str(self.path), QSettings.Format.IniFormat)
            if settings.status() != QSettings.Status.FormatError:
                return settings
            problem = "it is not a valid settings file"
            del settings
        try:
            bad = settings_file.set_aside(self.path)
        except OSError as error:
            settings_file.note(f"Your window settings in {self.path} could not be read ({problem}) nor "
                               f"set aside ({error.strerror or error}); Llamadesk started with the default "
                               f"layout.")
        else:
            settings_file.note(f"Your window settings in {self.path} could not be read ({problem}); the "
                               f"file was kept as {bad.name} and Llamadesk started with the default layout.")
        return QSettings(str(self.path), QSettings.Format.IniFormat)

    def _drop_bad_values(self) -> None:
        """Remove the values that cannot be used (after keeping a copy of the file) and say so once."""
        bad = [(key, problem) for key in WINDOW_KEYS if self._settings.contains(key)
               for problem in [window_value_problem(key, self._plain(key))] if problem]
        if not bad:
            return
        reasons = "; ".join(f"{WINDOW_LABELS[key]}: {problem}" for key, problem in bad)
        try:
            kept = f"the file was kept as {settings_file.set_aside(self.path, copy=True).name} and "
        except OSError:
            kept = ""
        for key, _problem in bad:
            self._settings.remove(key)
        self._settings.sync()
        settings_file.note(f"Some of your window settings in {self.path} could not be used ({reasons}); "
                           f"{kept}they went back to their defaults.")

    def _plain(self, key: str) -> Any:
        """The stored value, with Qt's byte arrays as bytes (what the checks take)."""
        value = self._settings.value(key)
        return bytes(value.data()) if isinstance(value, QByteArray) else value

    def _get(self, key: str, default=None):
        """The stored value if it can be used, else `default`."""
        if not self._settings.contains(key):
            return default
        usable = window_value_problem(key, self._plain(key)) is None
        return self._settings.value(key) if usable else default

    def _set(self, key: str, value) -> None:
        self._settings.setValue(key, value)
        self._settings.sync()

    def _blob(self, key: str) -> QByteArray | None:
        value = self._get(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    @property
    def geometry(self) -> QByteArray | None:
        return self._blob("window/geometry")

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self._set("window/geometry", value)

    @property
    def splitter(self) -> QByteArray | None:
        return self._blob("window/splitter")

    @splitter.setter
    def splitter(self, value: QByteArray) -> None:
        self._set("window/splitter", value)

    @property
    def show_list(self) -> bool:
        """Whether the chat list is shown (View ▸ Show chat list)."""
        return self._flag("window/show_list")

    @show_list.setter
    def show_list(self, shown: bool) -> None:
        self._set("window/show_list", "true" if shown else "false")

    @property
    def show_side(self) -> bool:
        """Whether the user wants the side panels (View ▸ Show side panel); a narrow window may
        still fold them for want of room."""
        return self._flag("window/show_side")

    @show_side.setter
    def show_side(self, shown: bool) -> None:
        self._set("window/show_side", "true" if shown else "false")

    def _flag(self, key: str) -> bool:
        """True unless the file says "false" (anything else, a hand edit included, shows the panel)."""
        return str(self._get(key, "true")).strip().lower() != "false"

    @property
    def last_conversation(self) -> str:
        value = self._get("chat/last_conversation", "")
        return value if isinstance(value, str) else ""

    @last_conversation.setter
    def last_conversation(self, conversation_id: str) -> None:
        self._set("chat/last_conversation", conversation_id)

    @property
    def theme(self) -> str:
        value = self._get("view/theme", "system")
        return value if value in THEMES else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"theme must be one of {THEMES}")
        self._set("view/theme", value)

    @property
    def text_size(self) -> int | None:
        """The chat's text size in points; None: the system's."""
        try:
            value = int(self._get("view/text_size", 0))
        except (TypeError, ValueError):
            return None
        return value if TEXT_SIZES[0] <= value <= TEXT_SIZES[-1] else None

    @text_size.setter
    def text_size(self, points: int) -> None:
        self._set("view/text_size", int(points))

    @property
    def overflow_policy(self) -> str:
        """One of OverflowPolicy's values; anything else (a hand edit, a newer version) is ignored."""
        from app.core.chat.context_window import OverflowPolicy

        value = self._get("chat/overflow_policy", OverflowPolicy.DROP_OLDEST.value)
        return str(value) if value in set(OverflowPolicy) else OverflowPolicy.DROP_OLDEST.value

    @overflow_policy.setter
    def overflow_policy(self, value: str) -> None:
        self._set("chat/overflow_policy", value)


def step_text_size(current: int, step: int) -> int:
    """The next size up (+1) or down (-1) in TEXT_SIZES from `current`."""
    if step > 0:
        return next((s for s in TEXT_SIZES if s > current), TEXT_SIZES[-1])
    return next((s for s in reversed(TEXT_SIZES) if s < current), TEXT_SIZES[0])
