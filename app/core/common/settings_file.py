"""One policy for every settings file the app reads: check it, set a damaged one aside, say so once.

A file that cannot be used (not UTF-8, not JSON, the wrong shape or types, absurdly nested or large)
is moved to NAME.bad (NAME.1.bad, ... : an earlier one is never overwritten), the app starts with
defaults, and one plain notice is queued for the window to show (take_notices). A save never
replaces a damaged file: it is set aside first. window.ini is read through QSettings (app/ui); the
rules for its values live in window_settings so that `doctor` can check it without Qt.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.core.common.atomic_file import write_text_atomically

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
_MAX_BAD_COPIES = 1000

_notices: list[str] = []
_told: set[str] = set()  # files reported but left in place (unreadable, or could not be moved)
_lock = threading.Lock()


class DamagedSettings(ValueError):
    """A settings file whose content cannot be used; str() is the reason in a few plain words."""


class SettingsFileError(OSError):
    """A save refused because the file there is damaged or unreadable and could not be set aside."""


@dataclass(frozen=True)
class SettingsKind:
    """One JSON settings file: its name, how to speak of it, and the check of its shape."""

    name: str  # the file name in the config folder
    what: str  # "Your saved system prompts"
    fallback: str  # "Llamadesk started with the built-in ones"
    check: Callable[[Any], Any]  # the parsed JSON -> the value the app uses, or DamagedSettings
    max_bytes: int = MAX_BYTES


def note(message: str) -> None:
    """Queue a message for the window to show at start (and log it)."""
    log.warning("%s", message)
    with _lock:
        if message not in _notices:
            _notices.append(message)


def take_notices() -> list[str]:
    """The messages queued since the last call, oldest first; the queue is emptied."""
    with _lock:
        taken = list(_notices)
        _notices.clear()
    return taken


def _reject_constant(constant: str) -> Any:
    raise DamagedSettings(f"it holds {constant}, which is not a number")


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed document (without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(data: bytes) -> Any:
    """The document in `data`, or DamagedSettings saying in plain words why it is not one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedSettings("it is not UTF-8 text") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise DamagedSettings(f"invalid JSON at line {error.lineno}, column {error.colno}: "
                              f"{error.msg}") from None
    except RecursionError:
        raise DamagedSettings("it is nested too deeply") from None
    if _depth(document) > MAX_DEPTH:
        raise DamagedSettings("it is nested too deeply")
    return document


