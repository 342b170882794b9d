"""The download dialog: recommended models (shown offline too), Hugging Face search, a
repository's GGUF files with a fits/tight/won't-fit estimate (or "downloaded", to load), and
downloads that show every byte.

Searching and listing are flows (app/session/hub_search.py): a newer search cancels the older. A
download is a DownloadTask (app/session/download_task.py): closing the dialog leaves it running (and
says so) and the dialog shows it again when reopened. Pause keeps its .part file (listed under Paused
downloads, after a restart too: Resume goes on where it stopped); Cancel download deletes it. Files go
to models/<owner>/<repo>/ (download_files.repo_folder): files of the same name from two repositories
coexist.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
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

from app.core.common.errors import UserFacingError
from app.core.common.system import available_ram_bytes
from app.core.models import hub
from app.core.models.download_files import PartialDownload, downloaded_copies, repo_folder
from app.core.models.hub import DownloadProgress, HubError
from app.core.models.hub_search import RECOMMENDED, HubFile, HubModel, quantization
from app.core.models.library_files import human_size
from app.core.models.memory import file_verdict
from app.session import hub_search
from app.session.download_task import PAUSED, DownloadTask
from app.session.tasks import Latest, in_thread
from app.ui.models.paused_downloads import PausedDownloads, share_text

SEARCH_PAUSE_MS = 400
SORTS = (("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "last_modified"))
DOWNLOADED = "downloaded"  # the verdict column of a file already on this machine


def _explain(error: Exception) -> str:
    return error.message if isinstance(error, HubError) else f"Something went wrong: {error}"


class HubDialog(QDialog):
    downloaded = Signal(str)  # the path of a verified file now in the library
    download_started = Signal(object)  # the DownloadTask: it outlives this dialog
    load_requested = Signal(str)  # the path of a file already downloaded, to load
    continues_in_background = Signal(str)  # closed while downloading: what goes on, for the status bar

    def __init__(self, models_dir: Path, parent: QWidget | None = None,
                 task: DownloadTask | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Download models")
        self.setObjectName("hubDialog")
        self.resize(900, 560)
        self.models_dir = models_dir
        self._repo = ""
        self._files: list[HubFile] = []
        self._local: dict[str, Path] = {}  # files of the repository shown that are already downloaded
        self.task: DownloadTask | None = None
        self._search = Latest("hub search")
        self._listing = Latest("hub files")
        self._available = available_ram_bytes()
        self._build()
        self._show_recommended()
        if task is not None and task.running:  # a paused or finished one is no longer shown as going on
            self.watch(task)
        self.refresh_paused()

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
        self.files.verticalHeader().hide()
        self.files.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.files.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.files.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.files.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.files.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.repo_label = QLabel("Choose a model on the left.")
        self.repo_label.setWordWrap(True)
        self.download_button = QPushButton("Download")
        self.download_button.setEnabled(False)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Stop for now and keep what is downloaded: Resume goes on from there.")
        self.pause_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.setToolTip("Stop and delete the part already downloaded.")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setVisible(False)  # shown with a download: no "0 %" while idle
        self.progress_label = QLabel("")
        self.paused = PausedDownloads(self.models_dir)
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
        buttons.addWidget(self.pause_button)
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
        column.addWidget(self.paused)
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
        self.pause_button.clicked.connect(self.pause_download)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.paused.resume_requested.connect(self.resume)
        self.paused.message.connect(self.message.setText)
        self.save_token_button.clicked.connect(self._save_token)

    # -- finding models -------------------------------------------------------------------------

    def _show_recommended(self) -> None:
        self.results.clear()
        header = QListWidgetItem("Recommended")
        header.setFlags(Qt.ItemFlag.NoItemFlags)
        self.results.addItem(header)
        for model in RECOMMENDED:
            item = QListWidgetItem(f"{model.repo_id}\n{model.summary} · about {human_size(model.size)}")
            item.setData(Qt.ItemDataRole.UserRole, (model.repo_id, model.filename))
            item.setToolTip(f"{model.filename}\n{model.summary}")
            self.results.addItem(item)

    def search(self, query: str) -> None:
        """Search the hub in a worker thread; a newer search cancels this one."""
        self._search_timer.stop()
        query = query.strip()
        if not query:
            self._search.cancel()
            self._show_recommended()
            return
        self.message.setText("Searching…")
        self._search.start(self._find(query, self.sort.currentData(), self._token()))

    async def _find(self, query: str, sort: str, token: str | None) -> None:
        try:
            models = await hub_search.search_models(query, sort=sort, token=token)
        except Exception as error:  # noqa: BLE001 - said in the dialog, whatever it is
            self.message.setText(_explain(error))
            return
        self._show_found(query, models)

    def _show_found(self, query: str, models: list[HubModel]) -> None:
        self.results.clear()
        for model in models:
            gated = "  · gated: needs a token" if model.gated else ""
            item = QListWidgetItem(f"{model.repo_id}\n{model.downloads:,} downloads · "
                                   f"{model.likes:,} likes{gated}")
            item.setData(Qt.ItemDataRole.UserRole, (model.repo_id, ""))
            self.results.addItem(item)
        found = f"{len(models)} repositor{'y' if len(models) == 1 else 'ies'}"
        self.message.setText(found if models else f"Nothing found for “{query}”.")

    def _on_result_chosen(self, item: QListWidgetItem | None, _previous=None) -> None:
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if data:
            self.open_repo(data[0], select=data[1])

    def open_repo(self, repo_id: str, select: str = "") -> None:
        """List a repository's GGUF files (in a worker thread). A recommended file shows at once
        (with its approximate size), so it can be downloaded even before the listing answers."""
        self._repo = repo_id
        self._local = {}
        if not self.downloading:  # an old error or "Downloaded…" is not about this repository
            self.message.setText("")
        self.repo_label.setText(f"<b>{repo_id}</b> — loading its files…")
        known = [HubFile(r.filename, r.size, None, quantization(r.filename))
                 for r in RECOMMENDED if r.repo_id == repo_id and r.filename == select]
        self._show_files(known, select)
        self._listing.start(self._list(repo_id, select, self._token()))

    async def _list(self, repo_id: str, select: str, token: str | None) -> None:
        try:
            files = await hub_search.list_gguf_files(repo_id, token=token)
        except Exception as error:  # noqa: BLE001 - said in the dialog, whatever it is
            self.repo_label.setText(f"<b>{repo_id}</b>")
            self.message.setText(_explain(error))
            return
        names = [f.filename for f in files]
        self._local = await in_thread(downloaded_copies, self.models_dir, repo_id, names)
        self._show_files(files, select)
        count = f"{len(files)} GGUF file{'' if len(files) == 1 else 's'}" if files else "no GGUF files"
        self.repo_label.setText(f"<b>{repo_id}</b> — {count}")

    def _show_files(self, files: list[HubFile], select: str) -> None:
        self._files = files
        self.files.setRowCount(len(files))
        for row, f in enumerate(files):
            verdict = DOWNLOADED if f.filename in self._local else file_verdict(f.size, self._available)
            cells = (f.filename, f.quantization or "?", human_size(f.size), verdict)
            for column, text in enumerate(cells):
                self.files.setItem(row, column, QTableWidgetItem(text))
            if f.filename == select:
                self.files.selectRow(row)
        self._update_buttons()

    # -- downloading ----------------------------------------------------------------------------

    @property
    def downloading(self) -> bool:
        return self.task is not None and self.task.running

    def _selected_file(self) -> HubFile | None:
        rows = self.files.selectionModel().selectedRows()
        return self._files[rows[0].row()] if rows and rows[0].row() < len(self._files) else None

    def _update_buttons(self) -> None:
        chosen = self._selected_file()
        on_disk = chosen is not None and chosen.filename in self._local
        self.download_button.setText("Load" if on_disk else "Download")
        self.download_button.setToolTip("Load this model: it is downloaded already." if on_disk else "")
        self.download_button.setEnabled(chosen is not None and (on_disk or not self.downloading))
        self.pause_button.setEnabled(self.downloading)
        self.cancel_button.setEnabled(self.downloading)
        self.paused.set_busy(self.downloading)

    def _download_selected(self) -> None:
        chosen = self._selected_file()
        if chosen is not None and chosen.filename in self._local:
            self.load_requested.emit(str(self._local[chosen.filename]))
        elif chosen is not None:
            self.start_download(self._repo, chosen.filename)

    def start_download(self, repo_id: str, filename: str, dest_dir: Path | None = None) -> None:
        """One download at a time, into models/<owner>/<repo>/ unless `dest_dir` (a paused one's
        folder) says where; it goes on when the dialog is closed."""
        if self.downloading:
            return
        try:
            dest_dir = dest_dir or repo_folder(self.models_dir, repo_id)
        except UserFacingError as error:
            self.message.setText(error.message)
            return
        task = DownloadTask(repo_id, filename, dest_dir, token=self._token())
        task.start()
        self.watch(task)  # running now: Pause and Cancel download are offered
        self.download_started.emit(task)

    def watch(self, task: DownloadTask) -> None:
        """Show this download (started here, or earlier by a dialog now closed)."""
        if self.task is not None:
            for signal, slot in ((self.task.progress, self._on_progress), (self.task.finished, self._on_done),
                                 (self.task.failed, self._on_failed)):
                signal.disconnect(slot)
        self.task = task
        task.progress.connect(self._on_progress)
        task.finished.connect(self._on_done)
        task.failed.connect(self._on_failed)
        self.message.setText(f"Downloading {task.name} from {task.repo_id}…")
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.progress_label.setText("Starting…")
        if task.last_progress is not None:
            self._on_progress(task.last_progress)
        self._update_buttons()
        self.refresh_paused()  # a resumed download is no longer paused

    def pause_download(self) -> None:
        """Stop within half a second; the partial file stays, listed under Paused downloads."""
        if self.task is not None:
            self.task.pause()

    def cancel_download(self) -> None:
        """Stop within half a second and delete the partial file."""
        if self.task is not None:
            self.task.cancel()

    def resume(self, partial: PartialDownload) -> None:
        self.start_download(partial.repo_id, partial.filename, dest_dir=partial.folder)

    def refresh_paused(self) -> None:
        """List the downloads paused on disk (the one running now is not paused)."""
        running = self.task if self.downloading else None
        self.paused.refresh(running=(running.dest_dir, running.name) if running else None)

    def _on_progress(self, p: DownloadProgress) -> None:
        if p.total:
            self.progress.setValue(int(1000 * p.done / p.total))
        left = f", {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
        speed = human_size(int(p.bytes_per_s))
        self.progress_label.setText(f"{share_text(p.done, p.total)} at {speed}/s{left}")

    def _on_done(self, path: str) -> None:
        if self.task is not None and self.task.repo_id == self._repo:
            self._local[self.task.filename] = Path(path)
            self._show_files(self._files, self.task.filename)  # the file now offers Load
        self._update_buttons()
        self.progress.setValue(1000)
        self.progress_label.setText("")
        self.message.setText(f"Downloaded and verified: {Path(path).name} is in your library.")
        self.downloaded.emit(path)

    def _on_failed(self, kind: str, message: str) -> None:
        self._update_buttons()
        last = self.task.last_progress if self.task is not None else None
        if kind == PAUSED:
            message += " Resume it from Paused downloads below."
            self.progress_label.setText(f"Paused at {share_text(last.done, last.total)}." if last else "")
        else:  # cancelled or failed: the speed and time left of a stopped download mean nothing now
            self.progress.setVisible(kind != HubError.CANCELLED)
            self.progress_label.setText("")
        self.message.setText(message)
        self.refresh_paused()

    def reject(self) -> None:
        """Esc or the close button: the dialog goes, a download goes on, and the user is told so."""
        if self.downloading and self.task is not None:
            p = self.task.last_progress
            share = f" ({100 * p.done // p.total} %)" if p is not None and p.total else ""
            self.continues_in_background.emit(
                f"{self.task.name} goes on downloading in the background{share}: Model ▸ Download "
                "models shows it.")
        super().reject()

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
