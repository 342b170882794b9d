"""Downloading GGUF models from the Hugging Face hub, the access token, and what every hub call
shares (the address, headers, errors). Searching is hub_search.py's. No Qt: the app calls this
from a worker thread (session/download_task.py).

Downloading does not use
`hf_hub_download`: huggingface_hub 2.4 writes into a temporary file unique to the process and
deletes it on any failure, and it cannot be cancelled. A model is gigabytes: a dropped Wi-Fi
or a closed app must not throw away what was already fetched. So we ask the hub for the file's
metadata (size, sha256, CDN location) with `get_hf_file_metadata` and do our own ranged transfer:

* bytes go to `<name>.part`, beside `<name>.part.json` naming the file (etag, sha256, size);
  a later call, even from a new process, continues it with `Range: bytes=N-`, but only if it
  is the same file;
* a dropped connection is retried, each retry resuming where the .part ends;
* cancel keeps the .part; a watchdog shuts the socket down so even a stalled read stops at once;
* the SHA-256 is computed while writing and checked at the end; only a verified file is
  renamed (atomically) to its final name, so a half model never sits in the library.

The hub's address is read from HF_ENDPOINT at each call (huggingface_hub reads it at import).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import build_hf_headers

from app import paths
from app.core.common import settings_file
from app.core.common.errors import UserFacingError
from app.core.models.download_files import part_paths
from app.core.models.library_files import human_size

DEFAULT_ENDPOINT = "https://huggingface.co"
API_TIMEOUT = 10.0
TRANSFER_TIMEOUT = httpx2.Timeout(10.0, read=60.0)  # a read stalled this long counts as a drop
SPACE_MARGIN = 16 << 20
PROGRESS_INTERVAL = 0.1
TOKEN_FILE = "hf_token"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class HubError(UserFacingError):
    """A search, listing or download that did not succeed; `kind` says what code may do about it."""

    UNAUTHORIZED = "unauthorized"  # gated or private: a token is needed
    NOT_FOUND = "not_found"
    HASH_MISMATCH = "hash_mismatch"
    CONNECTION = "connection"  # dropped or failing: it can be resumed
    DISK_FULL = "disk_full"
    CANCELLED = "cancelled"
    OFFLINE = "offline"
    HTTP = "http"
    EXISTS = "exists"  # a file of that name is already in the library
    DEFAULT_KIND = HTTP


@dataclass(frozen=True)
class DownloadProgress:
    done: int
    total: int
    bytes_per_s: float
    seconds_left: float | None


# --- downloading -----------------------------------------------------------------------------


def download(repo_id: str, filename: str, dest_dir: Path, token: str | None = None,
             progress: Callable[[DownloadProgress], None] | None = None,
             cancel: threading.Event | None = None, retries: int = 3,
             free_space: Callable[[Path], int] | None = None) -> Path:
    """Download one file of a repository into `dest_dir` and return its path there.

    `retries` counts dropped connections in a row without progress. Raises HubError.
    """
    cancel = cancel or threading.Event()
    endpoint = endpoint_url()
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(filename).name
    final, part, sidecar = part_paths(dest_dir, filename)
    if os.path.lexists(final):
        raise HubError(f"{name} is already in the library ({final}). Delete it first to download it "
                       "again.", kind=HubError.EXISTS)
    url = hf_hub_url(repo_id, filename, endpoint=endpoint)
    remote = _remote_file(url, token, endpoint, repo_id, filename)
    record = {"url": url, "etag": remote.etag, "sha256": remote.sha256, "size": remote.size,
              "repo_id": repo_id, "filename": filename}  # names it for a list after a restart

    have = _resumable_length(part, sidecar, record)
    needed, available = remote.size - have + SPACE_MARGIN, (free_space or _disk_free)(dest_dir)
    if available < needed:
        raise HubError(f"Not enough free space for {name}: {human_size(needed)} needed, "
                       f"{human_size(available)} free in {dest_dir}.", kind=HubError.DISK_FULL)
    transfer = _Transfer(part, cancel, _Meter(remote.size, progress),
                         lambda status: _status_error(status, endpoint, repo_id, filename))
    failures = 0
    try:
        _write_json(sidecar, record)
        transfer.load_part()
        while transfer.done < remote.size:
            if failures and cancel.wait(min(0.3 * 2 ** (failures - 1), 5.0)):
                raise _cancelled(name)
            before, error = transfer.done, None
            try:
                if failures:  # ask again: the CDN's signed URL may have expired meanwhile
                    remote = _remote_file(url, token, endpoint, repo_id, filename)
                    if remote.etag != record["etag"]:
                        raise HubError(f"{name} changed on the hub during the download.",
                                       kind=HubError.HTTP)
                transfer.fetch(remote.location, _transfer_headers(remote.location, endpoint, token))
            except (httpx2.TransportError, HubError) as e:
                if isinstance(e, HubError) and e.kind not in ("connection", "offline"):
                    raise
                error = e
            if cancel.is_set():
                raise _cancelled(name)
            if transfer.done < remote.size:
                failures = 1 if transfer.done > before else failures + 1
                if failures > retries:
                    reason = str(error) if error else "the connection closed early"
                    raise HubError(f"The download of {name} kept failing ({reason}). It can be resumed "
                                   "later.", kind=HubError.CONNECTION) from error
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HubError(f"The disk filled up while downloading {name}. Free some space and download "
                           "again: it resumes where it stopped.", kind=HubError.DISK_FULL) from e
        raise
    transfer.meter.update(transfer.done, force=True)

    if transfer.done != remote.size or (remote.sha256 and transfer.hasher.hexdigest() != remote.sha256):
        part.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        raise HubError(f"{name} arrived damaged (its checksum does not match the hub's) and was deleted. "
                       "Please download it again.", kind=HubError.HASH_MISMATCH)
    with part.open("r+b") as f:
        os.fsync(f.fileno())
    try:
        os.link(part, final)  # unlike a rename, never replaces a file that appeared meanwhile
    except FileExistsError:
        raise HubError(f"{name} appeared in the library during the download; the download is kept as "
                       f"{part.name}.", kind=HubError.EXISTS) from None
    except OSError:  # a file system without hard links
        if os.path.lexists(final):
            raise
        os.replace(part, final)
    part.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    return final


@dataclass(frozen=True)
class _Remote:
    location: str
    size: int
    etag: str
    sha256: str | None  # None for files not stored in LFS: their etag is a git sha1


def _remote_file(url: str, token: str | None, endpoint: str, repo_id: str, filename: str) -> _Remote:
    with hub_errors(endpoint, repo_id, filename):
        meta = get_hf_file_metadata(url, token=token or False, timeout=API_TIMEOUT, endpoint=endpoint)
    if meta.size is None or not meta.etag:
        raise HubError(f"The hub did not give the size of {filename}.", kind=HubError.HTTP)
    etag = meta.etag.lower()
    return _Remote(urljoin(url, meta.location), meta.size, meta.etag,
                   etag if _SHA256.fullmatch(etag) else None)


def _resumable_length(part: Path, sidecar: Path, record: dict) -> int:
    """How much of an earlier .part can be kept: all of it if it is the same file, else nothing."""
    try:
        saved = settings_file.parse_json(sidecar.read_bytes())
    except (OSError, settings_file.DamagedSettings):
        saved = {}
    if not isinstance(saved, dict):
        saved = {}
    size = part.stat().st_size if part.exists() else 0
    if size > record["size"] or any(saved.get(k) != record[k] for k in ("etag", "sha256", "size")):
        part.unlink(missing_ok=True)
        return 0
    return size


class _Transfer:
    """Appends to the .part, hashing as it goes."""

    def __init__(self, part: Path, cancel: threading.Event, meter: _Meter,
                 error_for: Callable[[int], HubError]) -> None:
        self.part, self.cancel, self.meter, self.error_for = part, cancel, meter, error_for
        self.hasher = hashlib.sha256()
        self.done = 0

    def load_part(self) -> None:
        """Hash what an earlier attempt left, so the final check covers the whole file."""
        if not self.part.exists():
            return
        with self.part.open("rb") as f:
            while chunk := f.read(1 << 20):
                if self.cancel.is_set():
                    raise _cancelled(self.part.name)
                self.hasher.update(chunk)
                self.done += len(chunk)
        self.meter.update(self.done, force=True)

    def restart(self) -> None:
        self.part.open("wb").close()
        self.hasher, self.done = hashlib.sha256(), 0
        self.meter.reset()

    def fetch(self, location: str, headers: dict[str, str]) -> None:
        if self.done:
            headers = {**headers, "Range": f"bytes={self.done}-"}
        with get_session().stream("GET", location, headers=headers, timeout=TRANSFER_TIMEOUT) as response:
            if response.status_code == 200 and self.done:
                self.restart()  # the server ignored the Range: take the whole file again
            elif response.status_code == 206:
                if not response.headers.get("Content-Range", "").startswith(f"bytes {self.done}-"):
                    raise HubError("The server answered another byte range than asked.",
                                   kind=HubError.HTTP)
            elif response.status_code >= 500:
                raise HubError(f"the server answered HTTP {response.status_code}",
                               kind=HubError.CONNECTION)
            elif response.status_code != 200:
                raise self.error_for(response.status_code)
            with _shutdown_on_cancel(response, self.cancel), self.part.open("ab") as f:
                for piece in response.iter_raw():
                    if self.cancel.is_set():
                        return
                    f.write(piece)
                    self.hasher.update(piece)
                    self.done += len(piece)
                    self.meter.update(self.done)


class _Meter:
    """Progress callbacks at most every PROGRESS_INTERVAL, with the speed over the last seconds."""

    def __init__(self, total: int, callback: Callable[[DownloadProgress], None] | None) -> None:
        self.total, self.callback = total, callback
        self.samples: deque[tuple[float, int]] = deque(maxlen=30)
        self.last = 0.0

    def reset(self) -> None:
        self.samples.clear()

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self.last < PROGRESS_INTERVAL):
            return
        self.last = now
        self.samples.append((now, done))
        start, start_done = self.samples[0]
        speed = max(0.0, (done - start_done) / (now - start)) if now > start else 0.0
        left = (self.total - done) / speed if speed > 0 else None
        self.callback(DownloadProgress(done, self.total, speed, left))


@contextmanager
def _shutdown_on_cancel(response: httpx2.Response, cancel: threading.Event) -> Iterator[None]:
    """Shut the response's socket down as soon as `cancel` is set: a blocked read returns at once."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if cancel.wait(0.05):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return

    watcher = threading.Thread(target=watch, name="hub-download-cancel", daemon=True)
    if sock is not None:
        watcher.start()
    try:
        yield
    finally:
        finished.set()
        if watcher.is_alive():
            watcher.join()


