"""The download dialog's list of paused downloads: each one's file, where it comes from and how much
of it is on disk, with Resume and Remove. They are found on disk (their .part files), so a download
paused before a restart, or cut by a quit or a crash, is listed again and resumes where it stopped.
Finding them and removing one (its part file) are flows: the disk is read in a worker thread.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.models.download_files import PartialDownload
from app.core.models.library_files import human_size
from app.session.download_task import find_paused, remove_paused
from app.session.tasks import Latest, start


def share_text(done: int, total: int) -> str:
    """ "12.3 MB of 45.6 MB (27 %)"; without the share when the size is unknown."""
    share = f" ({100 * done // total} %)" if total else ""
    return f"{human_size(done)} of {human_size(total)}{share}"


class PausedDownloads(QWidget):
    resume_requested = Signal(object)  # PartialDownload
    message = Signal(str)  # what removing one did, for the dialog's message line

    def __init__(self, models_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models_dir = models_dir
        self.partials: list[PartialDownload] = []
        self._scan = Latest("paused downloads")
        self._running: tuple[Path, str] | None = None
        self.title = QLabel("<b>Paused downloads</b>")
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("pausedDownloads")
        self.table.setHorizontalHeaderLabels(["File", "From", "Downloaded"])
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMaximumHeight(120)
        self.resume_button = QPushButton("Resume")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Delete the part already downloaded.")
        buttons = QHBoxLayout()
        buttons.addWidget(self.title)
        buttons.addStretch(1)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.remove_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(buttons)
        column.addWidget(self.table)
        self.resume_button.clicked.connect(self._resume_selected)
        self.remove_button.clicked.connect(self._remove_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.busy = False  # another download runs: one at a time
        self.show_partials([])

    def refresh(self, running: tuple[Path, str] | None = None) -> None:
        """Find the paused downloads on disk again; `running` (folder, name) is not paused."""
        self._running = running
        self._scan.start(self._find())

    async def _find(self) -> None:
        found = await find_paused(self.models_dir)
        self.show_partials([p for p in found if (p.folder, p.name) != self._running])

    def _remove_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            start(self._remove(chosen), "remove a paused download")

    async def _remove(self, partial: PartialDownload) -> None:
        try:
            freed = await remove_paused(partial)
        except OSError as error:
            self.message.emit(f"The partial download of {partial.name} could not be deleted: "
                              f"{error.strerror or error}.")
        else:
            self.message.emit(f"Removed the paused download of {partial.name} ({human_size(freed)} freed).")
        self.refresh(self._running)

    def show_partials(self, partials: list[PartialDownload]) -> None:
        """List these (none: the whole section hides)."""
        self.partials = partials
        self.table.setRowCount(len(partials))
        for row, p in enumerate(partials):
            for column, text in enumerate((p.name, p.repo_id, share_text(p.done, p.total))):
                item = QTableWidgetItem(text)
                item.setToolTip(str(p.folder / p.name))
                self.table.setItem(row, column, item)
        if partials and not self.table.selectionModel().selectedRows():
            self.table.selectRow(0)
        self.setVisible(bool(partials))
        self._update_buttons()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_buttons()

    def selected(self) -> PartialDownload | None:
        rows = self.table.selectionModel().selectedRows()
        return self.partials[rows[0].row()] if rows and rows[0].row() < len(self.partials) else None

    def _update_buttons(self) -> None:
        chosen = self.selected() is not None
        self.resume_button.setEnabled(chosen and not self.busy)
        self.remove_button.setEnabled(chosen)

    def _resume_selected(self) -> None:
        chosen = self.selected()
        if chosen is not None:
            self.resume_requested.emit(chosen)
