"""The download dialog: recommended models (shown offline too), Hugging Face search, a
repository's GGUF files with a fits/tight/won't-fit estimate, and downloads that show every byte.

Searching and listing run in Qt's thread pool; a download runs in a thread of its own
(app.core.hub.download), which reports through queued signals and stops when its cancel event
is set. A cancelled or dropped download keeps its .part file: downloading again resumes it.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core import hub
from app.core.library import human_size
from app.core.memory import FITS, TIGHT, TIGHT_FRACTION, WONT_FIT
from app.core.system import available_ram_bytes
from app.workers.background import run_in_background

SEARCH_PAUSE_MS = 400
SORTS = (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "last_modified"))
_OVERHEAD = 256 * 1024**2  # runtime and a modest context beside the weights


def size_verdict(file_size: int, available: int | None) -> str:
    """From the file's size alone (the header is not downloaded yet): weights + ~15% + overhead."""
    if available is None:
        return ""
    need = file_size * 1.15 + _OVERHEAD
    return FITS if need <= available * TIGHT_FRACTION else TIGHT if need <= available else WONT_FIT


def _explain(error: Exception) -> str:
    return error.message if isinstance(error, hub.DownloadError) else f"Something went wrong: {error}"


class _DownloadRelay(QObject):
    progress = Signal(object)  # DownloadProgress
    done = Signal(str)  # the library path
    failed = Signal(str, str)  # kind, message