# --- the token -------------------------------------------------------------------------------


def load_token() -> str | None:
    """The saved token; a damaged file (not text, a folder, a pipe) is said once and ignored."""
    path = paths.config_dir() / TOKEN_FILE
    try:
        text = settings_file.read_bytes(path, 64 * 1024).decode("ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, settings_file.DamagedSettings) as error:
        settings_file.note(f"The Hugging Face access token in {path} could not be read ({error}); "
                           "Llamadesk carries on without it. Enter it again in the download dialog.")
        return None
    return text if text and text.isprintable() and not any(c.isspace() for c in text) else None


def save_token(token: str) -> None:
    """Keep the token readable by the user only; an empty token deletes it."""
    path = paths.config_dir() / TOKEN_FILE
    token = token.strip()
    if not token:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(TOKEN_FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)


# --- helpers ---------------------------------------------------------------------------------


def endpoint_url() -> str:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        raise HubError("Offline mode is on (HF_HUB_OFFLINE): the Hugging Face hub is not contacted.",
                       kind=HubError.OFFLINE)
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def auth_headers(token: str | None) -> dict[str, str]:
    return build_hf_headers(token=token or False)


def _transfer_headers(location: str, endpoint: str, token: str | None) -> dict[str, str]:
    """The token goes to the hub only, never to the CDN a signed URL points to."""
    same_origin = urlsplit(location)[:2] == urlsplit(endpoint)[:2]
    headers = auth_headers(token if same_origin else None)
    headers["Accept-Encoding"] = "identity"
    return headers


@contextmanager
def hub_errors(endpoint: str, repo_id: str = "", filename: str = "") -> Iterator[None]:
    """Turn huggingface_hub's and httpx2's exceptions into HubErrors people can read."""
    try:
        yield
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else 0
        raise _status_error(status, endpoint, repo_id, filename) from e
    except (OfflineModeIsEnabled, httpx2.ConnectError, httpx2.ConnectTimeout) as e:
        raise HubError(f"The Hugging Face hub ({endpoint}) cannot be reached. Check the internet "
                       "connection; models already downloaded still work.", kind=HubError.OFFLINE) from e
    except httpx2.TransportError as e:
        raise HubError(f"The connection to {endpoint} failed: {e}", kind=HubError.CONNECTION) from e
    except HFValidationError as e:
        raise HubError(f"“{repo_id}” is not a valid repository name.", kind=HubError.NOT_FOUND) from e


def _status_error(status: int, endpoint: str, repo_id: str, filename: str) -> HubError:
    hub = endpoint or DEFAULT_ENDPOINT
    what = f"“{filename}” in “{repo_id}”" if filename else f"“{repo_id}”" if repo_id else "the search"
    if status in (401, 403):
        return HubError((
            f"{what} is gated or private: it needs a Hugging Face access token from an account that "
            f"has been granted access. Request access at {hub}/{repo_id}, create a read token at "
            f"{hub}/settings/tokens and enter it in the app."), kind=HubError.UNAUTHORIZED)
    if status == 404:
        return HubError(f"{what} was not found on the Hugging Face hub.", kind=HubError.NOT_FOUND)
    return HubError(f"The Hugging Face hub answered HTTP {status} for {what}.", kind=HubError.HTTP)


def _cancelled(name: str) -> HubError:
    return HubError(f"The download of {name} was cancelled; it can be resumed later.",
                    kind=HubError.CANCELLED)


def _disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
