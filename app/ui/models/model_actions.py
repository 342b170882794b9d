"""The window's model commands: open a file, import (file dialog or drop), load with the model's own
settings, reload with new ones, unload; the models window, the download dialog and the Connections
dialog (remote engines); and the Model tab (load settings, memory estimate) kept in step with the
model as it comes and goes.

Load settings belong to a model (ModelLibrary), so loading a model always uses its own and
changing them in the Model tab saves them for that model. What the user should read goes out as
`info` (the status bar) and `error` (the banner): this class knows no window.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app import paths
from app.core.inference.types import LoadOptions, ModelInfo
from app.core.models.library import ModelSettings
from app.core.models.library_files import LibraryError
from app.session.model_library import LibrarySession
from app.session.models import ModelSession
from app.session.tasks import Latest, start
from app.ui.models.load_settings_panel import LoadSettingsPanel

DOWNLOADS = QStandardPaths.StandardLocation.DownloadLocation  # where a model file usually is

if TYPE_CHECKING:  # the dialogs load with their first use (the hub client costs a quarter second)
    from app.session.connections import ConnectionsSession
    from app.session.download_task import DownloadTask
    from app.ui.models.connections_dialog import ConnectionsDialog
    from app.ui.models.hub_dialog import HubDialog
    from app.ui.models.models_window import ModelsWindow


class ModelActions(QObject):
    info = Signal(str)  # for the status bar
    error = Signal(str)  # for the banner
    download_started = Signal(object)  # a DownloadTask: the status bar follows it once its dialog closes

    def __init__(self, parent: QWidget, models: ModelSession, library: LibrarySession,
                 settings_panel: LoadSettingsPanel, connections: ConnectionsSession | None = None) -> None:
        super().__init__(parent)
        self._dialog_parent = parent  # only as the parent of the dialogs this opens
        self.models = models
        self.library = library
        self.settings_panel = settings_panel
        self.manager: ModelsWindow | None = None  # made when first opened
        self.downloads: HubDialog | None = None  # likewise
        self.connections = connections
        self.connections_dialog: ConnectionsDialog | None = None  # likewise
        self.download: DownloadTask | None = None  # the latest download: it outlives its dialog
        self._header = Latest("model header")
        models.loaded.connect(self._on_loaded)
        models.unloaded.connect(self._on_unloaded)
        models.failed.connect(self._on_failed)
        settings_panel.apply_requested.connect(self.reload_with)

    # -- the models window and the download dialog ----------------------------------------------

    def open_manager(self) -> None:
        if self.manager is None:
            from app.ui.models.models_window import ModelsWindow

            self.manager = ModelsWindow(self.library, self._dialog_parent)
            self.manager.load_requested.connect(
                lambda path, settings: self.models.load(path, settings.load_options()))
            self.manager.unload_requested.connect(self.unload)
            self.manager.unload_then_delete.connect(self._unload_then_delete)
            self.manager.download_requested.connect(self.open_downloads)
            self._mark_current()
        else:
            self.manager.refresh()
        self.manager.show()
        self.manager.raise_()

    def open_downloads(self) -> None:
        if self.downloads is None:
            from app.ui.models.hub_dialog import HubDialog

            self.downloads = HubDialog(paths.models_dir(), self._dialog_parent, task=self.download)
            self.downloads.download_started.connect(self._on_download_started)
            self.downloads.load_requested.connect(self.load)
            self.downloads.continues_in_background.connect(self.info)
        else:
            self.downloads.refresh_paused()
        self.downloads.show()
        self.downloads.raise_()

    def open_connections(self) -> None:
        """Model ▸ Connections…: the remote servers Llamadesk chats through."""
        if self.connections is None:
            return
        if self.connections_dialog is None:
            from app.ui.models.connections_dialog import ConnectionsDialog

            self.connections_dialog = ConnectionsDialog(self.connections, self._dialog_parent)
        self.connections_dialog.show()
        self.connections_dialog.raise_()
        self.connections_dialog.activateWindow()

    def downloads_in_progress(self) -> list[DownloadTask]:
        """The downloads running now (a quit pauses them: the window asks first)."""
        return [self.download] if self.download is not None and self.download.running else []

    def confirm_quit(self) -> bool:
        """Ask before quitting in the middle of a download; True when nothing runs or the user agrees.
        For the window's closeEvent: a quit pauses the download, and it resumes from Paused downloads."""
        running = self.downloads_in_progress()
        if not running:
            return True
        names = ", ".join(task.name for task in running)
        answer = QMessageBox.question(
            self._dialog_parent, "A download is in progress",
            f"{names} is still downloading. Quit anyway?\n\nThe part already downloaded is kept: "
            "Model ▸ Download models resumes it where it stopped.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def close(self) -> None:
        """The app is closing: a download still running pauses; its .part stays for a resume."""
        if self.download is not None:
            self.download.pause()

    def _on_download_started(self, task: DownloadTask) -> None:
        self.download = task
        task.finished.connect(self._on_downloaded)
        self.download_started.emit(task)

    def _on_downloaded(self, path: str) -> None:
        if self.manager is not None:
            self.manager.refresh(select=path)
        if self.models.model is None:
            self.load(path)
        else:
            self.info.emit(f"Downloaded {Path(path).name}: load it from Model ▸ Models")

    # -- loading ----------------------------------------------------------------------------------

    def load(self, path: str | Path) -> None:
        """Load a model with the settings stored for it."""
        options = self.library.library.settings_for(path).load_options()
        self.models.load(str(path), options)

    def reload_with(self, options: LoadOptions) -> None:
        """New load settings for the current model: saved for it, then the model loads again."""
        model = self.models.model
        self.models.make_way()  # a chat title being made is not "an answer"
        if model is None or self.models.backend.busy:
            self.error.emit("The model can be reloaded once it is loaded and not answering.")
            return
        try:
            self.library.library.set_settings(model.path, ModelSettings(**asdict(options)))
        except LibraryError as error:
            self.error.emit(error.message)
            return
        self.models.reload(options)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._dialog_parent, "Open a GGUF model",
                                              QStandardPaths.writableLocation(DOWNLOADS),
                                              "GGUF models (*.gguf)")
        if path:
            self.load(path)

    def import_and_load(self, files: list[str]) -> None:
        """Files dropped on the window: copied into the library in a worker thread, then the first
        one loaded."""
        ggufs = [f for f in files if f.lower().endswith(".gguf")]
        if not ggufs:
            self.error.emit("Only GGUF model files (.gguf) can be dropped here.")
            return
        self.info.emit(f"Copying {Path(ggufs[0]).name} into the library…")
        start(self._import_and_load(ggufs), "model import")

    async def _import_and_load(self, files: list[str]) -> None:
        try:
            result = await self.library.import_files(files)
        except Exception as error:  # noqa: BLE001 - the user must hear of any failure
            self.error.emit(f"Import failed: {error}")
            return
        if result.problems:
            self.error.emit(" ".join(result.problems))
        if result.imported:
            self.info.emit(f"Imported {', '.join(p.name for p in result.imported)}")
            self.load(result.imported[0])

    def unload(self) -> bool:
        """Unload the model (asking first while it answers); False if the user said no."""
        if self.models.model is None:
            return True
        self.models.make_way()  # a chat title being made is not "an answer"
        if self.models.backend.busy and QMessageBox.question(
                self._dialog_parent, "Unload the model", "An answer is being written. Stop it and unload?") \
                != QMessageBox.StandardButton.Yes:
            return False
        self.models.unload()
        return True

    def _unload_then_delete(self, path: str) -> None:
        """The file is deleted once llama.cpp has let go of it (Windows cannot delete a mapped file)."""
        def delete() -> None:
            self.models.unloaded.disconnect(delete)
            if self.manager is not None:
                self.manager.delete_path(path)

        if self.models.model is None:
            if self.manager is not None:
                self.manager.delete_path(path)
        elif self.unload():
            self.models.unloaded.connect(delete)

    # -- the Model tab and the models window follow the model -------------------------------------

    def _on_loaded(self, info: ModelInfo) -> None:
        panel = self.settings_panel
        panel.set_options(self.models.load_options)
        panel.show_model(info)
        self._header.start(self._show_memory_of(info.path))
        self._mark_current()

    def _on_failed(self, _message: str) -> None:
        """A failed load may have kept the model that worked (with its own settings), or none."""
        kept = self.models.model
        if kept is not None:
            self._on_loaded(kept)
        else:
            self._on_unloaded()

    def _on_unloaded(self) -> None:
        self._header.cancel()
        self.settings_panel.show_model(None)
        self._mark_current()

    async def _show_memory_of(self, path: str) -> None:
        """The Model tab's memory estimate needs the model's header, read in a worker thread; and
        the GPU settings need to know whether this llama.cpp build can offload at all."""
        header = await self.library.header(path)
        if self.models.model is not None and self.models.model.path == path:
            self.settings_panel.set_header(header)
        build = await self.library.build()
        self.settings_panel.set_gpu_offload(build.gpu_offload)

    def _mark_current(self) -> None:
        """Tell the models window which model is loaded, and how."""
        if self.manager is None:
            return
        info = self.models.model
        note = f"{info.gpu_layers}/{info.n_layers + 1} layers on the GPU" if info and info.gpu_layers else ""
        self.manager.set_current(info.path if info else None, note)