class HubDialog(QDialog):
    downloaded = Signal(str)  # the path of a verified file now in the library

    def __init__(self, models_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download models")
        self.setObjectName("hubDialog")
        self.resize(900, 560)
        self.models_dir = models_dir
        self._repo = ""
        self._files: list[hub.HubFile] = []
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._relay = _DownloadRelay(self)
        self._relay.progress.connect(self._on_progress)
        self._relay.done.connect(self._on_done)
        self._relay.failed.connect(self._on_failed)
        self._search_serial = 0
        self._available = available_ram_bytes()
        self._build()
        self._show_recommended()

    # -- construction ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.search_box = QLineEdit(placeholderText="Search Hugging Face for GGUF models…")
        self.sort = QComboBox()
        for label, key in SORTS:
            self.sort.addItem(label, key)
        self.results = QListWidget()
        self.results.setObjectName("hubResults")
        self.results.setWordWrap(True)
        self.results.setSpacing(3)
        self.results.setAlternatingRowColors(True)
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.files = QTableWidget(0, 4)
        self.files.setObjectName("hubFiles")
        self.files.setHorizontalHeaderLabels(["File", "Quantisation", "Size", "On this machine"])
        self.files.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.files.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.files.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.files.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.repo_label = QLabel("Choose a model on the left.")
        self.repo_label.setWordWrap(True)
        self.download_button = QPushButton("Download")
        self.download_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress_label = QLabel("")
        self.message = QLabel("")
        self.message.setObjectName("hubMessage")
        self.message.setWordWrap(True)
        self.token = QLineEdit(placeholderText="Hugging Face token (only for gated models)")
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setText(hub.load_token() or "")
        self.save_token_button = QPushButton("Save token")

        left = QWidget()
        left_column = QVBoxLayout(left)
        left_column.setContentsMargins(0, 0, 0, 0)
        search_row = QHBoxLayout()
        search_row.addWidget(self.search_box, 1)
        search_row.addWidget(self.sort)
        left_column.addLayout(search_row)
        left_column.addWidget(self.results, 1)
        right = QWidget()
        right_column = QVBoxLayout(right)
        right_column.setContentsMargins(0, 0, 0, 0)
        right_column.addWidget(self.repo_label)
        right_column.addWidget(self.files, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        right_column.addLayout(buttons)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setSizes([360, 540])
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(self.save_token_button)
        column = QVBoxLayout(self)
        column.addWidget(splitter, 1)
        column.addWidget(self.progress)
        column.addWidget(self.progress_label)
        column.addWidget(self.message)
        column.addLayout(token_row)

        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_PAUSE_MS)
        self._search_timer.timeout.connect(lambda: self.search(self.search_box.text()))
        self.search_box.textEdited.connect(self._search_timer.start)
        self.search_box.returnPressed.connect(lambda: self.search(self.search_box.text()))
        self.sort.currentIndexChanged.connect(lambda _: self.search(self.search_box.text()))
        self.results.currentItemChanged.connect(self._on_result_chosen)
        self.files.itemSelectionChanged.connect(self._update_buttons)
        self.download_button.clicked.connect(self._download_selected)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.save_token_button.clicked.connect(self._save_token)

    # -- finding models -------------------------------------------------------------------------

    def _show_recommended(self) -> None:
        self.results.clear()
        header = QListWidgetItem("Recommended")
        header.setFlags(Qt.ItemFlag.NoItemFlags)
        self.results.addItem(header)
        for model in hub.RECOMMENDED:
            item = QListWidgetItem(f"{model.repo_id}\n{model.summary} · about {human_size(model.size)}")
            item.setData(Qt.ItemDataRole.UserRole, (model.repo_id, model.filename))
            item.setToolTip(f"{model.filename}\n{model.summary}")
            self.results.addItem(item)

    def search(self, query: str) -> None:
        """Search the hub off the GUI thread; only the latest search's answer is shown."""
        self._search_timer.stop()
        query = query.strip()
        if not query:
            self._show_recommended()
            return
        self._search_serial += 1
        serial, sort = self._search_serial, self.sort.currentData()
        self.message.setText("Searching…")

        def done(models: list[hub.HubModel]) -> None:
            if serial != self._search_serial:
                return
            self.results.clear()
            for model in models:
                gated = "  · gated: needs a token" if model.gated else ""
                item = QListWidgetItem(f"{model.repo_id}\n{model.downloads:,} downloads · "
                                       f"{model.likes:,} likes{gated}")
                item.setData(Qt.ItemDataRole.UserRole, (model.repo_id, ""))
                self.results.addItem(item)
            self.message.setText(f"{len(models)} repositories" if models else f"Nothing found for “{query}”.")

        def failed(error: Exception) -> None:
            if serial == self._search_serial:
                self.message.setText(_explain(error))

        run_in_background(lambda: hub.search_models(query, sort=sort, token=self._token()), done, failed)

    def _on_result_chosen(self, item: QListWidgetItem | None, _previous=None) -> None:
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if data:
            self.open_repo(data[0], select=data[1])

    def open_repo(self, repo_id: str, select: str = "") -> None:
        """List a repository's GGUF files (off the GUI thread). A recommended file shows at once
        (with its approximate size), so it can be downloaded even before the listing answers."""
        self._repo = repo_id
        self.repo_label.setText(f"<b>{repo_id}</b> — loading its files…")
        known = [hub.HubFile(r.filename, r.size, None, hub.quantization(r.filename))
                 for r in hub.RECOMMENDED if r.repo_id == repo_id and r.filename == select]
        self._show_files(known, select)

        def done(files: list[hub.HubFile]) -> None:
            if repo_id != self._repo:
                return
            self._show_files(files, select)
            self.repo_label.setText(f"<b>{repo_id}</b> — {len(files)} GGUF files" if files else
                                    f"<b>{repo_id}</b> has no GGUF files.")

        def failed(error: Exception) -> None:
            if repo_id == self._repo:
                self.repo_label.setText(f"<b>{repo_id}</b>")
                self.message.setText(_explain(error))

        run_in_background(lambda: hub.list_gguf_files(repo_id, token=self._token()), done, failed)

    def _show_files(self, files: list[hub.HubFile], select: str) -> None:
        self._files = files
        self.files.setRowCount(len(files))
        for row, f in enumerate(files):
            verdict = size_verdict(f.size, self._available)
            cells = (f.filename, f.quantization or "?", human_size(f.size), verdict)
            for column, text in enumerate(cells):
                self.files.setItem(row, column, QTableWidgetItem(text))
            if f.filename == select:
                self.files.selectRow(row)
        self._update_buttons()

    # -- downloading ----------------------------------------------------------------------------

    @property
    def downloading(self) -> bool:
        return self._thread is not None

    def _selected_file(self) -> hub.HubFile | None:
        rows = self.files.selectionModel().selectedRows()
        return self._files[rows[0].row()] if rows and rows[0].row() < len(self._files) else None

    def _update_buttons(self) -> None:
        self.download_button.setEnabled(not self.downloading and self._selected_file() is not None)
        self.cancel_button.setEnabled(self.downloading)

    def _download_selected(self) -> None:
        chosen = self._selected_file()
        if chosen is not None:
            self.start_download(self._repo, chosen.filename)

    def start_download(self, repo_id: str, filename: str) -> None:
        if self.downloading:
            return
        self._cancel = threading.Event()
        relay, cancel, token, dest = self._relay, self._cancel, self._token(), self.models_dir

        def tell(signal, *args) -> None:
            with contextlib.suppress(RuntimeError):  # the dialog is gone (the app is closing)
                signal.emit(*args)

        def work() -> None:
            try:
                path = hub.download(repo_id, filename, dest, token=token,
                                    progress=lambda p: tell(relay.progress, p), cancel=cancel)
            except hub.DownloadError as error:
                tell(relay.failed, error.kind, error.message)
            except Exception as error:  # noqa: BLE001 - the user must hear of any failure
                tell(relay.failed, "http", f"The download failed: {error}")
            else:
                tell(relay.done, str(path))

        self._thread = threading.Thread(target=work, name=f"download {filename}", daemon=True)
        self.message.setText(f"Downloading {filename} from {repo_id}…")
        self.progress.setValue(0)
        self.progress_label.setText("Starting…")
        self._thread.start()
        self._update_buttons()

    def cancel_download(self) -> None:
        """Stop within half a second; the partial file stays for a later resume."""
        self._cancel.set()

    def _on_progress(self, p: hub.DownloadProgress) -> None:
        if p.total:
            self.progress.setValue(int(1000 * p.done / p.total))
        left = f", {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
        self.progress_label.setText(f"{human_size(p.done)} of {human_size(p.total)} at "
                                    f"{human_size(int(p.bytes_per_s))}/s{left}")

    def _finish_thread(self) -> None:
        """The thread has said its last word (done or failed): it ends now."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._update_buttons()

    def _on_done(self, path: str) -> None:
        self._finish_thread()
        self.progress.setValue(1000)
        self.message.setText(f"Downloaded and verified: {Path(path).name} is in your library.")
        self.downloaded.emit(path)

    def _on_failed(self, kind: str, message: str) -> None:
        self._finish_thread()
        if kind == "cancelled":
            message = "Paused: the part already downloaded is kept. Download again to resume."
        self.message.setText(message)

    def _token(self) -> str | None:
        return self.token.text().strip() or None

    def _save_token(self) -> None:
        try:
            hub.save_token(self.token.text().strip())
        except OSError as error:
            self.message.setText(f"The token could not be saved: {error.strerror or error}")
            return
        self.message.setText("Token saved (readable by you only)." if self.token.text().strip()
                             else "Token removed.")

    def done(self, result: int) -> None:  # noqa: D401 - Qt's name
        """Closing cancels a download without waiting for it (a stalled server must not freeze
        the window); its thread reports and ends on its own, keeping the .part for a resume."""
        self._cancel.set()
        super().done(result)
