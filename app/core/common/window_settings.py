"""window.ini: what each value may be, checked without Qt so that `doctor` can check it too.

The window reads and writes the file through QSettings (app/ui/shell/preferences.py); a value
that cannot be used falls back to its default there, by these rules.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from app.core.common.settings_file import read_bytes, status

WINDOW_FILE = "window.ini"
THEMES = ("system", "light", "dark")
TEXT_SIZES = (8, 9, 10, 11, 12, 13, 14, 16, 18, 20, 24, 28)  # points, for Ctrl+= / Ctrl+-
_GEOMETRY_MAGIC = 0x1D9D0CB  # QWidget::saveGeometry
_SPLITTER_MAGIC = 0xFF  # QSplitter::saveState
_MAX_PIXELS = 100_000


def window_value_problem(key: str, value: Any) -> str | None:
    """Why a value read from window.ini cannot be used, or None (also for keys it does not know).

    Qt's blobs (geometry, splitter) come as bytes; other values as QSettings' INI gives them back.
    """
    if key == "window/geometry":
        return _geometry_problem(value)
    if key == "window/splitter":
        return _splitter_problem(value)
    if key == "view/theme":
        return None if isinstance(value, str) and value in THEMES else f"{_shown(value)} is not a theme"
    if key == "view/text_size":
        size = value if isinstance(value, int) and not isinstance(value, bool) else \
            int(value) if isinstance(value, str) and value.strip().isdecimal() and len(value) < 6 else None
        if size is None or not (size == 0 or TEXT_SIZES[0] <= size <= TEXT_SIZES[-1]):
            return f"{_shown(value)} is not a text size"
        return None
    if key == "chat/overflow_policy":
        from app.core.chat.context_window import OverflowPolicy

        usable = isinstance(value, str) and value in {p.value for p in OverflowPolicy}
        return None if usable else f"{_shown(value)} is not a policy"
    if key in ("window/show_list", "window/show_side"):
        usable = isinstance(value, (str, bool)) and str(value).strip().lower() in ("true", "false")
        return None if usable else f"{_shown(value)} is not true or false"
    if key == "chat/last_conversation" and (not isinstance(value, str) or len(value) > 200
                                            or not value.isprintable()):
        return f"{_shown(value)} is not a conversation id"
    return None


WINDOW_KEYS = ("window/geometry", "window/splitter", "window/show_list", "window/show_side", "view/theme",
               "view/text_size", "chat/overflow_policy", "chat/last_conversation")
WINDOW_LABELS = {"window/geometry": "window position", "window/splitter": "pane sizes",
                 "window/show_list": "chat list shown", "window/show_side": "side panel shown",
                 "view/theme": "theme", "view/text_size": "text size",
                 "chat/overflow_policy": "long-chat policy", "chat/last_conversation": "last chat"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _ints(data: bytes, offset: int, count: int, fmt: str = "i") -> tuple[int, ...]:
    return struct.unpack_from(f">{count}{fmt}", data, offset)


def _geometry_problem(value: Any) -> str | None:
    """A QWidget geometry blob: Qt's magic number, then frame and normal rectangles of sane size."""
    if not isinstance(value, bytes) or len(value) < 40 or _ints(value, 0, 1, "I")[0] != _GEOMETRY_MAGIC:
        return "it is not a saved window geometry"
    if _ints(value, 4, 1, "H")[0] > 3:
        return "it was saved by a newer Qt"
    for left, top, right, bottom in (_ints(value, 8, 4), _ints(value, 24, 4)):
        width, height = right - left + 1, bottom - top + 1
        if not (50 <= width <= _MAX_PIXELS and 50 <= height <= _MAX_PIXELS
                and abs(left) <= _MAX_PIXELS and abs(top) <= _MAX_PIXELS):
            return f"a window of {width}×{height} at ({left}, {top}) does not fit any screen"
    return None


def _splitter_problem(value: Any) -> str | None:
    """A QSplitter state: Qt's marker, then pane sizes, none negative or absurd, not all zero."""
    if not isinstance(value, bytes) or len(value) < 12 or _ints(value, 0, 1)[0] != _SPLITTER_MAGIC:
        return "it is not a saved splitter state"
    count = _ints(value, 8, 1, "I")[0]
    if not 1 <= count <= 64 or len(value) < 12 + 4 * count:
        return "it is not a saved splitter state"
    sizes = _ints(value, 12, count)
    if any(not 0 <= s <= _MAX_PIXELS for s in sizes) or max(sizes) < 50:  # all 0: one pane takes all
        return f"pane sizes {list(sizes)} would hide the window's contents"
    return None


def check_window_file(path: Path) -> str:
    """"ok" or what is wrong in window.ini, read the way QSettings reads it, without Qt."""
    problems: list[str] = []
    found = status(lambda: problems.extend(_window_problems(path)))
    return found if found != "ok" or not problems else "bad values (" + "; ".join(problems) + ")"


def _window_problems(path: Path) -> list[str]:
    text = read_bytes(path, 1024 * 1024).decode("utf-8", errors="replace")
    values, section = {}, ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif "=" in line and not line.startswith((";", "#")):
            key, raw = line.split("=", 1)
            name = f"{section}/{key.strip()}" if section and section != "General" else key.strip()
            values[name] = _ini_value(raw.strip())
    return [f"{WINDOW_LABELS[key]}: {problem}" for key in WINDOW_KEYS if key in values
            for problem in [window_value_problem(key, values[key])] if problem]


def _ini_value(raw: str) -> Any:
    """A value as QSettings' INI format gives it back: str, list of str, or bytes for @ByteArray(...)."""
    items: list[str] = []
    current: list[str] = []
    quoted, i = False, 0
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              '"': '"', "?": "?", "'": "'", "\\": "\\"}
    while i < len(raw):
        ch = raw[i]
        i += 1
        if ch == "\\" and i < len(raw):
            code = raw[i]
            i += 1
            if code in simple:
                current.append(simple[code])
            elif code == "x" or code in "01234567":
                digits, base = ("0123456789abcdefABCDEF", 16) if code == "x" else ("01234567", 8)
                start = i if code == "x" else i - 1
                while i < len(raw) and raw[i] in digits:
                    i += 1
                current.append(chr(int(raw[start:i] or "0", base) & 0xFFFF))
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    items.append("".join(current).strip())
    decoded = [_ini_variant(item) for item in items]
    return decoded[0] if len(decoded) == 1 else decoded


def _ini_variant(text: str) -> Any:
    if text.startswith("@ByteArray(") and text.endswith(")"):
        return text[11:-1].encode("latin-1", errors="replace")
    return text[1:] if text.startswith("@@") else text
