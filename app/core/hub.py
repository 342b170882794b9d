"""Finding and downloading GGUF models on the Hugging Face hub. No Qt: call it from a worker thread.

Searching and listing go through huggingface_hub's HTTP session. Downloading does not use
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
from datetime import datetime
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit

import httpx2
from huggingface_hub import HfApi, get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from app import paths
from app.core import settings_file
from app.core.errors import UserFacingError
from app.core.library import human_size

DEFAULT_ENDPOINT = "https://huggingface.co"
API_TIMEOUT = 10.0
TRANSFER_TIMEOUT = httpx2.Timeout(10.0, read=60.0)  # a read stalled this long counts as a drop
SPACE_MARGIN = 16 << 20
PROGRESS_INTERVAL = 0.1
TOKEN_FILE = "hf_token"
_SORTS = {"downloads": "downloads", "likes": "likes", "last_modified": "lastModified"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_QUANT = re.compile(r"(?<![A-Z0-9])(I?Q[1-8](?:_[0-9A-Z]{1,2})*|TQ[12]_0|MXFP4|BF16|F16|F32)(?![A-Z0-9])")


class DownloadError(UserFacingError):
    """kind: unauthorized, not_found, hash_mismatch, connection, disk_full, cancelled, offline, http,
    exists (a file of that name is already in the library)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool


@dataclass(frozen=True)
class HubFile:
    filename: str
    size: int
    sha256: str | None
    quantization: str


@dataclass(frozen=True)
class Recommended:
    repo_id: str
    filename: str
    size: int  # approximate: the hub's listing gives the exact one
    summary: str


@dataclass(frozen=True)
class DownloadProgress:
    done: int
    total: int
    bytes_per_s: float
    seconds_left: float | None


RECOMMENDED: tuple[Recommended, ...] = (
    Recommended("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
                808_000_000, "Tiny and quick: everyday questions on any laptop."),
    Recommended("HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF", "smollm2-1.7b-instruct-q4_k_m.gguf",
                1_060_000_000, "Small and fast, good at short English answers and rewriting."),
    Recommended("Qwen/Qwen2.5-1.5B-Instruct-GGUF", "qwen2.5-1.5b-instruct-q4_k_m.gguf",
                1_120_000_000, "Small, multilingual, decent at code and structured output."),
    Recommended("bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf",
                2_020_000_000, "A good balance of speed and quality for chat and summaries."),
    Recommended("bartowski/Phi-3.5-mini-instruct-GGUF", "Phi-3.5-mini-instruct-Q4_K_M.gguf",
                2_390_000_000, "Strong reasoning and maths for its size; long context."),
    Recommended("bartowski/Mistral-7B-Instruct-v0.3-GGUF", "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
                4_370_000_000, "Solid general-purpose 7B: writing, chat, European languages."),
    Recommended("bartowski/Qwen2.5-7B-Instruct-GGUF", "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
                4_680_000_000, "Capable 7B for code, maths and many languages (8 GB RAM or more)."),
    Recommended("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
                4_920_000_000, "The best all-rounder here: chat, writing, reasoning (8 GB RAM or more)."),
)


def quantization(filename: str) -> str:
    """'Q4_K_M' from 'Llama-3.2-1B-Instruct-Q4_K_M.gguf'; '' when the name does not say."""
    found = _QUANT.findall(PurePosixPath(filename).name.upper())
    return found[-1] if found else ""


# --- searching and listing -------------------------------------------------------------------


def search_models(query: str, sort: str = "downloads", limit: int = 30,
                  token: str | None = None) -> list[HubModel]:
    """GGUF repositories whose name contains `query`, best first by `sort`.

    A plain GET rather than HfApi.list_models: that one retries connection errors five times
    with backoff (about 20 s), and offline must be said at once.
    """
    if sort not in _SORTS:
        raise ValueError(f"sort must be one of {sorted(_SORTS)}")
    endpoint = _endpoint()
    params: dict = {"filter": "gguf", "sort": _SORTS[sort], "limit": limit,
                    "expand": ["downloads", "likes", "lastModified", "gated", "tags"]}
    if query.strip():
        params["search"] = query.strip()
    with _hub_errors(endpoint):
        response = get_session().get(f"{endpoint}/api/models", params=params, headers=_headers(token),
                                     timeout=API_TIMEOUT)
        hf_raise_for_status(response)
        items = response.json()
    return [HubModel(repo_id=item["id"], downloads=item.get("downloads") or 0, likes=item.get("likes") or 0,
                     last_modified=_datetime(item.get("lastModified")), gated=bool(item.get("gated")))
            for item in items]


def list_gguf_files(repo_id: str, token: str | None = None) -> list[HubFile]:
    """The .gguf files of a repository with size and sha256; split parts are listed as they are."""
    endpoint = _endpoint()
    with _hub_errors(endpoint, repo_id):
        info = HfApi(endpoint=endpoint).model_info(repo_id, files_metadata=True, token=token or False,
                                                   timeout=API_TIMEOUT)
    files = []
    for sibling in info.siblings or ():
        if sibling.rfilename.lower().endswith(".gguf"):
            lfs = sibling.lfs
            files.append(HubFile(sibling.rfilename, sibling.size or (lfs.size if lfs else 0),
                                 lfs.sha256 if lfs else None, quantization(sibling.rfilename)))
    return sorted(files, key=lambda f: f.filename)


# --- downloading -----------------------------------------------------------------------------


