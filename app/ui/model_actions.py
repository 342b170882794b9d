"""The window's model commands: open, import (file dialog or drop), load with the model's own
settings, reload with new ones, unload; the model manager and the download dialog.

Load settings belong to a model (ModelLibrary), so loading a model always uses its own and
changing them in the Model tab saves them for that model.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.core.engine_types import LoadOptions
from app.core.library import LibraryError, ModelLibrary, ModelSettings
from app.workers.background import run_in_background


class ModelActions(QObject):
    def __init__(self, window, library: ModelLibrary | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.library = library or ModelLibrary()
        self.manager = None  # ModelsWindow, made when first opened
        self.downloads = None  # HubDialog, likewise

    def open_manager(self) -> None:
        from app.ui.models_window import ModelsWindow

        if self.manager is None:
            self.manager = ModelsWindow(self.library, self.window)
            self.manager.load_requested.connect(
                lambda path, settings: self.controller.load_model(path, settings.load_options()))
            self.manager.unload_requested.connect(self.unload)
            self.manager.unload_then_delete.connect(self._unload_then_delete)
            self.manager.download_requested.connect(self.open_downloads)
            self.mark_current()
        else:
            self.manager.refresh()
        self.manager.show()
        self.manager.raise_()

    def open_downloads(self) -> None:
        from app import paths
        from app.ui.hub_dialog import HubDialog

        if self.downloads is None:
            self.downloads = HubDialog(paths.models_dir(), self.window)
            self.downloads.downloaded.connect(self._on_downloaded)
        self.downloads.show()
        self.downloads.raise_()

    def _on_downloaded(self, path: str) -> None:
        if self.manager is not None:
            self.manager.refresh(select=path)
        if self.controller.model is None:
            self.load(path)
        else:
            self.window.show_info(f"Downloaded {Path(path).name}: load it from Model ▸ Models")

    def mark_current(self) -> None:
        """Tell the manager which model is loaded, and how."""
        if self.manager is None:
            return
        from app.core import backends

        info = self.controller.model
        note = f"{info.gpu_layers}/{info.n_layers + 1} layers on the GPU" if info and info.gpu_layers else ""
        self.manager.set_current(info.path if info else None, note)
        gpu = "GPU offload available" if backends.gpu_offload_supported() else "no GPU offload in this build"
        self.manager.set_backends(f"llama.cpp backends: {backends.backend_name()} ({gpu})")

    @property
    def controller(self):
        return self.window.controller

    def load(self, path: str | Path) -> None:
        """Load a model with the settings stored for it."""
        options = self.library.settings_for(path).load_options()
        self.controller.load_model(str(path), options)

    def reload_with(self, options: LoadOptions) -> None:
        """New load settings for the current model: saved for it, then the model loads again."""
        model = self.controller.model
        if model is None or self.controller.generating:
            self.window.show_error("The model can be reloaded once it is loaded and not answering.")
            return
        try:
            self.library.set_settings(model.path, ModelSettings(**asdict(options)))
        except LibraryError as error:
            self.window.show_error(error.message)
            return
        self.controller.reload_model(options)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.load(path)

    def import_and_load(self, paths: list[str]) -> None:
        """Files dropped on the window: copied into the library off the GUI thread, then the first loaded."""
        ggufs = [p for p in paths if p.lower().endswith(".gguf")]
        if not ggufs:
            self.window.show_error("Only GGUF model files (.gguf) can be dropped here.")
            return
        self.window.show_info(f"Copying {Path(ggufs[0]).name} into the library…")

        def work() -> list[Path]:
            return [self.library.import_model(p) for p in ggufs]

        def done(imported: list[Path]) -> None:
            self.window.show_info(f"Imported {', '.join(p.name for p in imported)}")
            self.load(imported[0])

        def failed(error: Exception) -> None:
            message = error.message if isinstance(error, LibraryError) else f"Import failed: {error}"
            self.window.show_error(message)

        run_in_background(work, done, failed)

    def show_memory_of(self, path: str) -> None:
        """The Model tab's memory estimate needs the model's header: read off the GUI thread."""
        from app.core.gguf_info import read_model

        panel = self.window.load_settings_panel

        def shown(header) -> None:
            if self.controller.model is not None and self.controller.model.path == path:
                panel.set_header(header)

        def unreadable(error: Exception) -> None:
            if self.controller.model is not None and self.controller.model.path == path:
                panel.set_header(None)

        run_in_background(lambda: read_model(path), shown, unreadable)

    def unload(self) -> bool:
        """Unload the model (asking first while it answers); False if the user said no."""
        if self.controller.model is None:
            return True
        if self.controller.generating and QMessageBox.question(
                self.window, "Unload the model", "An answer is being written. Stop it and unload?") \
                != QMessageBox.StandardButton.Yes:
            return False
        self.controller.unload_model()
        return True

    def _unload_then_delete(self, path: str) -> None:
        """The file is deleted once llama.cpp has let go of it (Windows cannot delete a mapped file)."""
        def delete() -> None:
            self.controller.model_unloaded.disconnect(delete)
            if self.manager is not None:
                self.manager.delete_path(path)

        if self.controller.model is None:
            self.manager.delete_path(path)
        elif self.unload():
            self.controller.model_unloaded.connect(delete)
