"""A download as a job against the fake hub: it finishes verified, a cancel keeps the .part and a
new task resumes it, a failure says why, and it goes on when its dialog is gone."""

from __future__ import annotations

import hashlib

import pytest

from app.session.download_task import DownloadTask
from app.ui.models.hub_dialog import HubDialog
from tests.core.test_hub import gguf_bytes
from tests.fixtures.fake_hub import TOKEN

REPO = "someone/Tiny-Llama-GGUF"
FILE = "Tiny-Llama-Q4_K_M.gguf"


@pytest.fixture
def data(tmp_path, fake_hub) -> bytes:
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(REPO, {FILE: data})
    return data


@pytest.fixture
def library(tmp_path):
    return tmp_path / "models"


def cdn_ranges(fake_hub) -> list[str | None]:
    return [r.range for r in fake_hub.cdn_requests() if r.method == "GET"]


def test_a_download_reports_progress_and_finishes_verified(qtbot, data, library) -> None:
    task = DownloadTask(REPO, FILE, library)
    seen = []
    task.progress.connect(seen.append)
    with qtbot.waitSignal(task.finished, timeout=20_000) as finished:
        task.start()
    assert finished.args[0] == str(library / FILE) and not task.running
    assert hashlib.sha256((library / FILE).read_bytes()).digest() == hashlib.sha256(data).digest()
    assert seen and seen[-1].done == seen[-1].total == len(data) and task.last_progress == seen[-1]
    assert sorted(p.name for p in library.iterdir()) == [FILE]


def test_pause_keeps_the_part_and_a_new_task_resumes_it(qtbot, fake_hub, data, library) -> None:
    fake_hub.slow = 200_000  # bytes a second
    task = DownloadTask(REPO, FILE, library)
    with qtbot.waitSignal(task.progress, check_params_cb=lambda p: p.done > 0, timeout=10_000):
        task.start()
    assert task.running
    with qtbot.waitSignal(task.failed, timeout=5_000) as failed:
        task.pause()
    assert failed.args[0] == "paused" and "kept" in failed.args[1] and not task.running
    kept = (library / f"{FILE}.part").stat().st_size
    assert 0 < kept < len(data) and not (library / FILE).exists()

    fake_hub.slow = None
    again = DownloadTask(REPO, FILE, library)
    with qtbot.waitSignal(again.finished, timeout=20_000):
        again.start()
    assert cdn_ranges(fake_hub)[-1] == f"bytes={kept}-"
    assert (library / FILE).read_bytes() == data


def test_a_failure_says_why_and_leaves_nothing_in_the_library(qtbot, fake_hub, data, library) -> None:
    fake_hub.corrupt = True
    task = DownloadTask(REPO, FILE, library)
    with qtbot.waitSignal(task.failed, timeout=20_000) as failed:
        task.start()
    kind, message = failed.args
    assert kind == "hash_mismatch" and "checksum does not match" in message
    assert list(library.iterdir()) == []


def test_a_gated_file_needs_the_token(qtbot, tmp_path, fake_hub, library) -> None:
    fake_hub.add_repo("org/Gated-GGUF", {FILE: gguf_bytes(tmp_path, FILE)}, gated="manual")
    refused = DownloadTask("org/Gated-GGUF", FILE, library)
    with qtbot.waitSignal(refused.failed, timeout=10_000) as failed:
        refused.start()
    assert failed.args[0] == "unauthorized" and "token" in failed.args[1]
    allowed = DownloadTask("org/Gated-GGUF", FILE, library, token=TOKEN)
    with qtbot.waitSignal(allowed.finished, timeout=20_000):
        allowed.start()


def test_the_download_outlives_its_dialog(qtbot, fake_hub, data, library) -> None:
    fake_hub.slow = 200_000
    dialog = HubDialog(library)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.download_started) as started:
        dialog.start_download(REPO, FILE)
    task = started.args[0]
    with qtbot.waitSignal(task.progress, timeout=10_000):
        pass
    gone: list[bool] = []
    dialog.destroyed.connect(lambda: gone.append(True))
    dialog.deleteLater()
    qtbot.waitUntil(lambda: bool(gone), timeout=5_000)
    assert task.running
    fake_hub.slow = None
    with qtbot.waitSignal(task.finished, timeout=20_000) as finished:
        pass
    path = library / "someone" / "Tiny-Llama-GGUF" / FILE  # the dialog keeps models/<owner>/<repo>/
    assert finished.args[0] == str(path) and path.read_bytes() == data


def test_cancel_stops_and_deletes_the_part(qtbot, fake_hub, data, library) -> None:
    """Issue 12, item 12: "Cancel download" only paused, and left the part file with no way to delete it."""
    fake_hub.slow = 200_000
    task = DownloadTask(REPO, FILE, library)
    with qtbot.waitSignal(task.progress, check_params_cb=lambda p: p.done > 0, timeout=10_000):
        task.start()
    with qtbot.waitSignal(task.failed, timeout=5_000) as failed:
        task.cancel()
    kind, message = failed.args
    assert kind == "cancelled" and not task.running
    assert message.startswith(f"The download of {FILE} was cancelled and its partial file deleted (")
    assert list(library.iterdir()) == []  # neither the .part nor the .part.json is left
