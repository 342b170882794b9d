"""Every location the app reads or writes, in one place.

Locations come from platformdirs. When LLAMADESK_HOME is set, everything the app writes
goes under that folder instead (tests and portable use).

Private by default: chats are in the database, the logs, the KV snapshots (which decode to the whole
conversation) and the settings, so every folder here is 0700 and every file 0600, whatever the
user's umask. Two measures, because files are created by many writers, several of them C code that
no chmod of ours follows (SQLite's database, -wal and -shm; Qt's QSettings and QLockFile; log
rotation; downloads):
- `private_by_default()` (called first thing by `python -m app`) sets the process umask to 077, so
  each file is private from the moment it exists: a chmod after creation leaves a window in which
  another user can open it and keep the descriptor. Child processes inherit it.
- `_ensure` creates our folders 0700 and, once per process, tightens each tree (files from an
  older version, or written by a process that did not go through `python -m app`);
  `private_by_default()` does so for all four at start. A LLAMADESK_HOME that exists is the
  user's folder: its own mode is theirs; we create a missing one 0700.
Files written for the user outside our folders (exported transcripts) are not ours to restrict:
their writers apply `user_umask()`, the umask the user started us with.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from platformdirs import PlatformDirs

HOME_ENV = "LLAMADESK_HOME"
_dirs = PlatformDirs("Llamadesk", appauthor=False)
_PRIVATE = os.name == "posix"  # elsewhere mode bits mean little: the user's profile is private
_tightened: set[Path] = set()  # folders already made private in this process
_user_umask: int | None = None
log = logging.getLogger(__name__)


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    if not value:
        return None
    home = Path(value).expanduser().resolve()
    if not home.exists():  # ours to create: private too (an existing one is the user's to set)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def _ensure(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _PRIVATE and path not in _tightened:
        make_private(path)
    return path


def private_by_default() -> None:
    """Files and folders this process creates from now on are the user's only (umask 077), and
    what an older version left readable in our folders is tightened now."""
    global _user_umask
    if not _PRIVATE:
        return
    previous = os.umask(0o077)
    if _user_umask is None:
        _user_umask = previous
    for location in (data_dir, config_dir, cache_dir, log_dir):
        location()


def user_umask() -> int:
    """The umask the user started the app with, for files written for them outside our folders:
    `os.fchmod(fd, 0o666 & ~user_umask())` gives an export the mode any of their files gets."""
    if _user_umask is not None:
        return _user_umask
    current = os.umask(0o077)  # reading the umask means setting it; put it straight back
    os.umask(current)
    return current


def make_private(folder: Path) -> None:
    """Take group and other permissions off folder and everything in it. Links are not followed,
    and a file with other hard links, or another owner, is left alone: it is not only ours."""
    if not _PRIVATE:
        return
    uid = os.getuid()
    for root, dirs, files in os.walk(folder, onerror=lambda error: log.warning("%s", error)):
        top = Path(root)
        _tightened.add(top)
        _restrict(top, 0o700, uid)
        for name in files:
            _restrict(top / name, 0o600, uid)
        dirs[:] = [d for d in dirs if not (top / d).is_symlink()]


def _restrict(path: Path, allowed: int, uid: int) -> None:
    try:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if (stat.S_ISLNK(info.st_mode) or info.st_uid != uid or not mode & 0o077
                or (stat.S_ISREG(info.st_mode) and info.st_nlink > 1)):
            return
        os.chmod(path, mode & allowed)
    except OSError as error:
        log.warning("could not make %s private: %s", path, error)


def data_dir() -> Path:
    """Conversations database and other user data."""
    home = _home()
    return _ensure(home / "data" if home else Path(_dirs.user_data_dir))


def config_dir() -> Path:
    """Settings and tokens."""
    home = _home()
    return _ensure(home / "config" if home else Path(_dirs.user_config_dir))


def cache_dir() -> Path:
    """Things that can be rebuilt: KV-cache snapshots, hashes."""
    home = _home()
    return _ensure(home / "cache" if home else Path(_dirs.user_cache_dir))


def models_dir() -> Path:
    """Models the user downloads or imports."""
    return _ensure(data_dir() / "models")


def log_dir() -> Path:
    home = _home()
    return _ensure(home / "logs" if home else Path(_dirs.user_log_dir))
