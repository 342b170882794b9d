"""The model's life: load with given settings, reload with new ones, unload (the settings stored
for each model are the library's: app/ui/models/model_actions.py passes them).

Widgets ask here and observe the signals; the loading itself runs in the engine's process.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from app.core.inference.types import LoadOptions, ModelInfo
from app.session.local_backend import LocalBackend

log = logging.getLogger(__name__)


class ModelSession(QObject):
    loading = Signal(str)  # path
    loaded = Signal(object)  # ModelInfo
    failed = Signal(str)  # why, for the banner (the model that works may still be loaded: `model`)
    unloaded = Signal()
    status = Signal(str)  # "Loading model…", "Ready", "No model"
    changing = Signal()  # a model change is asked: background work on the model (a chat title) stops first

    def __init__(self, backend: LocalBackend, parent: QObject | None = None) -> None:
        """backend: a Backend with the lifecycle signals loading, loaded, load_failed, unloaded."""
        super().__init__(parent)
        self.backend = backend
        self.load_options = LoadOptions()  # what the loaded model was loaded with
        self._requested = self.load_options
        backend.loading.connect(self._on_loading)
        backend.loaded.connect(self._on_loaded)
        backend.load_failed.connect(self._on_load_failed)
        backend.unloaded.connect(self._on_unloaded)

    @property
    def model(self) -> ModelInfo | None:
        return self.backend.model

    def make_way(self) -> None:
        """Background work on the model (a chat's title being made) ends now, within one token."""
        self.changing.emit()

    def load(self, path: str, options: LoadOptions | None = None) -> None:
        self.make_way()
        self._requested = options or self.load_options
        self.status.emit("Loading model…")
        self.backend.load(str(path), self._requested)

    def unload(self) -> None:
        self.make_way()
        self.backend.unload()

    def reload(self, options: LoadOptions) -> bool:
        """Load the current model again with other load settings; False while an answer runs or
        without a model."""
        self.make_way()
        if self.backend.busy or self.model is None:
            return False
        self.load(self.model.path, options)
        return True

    def _on_loading(self, path: str) -> None:
        self.loading.emit(path)
        self.status.emit("Loading model…")

    def _on_loaded(self, info: ModelInfo) -> None:
        log.info("model loaded: %s (%s, context %d)", info.path, info.backend, info.n_ctx)
        self.load_options = self._requested
        self.loaded.emit(info)
        self.status.emit("Generating…" if self.backend.busy else "Ready")

    def _on_load_failed(self, kind: str, message: str, kept: ModelInfo | None) -> None:
        log.warning("model not loaded (%s): %s", kind, message)
        self.status.emit("Ready" if kept else "No model")
        self.failed.emit(message)

    def _on_unloaded(self) -> None:
        self.status.emit("No model")
        self.unloaded.emit()
