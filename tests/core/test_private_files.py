"""Chats are private: every file under the app's folders is 0600 and every folder 0700, whatever the
umask, also for files an older version left readable; exports keep the mode the user's umask gives.

Through the real CLI (`python -m app ...` as a process, started with umask 022), since what matters
is what the app does at start, with SQLite and logging creating the files.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.conversations.store import ConversationStore, default_store_path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "fixtures" / "golden" / "sample.json"

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are a POSIX matter")


def run_cli(home: Path, *args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LLAMADESK_DEBUG"}
    env["LLAMADESK_HOME"] = str(home)
    result = subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, env=env, umask=umask,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def modes(home: Path) -> dict[str, int]:
    """Every folder and file under home (home included), relative path → permission bits."""
    found = {".": stat.S_IMODE(home.stat().st_mode)}
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(root, name)
            found[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(home: Path, skip: tuple[str, ...] = ()) -> dict[str, int]:
    found = {name: mode for name, mode in modes(home).items() if name not in skip}
    loose = {name: oct(mode) for name, mode in found.items()
             if mode & 0o077 or mode & 0o700 != (0o700 if (home / name).is_dir() else 0o600)}
    assert not loose, f"readable by others: {loose}"
    return found


def test_what_the_cli_creates_is_private_under_umask_022(tmp_path: Path) -> None:
    home = tmp_path / "home"  # does not exist yet: the app creates it
    run_cli(home, "import", str(SAMPLE))
    assert run_cli(home, "conversations", "list").stdout.strip()  # imported, and listed
    found = assert_private(home)
    database = [name for name in found if name.endswith("conversations.sqlite3")]
    logs = [name for name in found if name.endswith(".log")]
    assert database and logs, found  # the checks above looked at real files


def test_an_older_versions_readable_files_are_tightened(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    run_cli(home, "import", str(SAMPLE), umask=0o022)
    # What an older version left: everything 0644 / 0755, a KV snapshot and a settings file too.
    (home / "cache" / "kv").mkdir(parents=True, exist_ok=True)
    (home / "cache" / "kv" / ("ab" * 16 + ".kv")).write_bytes(b"LDKV1\n...")
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "presets.json").write_text("{}")
    outside = tmp_path / "outside.gguf"  # the user's own file, linked into the models folder
    outside.write_bytes(b"GGUF")
    outside.chmod(0o644)
    models = home / "data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (models / "linked.gguf").symlink_to(outside)
    for root, _, files in os.walk(home):
        os.chmod(root, 0o755)
        for name in files:
            if not Path(root, name).is_symlink():
                os.chmod(Path(root, name), 0o644)
    assert modes(home)["data"] == 0o755

    listing = run_cli(home, "conversations", "list").stdout
    assert listing.strip()  # the database still opens
    found = assert_private(home, skip=(".", "data/models/linked.gguf"))  # "." is the user's folder
    assert "cache/kv/" + "ab" * 16 + ".kv" in found and "config/presets.json" in found
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a link is not followed out of our folders


def test_a_database_made_readable_is_tightened_at_start(tmp_path: Path, monkeypatch) -> None:
    """Also the database itself: a 0644 one from before (here created by the store in-process)."""
    home = tmp_path / "home"
    monkeypatch.setenv("LLAMADESK_HOME", str(home))
    database = default_store_path()
    ConversationStore(database).close()
    database.chmod(0o644)
    database.parent.chmod(0o755)
    run_cli(home, "conversations", "list")
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o027, 0o640)])
def test_an_export_keeps_the_mode_the_users_umask_gives(tmp_path: Path, umask: int, expected: int) -> None:
    """An export is the user's own file, outside our folders: not ours to make private."""
    home = tmp_path / "home"
    run_cli(home, "import", str(SAMPLE))
    out = tmp_path / "out.json"
    run_cli(home, "export", "--all", "--format", "json", "--out", str(out), umask=umask)
    assert stat.S_IMODE(out.stat().st_mode) == expected


def test_an_export_folder_keeps_the_mode_the_users_umask_gives(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_cli(home, "import", str(SAMPLE))
    out = tmp_path / "exports" / "all"
    run_cli(home, "export", "--all", "--format", "md", "--out", str(out), umask=0o022)
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (out.parent, out, *out.iterdir())]
    assert modes == [0o755, 0o755, 0o644]
