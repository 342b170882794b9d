"""The server panel's live log: one row per request the API server answered, newest at the bottom.

It follows the newest row as rows arrive unless the reader scrolled up, keeps the last 200 rows,
and tints the rows of refused or failed requests (status 400 and above) with the theme's colours.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from app.ui.shell.theme import colors_of

if TYPE_CHECKING:
    from app.core.server.http_app import RequestRecord

MAX_ROWS = 200  # as many as ApiServer.records keeps
COLUMNS = ("Time", "Client", "Method", "Path", "Model", "Status", "Tokens", "tok/s", "Seconds")
TIPS = {
    "Client": "The address the request came from",
    "Model": "The model the client asked for (empty: the loaded one)",
    "Tokens": "Prompt tokens + tokens of the answer",
    "tok/s": "How fast the answer was written",
    "Seconds": "From the request's arrival to its last byte, waiting in the queue included",
}
RIGHT = {"Status", "Tokens", "tok/s", "Seconds"}


def record_cells(record: RequestRecord) -> list[str]:
    """The texts of one row, in COLUMNS' order."""
    generated = record.prompt_tokens or record.completion_tokens
    return [
        time.strftime("%H:%M:%S", time.localtime(record.at)),
        record.client,
        record.method,
        record.path,
        record.model,
        str(record.status),
        f"{record.prompt_tokens} + {record.completion_tokens}" if generated else "",
        f"{record.tokens_per_s:.1f}" if record.tokens_per_s > 0 else "",
        f"{record.seconds:.2f}",
    ]


class RequestLog(QTableWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("requestLog")
        self.setAccessibleName("Requests answered by the server")
        self.setHorizontalHeaderLabels(COLUMNS)
        for column, name in enumerate(COLUMNS):
            if name in TIPS:
                self.horizontalHeaderItem(column).setToolTip(TIPS[name])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().lineSpacing() + 6)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        path = COLUMNS.index("Path")  # /v1/chat/completions fits; longer paths are cut
        header.setSectionResizeMode(path, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(path, self.fontMetrics().horizontalAdvance("/v1/chat/completions") + 16)
        # Model file names run long: the model takes the room left (the whole name in the tooltip).
        header.setSectionResizeMode(COLUMNS.index("Model"), QHeaderView.ResizeMode.Stretch)
        self.at_end = True  # follow new rows, unless the reader scrolled up
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._remember_position)
        bar.rangeChanged.connect(self._keep_end)

    def show_records(self, records: list[RequestRecord]) -> None:
        """Start over from the server's last records (the panel opening)."""
        self.setRowCount(0)
        for record in records[-MAX_ROWS:]:
            self.add(record)

    def add(self, record: RequestRecord) -> None:
        row = self.rowCount()
        self.insertRow(row)
        for column, text in enumerate(record_cells(record)):
            item = QTableWidgetItem(text)
            if COLUMNS[column] in ("Path", "Model"):
                item.setToolTip(text)
            if COLUMNS[column] in RIGHT:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.setItem(row, column, item)
        self.item(row, COLUMNS.index("Status")).setData(Qt.ItemDataRole.UserRole, record.status)
        self._tint(row)
        while self.rowCount() > MAX_ROWS:
            self.removeRow(0)

    def _failed(self, row: int) -> bool:
        return int(self.item(row, COLUMNS.index("Status")).data(Qt.ItemDataRole.UserRole) or 0) >= 400

    def _tint(self, row: int) -> None:
        """A refused or failed request stands out, in the colours of the theme in use."""
        if not self._failed(row):
            return
        colors = colors_of(self.palette())
        background, foreground = QBrush(QColor(colors.banner_bg)), QBrush(QColor(colors.banner_fg))
        for column in range(self.columnCount()):
            item = self.item(row, column)
            item.setBackground(background)
            item.setForeground(foreground)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.ApplicationPaletteChange, QEvent.Type.PaletteChange):
            for row in range(self.rowCount()):
                self._tint(row)

    def _remember_position(self, value: int) -> None:
        self.at_end = value >= self.verticalScrollBar().maximum()

    def _keep_end(self, _minimum: int, maximum: int) -> None:
        if self.at_end:
            self.verticalScrollBar().setValue(maximum)
