"""What the window remembers between runs: geometry, splitters, last chat, theme, text size.

Kept in an ini file in the config folder (so LLAMADESK_HOME moves it too), through QSettings,
which stores Qt's geometry and splitter blobs as they are.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

from app import paths

THEMES = ("system", "light", "dark")
TEXT_SIZES = (8, 9, 10, 11, 12, 13, 14, 16, 18, 20, 24, 28)  # points, for Ctrl+= / Ctrl+-


class Preferences:
    def __init__(self) -> None:
        self._settings = QSettings(str(paths.config_dir() / "window.ini"), QSettings.Format.IniFormat)

    def _get(self, key: str, default=None):
        return self._settings.value(key, default)

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
    def last_conversation(self) -> str:
        return str(self._get("chat/last_conversation", "") or "")

    @last_conversation.setter
    def last_conversation(self, conversation_id: str) -> None:
        self._set("chat/last_conversation", conversation_id)

    @property
    def theme(self) -> str:
        value = str(self._get("view/theme", "system"))
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
        from app.core.context_window import OverflowPolicy

        value = str(self._get("chat/overflow_policy", OverflowPolicy.DROP_OLDEST))
        return value if value in set(OverflowPolicy) else OverflowPolicy.DROP_OLDEST.value

    @overflow_policy.setter
    def overflow_policy(self, value: str) -> None:
        self._set("chat/overflow_policy", value)


def step_text_size(current: int, step: int) -> int:
    """The next size up (+1) or down (-1) in TEXT_SIZES from `current`."""
    if step > 0:
        return next((s for s in TEXT_SIZES if s > current), TEXT_SIZES[-1])
    return next((s for s in reversed(TEXT_SIZES) if s < current), TEXT_SIZES[0])
