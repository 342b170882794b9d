"""How the model is loaded: context length, GPU layers, threads. Applying reloads the model.

These are not sampling settings: they cannot change between two answers without loading the
model again, so the panel says so and changes nothing until "Reload" is pressed.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.engine_types import LoadOptions, ModelInfo
from app.core.system import default_threads

GPU_MODES = (("auto", "All layers that fit"), ("cpu", "CPU only"), ("layers", "A number of layers"))


class LoadSettingsPanel(QWidget):
    apply_requested = Signal(object)  # LoadOptions

    def __init__(self, options: LoadOptions = LoadOptions(), parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("loadSettingsPanel")
        self._options = options
        self.model_label = QLabel("No model loaded")
        self.model_label.setWordWrap(True)
        self.context = QSpinBox()
        self.context.setRange(0, 1 << 18)
        self.context.setSingleStep(1024)
        self.context.setSpecialValueText("As trained")
        self.context.setSuffix(" tokens")
        self.context.setToolTip("How many tokens the model can see at once: the conversation and the "
                                "answer. Longer contexts use more memory (the KV cache).")
        self.gpu_mode = QComboBox()
        for key, label in GPU_MODES:
            self.gpu_mode.addItem(label, key)
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(1, 999)
        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText(f"Automatic ({default_threads()})")
        self.threads.setToolTip("CPU threads for generation; automatic uses one per physical core.")
        self.gpu_mode.setToolTip("Layers run on the GPU; if they do not fit, loading falls back "
                                 "to the CPU and says why.")
        form = QFormLayout()
        form.addRow("Context length", self.context)
        gpu_row = QHBoxLayout()
        gpu_row.addWidget(self.gpu_mode, 1)
        gpu_row.addWidget(self.gpu_layers)
        form.addRow("GPU layers", gpu_row)
        form.addRow("Threads", self.threads)
        note = QLabel("Changing these reloads the model (a few seconds for large models); "
                      "the conversation is kept.")
        note.setWordWrap(True)
        self.apply_button = QPushButton("Reload with these settings")
        self.apply_button.setObjectName("reloadModel")
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 6, 4, 6)
        column.addWidget(self.model_label)
        column.addLayout(form)
        column.addWidget(note)
        column.addWidget(self.apply_button)
        column.addStretch(1)
        for signal in (self.context.valueChanged, self.gpu_mode.currentIndexChanged,
                       self.gpu_layers.valueChanged, self.threads.valueChanged):
            signal.connect(self._update_state)
        self.apply_button.clicked.connect(lambda: self.apply_requested.emit(self.options()))
        self.set_options(options)

    def set_options(self, options: LoadOptions) -> None:
        self._options = options
        self.context.setValue(options.n_ctx)
        mode = "auto" if options.n_gpu_layers < 0 else "cpu" if options.n_gpu_layers == 0 else "layers"
        self.gpu_mode.setCurrentIndex(next(i for i, (k, _) in enumerate(GPU_MODES) if k == mode))
        if options.n_gpu_layers > 0:
            self.gpu_layers.setValue(options.n_gpu_layers)
        self.threads.setValue(options.n_threads or 0)
        self._update_state()

    def options(self) -> LoadOptions:
        mode = self.gpu_mode.currentData()
        layers = -1 if mode == "auto" else 0 if mode == "cpu" else self.gpu_layers.value()
        return replace(self._options, n_ctx=self.context.value(), n_gpu_layers=layers,
                       n_threads=self.threads.value() or None)

    def show_model(self, info: ModelInfo | None) -> None:
        if info is not None:  # llama.cpp is loaded by now: asking it about GPUs costs nothing
            from app.core import backends

            if not backends.gpu_offload_supported():
                for widget in (self.gpu_mode, self.gpu_layers):
                    widget.setEnabled(False)
                    widget.setToolTip("This llama.cpp build runs on the CPU only: build it with CUDA, "
                                      "Metal or Vulkan to offload layers (see README).")
        if info is None:
            self.model_label.setText("No model loaded")
        else:
            gpu = f", {info.gpu_layers}/{info.n_layers + 1} layers on the GPU" if info.gpu_layers else ""
            self.model_label.setText(f"<b>{info.name}</b><br>{info.architecture}, context "
                                     f"{info.n_ctx:,} tokens, {info.backend}{gpu}")
        self._update_state()

    def _update_state(self) -> None:
        self.gpu_layers.setVisible(self.gpu_mode.currentData() == "layers")
        self.apply_button.setEnabled(self.options() != self._options)