def read_bytes(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes; FileNotFoundError, OSError, or DamagedSettings for a non-file or a huge one.

    Opened without blocking, so a FIFO put in its place cannot hang the app.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DamagedSettings("it is not a regular file")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DamagedSettings(f"it is larger than {max_bytes // (1024 * 1024)} MB")
    return data


def read_checked(kind: SettingsKind, path: Path) -> Any:
    """The checked value of the file, without moving anything (FileNotFoundError if absent)."""
    document = parse_json(read_bytes(path, kind.max_bytes))
    try:
        return kind.check(document)
    except DamagedSettings:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as error:  # a check's own slip, same meaning
        raise DamagedSettings(str(error) or type(error).__name__) from None


# -- setting aside -----------------------------------------------------------------------------


def bad_name(path: Path) -> Path:
    """The first free NAME.bad, NAME.1.bad, NAME.2.bad ... beside `path`."""
    for n in range(_MAX_BAD_COPIES):
        candidate = path.with_name(f"{path.name}.bad" if n == 0 else f"{path.name}.{n}.bad")
        if not os.path.lexists(candidate):
            return candidate
    raise OSError(errno.EEXIST, f"there are already {_MAX_BAD_COPIES} set-aside copies of {path.name}")


def set_aside(path: Path, copy: bool = False) -> Path:
    """Move (or copy) `path` to a free .bad name, never over an existing file; the new path."""
    for _ in range(_MAX_BAD_COPIES):
        bad = bad_name(path)
        try:
            if copy:
                with open(path, "rb") as source, open(bad, "xb") as target:
                    target.write(source.read(MAX_BYTES))
                return bad
            os.link(path, bad)  # fails if `bad` appeared meanwhile: never overwrites
        except FileExistsError:
            continue
        except OSError as error:
            if copy or error.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                raise
            os.rename(path, bad)  # a file system without hard links
            return bad
        os.unlink(path)
        return bad
    raise OSError(errno.EEXIST, f"no free name to set {path.name} aside")


def _damaged(kind: SettingsKind, path: Path, reason: str) -> bool:
    """Set a damaged file aside and say so; True if it was moved away."""
    try:
        bad = set_aside(path)
    except FileNotFoundError:
        return True
    except OSError as error:
        _tell_once(path, f"{kind.what} in {path} could not be read ({reason}), and the file could not be "
                         f"set aside either ({error.strerror or error}). {kind.fallback}; the file will "
                         f"not be changed until you fix or remove it.")
        return False
    note(f"{kind.what} in {path} could not be read ({reason}); the file was kept as {bad.name} and "
         f"{kind.fallback}.")
    return True


def _tell_once(path: Path, message: str) -> None:
    with _lock:
        if str(path) in _told:
            return
        _told.add(str(path))
    note(message)


# -- the policy --------------------------------------------------------------------------------


def load(kind: SettingsKind, path: Path, default: Callable[[], T]) -> T:
    """The file's checked value; the default when it is absent, damaged (then set aside) or unreadable."""
    try:
        return read_checked(kind, path)
    except FileNotFoundError:
        return default()
    except DamagedSettings as error:
        _damaged(kind, path, str(error))
    except OSError as error:
        _tell_once(path, f"{kind.what} in {path} could not be read ({error.strerror or error}). "
                         f"{kind.fallback}; the file will not be changed until it can be read.")
    return default()


def save(kind: SettingsKind, path: Path, text: str) -> None:
    """Write `text` atomically, but never over a damaged or unreadable file (it is set aside first)."""
    try:
        read_checked(kind, path)
    except FileNotFoundError:
        pass
    except DamagedSettings as error:
        if not _damaged(kind, path, str(error)):
            raise SettingsFileError(errno.EIO, f"{path.name} is damaged and could not be set aside, "
                                               f"so it was not overwritten") from None
    except OSError as error:
        raise SettingsFileError(error.errno or errno.EIO, f"{path.name} exists but cannot be read "
                                                          f"({error.strerror or error}), so it was not "
                                                          f"overwritten") from None
    with _lock:
        _told.discard(str(path))
    write_text_atomically(path, text)


def check_all(config_dir: Path) -> list[tuple[str, str]]:
    """(file name, "ok" or the problem) for every known settings file; nothing is moved or written.

    An absent file is "ok": the app uses its defaults.
    """
    from app.core.chat import defaults, presets, system_prompts
    from app.core.common.window_settings import WINDOW_FILE, check_window_file
    from app.core.models import library  # they import this module

    folder = Path(config_dir)
    results = [(k.name, status(lambda k=k: read_checked(k, folder / k.name)))
               for k in (system_prompts.KIND, presets.KIND, defaults.KIND, library.KIND)]
    return [*results, (WINDOW_FILE, check_window_file(folder / WINDOW_FILE)),
            ("hf_token", status(lambda: _check_token(folder / "hf_token")))]


def status(read: Callable[[], object]) -> str:
    """"ok" or what is wrong with the file `read` reads: "damaged: ..." or "cannot be read: ..."."""
    try:
        read()
    except FileNotFoundError:
        return "ok"
    except DamagedSettings as error:
        return f"damaged: {error}"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
    return "ok"


def _check_token(path: Path) -> None:
    """The hub token file holds one token on one line (app.core.models.hub writes it)."""
    text = read_bytes(path, 64 * 1024).decode("ascii", errors="replace").strip()
    if not text or not text.isprintable() or any(c.isspace() or c == "\ufffd" for c in text):
        raise DamagedSettings("it does not hold one access token on one line")
