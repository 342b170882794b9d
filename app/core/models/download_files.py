"""Where downloads live on disk. A repository's files go to models/<owner>/<repo>/ (LM Studio's
layout); files downloaded before that, flat in the models folder, still count. A download left
unfinished is `<name>.part` beside `<name>.part.json`, which names the file (repository, file name,
etag, sha256, size): hub.download writes them; this finds them again after a restart (so a paused
download is listed and can be resumed) and removes them (a cancelled download leaves nothing).
No Qt; it blocks on the disk, so the app calls it from a worker thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from app.core.common import settings_file
from app.core.common.errors import UserFacingError

PART = ".part"
SIDECAR = ".part.json"
_SIDECAR_MAX = 64 * 1024
_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/[^/]+/(?P<file>.+)$")
_REPO_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def repo_folder(models_dir: str | os.PathLike[str], repo_id: str) -> Path:
    """Where a repository's files go: models/<owner>/<repo>/, so files of the same name from two
    repositories never collide, and the folder says where a file came from."""
    owner, _, name = repo_id.partition("/")
    if not (_REPO_PART.fullmatch(owner) and _REPO_PART.fullmatch(name)):
        raise UserFacingError(f"“{repo_id}” is not a valid repository name.", kind="not_found")
    return Path(models_dir, owner, name)


def downloaded_copies(models_dir: Path, repo_id: str, filenames: list[str]) -> dict[str, Path]:
    """Which of the repository's files are downloaded already: in its folder, or flat in the models
    folder (downloaded before the owner/repo layout)."""
    try:
        folders = [repo_folder(models_dir, repo_id), Path(models_dir)]
    except UserFacingError:
        folders = [Path(models_dir)]
    found = {}
    for filename in filenames:
        name = PurePosixPath(filename).name
        path = next((f / name for f in folders if (f / name).is_file()), None)
        if path is not None:
            found[filename] = path
    return found


def part_paths(dest_dir: Path, filename: str) -> tuple[Path, Path, Path]:
    """The final file, its .part and the .part.json naming it, in `dest_dir`."""
    name = PurePosixPath(filename).name
    return dest_dir / name, dest_dir / f"{name}{PART}", dest_dir / f"{name}{SIDECAR}"


@dataclass(frozen=True)
class PartialDownload:
    """A paused (or interrupted) download found on disk."""

    repo_id: str
    filename: str
    folder: Path  # where the file will be: downloading it again there resumes the .part
    done: int  # bytes already in the .part
    total: int  # the file's size, as the hub said

    @property
    def name(self) -> str:
        return PurePosixPath(self.filename).name


def _named(record: dict) -> tuple[str, str] | None:
    """The repository and file a sidecar names; sidecars written before they said so have the URL."""
    repo_id, filename = record.get("repo_id"), record.get("filename")
    if isinstance(repo_id, str) and isinstance(filename, str) and repo_id and filename:
        return repo_id, filename
    found = _RESOLVE.search(record.get("url") or "") if isinstance(record.get("url"), str) else None
    return (unquote(found["repo"]), unquote(found["file"])) if found else None


def _read(sidecar: Path) -> PartialDownload | None:
    try:
        record = settings_file.parse_json(settings_file.read_bytes(sidecar, _SIDECAR_MAX))
    except (OSError, settings_file.DamagedSettings):
        return None
    named = _named(record) if isinstance(record, dict) else None
    total = record.get("size") if isinstance(record, dict) else None
    if named is None or not isinstance(total, int) or isinstance(total, bool) or total <= 0:
        return None
    part = sidecar.with_name(sidecar.name[: -len(SIDECAR)] + PART)
    try:
        done = part.stat().st_size
    except OSError:
        done = 0
    return PartialDownload(named[0], named[1], sidecar.parent, min(done, total), total)


def find_partials(models_dir: str | os.PathLike[str]) -> list[PartialDownload]:
    """Every unfinished download under `models_dir` (in any folder below it), by file name."""
    found = []
    for root, dirs, files in os.walk(models_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.endswith(SIDECAR) and (partial := _read(Path(root, f))) is not None:
                found.append(partial)
    return sorted(found, key=lambda p: (p.name.lower(), p.repo_id.lower()))


def remove_partial(folder: Path, filename: str) -> int:
    """Delete an unfinished download's .part and .part.json; returns the bytes freed."""
    _, part, sidecar = part_paths(Path(folder), filename)
    freed = 0
    for path in (part, sidecar):
        try:
            freed += path.stat().st_size if path == part else 0
            path.unlink()
        except FileNotFoundError:
            pass
    return freed
