"""Issue 12, items 12 and 19 in the download dialog: Esc says the download goes on; Pause keeps the
part file and lists it, Cancel download deletes it, Remove deletes a paused one; paused downloads are
listed again by a new dialog (after a restart) and resume; the files table has no row numbers, an
unclipped header and offers Load for a file already downloaded; no "0 %" when idle and no speed while
paused."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.ui.models.hub_dialog import HubDialog
from tests.core.test_hub import gguf_bytes

REPO = "someone/Tiny-Llama-GGUF"
FILE = "Tiny-Llama-Q4_K_M.gguf"


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def data(tmp_path, fake_hub) -> bytes:
    data = gguf_bytes(tmp_path, FILE)
    fake_hub.add_repo(REPO, {FILE: data})
    return data


def open_dialog(qtbot, models) -> HubDialog:
    dialog = HubDialog(models)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def stop(qtbot, dialog: HubDialog) -> None:
    if dialog.downloading:
        with qtbot.waitSignal(dialog.task.failed, timeout=5_000):
            dialog.cancel_download()


def start_slowly(qtbot, fake_hub, dialog: HubDialog) -> None:
    """A download that runs until paused: its first bytes are on disk."""
    fake_hub.slow = 200_000
    dialog.start_download(REPO, FILE)
    with qtbot.waitSignal(dialog.task.progress, check_params_cb=lambda p: p.done > 0, timeout=10_000):
        pass


def paused_rows(dialog: HubDialog) -> list[list[str]]:
    table = dialog.paused.table
    return [[table.item(r, c).text() for c in range(3)] for r in range(table.rowCount())]


def part_of(models):
    return models / "someone" / "Tiny-Llama-GGUF" / f"{FILE}.part"


def test_esc_closes_the_dialog_and_says_the_download_goes_on(qtbot, fake_hub, data, models) -> None:
    dialog = open_dialog(qtbot, models)
    start_slowly(qtbot, fake_hub, dialog)
    with qtbot.waitSignal(dialog.continues_in_background, timeout=1_000) as told:
        qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible() and dialog.task.running  # closed, not paused
    assert told.args[0].startswith(f"{FILE} goes on downloading in the background (")
    assert "Model ▸ Download models" in told.args[0]
    stop(qtbot, dialog)


def test_pause_keeps_and_lists_the_part_and_remove_deletes_it(qtbot, fake_hub, data, models) -> None:
    dialog = open_dialog(qtbot, models)
    start_slowly(qtbot, fake_hub, dialog)
    assert dialog.pause_button.isEnabled() and dialog.cancel_button.isEnabled()
    with qtbot.waitSignal(dialog.task.failed, timeout=5_000) as failed:
        dialog.pause_button.click()
    assert failed.args[0] == "paused" and part_of(models).stat().st_size > 0
    qtbot.waitUntil(lambda: dialog.paused.table.rowCount() == 1, timeout=5_000)
    name, source, share = paused_rows(dialog)[0]
    assert (name, source) == (FILE, REPO) and " of " in share and "%" in share
    text = dialog.progress_label.text()
    assert text.startswith("Paused at ") and "/s" not in text and "left" not in text  # no speed now
    dialog.paused.remove_button.click()
    qtbot.waitUntil(lambda: dialog.paused.table.rowCount() == 0, timeout=5_000)
    assert not part_of(models).exists() and not part_of(models).with_suffix(".part.json").exists()
    assert dialog.message.text().startswith(f"Removed the paused download of {FILE} (")


def test_cancel_download_deletes_the_part(qtbot, fake_hub, data, models) -> None:
    dialog = open_dialog(qtbot, models)
    start_slowly(qtbot, fake_hub, dialog)
    with qtbot.waitSignal(dialog.task.failed, timeout=5_000) as failed:
        dialog.cancel_button.click()
    assert failed.args[0] == "cancelled" and "partial file deleted" in dialog.message.text()
    assert [p for p in models.rglob("*") if p.is_file()] == []
    assert not dialog.progress.isVisibleTo(dialog) and dialog.progress_label.text() == ""


def test_a_paused_download_is_listed_by_a_new_dialog_and_resumes(qtbot, fake_hub, data, models) -> None:
    first = open_dialog(qtbot, models)
    start_slowly(qtbot, fake_hub, first)
    with qtbot.waitSignal(first.task.failed, timeout=5_000):
        first.pause_download()
    kept = part_of(models).stat().st_size
    first.close()
    fake_hub.slow = None
    again = open_dialog(qtbot, models)  # as after a restart: found from the part file on disk
    qtbot.waitUntil(lambda: again.paused.table.rowCount() == 1, timeout=5_000)
    assert paused_rows(again)[0][:2] == [FILE, REPO] and again.paused.resume_button.isEnabled()
    with qtbot.waitSignal(again.downloaded, timeout=20_000) as done:
        again.paused.resume_button.click()
    assert done.args[0] == str(models / "someone" / "Tiny-Llama-GGUF" / FILE)
    assert [r.range for r in fake_hub.cdn_requests() if r.method == "GET"][-1] == f"bytes={kept}-"
    qtbot.waitUntil(lambda: again.paused.table.rowCount() == 0, timeout=5_000)


def test_the_files_table_reads_cleanly_and_offers_load_once_downloaded(qtbot, data, models) -> None:
    dialog = open_dialog(qtbot, models)
    assert not dialog.progress.isVisibleTo(dialog)  # idle: no "0 %"
    dialog.open_repo(REPO)
    qtbot.waitUntil(lambda: dialog.files.rowCount() == 1, timeout=10_000)
    assert not dialog.files.verticalHeader().isVisibleTo(dialog)  # no row numbers
    header = dialog.files.horizontalHeader()
    assert all(header.sectionSize(c) >= header.sectionSizeFromContents(c).width() for c in (1, 2, 3))
    assert dialog.files.item(0, 3).text() == "fits"
    dialog.files.selectRow(0)
    with qtbot.waitSignal(dialog.downloaded, timeout=20_000) as done:
        dialog.download_button.click()
    assert dialog.files.item(0, 3).text() == "downloaded" and dialog.download_button.text() == "Load"
    with qtbot.waitSignal(dialog.load_requested, timeout=1_000) as load:
        dialog.download_button.click()
    assert load.args[0] == done.args[0]
    again = open_dialog(qtbot, models)  # a new dialog sees the file on disk too
    again.open_repo(REPO)
    qtbot.waitUntil(lambda: again.files.rowCount() == 1 and again.files.item(0, 3).text() == "downloaded",
                    timeout=10_000)
