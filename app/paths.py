"""Every location the app reads or writes, in one place.

Locations come from platformdirs. When LLAMADESK_HOME is set, everything the app writes
goes under that folder instead (tests and portable use).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import PlatformDirs

HOME_ENV = "LLAMADESK_HOME"
_dirs = PlatformDirs("Llamadesk", appauthor=False)


def _home() -> Path | None:
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().resolve() if value else None


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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
