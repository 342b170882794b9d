"""The status bar: what is happening, which model answers, on what, and how fast it was."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel, QStatusBar

from app.core.inference.types import GenerationStats, ModelInfo
from app.session.models import ModelSession


class StatusBar(QStatusBar):
    def __init__(self, models: ModelSession, parent=None) -> None:
        super().__init__(parent)
        self.state_label = QLabel("Starting…")
        self.model_label = QLabel("No model")
        self.backend_label = QLabel("")
        self.speed_label = QLabel("")
        self.addWidget(self.state_label, 1)
        for label in (self.model_label, self.backend_label, self.speed_label):
            self.addPermanentWidget(label)
        self.models = models
        models.status.connect(self.state_label.setText)
        models.loading.connect(self._show_loading)
        models.loaded.connect(self.show_model)
        models.failed.connect(lambda _message: self.show_model(models.model))
        models.unloaded.connect(lambda: self.show_model(None))

    def show_state(self, text: str) -> None:
        self.state_label.setText(text)

    def _show_loading(self, path: str) -> None:
        self.model_label.setText(f"Loading {Path(path).stem}…")
        self.backend_label.setText("")
        self.speed_label.setText("")

    def show_model(self, info: ModelInfo | None) -> None:
        """The model that answers now (after a failed load, the one still loaded, if any)."""
        if info is None:
            self.model_label.setText("No model")
            self.model_label.setToolTip("")
            self.backend_label.setText("")
            self.speed_label.setText("")  # the last answer's speed was that model's
            return
        self.model_label.setText(info.name)
        self.model_label.setToolTip(f"{info.path}\ncontext {info.n_ctx:,} tokens")
        backend = info.backend
        if info.gpu_layers:
            backend += f" · {info.gpu_layers}/{info.n_layers + 1} layers on GPU"
        self.backend_label.setText(backend)
        self.backend_label.setToolTip(f"llama.cpp {info.llama_cpp_version}: {info.system_info}")

    def show_speed(self, stats: GenerationStats) -> None:
        self.speed_label.setText(f"{stats.tokens_per_s:.1f} tok/s" if stats.completion_tokens > 1 else "")