def download(repo_id: str, filename: str, dest_dir: Path, token: str | None = None,
             progress: Callable[[DownloadProgress], None] | None = None,
             cancel: threading.Event | None = None, retries: int = 3,
             free_space: Callable[[Path], int] | None = None) -> Path:
    """Download one file of a repository into `dest_dir` and return its path there.

    `retries` counts dropped connections in a row without progress. Raises DownloadError.
    """
    cancel = cancel or threading.Event()
    endpoint = _endpoint()
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = PurePosixPath(filename).name
    final, part, sidecar = dest_dir / name, dest_dir / f"{name}.part", dest_dir / f"{name}.part.json"
    if os.path.lexists(final):
        raise DownloadError("exists", f"{name} is already in the library ({final}). Delete it first to "
                                      "download it again.")
    url = hf_hub_url(repo_id, filename, endpoint=endpoint)
    remote = _remote_file(url, token, endpoint, repo_id, filename)
    record = {"url": url, "etag": remote.etag, "sha256": remote.sha256, "size": remote.size}

    have = _resumable_length(part, sidecar, record)
    needed, available = remote.size - have + SPACE_MARGIN, (free_space or _disk_free)(dest_dir)
    if available < needed:
        raise DownloadError("disk_full", f"Not enough free space for {name}: {human_size(needed)} needed, "
                                         f"{human_size(available)} free in {dest_dir}.")
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
                        raise DownloadError("http", f"{name} changed on the hub during the download.")
                transfer.fetch(remote.location, _transfer_headers(remote.location, endpoint, token))
            except (httpx2.TransportError, DownloadError) as e:
                if isinstance(e, DownloadError) and e.kind not in ("connection", "offline"):
                    raise
                error = e
            if cancel.is_set():
                raise _cancelled(name)
            if transfer.done < remote.size:
                failures = 1 if transfer.done > before else failures + 1
                if failures > retries:
                    reason = str(error) if error else "the connection closed early"
                    raise DownloadError("connection", f"The download of {name} kept failing ({reason}). "
                                                      "It can be resumed later.") from error
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError("disk_full", f"The disk filled up while downloading {name}. Free some "
                                             "space and download again: it resumes where it stopped.") from e
        raise
    transfer.meter.update(transfer.done, force=True)

    if transfer.done != remote.size or (remote.sha256 and transfer.hasher.hexdigest() != remote.sha256):
        part.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
        raise DownloadError("hash_mismatch", f"{name} arrived damaged (its checksum does not match the "
                                             "hub's) and was deleted. Please download it again.")
    with part.open("r+b") as f:
        os.fsync(f.fileno())
    try:
        os.link(part, final)  # unlike a rename, never replaces a file that appeared meanwhile
    except FileExistsError:
        raise DownloadError("exists", f"{name} appeared in the library during the download; the "
                                      f"download is kept as {part.name}.") from None
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
    with _hub_errors(endpoint, repo_id, filename):
        meta = get_hf_file_metadata(url, token=token or False, timeout=API_TIMEOUT, endpoint=endpoint)
    if meta.size is None or not meta.etag:
        raise DownloadError("http", f"The hub did not give the size of {filename}.")
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
                 error_for: Callable[[int], DownloadError]) -> None:
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
                    raise DownloadError("http", "The server answered another byte range than asked.")
            elif response.status_code >= 500:
                raise DownloadError("connection", f"the server answered HTTP {response.status_code}")
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


def _endpoint() -> str:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        raise DownloadError("offline", "Offline mode is on (HF_HUB_OFFLINE): the Hugging Face hub "
                                       "is not contacted.")
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _headers(token: str | None) -> dict[str, str]:
    return build_hf_headers(token=token or False)


def _transfer_headers(location: str, endpoint: str, token: str | None) -> dict[str, str]:
    """The token goes to the hub only, never to the CDN a signed URL points to."""
    same_origin = urlsplit(location)[:2] == urlsplit(endpoint)[:2]
    headers = _headers(token if same_origin else None)
    headers["Accept-Encoding"] = "identity"
    return headers


@contextmanager
def _hub_errors(endpoint: str, repo_id: str = "", filename: str = "") -> Iterator[None]:
    """Turn huggingface_hub's and httpx2's exceptions into DownloadErrors people can read."""
    try:
        yield
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else 0
        raise _status_error(status, endpoint, repo_id, filename) from e
    except (OfflineModeIsEnabled, httpx2.ConnectError, httpx2.ConnectTimeout) as e:
        raise DownloadError("offline", f"The Hugging Face hub ({endpoint}) cannot be reached. Check the "
                                       "internet connection; models already downloaded still work.") from e
    except httpx2.TransportError as e:
        raise DownloadError("connection", f"The connection to {endpoint} failed: {e}") from e
    except HFValidationError as e:
        raise DownloadError("not_found", f"“{repo_id}” is not a valid repository name.") from e


def _status_error(status: int, endpoint: str, repo_id: str, filename: str) -> DownloadError:
    hub = endpoint or DEFAULT_ENDPOINT
    what = f"“{filename}” in “{repo_id}”" if filename else f"“{repo_id}”" if repo_id else "the search"
    if status in (401, 403):
        return DownloadError("unauthorized", (
            f"{what} is gated or private: it needs a Hugging Face access token from an account that "
            f"has been granted access. Request access at {hub}/{repo_id}, create a read token at "
            f"{hub}/settings/tokens and enter it in the app."))
    if status == 404:
        return DownloadError("not_found", f"{what} was not found on the Hugging Face hub.")
    return DownloadError("http", f"The Hugging Face hub answered HTTP {status} for {what}.")


def _cancelled(name: str) -> DownloadError:
    return DownloadError("cancelled", f"The download of {name} was cancelled; it can be resumed later.")


def _disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _datetime(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None

