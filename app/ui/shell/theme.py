"""Light and dark themes: Qt's Fusion style with a palette, following the system unless chosen.

Colours the widgets draw themselves (links, footers, banners, code blocks) come from `Colors`,
so nothing hard-coded stays light on a dark window.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Colors:
    dark: bool
    link: str
    muted: str
    banner_bg: str
    banner_fg: str
    notice_bg: str
    notice_fg: str
    error: str  # inline messages next to a field: what was refused or changed
    user_bg: str  # the band behind the user's turns in the chat


LIGHT = Colors(False, link="#1f5fbf", muted="#6b6b6b", banner_bg="#fdecea", banner_fg="#611a15",
               notice_bg="#fff4d6", notice_fg="#4a3800", error="#b3261e", user_bg="#e9eef6")
DARK = Colors(True, link="#7cb0ff", muted="#9a9a9a", banner_bg="#4a1f1c", banner_fg="#ffd9d4",
              notice_bg="#463b12", notice_fg="#fff0c2", error="#ff8a80", user_bg="#2c3440")


def colors_of(palette: QPalette) -> Colors:
    """The theme colours that go with `palette`: a widget that styles itself calls this when the
    application's palette changes (QEvent.ApplicationPaletteChange), so it follows a theme switch."""
    return DARK if palette.color(QPalette.ColorRole.Window).lightness() < 128 else LIGHT


def system_prefers_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def is_dark(choice: str) -> bool:
    return choice == "dark" or (choice == "system" and system_prefers_dark())


def _dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor("#1e1f22"), QColor("#2b2d30"), QColor("#e6e6e6")
    disabled = QColor("#7a7a7a")
    for role, color in (
        (QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.ToolTipBase, window), (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.PlaceholderText, disabled), (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window), (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor("#ff6b6b")), (QPalette.ColorRole.Link, QColor(DARK.link)),
        (QPalette.ColorRole.Highlight, QColor("#2f65ca")),
        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
    ):
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


def apply_theme(choice: str) -> Colors:
    """Style the whole application for `choice` ("system", "light" or "dark"); its colours."""
    qt_app = QApplication.instance()
    dark = is_dark(choice)
    if qt_app.style().name().lower() != "fusion":
        qt_app.setStyle("Fusion")
    palette = _dark_palette() if dark else qt_app.style().standardPalette()
    if not dark:
        palette.setColor(QPalette.ColorRole.Link, QColor(LIGHT.link))
    qt_app.setPalette(palette)
    return DARK if dark else LIGHT
