"""The download dialog against the fake hub: recommended offline, search, files, download,
pause and resume, gated repositories."""

from __future__ import annotations

import hashlib
import socket

import pytest

from app.core.models import hub
from app.core.models.hub_search import RECOMMENDED, quantization
from app.ui.models.hub_dialog import HubDialog
from tests.core.test_hub import gguf_bytes
from tests.fixtures.fake_hub import TOKEN

REPO = "someone/Tiny-Llama-GGUF"
FILE = "Tiny-Llama-Q4_K_M.gguf"


def in_repo(tmp_path, name: str = FILE):
    """Where the dialog puts a file of REPO: models/<owner>/<repo>/."""
    return tmp_path / "models" / "someone" / "Tiny-Llama-GGUF" / name


@pytest.fixture
def dialog(qtbot, tmp_path):
    d = HubDialog(tmp_path / "models")
    (tmp_path / "models").mkdir()
    qtbot.addWidget(d)
    d.show()
    yield d
    stop(qtbot, d)
    d.close()


def stop(qtbot, d: HubDialog) -> None:
    """Cancel a download still running and wait until its thread has said its last word."""
    if d.downloading:
        with qtbot.waitSignal(d.task.failed, timeout=5_000):
            d.cancel_download()


def rows(d: HubDialog) -> list[str]:
    return [d.results.item(i).text().split("\n")[0] for i in range(d.results.count())]


def file_rows(d: HubDialog) -> list[list[str]]:
    return [[d.files.item(r, c).text() for c in range(4)] for r in range(d.files.rowCount())]


def test_recommended_models_show_without_a_network(qtbot, dialog, monkeypatch) -> None:
    with socket.socket() as s:  # a port nobody listens on: the hub is unreachable
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    assert rows(dialog)[0] == "Recommended"
    assert {r.repo_id for r in RECOMMENDED} <= set(rows(dialog)[1:])
    dialog.results.setCurrentRow(1)  # a recommended model: its file shows before any listing
    first = RECOMMENDED[0]
    assert file_rows(dialog)[0][:2] == [first.filename, quantization(first.filename)]
    assert dialog.download_button.isEnabled()
    qtbot.waitUntil(lambda: "cannot be reached" in dialog.message.text(), timeout=10_000)
    dialog.message.setText("")
    dialog.search("llama")
    qtbot.waitUntil(lambda: "cannot be reached" in dialog.message.text(), timeout=10_000)


def test_search_open_download_and_verify(qtbot, dialog, fake_hub, tmp_path) -> None:
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(REPO, {FILE: data, "README.md": b"hi"}, downloads=42)
    fake_hub.add_repo("other/Llama-Other-GGUF", {}, downloads=7)
    dialog.search("llama")
    qtbot.waitUntil(lambda: rows(dialog) == [REPO, "other/Llama-Other-GGUF"], timeout=10_000)
    dialog.results.setCurrentRow(0)
    qtbot.waitUntil(lambda: dialog.files.rowCount() == 1, timeout=10_000)
    name, quant, size, verdict = file_rows(dialog)[0]
    assert (name, quant) == (FILE, "Q4_K_M") and size.endswith("MB") and verdict == "fits"
    dialog.files.selectRow(0)
    with qtbot.waitSignal(dialog.downloaded, timeout=20_000) as done:
        dialog.download_button.click()
    path = in_repo(tmp_path)
    assert done.args[0] == str(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert dialog.progress.value() == 1000 and "verified" in dialog.message.text()


def test_pause_keeps_the_part_and_download_again_resumes(qtbot, dialog, fake_hub, tmp_path) -> None:
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(REPO, {FILE: data})
    fake_hub.slow = 200_000  # bytes a second
    dialog.start_download(REPO, FILE)
    qtbot.waitUntil(lambda: dialog.progress.value() > 50, timeout=10_000)
    with qtbot.waitSignal(dialog.task.failed, timeout=5_000) as failed:
        dialog.pause_button.click()
    assert failed.args[0] == "paused" and not dialog.downloading
    assert "paused" in dialog.message.text()
    part = in_repo(tmp_path, f"{FILE}.part")
    assert part.exists() and part.stat().st_size > 0
    assert not in_repo(tmp_path).exists()
    fake_hub.slow = None
    with qtbot.waitSignal(dialog.downloaded, timeout=20_000):
        dialog.start_download(REPO, FILE)
    ranges = [r.range for r in fake_hub.cdn_requests() if r.method == "GET"]
    assert ranges[-1] and ranges[-1].startswith("bytes=") and not ranges[-1].startswith("bytes=0-")
    assert in_repo(tmp_path).read_bytes() == data


def test_a_gated_repository_asks_for_a_token(qtbot, dialog, fake_hub, tmp_path) -> None:
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(REPO, {FILE: data}, gated="manual")
    dialog.start_download(REPO, FILE)
    with qtbot.waitSignal(dialog.task.failed, timeout=10_000) as failed:
        pass
    assert failed.args[0] == "unauthorized" and "token" in dialog.message.text().lower()
    dialog.token.setText(TOKEN)
    dialog.save_token_button.click()
    assert hub.load_token() == TOKEN
    with qtbot.waitSignal(dialog.downloaded, timeout=20_000):
        dialog.start_download(REPO, FILE)


def test_closing_the_dialog_leaves_the_download_running_and_a_new_dialog_shows_it(qtbot, fake_hub,
                                                                                 tmp_path) -> None:
    (tmp_path / "models").mkdir()
    d = HubDialog(tmp_path / "models")
    qtbot.addWidget(d)
    d.show()
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(REPO, {FILE: data})
    fake_hub.slow = 100_000
    with qtbot.waitSignal(d.download_started) as started:
        d.start_download(REPO, FILE)
    task = started.args[0]
    qtbot.waitUntil(lambda: d.progress.value() > 20, timeout=10_000)
    d.close()
    assert task.running  # closing the dialog is not cancelling the download
    again = HubDialog(tmp_path / "models", task=task)
    qtbot.addWidget(again)
    again.show()
    assert again.downloading and again.cancel_button.isEnabled() and again.progress.value() > 20
    fake_hub.slow = None
    with qtbot.waitSignal(again.downloaded, timeout=20_000) as done:
        pass
    assert done.args[0] == str(in_repo(tmp_path))
    assert in_repo(tmp_path).read_bytes() == data and not again.downloading
    assert "verified" in again.message.text()


def test_a_corrupt_download_is_refused_and_nothing_reaches_the_library(qtbot, dialog, fake_hub,
                                                                      tmp_path) -> None:
    fake_hub.add_repo(REPO, {FILE: gguf_bytes(tmp_path, FILE)})
    fake_hub.corrupt = True
    dialog.start_download(REPO, FILE)
    with qtbot.waitSignal(dialog.task.failed, timeout=20_000) as failed:
        pass
    assert failed.args[0] == "hash_mismatch" and not dialog.downloading
    assert "damaged" in dialog.message.text() and "checksum does not match" in dialog.message.text()
    assert [p for p in (tmp_path / "models").rglob("*") if p.is_file()] == []
